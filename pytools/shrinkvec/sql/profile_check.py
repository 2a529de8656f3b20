"""The column types of a profiled table, checked before any SQL built from its profile runs.

A profile (shrinkvec.profiles / shrinkvec.codes) and the table it describes are input another role wrote.
The generated SQL applies operators, functions and casts to the table's columns; on a column of a type
its owner made (a composite or a domain), PostgreSQL may pick the owner's casts or operators, which then
run as whoever runs the search (casts are not even schema-scoped: an implicit cast from the owner's type
to bit is found under any search_path). So before the tools run such SQL, every column the statement
touches must have exactly the type the profile claims, compared by OID:

- the id column: int2, int4, int8, uuid, text or varchar (pg_catalog's);
- the vector column: the vector extension's `vector` or `halfvec`, or `vector[]` for a maxsim profile;
- each code column: its kind's type (`CodeKind.column_types`): pg_catalog's bit, pgvector's vector or
  halfvec, shrinkvec's int8vec or multibit, each a member of its extension (pg_depend), not a type of the
  same name somewhere else.

Anything else raises ColumnTypeError naming the column and its type. The statements here qualify every
operator, so they mean the same on a caller's connection under any search_path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from shrinkvec.errors import ShrinkvecError
from shrinkvec.profile import Profile

# the built-in types a column may have, by their fixed OIDs
BUILTIN_TYPES = {"smallint": 21, "integer": 23, "bigint": 20, "uuid": 2950, "text": 25, "character varying": 1043,
                 "bit": 1560}
# the types of an id column: integers, and the keys frameworks make (LangChain: uuid or varchar)
ID_TYPES = ("smallint", "integer", "bigint", "uuid", "text", "character varying")

class ColumnTypeError(ShrinkvecError, ValueError):
    """A column of a profiled table does not have the type its profile needs (the message names it)."""


@dataclass(frozen=True)
class Expected:
    """What one column must be: a role in the message ("id column", "code column bits", ...), and the
    allowed types as (owner, name) pairs, owner "pg_catalog" or an extension's name; `array` for an array
    of one of them."""

    column: str
    role: str
    types: tuple[tuple[str, str], ...]
    array: bool = False


@dataclass(frozen=True)
class Checked:
    """The outcome of a passed check: the extensions' schemas and each checked column's type name."""

    ext_schema: str
    vec_schema: str
    type_names: dict[str, str]


_EXTENSION_TYPES = """
SELECT e.extname::text, n.nspname::text, t.typname::text, t.oid::int8, t.typarray::int8
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) d.objid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
  AND d.deptype OPERATOR(pg_catalog.=) 'e'
  AND e.extname OPERATOR(pg_catalog.=) ANY ('{vector,shrinkvec}'::pg_catalog.name[])
"""

_COLUMNS = """
SELECT a.attname::text, a.atttypid::int8, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid OPERATOR(pg_catalog.=) %s::pg_catalog.oid AND a.attnum OPERATOR(pg_catalog.>) 0
  AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.name[])
"""


def check_columns(conn: psycopg.Connection, relation: str, expected: Sequence[Expected]) -> Checked:
    """ColumnTypeError unless each expected column of `relation` (regclass input text, resolved by the
    connection's search_path like the statement it guards) has one of its allowed types."""
    row = conn.execute("SELECT pg_catalog.to_regclass(%s)::pg_catalog.oid::int8", (relation,)).fetchone()
    if row is None or row[0] is None:
        raise ColumnTypeError(f"table {relation} does not exist")
    rel = int(row[0])
    ext_types: dict[tuple[str, str], tuple[int, int]] = {}
    schemas: dict[str, str] = {}
    for extname, nspname, typname, oid, typarray in conn.execute(_EXTENSION_TYPES).fetchall():
        ext_types[(extname, typname)] = (int(oid), int(typarray))
        schemas[extname] = nspname
    if "vector" not in schemas or "shrinkvec" not in schemas:
        raise ColumnTypeError("the vector and shrinkvec extensions must be installed: run 'shrinkvec migrate'")
    columns = {str(name): (int(typ), str(shown)) for name, typ, shown in
               conn.execute(_COLUMNS, (rel, [e.column for e in expected])).fetchall()}
    names: dict[str, str] = {}
    for e in expected:
        if e.column not in columns:
            raise ColumnTypeError(_one_line(f"table {relation} has no column {e.column} (the {e.role})"))
        typ, shown = columns[e.column]
        for owner, name in e.types:
            if typ == _oid(owner, name, ext_types, e.array):
                names[e.column] = name
                break
        else:
            allowed = " or ".join(_describe(owner, name, schemas, e.array) for owner, name in e.types)
            raise ColumnTypeError(_one_line(f"column {e.column} of {relation} (the {e.role}) has type {shown}, "
                                            f"not {allowed}: refusing to run SQL built from its profile"))
    return Checked(schemas["shrinkvec"], schemas["vector"], names)


def _one_line(message: str) -> str:
    """Names another role chose may hold line breaks: the CLI prints errors on one line."""
    return " ".join(message.splitlines())


def _oid(owner: str, name: str, ext_types: dict[tuple[str, str], tuple[int, int]], array: bool) -> int:
    """The OID of an allowed type (of its array type with `array`); -1 when there is none."""
    if owner == "pg_catalog":
        return -1 if array else BUILTIN_TYPES[name]
    elem, arr = ext_types.get((owner, name), (-1, -1))
    return arr if array else elem


def _describe(owner: str, name: str, schemas: dict[str, str], array: bool) -> str:
    qualified = name if owner == "pg_catalog" else f"{schemas[owner]}.{name}"
    return qualified + ("[]" if array else "")


def expected_columns(p: Profile) -> list[Expected]:
    """What each column a profile's SQL touches must be."""
    ids = tuple(("pg_catalog", n) for n in ID_TYPES)
    vector = (("vector", "vector"),) if p.multi else (("vector", "vector"), ("vector", "halfvec"))
    out = [Expected(p.id_column, "id column", ids), Expected(p.vector_column, "vector column", vector, p.multi)]
    for c in p.codes:
        owner, names = c.code_kind.column_types
        out.append(Expected(c.column, f"{c.kind} code column", tuple((owner, n) for n in names)))
    return out


def check_profile(conn: psycopg.Connection, p: Profile) -> Profile:
    """The profile, located (its extensions' schemas) and with its vector column's type, once every column
    its SQL touches has the type it claims; ColumnTypeError otherwise."""
    relation = sql.Identifier(p.schema, p.table).as_string(conn)
    checked = check_columns(conn, relation, expected_columns(p))
    return replace(p, ext_schema=checked.ext_schema, vec_schema=checked.vec_schema,
                   vector_type=checked.type_names[p.vector_column])
