"""The code kinds, one module each (bits, prefix, int8, multibit): see `base.CodeKind` for what a kind knows.

    from shrinkvec import kinds
    kinds.get("bits").bytes_per_row(384)      # 48
"""

from __future__ import annotations

from shrinkvec.kinds import bits, int8, multibit, prefix
from shrinkvec.kinds.base import CodeKind, KindError

# every kind, in the order the CLI lists them
KINDS: dict[str, CodeKind] = {k.name: k for k in (bits.KIND, prefix.KIND, int8.KIND, multibit.KIND)}


def get(name: str) -> CodeKind:
    """The kind called `name`; KindError names the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise KindError(f"unknown code kind {name!r}: use {', '.join(KINDS)}") from None


__all__ = ["KINDS", "CodeKind", "KindError", "get"]
