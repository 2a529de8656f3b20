"""`multibit`: late interaction's code. A multi-vector profile (distance `maxsim`) stores a document as
vector[] (one vector a token); its multibit code packs every token's sign bits (the first `length` dims,
minus the profile's center) into one value, `binarize(tokens [, length [, center]])`. It is ordered by
the asymmetric MaxSim of the float query tokens against the signs, `-maxsim(q, code)` (a distance:
smaller first), and reranked by the exact `-maxsim(q, tokens)`.

Encoding works on the flat (tokens, dims) array of a batch of documents, one code row a token (the
loader groups them by document); bytes_per_row is per token (a document adds 8 bytes of header)."""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import sql
from sqlalchemy.types import UserDefinedType

from shrinkvec.kinds.base import Code, KindError, ProfileLike
from shrinkvec.kinds.bits import SignBits
from shrinkvec.sql import orm_names
from shrinkvec.sql.names import Located, ext_fn, operator


class MultiBit(UserDefinedType[Any]):
    """The extension's multibit type (no type modifier; Python sees its text form, e.g. '{1011,0110}')."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "multibit"


class Multibit(SignBits):
    """Sign bits of every token of a multi-vector document."""

    name = "multibit"
    shortlists = (20, 50, 100, 200)
    multi = True
    column_types = ("shrinkvec", ("multibit",))

    def default_column(self, length: int, dims: int) -> str:
        return "multibit" if length == dims else f"multibit{length}"

    def sql_type(self, p: Located) -> sql.Composable:
        return ext_fn(p, "multibit")

    def column_type(self, p: Located, length: int) -> sql.Composable:
        return self.sql_type(p)  # no type modifier: the dims are in every value's header

    def order(self, p: ProfileLike, code: Code, column: sql.Composable, q: sql.Composable,
              ranges: tuple[sql.Composable, sql.Composable] | None) -> sql.Composable:
        return sql.SQL("{}({}({}, {}))").format(operator("pg_catalog", "-"), ext_fn(p, "maxsim"), q, column)

    def orm_type(self, length: int) -> Any:
        return MultiBit()

    def orm_order(self, p: Located, column: Any, q: Any, distance: str, info: dict[str, Any]) -> Any:
        return orm_names.negate(orm_names.function(p.ext_schema, "maxsim", q, column))

    def copy_fields(self, prefix: str, length: int, dims: int) -> list[tuple[Any, ...]]:
        raise KindError("multibit codes have a length per document: the loader writes them row by row")

    def copy_fill(self, rows: np.ndarray, prefix: str, length: int, dims: int, values: np.ndarray) -> None:
        raise KindError("multibit codes have a length per document: the loader writes them row by row")


KIND = Multibit()
