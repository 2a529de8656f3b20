"""What a code kind is: one class a kind, its instance registered in `shrinkvec.kinds`; what a code column
is (`Code`); and what a kind needs to know of a profile (`ProfileLike`).

A kind knows its numpy encoding (through `codes.py`, the reference), its SQL type and the SQL expression
that computes it from the vector, its order expression against a float query for each distance (in the
generated SQL and in SQLAlchemy), its fields in a binary COPY row, and its bytes per row. The loader, the
DDL, the query builder, the ORM, eval/tune and the alembic helpers ask the kind instead of branching on
its name, so a new kind is one module here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
from psycopg import sql

from shrinkvec.errors import ShrinkvecError
from shrinkvec.sql.names import Located


class KindError(ShrinkvecError, ValueError):
    """A code specification this kind cannot take (the message names it)."""


class ProfileLike(Located, Protocol):
    """What a kind reads of a profile (`shrinkvec.profile.Profile` has it): where the extensions live, the
    vector's width and distance, and the center subtracted before sign bits."""

    @property
    def dims(self) -> int: ...

    @property
    def distance(self) -> str: ...

    @property
    def center(self) -> npt.NDArray[np.float32] | None: ...


@dataclass(frozen=True)
class Code:
    """One code column: `bits` (sign bits of the first `length` dims, minus the profile's center),
    `prefix` (the first `length` dims as vector(length)) or `int8` (quantize_int8 with lo/hi)."""

    kind: str  # a registered code kind: a key of KINDS
    length: int
    column: str
    lo: npt.NDArray[np.float32] | None = field(default=None, compare=False)
    hi: npt.NDArray[np.float32] | None = field(default=None, compare=False)

    @property
    def code_kind(self) -> CodeKind:
        """What this kind of code is (shrinkvec.kinds)."""
        return get(self.kind)

    def spec(self) -> str:
        """The short form used on the command line: bits:384, prefix:128, int8."""
        return self.code_kind.spec(self.length)


class CodeKind:
    """One kind of compact code. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    # per-dimension ranges fitted on a sample (Code.lo / Code.hi) are part of the code's definition
    calibrated: ClassVar[bool] = False
    # shortlist sizes of `shrinkvec eval`'s default grid
    shortlists: ClassVar[tuple[int, ...]]
    # a funnel starts with this kind's code (the cheapest) and reranks with the others
    funnel_first: ClassVar[bool] = False
    # (access method, opclass) of the index alembic's create_shrinkvec_indexes makes on the code column by
    # default; None: no index (a `methods` entry of ("hnsw", "") gives a vector code the opclass of the
    # profile's distance)
    index: ClassVar[tuple[str, str] | None] = None
    # a code of a multi-vector profile (distance maxsim, vector[] column): encode() gets the flat tokens
    multi: ClassVar[bool] = False
    # the types a code column may have, (owner, type names): owner "pg_catalog" for a built-in type, else the
    # extension ("vector", "shrinkvec") the type must belong to (profile_check compares OIDs, not names)
    column_types: ClassVar[tuple[str, tuple[str, ...]]]

    # ---- specification ------------------------------------------------------------------------
    def length(self, given: int | None, dims: int, part: str) -> int:
        """The code's length from a spec's `:N` (None when absent); KindError when it is not allowed."""
        length = dims if given is None else given
        if not 1 <= length <= dims:
            raise KindError(f"{part}: length must be between 1 and {dims}")
        return length

    def spec(self, length: int) -> str:
        """The short form used on the command line: bits:384, prefix:128, int8."""
        return f"{self.name}:{length}"

    def default_column(self, length: int, dims: int) -> str:
        """Column name of the code in tables the loader creates."""
        return f"{self.name}{length}"

    # ---- numpy ---------------------------------------------------------------------------------
    def encode(self, x: npt.NDArray[np.float32], code: Code, center: npt.NDArray[np.float32] | None) -> np.ndarray:
        """The code of every row of x (n, dims), exactly as the SQL expression computes it."""
        raise NotImplementedError

    def bytes_per_row(self, length: int) -> int:
        """Bytes of code payload a row."""
        raise NotImplementedError

    # ---- SQL -----------------------------------------------------------------------------------
    def sql_type(self, p: Located) -> sql.Composable:
        """The SQL type without its length, schema-qualified."""
        raise NotImplementedError

    def column_type(self, p: Located, length: int) -> sql.Composable:
        """The SQL type of a code column of this length: sql_type(length)."""
        return sql.SQL("{}({})").format(self.sql_type(p), sql.Literal(length))

    def expr(self, p: ProfileLike, code: Code, vector: sql.Composable) -> sql.Composable:
        """SQL expression computing the code from a (transformed) vector expression: the same value as
        encode() and as the extension's codes trigger (extension/src/functions/codes_trigger.c), for ad-hoc SQL."""
        raise NotImplementedError

    def order(self, p: ProfileLike, code: Code, column: sql.Composable, q: sql.Composable,
              ranges: tuple[sql.Composable, sql.Composable] | None) -> sql.Composable:
        """ORDER BY expression of the code column against the float query q (a distance: smaller first);
        `ranges` are the (lo, hi) parameters of a calibrated kind."""
        raise NotImplementedError

    # ---- SQLAlchemy ----------------------------------------------------------------------------
    def orm_type(self, length: int) -> Any:
        """The column type."""
        raise NotImplementedError

    def orm_order(self, p: Located, column: Any, q: Any, distance: str, info: dict[str, Any]) -> Any:
        """ORDER BY expression of the mapped column against the query expression q, every operator and
        function schema-qualified (orm_names)."""
        raise NotImplementedError

    # ---- binary COPY ---------------------------------------------------------------------------
    def copy_fields(self, prefix: str, length: int, dims: int) -> list[tuple[Any, ...]]:
        """numpy dtype fields of the code in a COPY BINARY tuple (its length word first)."""
        raise NotImplementedError

    def copy_fill(self, rows: np.ndarray, prefix: str, length: int, dims: int, values: np.ndarray) -> None:
        """Set the code's fields of every row from encode()'s values."""
        raise NotImplementedError


# every kind, in the order the CLI lists them: filled by `shrinkvec.kinds` (its package __init__ runs before
# this module is used, as for any module of a package), which imports one module a kind
KINDS: dict[str, CodeKind] = {}


def get(name: str) -> CodeKind:
    """The kind called `name`; KindError names the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise KindError(f"unknown code kind {name!r}: use {', '.join(KINDS)}") from None
