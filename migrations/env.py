"""Alembic environment of the shrinkvec catalog (schema `shrinkvec`).

Run through `shrinkvec migrate` (shrinkvec.catalog.migrate), which passes an open SQLAlchemy connection
in config.attributes["connection"] after CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE. The version
table is shrinkvec.alembic_version, so a user's own alembic history (public.alembic_version) is separate.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from shrinkvec.sql.catalog import MIGRATE_LOCK, SCHEMA

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run the shrinkvec catalog migrations with `shrinkvec migrate --dsn ...`")

context.configure(
    connection=connection,
    version_table="alembic_version",
    version_table_schema=SCHEMA,
    transactional_ddl=True,
)
with context.begin_transaction():
    # One migrator at a time: a second `shrinkvec migrate` waits, then finds nothing to do.
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK})
    context.run_migrations()
