"""Catalog identity: every row is keyed to the relation it describes, not to a free-text name.

- profiles, loads and transforms gain `relation regclass`. pg_dump writes a regclass as the table's
  qualified name, so a restore points it at the restored table; a RENAME or SET SCHEMA keeps the OID.
- A profile's `name` and its table_schema/table_name are derived from the relation by a trigger
  (shrinkvec.catalog_identity): nobody can take a name that belongs to another table, and the names
  follow a RENAME (shrinkvec.sync_catalog_names(), called by the extension's event trigger).
- Rows of dropped tables and columns are removed (shrinkvec.prune_catalog(), called by the extension's
  event trigger on DROP, and before each new profile or load row), so a stale row never blocks a new table.
- Row-level security is rewritten on the relation: a role reads a table's rows when it may use the
  table, and writes them only when it is (a member of) the table's owner. A transform belongs to the
  table it was fitted on: only that table's owner stores one, and a profile or re-encode may only use a
  transform of its own table. Stored content is immutable (0002) and checked by `shrinkvec adapt`.

Every function here runs with search_path = pg_catalog, pg_temp and qualifies every other name.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("profiles", "loads", "codes", "reencodes")


def owner(rel: str) -> str:
    """Whether the current role is (a member of) the owner of relation `rel` (false when it is gone)."""
    return (f"coalesce(pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c "
            f"WHERE c.oid OPERATOR(pg_catalog.=) {rel}), 'USAGE'), false)")


def can_read(rel: str) -> str:
    return f"coalesce(pg_catalog.has_table_privilege({rel}, 'SELECT'), false)"


def can_use(rel: str) -> str:
    """Transforms are read by whoever writes rows (the trigger codes them) or searches the table."""
    return f"coalesce(pg_catalog.has_table_privilege({rel}, 'SELECT, INSERT, UPDATE'), false)"


def own_transform(transform: str, rel: str) -> str:
    """A transform column may only name a transform fitted on the same table."""
    return (f"({transform} IS NULL OR EXISTS (SELECT 1 FROM shrinkvec.transforms t "
            f"WHERE t.name OPERATOR(pg_catalog.=) {transform} AND t.relation OPERATOR(pg_catalog.=) {rel}))")


IDENTITY_FN = """
CREATE FUNCTION shrinkvec.catalog_identity() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    nsp name;
    rel name;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.relation IS DISTINCT FROM OLD.relation THEN
        RAISE EXCEPTION 'the relation of a shrinkvec.% row cannot change', TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NEW.relation IS NULL THEN
        IF NEW.table_schema IS NULL OR NEW.table_name IS NULL THEN
            RAISE EXCEPTION 'a shrinkvec.% row needs its relation (or table_schema and table_name)', TG_TABLE_NAME
                USING ERRCODE = 'not_null_violation';
        END IF;
        NEW.relation := pg_catalog.to_regclass(pg_catalog.format('%I.%I', NEW.table_schema, NEW.table_name));
        IF NEW.relation IS NULL THEN
            RAISE EXCEPTION 'table %.% does not exist', pg_catalog.quote_ident(NEW.table_schema),
                pg_catalog.quote_ident(NEW.table_name) USING ERRCODE = 'undefined_table';
        END IF;
    END IF;
    SELECT n.nspname, c.relname INTO nsp, rel FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.oid OPERATOR(pg_catalog.=) NEW.relation AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,m,f}');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % is not a table', NEW.relation::oid USING ERRCODE = 'wrong_object_type';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.table_schema, NEW.table_name) IS DISTINCT FROM (OLD.table_schema, OLD.table_name)
       AND (NEW.table_schema, NEW.table_name) IS DISTINCT FROM (nsp, rel) THEN
        RAISE EXCEPTION 'a shrinkvec.% row cannot be moved to another table (it describes %)', TG_TABLE_NAME,
            NEW.relation USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    NEW.table_schema := nsp;
    NEW.table_name := rel;
    IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'profiles' THEN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) NEW.relation
                       AND a.attname OPERATOR(pg_catalog.=) NEW.vector_column AND a.attnum OPERATOR(pg_catalog.>) 0
                       AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'table %.% has no column %', pg_catalog.quote_ident(nsp), pg_catalog.quote_ident(rel),
                pg_catalog.quote_ident(NEW.vector_column) USING ERRCODE = 'undefined_column';
        END IF;
        -- the name is derived, never chosen: schema.table.column of the relation
        NEW.name := nsp OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) rel
            OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) NEW.vector_column;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM shrinkvec.prune_catalog();  -- rows of dropped tables never block a new one
    END IF;
    RETURN NEW;
END
$fn$
"""

PRUNE_FN = """
CREATE FUNCTION shrinkvec.prune_catalog() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- SECURITY DEFINER (the catalog's owner, past row-level security): a dropped table has no owner left
    -- to do it. It only removes rows whose table or vector column no longer exists.
    DELETE FROM shrinkvec.profiles p WHERE NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) p.relation
        AND a.attname OPERATOR(pg_catalog.=) p.vector_column AND NOT a.attisdropped);
    DELETE FROM shrinkvec.loads l WHERE NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) l.relation);
    DELETE FROM shrinkvec.transforms t WHERE t.relation IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) t.relation);
END
$fn$
"""

SYNC_UPDATE = """
    UPDATE shrinkvec.{t} x SET table_schema = n.nspname, table_name = c.relname
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.oid OPERATOR(pg_catalog.=) x.relation
          AND (x.table_name OPERATOR(pg_catalog.<>) c.relname OR x.table_schema OPERATOR(pg_catalog.<>) n.nspname);"""

SYNC_FN = """
CREATE FUNCTION shrinkvec.sync_catalog_names() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- after ALTER TABLE ... RENAME / SET SCHEMA or ALTER SCHEMA ... RENAME: the names follow the relation
    -- (the identity trigger derives a profile's name; codes and reencodes follow it by ON UPDATE CASCADE)
""" + "".join(SYNC_UPDATE.format(t=t) for t in ("profiles", "loads")) + """
END
$fn$
"""


def _drop_policies(table: str) -> None:
    for action in ("read", "insert", "update", "delete"):
        op.execute(f"DROP POLICY IF EXISTS {table}_{action} ON shrinkvec.{table}")


def _policies(table: str, read: str, write: str, commands: tuple[str, ...] = ("insert", "update", "delete")) -> None:
    op.execute(f"CREATE POLICY {table}_read ON shrinkvec.{table} FOR SELECT USING ({read})")
    if "insert" in commands:
        op.execute(f"CREATE POLICY {table}_insert ON shrinkvec.{table} FOR INSERT WITH CHECK ({write})")
    if "update" in commands:
        op.execute(f"CREATE POLICY {table}_update ON shrinkvec.{table} FOR UPDATE USING ({write}) WITH CHECK ({write})")
    if "delete" in commands:
        op.execute(f"CREATE POLICY {table}_delete ON shrinkvec.{table} FOR DELETE USING ({write})")


def upgrade() -> None:
    rel_of_names = ("pg_catalog.to_regclass(pg_catalog.format('%I.%I', table_schema, table_name))")
    for table in ("profiles", "loads", "transforms"):
        op.execute(f"ALTER TABLE shrinkvec.{table} ADD COLUMN relation regclass")
    op.execute(f"UPDATE shrinkvec.profiles SET relation = {rel_of_names}")
    op.execute(f"UPDATE shrinkvec.loads SET relation = {rel_of_names}")
    # a transform belongs to the table whose profile (or re-encode) uses it
    op.execute("""UPDATE shrinkvec.transforms t SET relation = p.relation FROM shrinkvec.profiles p
                  WHERE p.transform = t.name AND p.relation IS NOT NULL""")
    op.execute("""UPDATE shrinkvec.transforms t SET relation = p.relation
                  FROM shrinkvec.reencodes r JOIN shrinkvec.profiles p ON p.name = r.profile
                  WHERE r.transform = t.name AND t.relation IS NULL""")
    # rows of tables that no longer exist are stale: they blocked new tables of the same name
    op.execute("DELETE FROM shrinkvec.profiles WHERE relation IS NULL")
    op.execute("DELETE FROM shrinkvec.loads WHERE relation IS NULL")
    for table in ("profiles", "loads"):
        op.execute(f"ALTER TABLE shrinkvec.{table} ALTER COLUMN relation SET NOT NULL")
        op.execute(f"COMMENT ON COLUMN shrinkvec.{table}.relation IS "
                   "'the table this row describes (its identity; table_schema and table_name follow it)'")
    op.execute("COMMENT ON COLUMN shrinkvec.transforms.relation IS "
               "'the table the transform was fitted on: only its owner stores one, only its profiles use it'")
    op.execute("ALTER TABLE shrinkvec.profiles DROP CONSTRAINT profiles_column_key")
    op.execute("ALTER TABLE shrinkvec.profiles ADD CONSTRAINT profiles_relation_key UNIQUE (relation, vector_column)")
    op.execute("ALTER TABLE shrinkvec.loads DROP CONSTRAINT loads_pkey")
    op.execute("ALTER TABLE shrinkvec.loads ADD CONSTRAINT loads_pkey PRIMARY KEY (relation, source)")
    op.execute("ALTER TABLE shrinkvec.transforms DROP CONSTRAINT transforms_source_version")
    op.execute("ALTER TABLE shrinkvec.transforms ADD CONSTRAINT transforms_relation_version UNIQUE (relation, version)")

    op.execute(PRUNE_FN)
    op.execute(SYNC_FN)
    op.execute(IDENTITY_FN)
    op.execute("COMMENT ON FUNCTION shrinkvec.prune_catalog() IS "
               "'removes catalog rows whose table or vector column no longer exists (called on DROP)'")
    op.execute("COMMENT ON FUNCTION shrinkvec.sync_catalog_names() IS "
               "'makes table_schema, table_name and profile names follow RENAME / SET SCHEMA of their relation'")
    op.execute("COMMENT ON FUNCTION shrinkvec.catalog_identity() IS "
               "'derives a catalog row''s table names (and a profile''s name) from its relation'")
    for table in ("profiles", "loads"):
        op.execute(f"CREATE TRIGGER {table}_identity BEFORE INSERT OR UPDATE ON shrinkvec.{table} "
                   "FOR EACH ROW EXECUTE FUNCTION shrinkvec.catalog_identity()")
        op.execute(f"ALTER TABLE shrinkvec.{table} ENABLE ALWAYS TRIGGER {table}_identity")

    for table in TABLES:
        _drop_policies(table)
    _policies("profiles", can_read("profiles.relation"),
              f"{owner('profiles.relation')} AND {own_transform('profiles.transform', 'profiles.relation')}")
    _policies("loads", can_read("loads.relation"), owner("loads.relation"))

    def in_profile(table: str, cond: str) -> str:
        return (f"EXISTS (SELECT 1 FROM shrinkvec.profiles p WHERE p.name OPERATOR(pg_catalog.=) {table}.profile "
                f"AND {cond})")

    _policies("codes", in_profile("codes", can_read("p.relation")), in_profile("codes", owner("p.relation")))
    _policies("reencodes", in_profile("reencodes", can_read("p.relation")),
              in_profile("reencodes", f"{owner('p.relation')} AND {own_transform('reencodes.transform', 'p.relation')}"))
    op.execute("ALTER TABLE shrinkvec.transforms ENABLE ROW LEVEL SECURITY")
    _policies("transforms", f"transforms.relation IS NULL OR {can_use('transforms.relation')}",
              f"transforms.relation IS NOT NULL AND {owner('transforms.relation')}", commands=("insert",))


def downgrade() -> None:
    for table in ("profiles", "loads"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_identity ON shrinkvec.{table}")
    op.execute("DROP FUNCTION IF EXISTS shrinkvec.catalog_identity()")
    op.execute("DROP FUNCTION IF EXISTS shrinkvec.sync_catalog_names()")
    op.execute("DROP FUNCTION IF EXISTS shrinkvec.prune_catalog()")
    for table in (*TABLES, "transforms"):
        _drop_policies(table)
    op.execute("ALTER TABLE shrinkvec.transforms DISABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE shrinkvec.transforms DROP CONSTRAINT transforms_relation_version")
    op.execute("ALTER TABLE shrinkvec.transforms ADD CONSTRAINT transforms_source_version UNIQUE (source, version)")
    op.execute("ALTER TABLE shrinkvec.loads DROP CONSTRAINT loads_pkey")
    op.execute("ALTER TABLE shrinkvec.loads ADD CONSTRAINT loads_pkey PRIMARY KEY (table_schema, table_name, source)")
    op.execute("ALTER TABLE shrinkvec.profiles DROP CONSTRAINT profiles_relation_key")
    op.execute("ALTER TABLE shrinkvec.profiles ADD CONSTRAINT profiles_column_key "
               "UNIQUE (table_schema, table_name, vector_column)")
    for table in ("profiles", "loads", "transforms"):
        op.execute(f"ALTER TABLE shrinkvec.{table} DROP COLUMN relation")
    _restore_0004_policies()


def _restore_0004_policies() -> None:
    def rel(alias: str = "") -> str:
        return ("(SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                f" WHERE n.nspname = {alias}table_schema AND c.relname = {alias}table_name)")

    def read(alias: str = "") -> str:
        return f"coalesce(has_table_privilege({rel(alias)}, 'SELECT'), false)"

    def write(alias: str = "") -> str:
        return (f"coalesce(pg_has_role((SELECT o.relowner FROM pg_catalog.pg_class o WHERE o.oid = {rel(alias)}), "
                "'USAGE'), false)")

    _policies("profiles", read(), write())
    _policies("loads", read(), write())
    in_profile = "EXISTS (SELECT 1 FROM shrinkvec.profiles p WHERE p.name = profile AND {})"
    for table in ("codes", "reencodes"):
        _policies(table, in_profile.format(read("p.")), in_profile.format(write("p.")))
