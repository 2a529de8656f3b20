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
import numpy.typing as npt
from psycopg import sql
from sqlalchemy.types import UserDefinedType

from shrinkvec import codes
from shrinkvec.kinds.base import Code, CodeKind, KindError, ProfileLike
from shrinkvec.sql import orm_names
from shrinkvec.sql.names import Located, ext_fn, operator, real_array


class MultiBit(UserDefinedType[Any]):
    """The extension's multibit type (no type modifier; Python sees its text form, e.g. '{1011,0110}')."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "multibit"


class Multibit(CodeKind):
    """Sign bits of every token of a multi-vector document."""

    name = "multibit"
    shortlists = (20, 50, 100, 200)
    multi = True
    column_types = ("shrinkvec", ("multibit",))

    def default_column(self, length: int, dims: int) -> str:
        return "multibit" if length == dims else f"multibit{length}"

    def encode(self, x: npt.NDArray[np.float32], code: Code, center: npt.NDArray[np.float32] | None) -> np.ndarray:
        return codes.binarize_batch(x, code.length, center)

    def bytes_per_row(self, length: int) -> int:
        return (length + 7) // 8

    def sql_type(self, p: Located) -> sql.Composable:
        return ext_fn(p, "multibit")

    def column_type(self, p: Located, length: int) -> sql.Composable:
        return self.sql_type(p)  # no type modifier: the dims are in every value's header

    def expr(self, p: ProfileLike, code: Code, vector: sql.Composable) -> sql.Composable:
        binarize = ext_fn(p, "binarize")
        if p.center is not None:
            return sql.SQL("{}({}, {}, {})").format(binarize, vector, sql.Literal(code.length), real_array(p.center))
        if code.length == p.dims:
            return sql.SQL("{}({})").format(binarize, vector)
        return sql.SQL("{}({}, {})").format(binarize, vector, sql.Literal(code.length))

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
