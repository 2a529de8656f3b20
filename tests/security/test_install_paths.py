"""Attacks on the install paths of the trusted extension, and on the SQL that search() builds (issues 26, 32).

`trusted = true` lets any role with CREATE on a database install shrinkvec; the script runs as the bootstrap
superuser, but the schema it installs into may belong to the installing role, who can rename it and plant
look-alikes under the old name. And a profile's table, with its column types, is written by its owner: a
user-defined type there would run its owner's casts and operators as whoever calls search().

Every trap logs each call into `public.pwned` and makes mallory superuser when a superuser calls it; each
test asserts the trap never ran and mallory is still not a superuser. Each of these reproduced on 0.2.0.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import shrinkvec
from conftest import TRAP_FUNCTION, one_row, role_dsn, throwaway_cluster
from shrinkvec import catalog, demo
from shrinkvec.load import LoadOptions, load

TRAP = TRAP_FUNCTION  # logs every call, and makes mallory superuser when the caller is one

# look-alikes of what search() calls in shrinkvec's schema, each a trap that then answers as the real one
PLANTS = """
CREATE FUNCTION {schema}.bit_ip(b bit, q {vec}.vector) RETURNS double precision LANGUAGE plpgsql AS $$
BEGIN PERFORM {schema}.trap('<^#>'); RETURN 0; END $$;
CREATE OPERATOR {schema}.<^#> (LEFTARG = bit, RIGHTARG = {vec}.vector, FUNCTION = {schema}.bit_ip);
CREATE FUNCTION {schema}.prefix_cosine_distance(a {vec}.vector, b {vec}.vector) RETURNS double precision
LANGUAGE plpgsql AS $$ BEGIN PERFORM {schema}.trap('<^=>'); RETURN 0; END $$;
CREATE OPERATOR {schema}.<^=> (LEFTARG = {vec}.vector, RIGHTARG = {vec}.vector,
                               FUNCTION = {schema}.prefix_cosine_distance);
CREATE FUNCTION {schema}.shrinkvec_kernels() RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM {schema}.trap('shrinkvec_kernels'); RETURN 'scalar'; END $$;
"""


@dataclass
class AttackDb:
    admin: str  # superuser DSN of a fresh database
    mallory: str  # mallory's DSN there: CREATE on the database and on public
    alice: str  # a victim: CREATE on public
    mallory_role: str
    alice_role: str


@pytest.fixture
def attack_db(dsn: str, conn: psycopg.Connection) -> Iterator[AttackDb]:
    """A fresh database (pgvector in public, shrinkvec not installed) and two roles without privileges
    beyond CREATE: mallory on the database and public, alice on public."""
    suffix = uuid.uuid4().hex[:8]
    mallory, alice, db = f"mallory_{suffix}", f"alice_{suffix}", f"attack_{suffix}"
    for role in (mallory, alice):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
            sql.Identifier(role)))
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(db)))
    params = conninfo_to_dict(dsn)
    params["dbname"] = db
    admin = make_conninfo(**params)  # type: ignore[arg-type]  # conninfo values are str | int
    try:
        with psycopg.connect(admin, autocommit=True) as a:
            a.execute("CREATE EXTENSION vector")
            a.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(db), sql.Identifier(mallory)))
            for role in (mallory, alice):
                a.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
            a.execute("CREATE TABLE public.pwned (caller name, trap text)")
            a.execute("GRANT INSERT, SELECT ON public.pwned TO PUBLIC")
        yield AttackDb(admin, role_dsn(admin, mallory), role_dsn(admin, alice), mallory, alice)
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        for role in (mallory, alice):
            conn.execute(sql.SQL("DROP OWNED BY {r} CASCADE; DROP ROLE {r}").format(r=sql.Identifier(role)))


def connect(dsn: str) -> psycopg.Connection:
    c = psycopg.connect(dsn, autocommit=True)
    register_vector(c)
    return c


def assert_not_pwned(db: AttackDb) -> None:
    with psycopg.connect(db.admin, autocommit=True) as a:
        calls = a.execute("SELECT caller, trap FROM public.pwned").fetchall()
        assert calls == [], f"mallory's traps ran {len(calls)} times, first as {calls[:3]}"
        assert a.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (db.mallory_role,)).fetchone() == (False,)


def load_docs(dsn: str, tmp_path: Path, table: str, profile: str = "bits,prefix:64,int8", n: int = 300) -> np.ndarray:
    docs = demo.load_data().docs[:n]
    np.save(tmp_path / f"{table}.npy", docs)
    result = load(dsn, tmp_path / f"{table}.npy", LoadOptions(table=table, profile=profile,
                                                             reject_file=tmp_path / f"{table}.rejects.jsonl"))
    assert result.loaded == n
    return docs


def exact_top(docs: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    d = 1 - (docs @ q) / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]


# ---------------------------------------------------------------------------------------------
# issue 32, escalations 1 and 2: search() names shrinkvec's schema as text
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["bits", "prefix", "int8"])
def test_a_renamed_schema_with_look_alikes_is_never_called(attack_db: AttackDb, tmp_path: Path, stage: str) -> None:
    db = attack_db
    with connect(db.mallory) as m:  # the installing role owns the schema it installs into
        m.execute("CREATE SCHEMA sv")
        m.execute("CREATE EXTENSION shrinkvec SCHEMA sv")
    catalog.migrate(db.admin)
    docs = load_docs(db.admin, tmp_path, "docs")
    q = docs[7]
    with connect(db.admin) as a:
        before = [r[0] for r in a.execute("SELECT id FROM shrinkvec.search('public.docs', %s, 5, 100, %s)",
                                          (q, stage)).fetchall()]
    with connect(db.mallory) as m:
        m.execute("ALTER SCHEMA sv RENAME TO sv_real")
        m.execute("CREATE SCHEMA sv")
        m.execute(TRAP.format(schema="sv", mallory=db.mallory_role))
        m.execute(PLANTS.format(schema="sv", vec="public"))
        for fn in ("int8_cosine_distance", "int8_ip_distance"):
            m.execute(sql.SQL("CREATE FUNCTION sv.{}(c sv_real.int8vec, q public.vector, lo real[], hi real[]) "
                              "RETURNS double precision LANGUAGE plpgsql AS $$ BEGIN PERFORM sv.trap('int8'); "
                              "RETURN 0; END $$").format(sql.Identifier(fn)))
    with connect(db.admin) as a:
        after = [r[0] for r in a.execute("SELECT id FROM shrinkvec.search('public.docs', %s, 5, 100, %s)",
                                         (q, stage)).fetchall()]
        # and the index configuration, which loads the library through shrinkvec_kernels()
        a.execute("UPDATE shrinkvec.profiles SET search_config = 'index@300'")
        a.execute("CREATE INDEX ON public.docs USING shrinkvec (embedding sv_real.vector_cosine_ops)")
        indexed = [r[0] for r in a.execute("SELECT id FROM shrinkvec.search('public.docs', %s, 5)", (q,)).fetchall()]
    assert after == before and before[0] == 7
    assert indexed == exact_top(docs, q, 5)
    assert_not_pwned(db)


def test_a_schema_name_that_needs_quotes_is_quoted_once(attack_db: AttackDb, tmp_path: Path) -> None:
    db = attack_db
    with connect(db.admin) as a:
        a.execute('CREATE SCHEMA "Vectors"')
        a.execute('CREATE EXTENSION shrinkvec SCHEMA "Vectors"')
    catalog.migrate(db.admin)
    docs = load_docs(db.admin, tmp_path, "docs", profile="bits,prefix:64")
    with connect(db.mallory) as m:  # the schema a double-quoted name would point at
        m.execute('CREATE SCHEMA """Vectors"""')
        m.execute(TRAP.format(schema='"""Vectors"""', mallory=db.mallory_role))
        m.execute(PLANTS.format(schema='"""Vectors"""', vec="public"))
    with connect(db.admin) as a:
        for stage in ("bits", "prefix"):
            ids = [r[0] for r in a.execute("SELECT id FROM shrinkvec.search('public.docs', %s, 5, 100, %s)",
                                           (docs[9], stage)).fetchall()]
            assert ids[0] == 9 and len(ids) == 5
    assert_not_pwned(db)


# ---------------------------------------------------------------------------------------------
# issue 26, escalation 1: a column type whose casts and operators belong to the table's owner
# ---------------------------------------------------------------------------------------------

CAST_PLANT = """
CREATE SCHEMA m;
GRANT USAGE ON SCHEMA m TO PUBLIC;
{trap}
CREATE TYPE m.idt AS (v bigint);
CREATE FUNCTION m.idt_to_bigint(x m.idt) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF current_user OPERATOR(pg_catalog.<>) '{mallory}' THEN
        PERFORM m.trap('cast');
        -- a victim that is not superuser gives its own table away
        BEGIN
            EXECUTE 'ALTER TABLE public.secret DISABLE ROW LEVEL SECURITY';
            EXECUTE pg_catalog.format('GRANT SELECT ON public.secret TO %I', '{mallory}');
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END IF;
    RETURN x.v;
END $$;
CREATE CAST (m.idt AS bigint) WITH FUNCTION m.idt_to_bigint(m.idt);
CREATE TABLE m.docs (id m.idt, embedding public.vector(3), bits bit(3));
INSERT INTO m.docs VALUES (ROW(1), '[1,2,3]', B'111');
CREATE TABLE m.tdocs (id m.idt, tokens public.vector[], mb {sv}.multibit);
INSERT INTO m.tdocs VALUES (ROW(1), ARRAY['[1,2,3]']::public.vector[], {sv}.binarize(ARRAY['[1,2,3]']::public.vector[]));
GRANT SELECT ON m.docs, m.tdocs TO PUBLIC;
INSERT INTO shrinkvec.profiles (relation, table_schema, table_name, id_column, vector_column, dims, distance)
VALUES ('m.docs'::regclass, 'm', 'docs', 'id', 'embedding', 3, 'cosine');
INSERT INTO shrinkvec.codes (profile, column_name, position, kind, length) VALUES ('m.docs.embedding', 'bits', 0, 'bits', 3);
INSERT INTO shrinkvec.profiles (relation, table_schema, table_name, id_column, vector_column, dims, distance)
VALUES ('m.tdocs'::regclass, 'm', 'tdocs', 'id', 'tokens', 3, 'maxsim');
INSERT INTO shrinkvec.codes (profile, column_name, position, kind, length) VALUES ('m.tdocs.tokens', 'mb', 0, 'multibit', 3);
"""


def test_a_planted_cast_on_the_id_column_is_refused(attack_db: AttackDb) -> None:
    db = attack_db
    with connect(db.admin) as a:
        a.execute("CREATE EXTENSION shrinkvec")
    catalog.migrate(db.admin)
    with connect(db.alice) as victim:  # a victim with a table behind row-level security
        victim.execute("CREATE TABLE public.secret (x int)")
        victim.execute("ALTER TABLE public.secret ENABLE ROW LEVEL SECURITY")
    with connect(db.mallory) as m:
        m.execute(CAST_PLANT.format(trap=TRAP.format(schema="m", mallory=db.mallory_role), mallory=db.mallory_role,
                                    sv="public"))
    for dsn in (db.admin, db.alice):
        with connect(dsn) as c:
            with pytest.raises(psycopg.errors.DatatypeMismatch, match=r"column id of table m.docs has type m.idt"):
                c.execute("SELECT * FROM shrinkvec.search('m.docs', '[1,2,3]')")
            with pytest.raises(psycopg.errors.DatatypeMismatch, match=r"column id of table m.tdocs has type m.idt"):
                c.execute("SELECT * FROM shrinkvec.search_tokens('m.tdocs', ARRAY['[1,2,3]']::vector[])")
    assert_not_pwned(db)
    with connect(db.admin) as a:
        assert a.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.secret'::regclass").fetchone() == (True,)
        assert not one_row(a.execute("SELECT has_table_privilege(%s, 'public.secret', 'SELECT')", (db.mallory_role,)))[0]


@pytest.mark.parametrize(("column", "ddl", "message"), [
    ("embedding", "ALTER TABLE m.t ALTER COLUMN embedding TYPE m.vec USING embedding::text::m.vec",
     r"column embedding of table m.t has type m.vec"),
    ("bits", "ALTER TABLE m.t ALTER COLUMN bits TYPE m.bits USING bits::bit(3)",
     r"column bits of table m.t has type m.bits"),
])
def test_every_column_search_touches_is_checked(attack_db: AttackDb, column: str, ddl: str, message: str) -> None:
    db = attack_db
    with connect(db.admin) as a:
        a.execute("CREATE EXTENSION shrinkvec")
    catalog.migrate(db.admin)
    with connect(db.mallory) as m:  # domains over the right types: their operators are the base type's, but
        m.execute("CREATE SCHEMA m")  # a domain is a type its owner controls, so it is refused all the same
        m.execute("GRANT USAGE ON SCHEMA m TO PUBLIC")
        m.execute("CREATE DOMAIN m.vec AS public.vector(3)")
        m.execute("CREATE DOMAIN m.bits AS bit(3)")
        m.execute("CREATE TABLE m.t (id bigint PRIMARY KEY, embedding public.vector(3), bits bit(3))")
        m.execute("INSERT INTO m.t VALUES (1, '[1,2,3]', B'111')")
        m.execute("GRANT SELECT ON m.t TO PUBLIC")
        m.execute("""INSERT INTO shrinkvec.profiles (relation, table_schema, table_name, vector_column, dims)
                     VALUES ('m.t'::regclass, 'm', 't', 'embedding', 3)""")
        m.execute("""INSERT INTO shrinkvec.codes (profile, column_name, position, kind, length)
                     VALUES ('m.t.embedding', 'bits', 0, 'bits', 3)""")
        assert m.execute("SELECT id FROM shrinkvec.search('m.t', '[1,2,3]', 1, 1)").fetchall() == [(1,)]
        m.execute("UPDATE shrinkvec.codes SET column_name = 'nope' WHERE profile = 'm.t.embedding'")
        with pytest.raises(psycopg.errors.UndefinedColumn, match=r"table m.t has no column nope"):
            m.execute("SELECT * FROM shrinkvec.search('m.t', '[1,2,3]', 1, 1)")
        m.execute("UPDATE shrinkvec.codes SET column_name = 'bits' WHERE profile = 'm.t.embedding'")
        m.execute(ddl)
    with connect(db.admin) as a:
        with pytest.raises(psycopg.errors.DatatypeMismatch, match=message):
            a.execute("SELECT * FROM shrinkvec.search('m.t', '[1,2,3]', 1, 1)")
    assert_not_pwned(db)


# ---------------------------------------------------------------------------------------------
# issue 32, escalation 3: old versions are not installable
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.4.0"])
def test_old_versions_cannot_be_installed(attack_db: AttackDb, version: str) -> None:
    with connect(attack_db.mallory) as m:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="no installation script"):
            m.execute(sql.SQL("CREATE EXTENSION shrinkvec VERSION {}").format(sql.Literal(version)))
        m.execute("CREATE EXTENSION shrinkvec")
        assert m.execute("SELECT extversion FROM pg_extension WHERE extname = 'shrinkvec'").fetchone() == (shrinkvec.__version__,)


def test_every_plpgsql_and_sql_function_pins_its_search_path(conn: psycopg.Connection) -> None:
    unpinned = conn.execute(
        """SELECT p.oid::regprocedure::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
           JOIN pg_proc p ON p.oid = d.objid AND d.classid = 'pg_proc'::regclass
           JOIN pg_language l ON l.oid = p.prolang
           WHERE e.extname = 'shrinkvec' AND d.deptype = 'e' AND l.lanname IN ('plpgsql', 'sql')
             AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)""").fetchall()
    assert unpinned == []


# ---------------------------------------------------------------------------------------------
# issue 32, type confusion: a look-alike `vector` in the schema shrinkvec is installed into
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def own_server(server_root: Path) -> Iterator[str]:
    """A fresh database on a throwaway cluster (the attack read memory out of bounds: never on the shared
    test server)."""
    if os.environ.get("SHRINKVEC_TEST_DSN"):
        pytest.skip("needs the embedded server to start a throwaway cluster")
    with throwaway_cluster(server_root) as dsn:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE DATABASE attack")
        params = conninfo_to_dict(dsn)
        params["dbname"] = "attack"
        yield make_conninfo(**params)  # type: ignore[arg-type]  # conninfo values are str | int


def test_a_look_alike_vector_type_is_never_bound(own_server: str) -> None:
    with psycopg.connect(own_server, autocommit=True) as su:
        su.execute("CREATE ROLE mallory LOGIN")
        su.execute("GRANT CREATE ON DATABASE attack TO mallory")
        su.execute("CREATE EXTENSION vector")
        version = int(one_row(su.execute("SHOW server_version_num"))[0])
    with psycopg.connect(role_dsn(own_server, "mallory"), autocommit=True) as m:
        m.execute("CREATE SCHEMA sv")
        m.execute("CREATE DOMAIN sv.vector AS bytea")
        m.execute("CREATE DOMAIN sv.halfvec AS bytea")
        if version < 160000:  # the PostgreSQL 15 build refuses (no @extschema:vector@ there)
            with pytest.raises(psycopg.errors.DuplicateObject, match="named like one of pgvector's"):
                m.execute("CREATE EXTENSION shrinkvec SCHEMA sv")
            return
        m.execute("CREATE EXTENSION shrinkvec SCHEMA sv")
        # every argument and result type of the extension's functions is pg_catalog's, pgvector's or its own
        foreign = m.execute(
            """WITH ext_types AS (
                   SELECT d.objid AS t FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                   WHERE d.classid = 'pg_type'::regclass AND e.extname IN ('vector', 'shrinkvec'))
               SELECT DISTINCT p.oid::regprocedure::text, t::regtype::text
               FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'shrinkvec'
               JOIN pg_proc p ON p.oid = d.objid AND d.classid = 'pg_proc'::regclass
               CROSS JOIN LATERAL unnest(p.proargtypes::oid[] || p.prorettype) AS t
               LEFT JOIN pg_type ty ON ty.oid = t
               WHERE ty.typnamespace <> 'pg_catalog'::regnamespace
                 AND t NOT IN (SELECT t FROM ext_types)
                 AND coalesce(ty.typelem, 0) NOT IN (SELECT t FROM ext_types)""").fetchall()
        assert foreign == []
        opclass_ops = m.execute(
            """SELECT o.oprnamespace::regnamespace::text, count(*) FROM pg_amop a JOIN pg_opfamily f ON f.oid = a.amopfamily
               JOIN pg_am am ON am.oid = f.opfmethod AND am.amname = 'shrinkvec'
               JOIN pg_operator o ON o.oid = a.amopopr GROUP BY 1 ORDER BY 1""").fetchall()
        assert opclass_ops == [("public", 7), ("sv", 1)]  # pgvector's <->, <#>, <=>, <~>; shrinkvec's own <^>
        with pytest.raises(psycopg.errors.UndefinedFunction):
            m.execute("SELECT sv.binarize('\\x00000000'::sv.vector)")
        assert m.execute("SELECT sv.binarize('[1,-2,3]'::public.vector)::text").fetchone() == ("101",)
