"""The code kinds, one module each (bits, prefix, int8, multibit): see `base.CodeKind` for what a kind knows.

    from shrinkvec import kinds
    kinds.get("bits").bytes_per_row(384)      # 48
"""

from __future__ import annotations

from shrinkvec.kinds import bits, int8, multibit, prefix
from shrinkvec.kinds.base import KINDS, Code, CodeKind, KindError, ProfileLike, get

# the registry, in the order the CLI lists the kinds
KINDS.update({k.name: k for k in (bits.KIND, prefix.KIND, int8.KIND, multibit.KIND)})

__all__ = ["KINDS", "Code", "CodeKind", "KindError", "ProfileLike", "get"]
