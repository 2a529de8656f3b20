"""shrinkvec catalog privileges: any role may use the catalog, only a table's owner may change its rows.

After an admin ran CREATE EXTENSION and `shrinkvec migrate`, a normal role loads, profiles, queries and
indexes its own tables. Row-level security on the catalog ties every profile, code, load and re-encode row to
the table it describes:

- a role sees a table's rows when it may SELECT the table;
- a role inserts, updates or deletes them only when it is (a member of) the table's owner.

Transforms are shared and immutable: anyone may read and add one, nobody may change one.
The catalog's owner (the admin who ran the migrations) and superusers bypass the policies.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def rel(alias: str = "") -> str:
    """The relation a catalog row describes, NULL when it does not exist (yet)."""
    return ("(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            f" WHERE n.nspname = {alias}table_schema AND c.relname = {alias}table_name)")


def can_read(alias: str = "") -> str:
    return f"coalesce(has_table_privilege({rel(alias)}, 'SELECT'), false)"


def is_owner(alias: str = "") -> str:
    owner = f"(SELECT o.relowner FROM pg_catalog.pg_class o WHERE o.oid = {rel(alias)})"
    return f"coalesce(pg_has_role({owner}, 'USAGE'), false)"


def _policies(table: str, read: str, write: str) -> None:
    op.execute(f"ALTER TABLE shrinkvec.{table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_read ON shrinkvec.{table} FOR SELECT USING ({read})")
    op.execute(f"CREATE POLICY {table}_insert ON shrinkvec.{table} FOR INSERT WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_update ON shrinkvec.{table} FOR UPDATE USING ({write}) WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_delete ON shrinkvec.{table} FOR DELETE USING ({write})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON shrinkvec.{table} TO PUBLIC")


def upgrade() -> None:
    op.execute("GRANT USAGE ON SCHEMA shrinkvec TO PUBLIC")
    op.execute("GRANT SELECT ON shrinkvec.alembic_version TO PUBLIC")
    _policies("profiles", can_read(), is_owner())
    _policies("loads", can_read(), is_owner())
    # a code row belongs to its profile's table
    in_profile = "EXISTS (SELECT 1 FROM shrinkvec.profiles p WHERE p.name = profile AND {})"
    for table in ("codes", "reencodes"):
        _policies(table, in_profile.format(can_read("p.")), in_profile.format(is_owner("p.")))
    op.execute("GRANT SELECT, INSERT ON shrinkvec.transforms TO PUBLIC")


def downgrade() -> None:
    op.execute("REVOKE SELECT, INSERT ON shrinkvec.transforms FROM PUBLIC")
    for table in ("reencodes", "codes", "loads", "profiles"):
        op.execute(f"REVOKE SELECT, INSERT, UPDATE, DELETE ON shrinkvec.{table} FROM PUBLIC")
        for action in ("read", "insert", "update", "delete"):
            op.execute(f"DROP POLICY {table}_{action} ON shrinkvec.{table}")
        op.execute(f"ALTER TABLE shrinkvec.{table} DISABLE ROW LEVEL SECURITY")
    op.execute("REVOKE SELECT ON shrinkvec.alembic_version FROM PUBLIC")
    op.execute("REVOKE USAGE ON SCHEMA shrinkvec FROM PUBLIC")
