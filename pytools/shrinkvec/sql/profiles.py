"""The catalog's rows: the profile of a table (`shrinkvec.profiles` + `shrinkvec.codes`), saved, found and
deleted, and what the tools ask of a table (does it exist, how wide is its vector column).

The catalog's schema and its migrations are `shrinkvec.sql.catalog`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from shrinkvec.errors import ShrinkvecError
from shrinkvec.kinds import Code
from shrinkvec.profile import Profile
from shrinkvec.sql.connection import extension_schemas


class CatalogError(ShrinkvecError, RuntimeError):
    """The catalog is missing, or a profile is not in it."""


@contextmanager
def pinned_search_path(conn: psycopg.Connection) -> Iterator[None]:
    """search_path = pg_catalog, pg_temp for the tools' own statements on a caller's connection, restored
    afterwards: whatever the caller's search_path holds (objects of other roles in public, say), an
    unqualified name or operator in a catalog query resolves to the system's."""
    row = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()
    old = str(row[0]) if row else ""
    conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)")
    try:
        yield
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", (old,))


def has_catalog(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('shrinkvec.profiles') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _arr(v: np.ndarray | None) -> list[float] | None:
    return None if v is None else [float(x) for x in np.asarray(v, dtype=np.float32)]


def save_profile(conn: psycopg.Connection, p: Profile) -> str:
    """Insert the profile and its codes (in the caller's transaction). The catalog keys the profile to
    the table's relation and derives its name (returned) from it."""
    row = conn.execute(
        """INSERT INTO shrinkvec.profiles (name, relation, table_schema, table_name, id_column, vector_column, dims,
               distance, center, transform, k, shortlist)
           VALUES (%s, pg_catalog.to_regclass(%s), %s, %s, %s, %s, %s, %s, %s::real[], %s, %s, %s) RETURNING name""",
        (p.name, sql.Identifier(p.schema, p.table).as_string(conn), p.schema, p.table, p.id_column, p.vector_column,
         p.dims, p.distance, _arr(p.center), p.transform, p.k, p.shortlist),
    ).fetchone()
    name = str(row[0])  # type: ignore[index]  # RETURNING always gives the row
    for pos, c in enumerate(p.codes):
        conn.execute(
            """INSERT INTO shrinkvec.codes (profile, column_name, position, kind, length, lo, hi)
               VALUES (%s, %s, %s, %s, %s, %s::real[], %s::real[])""",
            (name, c.column, pos, c.kind, c.length, _arr(c.lo), _arr(c.hi)),
        )
    return name


def delete_profile(conn: psycopg.Connection, p: Profile) -> None:
    """Delete the profile of p's table and vector column (and, by cascade, its codes)."""
    conn.execute("DELETE FROM shrinkvec.profiles WHERE relation = pg_catalog.to_regclass(%s) AND vector_column = %s",
                 (sql.Identifier(p.schema, p.table).as_string(conn), p.vector_column))


def _np(v: list[float] | None) -> np.ndarray | None:
    return None if v is None else np.asarray(v, dtype=np.float32)


def find_profile(
    conn: psycopg.Connection, table: str, schema: str = "public", vector_column: str | None = None
) -> Profile | None:
    """The profile of a table (and vector column, when a table has several), or None."""
    with pinned_search_path(conn):
        return _find_profile(conn, table, schema, vector_column)


def _find_profile(conn: psycopg.Connection, table: str, schema: str, vector_column: str | None) -> Profile | None:
    if not has_catalog(conn):
        raise CatalogError("the shrinkvec catalog does not exist in this database: run 'shrinkvec migrate'")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT * FROM shrinkvec.profiles WHERE relation = pg_catalog.to_regclass(%s)
               AND (%s::text IS NULL OR vector_column = %s) ORDER BY name""",
            (sql.Identifier(schema, table).as_string(conn), vector_column, vector_column),
        ).fetchall()
        if not rows:
            return None
        if len(rows) > 1:
            cols = ", ".join(r["vector_column"] for r in rows)
            raise CatalogError(f"table {schema}.{table} has profiles on several columns ({cols}): name one")
        r = rows[0]
        code_rows = cur.execute(
            "SELECT * FROM shrinkvec.codes WHERE profile = %s ORDER BY position", (r["name"],)
        ).fetchall()
    ext_schema, vec_schema = extension_schemas(conn)
    transform_data = None
    if r["transform"] is not None:
        from shrinkvec.transforms import transform as transforms
        transform_data = transforms.load(conn, r["transform"])
    return Profile(
        name=r["name"], schema=r["table_schema"], table=r["table_name"], id_column=r["id_column"],
        vector_column=r["vector_column"], dims=r["dims"], distance=r["distance"], center=_np(r["center"]),
        transform=r["transform"], transform_data=transform_data, k=r["k"], shortlist=r["shortlist"],
        search_config=r.get("search_config"), ext_schema=ext_schema, vec_schema=vec_schema,
        codes=tuple(
            Code(c["kind"], c["length"], c["column_name"], lo=_np(c["lo"]), hi=_np(c["hi"])) for c in code_rows
        ),
    )


def table_exists(conn: psycopg.Connection, table: str, schema: str = "public") -> bool:
    name = sql.Identifier(schema, table).as_string(conn)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def vector_dims(conn: psycopg.Connection, table: str, column: str, schema: str = "public") -> int | None:
    """Declared dimensions of a vector column (None when it has no typmod)."""
    row = conn.execute(
        """SELECT a.atttypmod FROM pg_attribute a
           WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped""",
        (sql.Identifier(schema, table).as_string(conn), column),
    ).fetchone()
    if row is None:
        raise CatalogError(f"table {schema}.{table} has no column {column!r}")
    return None if row[0] < 0 else int(row[0])
