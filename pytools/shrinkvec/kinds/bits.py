"""`bits`: sign bits of the first `length` dims (minus the profile's center), as bit(length), MSB-first;
ordered by the asymmetric score `code <^#> q` (a float query against the signs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pgvector.sqlalchemy import BIT
from psycopg import sql

from shrinkvec import codes
from shrinkvec.kinds.base import Code, CodeKind, ProfileLike
from shrinkvec.sql import orm_names
from shrinkvec.sql.names import Located, ext_fn, operator, real_array


class SignBits(CodeKind):
    """What every sign-bit kind shares (bits here, multibit for token vectors): the numpy code, its bytes
    and the SQL expression, binarize(v [, length [, center]])."""

    def encode(self, x: npt.NDArray[np.float32], code: Code, center: npt.NDArray[np.float32] | None) -> np.ndarray:
        return codes.binarize_batch(x, code.length, center)

    def bytes_per_row(self, length: int) -> int:
        return (length + 7) // 8

    def expr(self, p: ProfileLike, code: Code, vector: sql.Composable) -> sql.Composable:
        binarize = ext_fn(p, "binarize")
        if p.center is not None:
            return sql.SQL("{}({}, {}, {})").format(binarize, vector, sql.Literal(code.length), real_array(p.center))
        if code.length == p.dims:
            return sql.SQL("{}({})").format(binarize, vector)
        return sql.SQL("{}({}, {})").format(binarize, vector, sql.Literal(code.length))


class Bits(SignBits):
    """Sign bits."""

    name = "bits"
    shortlists = (20, 50, 100, 200, 400)
    funnel_first = True
    index = ("shrinkvec", "bit_hamming_ops")  # exact Hamming order
    column_types = ("pg_catalog", ("bit",))

    def default_column(self, length: int, dims: int) -> str:
        return "bits" if length == dims else f"bits{length}"

    def sql_type(self, p: Located) -> sql.Composable:
        return sql.SQL("bit")  # SQL syntax: always pg_catalog's

    def order(self, p: ProfileLike, code: Code, column: sql.Composable, q: sql.Composable,
              ranges: tuple[sql.Composable, sql.Composable] | None) -> sql.Composable:
        return sql.SQL("{} {} {}").format(column, operator(p.ext_schema, "<^#>"), q)

    def orm_type(self, length: int) -> Any:
        return BIT(length)

    def orm_order(self, p: Located, column: Any, q: Any, distance: str, info: dict[str, Any]) -> Any:
        return orm_names.binary(column, p.ext_schema, "<^#>", q)

    def copy_fields(self, prefix: str, length: int, dims: int) -> list[tuple[Any, ...]]:
        return [(f"{prefix}_len", ">i4"), (f"{prefix}_bits", ">i4"), (prefix, "u1", (self.bytes_per_row(length),))]

    def copy_fill(self, rows: np.ndarray, prefix: str, length: int, dims: int, values: np.ndarray) -> None:
        rows[f"{prefix}_len"] = 4 + self.bytes_per_row(length)
        rows[f"{prefix}_bits"] = length
        rows[prefix] = values


KIND = Bits()
