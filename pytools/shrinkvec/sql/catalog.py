"""The `shrinkvec` catalog schema: migrations (alembic, in migrations/) and profile records.

How the extension and the catalog relate: the extension (CREATE EXTENSION shrinkvec) creates the schema
`shrinkvec` and the function shrinkvec.search(); the catalog *tables* in that schema belong to alembic
(`shrinkvec migrate`), so they can evolve with data migrations that an extension upgrade script cannot do
well. `migrate` first runs CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE, so one command sets up a
database. shrinkvec.search() resolves the catalog at run time and says to run `shrinkvec migrate` when
it is missing. DROP EXTENSION shrinkvec CASCADE also drops the catalog.

The catalog's rows (profiles) are read and written by `shrinkvec.sql.profiles`; this module re-exports
those names, so `catalog.find_profile` and the like keep working.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from shrinkvec.sql import connection, ddl
from shrinkvec.sql.profiles import (  # the catalog's rows: re-exported, as they were defined here
    CatalogError,
    delete_profile,
    find_profile,
    has_catalog,
    pinned_search_path,
    save_profile,
    table_exists,
    vector_dims,
)
from shrinkvec.transforms import reencode

SCHEMA = "shrinkvec"
# pg_advisory_xact_lock key taken by every migrate run (an arbitrary constant: 'shrkvec1' as int64).
MIGRATE_LOCK = 0x73687266_76656331

__all__ = [
    "MIGRATE_LOCK", "SCHEMA", "CatalogError", "current_revision", "delete_profile", "downgrade", "find_profile",
    "has_catalog", "head_revision", "migrate", "migrations_dir", "pinned_search_path", "save_profile",
    "sync_codes_triggers", "table_exists", "vector_dims",
]


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
            path = Path(__file__).resolve().parents[3] / "migrations"
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
