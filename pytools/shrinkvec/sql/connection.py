"""The connections the tools open: every one runs with ``search_path = pg_catalog, pg_temp``.

Whatever another role has planted in a schema on the server's or the role's default search_path (an
``=(name, varchar)`` in ``public``, say), no statement of the tools, of SQLAlchemy's reflection or of
alembic resolves a name or an operator through it: unqualified names mean pg_catalog's, and everything
else is schema-qualified. The setting is a startup option (``-c search_path=...``, appended to any
``options`` of the DSN or PGOPTIONS), which outranks ``ALTER DATABASE/ROLE ... SET search_path``; a
connection where it did not take (a pooler that drops startup options) sets it before it is used.

`connect` is the one way the tools open a psycopg connection, `engine` the SQLAlchemy engine of alembic,
and `register_vector` registers pgvector's types by their schema (pgvector's own helper looks them up by
unqualified name, which the pinned search_path does not find).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types import TypeInfo

from shrinkvec.errors import ShrinkvecError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SAFE_SEARCH_PATH = "pg_catalog, pg_temp"
_OPTION = "-c search_path=pg_catalog,pg_temp"


class ExtensionMissing(ShrinkvecError, RuntimeError):
    """An extension the tools need is not installed in the database."""


def options(dsn: str) -> str:
    """The libpq `options` of a tool's connection: the DSN's (else PGOPTIONS), then the pinned search_path
    (the last `-c` of a setting wins)."""
    given = conninfo_to_dict(dsn).get("options") or os.environ.get("PGOPTIONS") or ""
    return f"{given} {_OPTION}".strip()


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to `dsn` whose search_path is pg_catalog, pg_temp (checked, and set when a pooler
    dropped the startup option); idle when it is returned."""
    conn = psycopg.connect(dsn, autocommit=autocommit, options=options(dsn))
    try:
        row = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()
        if row is None or str(row[0]).replace(" ", "") != SAFE_SEARCH_PATH.replace(" ", ""):
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", (SAFE_SEARCH_PATH,))
        if not autocommit:
            conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def engine(dsn: str) -> Engine:
    """A SQLAlchemy engine (postgresql+psycopg, no pool) whose every connection comes from `connect`."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine("postgresql+psycopg://", creator=lambda: connect(dsn), poolclass=NullPool)


def extension_schema(conn: psycopg.Connection, extname: str) -> str | None:
    """The schema of an installed extension (None when it is not installed)."""
    row = conn.execute(
        """SELECT n.nspname FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
           WHERE e.extname OPERATOR(pg_catalog.=) %s::pg_catalog.name""", (extname,)).fetchone()
    return None if row is None else str(row[0])


def extension_schemas(conn: psycopg.Connection) -> tuple[str, str]:
    """The schemas of the shrinkvec and vector extensions."""
    rows: dict[str, str] = dict(conn.execute(
        """SELECT e.extname, n.nspname FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
           WHERE e.extname OPERATOR(pg_catalog.=) ANY ('{shrinkvec,vector}'::text[])""").fetchall())
    if len(rows) < 2:
        raise psycopg.errors.UndefinedObject("the shrinkvec extension is not installed: run shrinkvec migrate")
    return str(rows["shrinkvec"]), str(rows["vector"])


def creation_schema(dsn: str) -> str:
    """The schema CREATE EXTENSION without SCHEMA would pick for this user and database (the first schema
    of their own search_path), so `migrate` installs where it always did. The one connection that keeps
    the user's search_path: it runs a single schema-qualified function call, nothing that resolves a
    name or an operator."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_catalog.current_schema()").fetchone()
    if row is None or row[0] is None:
        raise ExtensionMissing("no schema to create the extensions in: the search_path names no existing schema")
    return str(row[0])


def register_vector(conn: psycopg.Connection) -> None:
    """pgvector's psycopg adapters (vector, halfvec, sparsevec, bit) for the types of the vector extension,
    found by its schema rather than by the connection's search_path."""
    from pgvector.psycopg.bit import register_bit_info
    from pgvector.psycopg.halfvec import register_halfvec_info
    from pgvector.psycopg.sparsevec import register_sparsevec_info
    from pgvector.psycopg.vector import register_vector_info

    schema = extension_schema(conn, "vector")
    if schema is None:
        raise ExtensionMissing("the vector extension (pgvector) is not installed in this database")
    info = TypeInfo.fetch(conn, sql.Identifier(schema, "vector"))
    if info is None:
        raise ExtensionMissing(f"pgvector's vector type is not in its schema {schema}")
    register_vector_info(conn, info)
    bit = TypeInfo.fetch(conn, sql.Identifier("pg_catalog", "bit"))
    assert bit is not None, "pg_catalog.bit always exists"
    register_bit_info(conn, bit)
    for name, register in (("halfvec", register_halfvec_info), ("sparsevec", register_sparsevec_info)):
        other = TypeInfo.fetch(conn, sql.Identifier(schema, name))
        if other is not None:
            register(conn, other)
