"""The `shrinkvec` catalog schema: migrations (alembic, in migrations/) and profile records.

How the extension and the catalog relate: the extension (CREATE EXTENSION shrinkvec) creates the schema
`shrinkvec` and the function shrinkvec.search(); the catalog *tables* in that schema belong to alembic
(`shrinkvec migrate`), so they can evolve with data migrations that an extension upgrade script cannot do
well. `migrate` first runs CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE, so one command sets up a
database. shrinkvec.search() resolves the catalog at run time and says to run `shrinkvec migrate` when
it is missing. DROP EXTENSION shrinkvec CASCADE also drops the catalog.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from shrinkvec import connection
from shrinkvec.ddl import extension_schemas
from shrinkvec.errors import ShrinkvecError
from shrinkvec.profile import Code, Profile

SCHEMA = "shrinkvec"
# pg_advisory_xact_lock key taken by every migrate run (an arbitrary constant: 'shrkvec1' as int64).
MIGRATE_LOCK = 0x73687266_76656331


class CatalogError(ShrinkvecError, RuntimeError):
    """The catalog is missing, or a profile is not in it."""


def migrations_dir() -> Path:
    """The alembic script directory: SHRINKVEC_MIGRATIONS, else migrations/ as installed with the package
    (shrinkvec._migrations), else migrations/ in the source tree."""
    env = os.environ.get("SHRINKVEC_MIGRATIONS")
    if env:
        path = Path(env)
    else:
        try:
            from importlib import resources

            path = Path(str(resources.files("shrinkvec._migrations")))
        except ModuleNotFoundError:
            path = Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").exists():
        raise CatalogError(f"alembic migrations not found in {path} (set SHRINKVEC_MIGRATIONS)")
    return path


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def _create_extension(dsn: str) -> sql.Composable | None:
    """CREATE EXTENSION shrinkvec, in the schema the user's own search_path names first (where a plain
    CREATE EXTENSION would put it: the tools' connections search pg_catalog only); None when installed."""
    with connection.connect(dsn) as conn:
        if connection.extension_schema(conn, "shrinkvec") is not None:
            return None
    return sql.SQL("CREATE EXTENSION IF NOT EXISTS shrinkvec SCHEMA {} CASCADE").format(
        sql.Identifier(connection.creation_schema(dsn)))


def migrate(dsn: str, revision: str = "head") -> str | None:
    """Create the extension if missing and upgrade the catalog to `revision`; safe to run repeatedly
    and concurrently. Returns the catalog's revision afterwards."""
    from alembic import command
    from sqlalchemy import text

    cfg = _alembic_config()
    head = head_revision(cfg)
    if revision == "head" and current_revision(dsn) == head:
        # no catalog DDL, so a role without CREATE privileges can call this; tables restored from a one-table
        # dump since the last run still get their profile from their trigger (what revision 0007 does)
        with connection.connect(dsn, autocommit=True) as conn:
            sync_codes_triggers(conn)
        return head
    create = _create_extension(dsn)
    engine = connection.engine(dsn)
    try:
        with engine.begin() as c:
            c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK})
            if create is not None:  # IF NOT EXISTS: a concurrent migrate may have created it meanwhile
                c.connection.driver_connection.execute(create)  # type: ignore[union-attr]  # a psycopg connection
            c.execute(text("CREATE SCHEMA IF NOT EXISTS shrinkvec"))
            cfg.attributes["connection"] = c
            command.upgrade(cfg, revision)
        return current_revision(dsn)
    finally:
        engine.dispose()


def sync_codes_triggers(conn: psycopg.Connection) -> None:
    """Every profiled table on the extension's codes trigger, every table with that trigger profiled
    (ddl.sync_triggers, reencode.sync_shadow_triggers); what the caller may not change is logged."""
    import logging

    from shrinkvec import ddl, reencode

    log = logging.getLogger("shrinkvec.migrate")
    report = ddl.sync_triggers(conn)
    for where in report.recreated:
        log.info("shrinkvec: %s now uses the extension's codes trigger", where)
    for where in report.registered:
        log.info("shrinkvec: registered the profile of %s from its trigger", where)
    for where in reencode.sync_shadow_triggers(conn):
        log.info("shrinkvec: the re-encode in progress on %s now uses the extension's codes trigger", where)
    for why in report.skipped:
        log.warning("shrinkvec: left %s", why)


def head_revision(cfg: Any | None = None) -> str | None:
    """The newest revision of the catalog's migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(cfg or _alembic_config()).get_current_head()


def downgrade(dsn: str, revision: str) -> None:
    """Downgrade the catalog (e.g. to "base", which drops the catalog tables, not the extension)."""
    from alembic import command

    cfg = _alembic_config()
    engine = connection.engine(dsn)
    try:
        with engine.begin() as c:
            cfg.attributes["connection"] = c
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


def current_revision(dsn: str) -> str | None:
    """The catalog's alembic revision, or None when it was never migrated."""
    with connection.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('shrinkvec.alembic_version')").fetchone()[0] is None:  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
            return None
        row = conn.execute("SELECT version_num FROM shrinkvec.alembic_version").fetchone()
        return None if row is None else str(row[0])


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
        from shrinkvec import transforms

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
