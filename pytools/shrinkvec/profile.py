"""Profiles: which table and vector column carry which compact codes, and how each code is computed.

A profile is the unit the catalog (`shrinkvec.profiles` + `shrinkvec.codes`), the loader, the query
generator, the ORM helpers and the alembic helpers share. Codes are computed here in numpy with the
reference in `codes.py`, so they equal the SQL functions bit for bit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt

from shrinkvec import codes, kinds
from shrinkvec.errors import ShrinkvecError
from shrinkvec.kinds import Code as Code  # its old home: `from shrinkvec.profile import Code` keeps working
from shrinkvec.kinds import KindError
from shrinkvec.transforms.transform import Transform

Kind = str  # a registered code kind: a key of shrinkvec.kinds.KINDS
Distance = Literal["cosine", "l2", "ip", "maxsim"]
# maxsim: a multi-vector (late interaction) profile, its vector column vector[] (one vector a token)
DISTANCES: tuple[Distance, ...] = ("cosine", "l2", "ip", "maxsim")


class ProfileError(ShrinkvecError, ValueError):
    """A profile or code specification that cannot be used (the message names the problem)."""


@dataclass(frozen=True)
class Profile:
    """A table's vector column and its code columns.

    With a transform, every code is computed from transform(v) (`transform_data` holds its numbers,
    `center` is then subtracted from the transformed vector for sign bits); the vector itself is
    never changed, so the rerank stays exact.
    """

    name: str
    schema: str
    table: str
    vector_column: str
    dims: int
    codes: tuple[Code, ...]
    id_column: str = "id"
    distance: Distance = "cosine"
    center: npt.NDArray[np.float32] | None = field(default=None, compare=False)
    transform: str | None = None
    transform_data: Transform | None = field(default=None, compare=False, repr=False)
    k: int = 10
    shortlist: int = 200
    search_config: str | None = None  # default search chosen by `shrinkvec tune --apply` (configs.py spec)
    # where the shrinkvec and vector extensions live: generated SQL qualifies every name with them
    ext_schema: str = "public"
    vec_schema: str = "public"
    vector_type: str = "vector"  # the column's pgvector type: vector, or halfvec (exact and index searches)

    @property
    def multi(self) -> bool:
        """A multi-vector profile: the vector column holds an array of token vectors, scored by maxsim."""
        return self.distance == "maxsim"

    def check_codes(self) -> None:
        """ProfileError unless every code suits the profile (multibit codes go with maxsim, and only they)."""
        for c in self.codes:
            if c.code_kind.multi != self.multi:
                raise ProfileError(
                    f"code {c.spec()} needs {'distance maxsim' if c.code_kind.multi else 'a single-vector distance'}"
                    f" (profile {self.name!r} has distance {self.distance})")
        if self.multi and self.transform is not None:
            raise ProfileError("a multi-vector (maxsim) profile cannot have a transform")

    def encode_docs(self, tokens: npt.NDArray[np.float32], offsets: npt.NDArray[np.int64]) -> dict[str, list[np.ndarray]]:
        """Every code of every document of a multi-vector batch: tokens (T, dims) flat, document i being rows
        offsets[i]:offsets[i+1]; column name -> one (tokens_i, ceil(len/8)) uint8 array a document."""
        if tokens.ndim != 2 or tokens.shape[1] != self.dims:
            raise ProfileError(f"expected {self.dims} dimensions, got {tokens.shape[1] if tokens.ndim == 2 else tokens.ndim}")
        out: dict[str, list[np.ndarray]] = {}
        for c in self.codes:
            flat = c.code_kind.encode(tokens, c, self.center)
            out[c.column] = [flat[a:b] for a, b in pairwise(offsets)]
        return out

    def code(self, stage: str) -> Code:
        """The code a stage names: 'bits', 'bits:N', 'prefix', 'prefix:N', 'int8' or a column name."""
        for c in self.codes:
            if stage in (c.column, c.kind, c.spec()):
                return c
        have = ", ".join(c.spec() for c in self.codes) or "none"
        raise ProfileError(f"profile {self.name!r} has no code {stage!r} (it has: {have})")

    def encode(self, x: npt.NDArray[np.float32]) -> dict[str, np.ndarray]:
        """Every code of every row of x (n, dims), in one pass: column name -> array.

        bits: (n, ceil(len/8)) uint8 packed MSB-first; prefix: (n, len) float32; int8: (n, dims) int8.
        """
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ProfileError(f"expected {self.dims} dimensions, got {x.shape[1] if x.ndim == 2 else x.ndim}")
        if self.transform_data is not None:
            x = self.transform_data.apply(x)  # the exact reference: the trigger computes the same floats
        return {c.column: c.code_kind.encode(x, c, self.center) for c in self.codes}


_SPEC = re.compile(r"^(" + "|".join(kinds.KINDS) + r")(?::(\d+))?(?:=(.+))?$")


def default_column(kind: str, length: int, dims: int) -> str:
    """Column name of a code in tables the loader creates: bits, bits256, prefix128, int8."""
    return kinds.get(kind).default_column(length, dims)


def parse_codes(spec: str, dims: int) -> tuple[Code, ...]:
    """Codes from 'bits,prefix:128,int8' (bits without a length = all dims; int8 is always all dims).

    A code may name its column: 'prefix:64=emb_prefix' (default names: bits, bits256, prefix128, int8).
    """
    out: list[Code] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        m = _SPEC.match(part)
        if not m:
            raise ProfileError(f"unknown code {part!r}: use bits[:N], prefix:N, int8 or multibit[:N]")
        kind: Kind = m.group(1)  # the regex admits the registered kinds only
        try:
            length = kinds.get(kind).length(None if m.group(2) is None else int(m.group(2)), dims, part)
        except KindError as exc:
            raise ProfileError(str(exc)) from None
        c = Code(kind, length, m.group(3) or default_column(kind, length, dims))
        if any(o.column == c.column for o in out):
            raise ProfileError(f"code {part} is given twice")
        out.append(c)
    if not out:
        raise ProfileError("a profile needs at least one code")
    return tuple(out)


def calibrate(profile: Profile, sample: npt.NDArray[np.float32], coverage: float | None = None) -> Profile:
    """The profile with int8 ranges fitted on a sample (min/max, or the central `coverage`)."""
    new_codes = []
    for c in profile.codes:
        if c.code_kind.calibrated and c.lo is None:
            r = codes.int8_ranges(sample, coverage)
            c = replace(c, lo=r.lo, hi=r.hi)
        new_codes.append(c)
    return replace(profile, codes=tuple(new_codes))
