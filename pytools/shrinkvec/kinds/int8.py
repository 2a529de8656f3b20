"""`int8`: every dim quantized to one byte with per-dimension ranges fitted on a sample
(`quantize_int8(v, lo, hi)`, clipped), as int8vec(dims); ordered by the asymmetric int8 distance of the
profile's metric (`int8_ip_distance` for inner product, else `int8_cosine_distance`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql
from sqlalchemy import cast, literal
from sqlalchemy.dialects.postgresql import ARRAY, REAL
from sqlalchemy.types import UserDefinedType

from shrinkvec import codes
from shrinkvec.kinds.base import Code, CodeKind, KindError, ProfileLike
from shrinkvec.sql import orm_names
from shrinkvec.sql.names import Located, ext_fn, real_array


class Int8Vec(UserDefinedType[Any]):
    """The extension's int8vec(n) type (values are handled in SQL; Python sees its text form)."""

    cache_ok = True

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def get_col_spec(self, **kw: Any) -> str:
        return "int8vec" if self.dim is None else f"int8vec({self.dim})"

    def __repr__(self) -> str:
        return f"Int8Vec({self.dim!r})" if self.dim is not None else "Int8Vec()"


def distance_function(distance: str) -> str:
    """The int8 distance of a profile's metric."""
    return "int8_ip_distance" if distance == "ip" else "int8_cosine_distance"


class Int8(CodeKind):
    """Calibrated int8."""

    name = "int8"
    calibrated = True
    shortlists = (20, 50, 100)
    column_types = ("shrinkvec", ("int8vec",))

    def length(self, given: int | None, dims: int, part: str) -> int:
        if given is not None and given != dims:
            raise KindError("int8 codes cover all dimensions: write int8 without a length")
        return dims

    def spec(self, length: int) -> str:
        return "int8"

    def default_column(self, length: int, dims: int) -> str:
        return "int8"

    def encode(self, x: npt.NDArray[np.float32], code: Code, center: npt.NDArray[np.float32] | None) -> np.ndarray:
        assert code.lo is not None and code.hi is not None, "int8 code without ranges"
        return codes.quantize_int8_batch(x, code.lo, code.hi)

    def bytes_per_row(self, length: int) -> int:
        return length

    def sql_type(self, p: Located) -> sql.Composable:
        return ext_fn(p, "int8vec")

    def expr(self, p: ProfileLike, code: Code, vector: sql.Composable) -> sql.Composable:
        assert code.lo is not None and code.hi is not None, "int8 code without ranges"
        return sql.SQL("{}({}, {}, {})").format(ext_fn(p, "quantize_int8"), vector, real_array(code.lo),
                                                real_array(code.hi))

    def order(self, p: ProfileLike, code: Code, column: sql.Composable, q: sql.Composable,
              ranges: tuple[sql.Composable, sql.Composable] | None) -> sql.Composable:
        assert ranges is not None
        return sql.SQL("{}({}, {}, {}::pg_catalog.float4[], {}::pg_catalog.float4[])").format(
            ext_fn(p, distance_function(p.distance)), column, q, *ranges)

    def orm_type(self, length: int) -> Any:
        return Int8Vec(length)

    def orm_order(self, p: Located, column: Any, q: Any, distance: str, info: dict[str, Any]) -> Any:
        return orm_names.function(p.ext_schema, distance_function(distance), column, q,
                                  cast(literal(info["lo"]), ARRAY(REAL)), cast(literal(info["hi"]), ARRAY(REAL)))

    def copy_fields(self, prefix: str, length: int, dims: int) -> list[tuple[Any, ...]]:
        return [(f"{prefix}_len", ">i4"), (f"{prefix}_dim", ">i2"), (f"{prefix}_unused", ">i2"), (prefix, "i1", (dims,))]

    def copy_fill(self, rows: np.ndarray, prefix: str, length: int, dims: int, values: np.ndarray) -> None:
        rows[f"{prefix}_len"] = 4 + dims
        rows[f"{prefix}_dim"] = dims
        rows[f"{prefix}_unused"] = 0
        rows[prefix] = values


KIND = Int8()
