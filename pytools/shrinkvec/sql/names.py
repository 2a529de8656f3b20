"""Schema-qualified SQL names for generated statements: shrinkvec's and pgvector's functions and types,
operators, and float arrays. Every generated statement names things through these, so it means the same
under any search_path (a role that can create objects in a schema on it captures nothing).

They take anything with `ext_schema` and `vec_schema` (a Profile), so the code kinds can use them
without importing the profile module.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt
from psycopg import sql


class Located(Protocol):
    """Where the shrinkvec and vector extensions live (Profile has both)."""

    @property
    def ext_schema(self) -> str: ...

    @property
    def vec_schema(self) -> str: ...


def ext_fn(p: Located, name: str) -> sql.Identifier:
    """A shrinkvec function or type, schema-qualified."""
    return sql.Identifier(p.ext_schema, name)


def vec_fn(p: Located, name: str) -> sql.Identifier:
    """A pgvector function or type, schema-qualified."""
    return sql.Identifier(p.vec_schema, name)


def operator(schema: str, op: str) -> sql.Composed:
    """OPERATOR(schema.op): an operator no search_path can redirect."""
    return sql.SQL("OPERATOR({}.{})").format(sql.Identifier(schema), sql.SQL(op))


def real_array(values: npt.ArrayLike) -> sql.Composable:
    """A real[] constant whose elements are exactly the given float32 values."""
    a = np.asarray(values, dtype=np.float32)
    text = "{" + ",".join(np.format_float_scientific(v, unique=True) for v in a) + "}"
    return sql.SQL("{}::real[]").format(sql.Literal(text))
