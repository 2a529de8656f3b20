"""Schema-qualified SQLAlchemy expressions for the ORM's generated SQL: operators as OPERATOR(schema.op),
functions as schema.name(...), and the types of casts (pgvector's vector, pg_catalog's regclass) with
their schema. The SQLAlchemy counterpart of `names`: a statement built from these means the same
under any search_path of the session that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, operators
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import UserDefinedType


@dataclass(frozen=True)
class Schemas:
    """Where the shrinkvec and vector extensions live (a `names.Located`)."""

    ext_schema: str = "public"
    vec_schema: str = "public"


def quote(name: str) -> str:
    """A double-quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def op(schema: str, operator: str) -> str:
    """The operator text for ColumnOperators.op(): OPERATOR("schema".op)."""
    return f"OPERATOR({quote(schema)}.{operator})"


def binary(left: Any, schema: str, operator: str, right: Any) -> ColumnElement[Any]:
    """left OPERATOR(schema.op) right, a float."""
    result: ColumnElement[Any] = left.op(op(schema, operator), return_type=Float())(right)
    return result


def negate(expr: Any) -> ColumnElement[Any]:
    """OPERATOR(pg_catalog.-) expr: a float's negation, by pg_catalog's operator."""
    return UnaryExpression(expr, operator=operators.custom_op(op("pg_catalog", "-") + " "), type_=Float())


class QualifiedFunction(FunctionElement[Any]):
    """"schema"."name"(args), a float. (SQLAlchemy's func.schema.name leaves a package name unquoted unless
    it has illegal characters, so a schema `Vectors` would fold to `vectors`: another schema.)"""

    type = Float()
    inherit_cache = True
    _traverse_internals = [*FunctionElement._traverse_internals, ("fschema", InternalTraversal.dp_string),
                           ("fname", InternalTraversal.dp_string)]

    def __init__(self, schema: str, name: str, *args: Any) -> None:
        self.fschema, self.fname = schema, name
        super().__init__(*args)


@compiles(QualifiedFunction)
def _compile_qualified(element: QualifiedFunction, compiler: Any, **kw: Any) -> str:
    return f"{quote(element.fschema)}.{quote(element.fname)}({compiler.process(element.clauses, **kw)})"


def function(schema: str, name: str, *args: Any) -> ColumnElement[Any]:
    """"schema"."name"(args), a float."""
    return QualifiedFunction(schema, name, *args)


class Vector(VECTOR):
    """pgvector's VECTOR, named with the vector extension's schema in casts: "schema".vector(n)."""

    cache_ok = True

    def __init__(self, schema: str, dim: int | None = None) -> None:
        super().__init__(dim)
        self.schema = schema

    def get_col_spec(self, **kw: Any) -> str:
        return f"{quote(self.schema)}.vector" + ("" if self.dim is None else f"({self.dim})")


class RegClass(UserDefinedType[Any]):
    """pg_catalog.regclass (SQLAlchemy's REGCLASS renders the bare type name)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "pg_catalog.regclass"
