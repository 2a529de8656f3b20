"""`prefix`: the first `length` dims as vector(length) (a Matryoshka prefix); ordered by cosine over the
prefix, `code <^=> q`, which re-normalises it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector.sqlalchemy import VECTOR
from psycopg import sql

from shrinkvec.kinds.base import Code, CodeKind, KindError, ProfileLike
from shrinkvec.sql import orm_names
from shrinkvec.sql.names import Located, operator, vec_fn


class Prefix(CodeKind):
    """A Matryoshka prefix."""

    name = "prefix"
    shortlists = (50, 100, 200, 400)
    column_types = ("vector", ("vector", "halfvec"))

    def length(self, given: int | None, dims: int, part: str) -> int:
        if given is None:
            raise KindError("prefix needs a length, e.g. prefix:128")
        length = super().length(given, dims, part)
        if length == dims:
            raise KindError(f"{part}: a prefix must be shorter than the vector ({dims} dimensions)")
        return length

    def encode(self, x: npt.NDArray[np.float32], code: Code, center: npt.NDArray[np.float32] | None) -> np.ndarray:
        return x[:, : code.length]

    def bytes_per_row(self, length: int) -> int:
        return 4 * length

    def sql_type(self, p: Located) -> sql.Composable:
        return vec_fn(p, "vector")

    def expr(self, p: ProfileLike, code: Code, vector: sql.Composable) -> sql.Composable:
        return sql.SQL("{}({}, 1, {})::{}({})").format(vec_fn(p, "subvector"), vector, sql.Literal(code.length),
                                                       self.sql_type(p), sql.Literal(code.length))

    def order(self, p: ProfileLike, code: Code, column: sql.Composable, q: sql.Composable,
              ranges: tuple[sql.Composable, sql.Composable] | None) -> sql.Composable:
        return sql.SQL("{} {} {}").format(column, operator(p.ext_schema, "<^=>"), q)

    def orm_type(self, length: int) -> Any:
        return VECTOR(length)

    def orm_order(self, p: Located, column: Any, q: Any, distance: str, info: dict[str, Any]) -> Any:
        return orm_names.binary(column, p.ext_schema, "<^=>", q)

    def copy_fields(self, prefix: str, length: int, dims: int) -> list[tuple[Any, ...]]:
        return [(f"{prefix}_len", ">i4"), (f"{prefix}_dim", ">i2"), (f"{prefix}_unused", ">i2"),
                (prefix, ">f4", (length,))]

    def copy_fill(self, rows: np.ndarray, prefix: str, length: int, dims: int, values: np.ndarray) -> None:
        rows[f"{prefix}_len"] = 4 + 4 * length
        rows[f"{prefix}_dim"] = length
        rows[f"{prefix}_unused"] = 0
        rows[prefix] = values


KIND = Prefix()
