"""Attacks on the tools (issues 32 item 4 and 26 item 1): planted operators that SQLAlchemy, alembic and
the tools' own SQL would resolve through `public`, and a profiled table whose column types carry a planted
cast.

mallory is an ordinary role: (a) the owner of the database (so she owns `public`), or (b) a role with only
CREATE on `public` of a database the superuser owns. She plants `=` operators for the argument types the
tools' statements compare (name/varchar from SQLAlchemy's reflection, varchar from alembic's version
table, the reg* types of to_regclass / TypeInfo lookups, text), each a PL/pgSQL function that logs every
call into `public.pwned` and makes her superuser when a superuser calls it. Then the superuser runs
`shrinkvec migrate` on the fresh database, a catalog upgrade from 0005 to head, load, adapt, eval, sql,
search and tune --apply. No trap may ever run as anyone but mallory, and she stays an ordinary role.

The second attack: mallory's table whose id column is a composite type with a cast to bigint (and whose
code column is a composite with an implicit cast to bit), with her own profile rows; the tools' search,
sql, eval, tune and the ORM refuse it with an error naming the column and its type.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.sqlalchemy import VECTOR
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import BigInteger
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from conftest import TRAP_FUNCTION, role_dsn
from shrinkvec import catalog, codes, connection, demo, evaluate, profile_check, query
from shrinkvec.load import LoadOptions, load
from shrinkvec.orm import bits_column, two_stage

SV = [sys.executable, "-m", "shrinkvec.cli"]

PWNED = """
CREATE TABLE public.pwned (caller name, trap text);
GRANT INSERT, SELECT ON public.pwned TO PUBLIC;
"""

# an `=` for a pair of types: calls the trap (except for mallory herself), then answers as pg_catalog's would
EQ_TRAP = """
CREATE FUNCTION public.evil_eq_{n}(a {left}, b {right}) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_user OPERATOR(pg_catalog.<>) '{mallory}' THEN PERFORM public.trap('{left} = {right}'); END IF;
    RETURN a::{cmp} OPERATOR(pg_catalog.=) b::{cmp};
END $$;
CREATE OPERATOR public.= (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = public.evil_eq_{n});
"""

# (left, right, the type both are compared as): pairs pg_catalog has no exact `=` for, so a public one
# wins under a search_path with public on it, and text = text, which wins when public comes first
EQ_PAIRS = [
    ("name", "varchar", "text"), ("varchar", "varchar", "text"), ("varchar", "text", "text"),
    ("text", "varchar", "text"), ("regclass", "regclass", "oid"), ("oid", "regtype", "oid"),
    ("oid", "regclass", "oid"), ("regtype", "regtype", "oid"), ("text", "text", "text"),
]


def plant_traps(mallory_dsn: str, mallory: str) -> None:
    """mallory's traps in public of her connection's database."""
    eq = "".join(EQ_TRAP.format(n=i, left=left, right=right, cmp=cmp, mallory=mallory)
                 for i, (left, right, cmp) in enumerate(EQ_PAIRS))
    with psycopg.connect(mallory_dsn, autocommit=True) as m:
        m.execute(PWNED + TRAP_FUNCTION.format(schema="public", mallory=mallory) + eq)


def trap_calls(admin_dsn: str, mallory: str) -> dict[str, int]:
    """Calls of each trap by another role than mallory ("caller: trap" -> count), read without going near
    her operators."""
    with psycopg.connect(admin_dsn, autocommit=True, options="-c search_path=pg_catalog,pg_temp") as a:
        rows = a.execute("""SELECT caller::text || ': ' || trap, count(*) FROM public.pwned
                            WHERE caller <> %s::name GROUP BY 1 ORDER BY 1""", (mallory,)).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def is_superuser(admin_dsn: str, role: str) -> bool:
    with psycopg.connect(admin_dsn, autocommit=True, options="-c search_path=pg_catalog,pg_temp") as a:
        row = a.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s::name", (role,)).fetchone()
    return bool(row and row[0])


def with_db(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]  # conninfo values are str | int


@dataclass(frozen=True)
class Scene:
    """A fresh database (no extension yet) with mallory in it; admin is the test's superuser."""

    admin_dsn: str
    mallory_dsn: str
    mallory: str


@pytest.fixture(params=["database_owner", "create_on_public"])
def scene(request: pytest.FixtureRequest, conn: psycopg.Connection, dsn: str) -> Iterator[Scene]:
    """A throwaway database without the extensions: mallory owns it (and so `public`), or has only CREATE
    on its `public`."""
    suffix = uuid.uuid4().hex[:8]
    mallory, db = f"mallory_{suffix}", f"shrinkvec_attack_{suffix}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
        sql.Identifier(mallory)))
    owner = sql.SQL(" OWNER {}").format(sql.Identifier(mallory)) if request.param == "database_owner" else sql.SQL("")
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0{}").format(sql.Identifier(db), owner))
    admin_dsn = with_db(dsn, db)
    try:
        if request.param == "create_on_public":
            with psycopg.connect(admin_dsn, autocommit=True) as a:
                a.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(mallory)))
        yield Scene(admin_dsn, role_dsn(admin_dsn, mallory), mallory)
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(mallory)))


def connect(dsn: str) -> psycopg.Connection:
    """A connection as the tools open one, with pgvector's types (pgvector's own register_vector would
    look them up through mallory's `=(oid, regtype)` in public)."""
    c = connection.connect(dsn, autocommit=True)
    connection.register_vector(c)
    return c


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SV, *args], cwd=cwd, capture_output=True, text=True)


# ---------------------------------------------------------------------------------------------
# 1. planted operators: migrate, the catalog upgrade, and every tool, as the superuser
# ---------------------------------------------------------------------------------------------


def test_planted_operators_never_run_during_migrate_and_the_tools(scene: Scene, tmp_path: Path) -> None:
    plant_traps(scene.mallory_dsn, scene.mallory)
    dsn = scene.admin_dsn
    steps: dict[str, dict[str, int]] = {}  # the trap calls (new ones) of each step

    def record(name: str) -> None:
        before: dict[str, int] = {}
        for calls in steps.values():
            for k, v in calls.items():
                before[k] = before.get(k, 0) + v
        steps[name] = {k: v - before.get(k, 0) for k, v in trap_calls(dsn, scene.mallory).items()
                       if v > before.get(k, 0)}

    def step(name: str, args: list[str]) -> None:
        run = run_cli([*args, "--dsn", dsn], tmp_path)
        assert run.returncode == 0, f"{name}: {run.stderr}"
        record(name)

    step("migrate (fresh database)", ["migrate"])
    with connect(dsn) as a:  # where a plain CREATE EXTENSION would have put them, as before
        assert connection.extension_schema(a, "shrinkvec") == "public"
        assert connection.extension_schema(a, "vector") == "public"
    catalog.downgrade(dsn, "0005")
    record("downgrade to 0005")
    assert catalog.current_revision(dsn) == "0005"
    step("migrate 0005 -> head", ["migrate"])
    assert catalog.current_revision(dsn) == catalog.head_revision()

    data = demo.load_data()
    np.save(tmp_path / "d.npy", data.docs[:600])
    np.save(tmp_path / "q.npy", data.queries[:12])
    step("load", ["load", "d.npy", "--table", "docs", "--profile", "bits,prefix:64,int8", "--quiet"])
    step("adapt", ["adapt", "--table", "docs", "--method", "center"])
    step("sql", ["sql", "--table", "docs"])
    step("search", ["search", "--table", "docs", "--queries", "q.npy", "--k", "5"])
    step("eval", ["eval", "--table", "docs", "--queries", "q.npy", "--configs", "exact bits@100 int8@50",
                  "--no-plot", "--json", "--quiet"])
    step("tune --apply", ["tune", "--table", "docs", "--queries", "q.npy", "--configs", "bits@100 bits@200",
                          "--target-recall", "0.5", "--apply", "--quiet"])
    step("search (tuned)", ["search", "--table", "docs", "--queries", "q.npy", "--k", "5"])

    assert not is_superuser(dsn, scene.mallory), f"mallory became superuser; trap calls by step: {steps}"
    assert all(calls == {} for calls in steps.values()), f"mallory's traps ran; calls by step: {steps}"
    # the traps are live: an ordinary statement under the default search_path does reach one
    with psycopg.connect(dsn, autocommit=True) as a:
        a.execute("SELECT 'x'::name = 'x'::varchar")
        assert trap_calls(dsn, scene.mallory) != {}
        a.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(scene.mallory)))


def search_path(c: psycopg.Connection) -> str:
    row = c.execute("SHOW search_path").fetchone()
    return "" if row is None else str(row[0]).replace(" ", "")


def test_every_tool_connection_pins_the_search_path(dsn: str, conn: psycopg.Connection,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """connect() and engine(): search_path = pg_catalog, pg_temp over the database's setting, keeping the
    DSN's (or PGOPTIONS') other options."""
    from sqlalchemy import text

    conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = public, pg_catalog").format(
        sql.Identifier(conn.info.dbname)))
    with psycopg.connect(dsn) as plain:  # what a connection without the option gets
        assert plain.execute("SHOW search_path").fetchone() == ("public, pg_catalog",)
    params = conninfo_to_dict(dsn) | {"options": "-c statement_timeout=4321"}
    with connection.connect(make_conninfo(**params)) as c:  # type: ignore[arg-type]  # conninfo values
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # ready for c.autocommit = ...
        assert search_path(c) == "pg_catalog,pg_temp"
        assert c.execute("SHOW statement_timeout").fetchone() == ("4321ms",)
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=7MB")
    with connection.connect(dsn, autocommit=True) as c:
        assert search_path(c) == "pg_catalog,pg_temp"
        assert c.execute("SHOW work_mem").fetchone() == ("7MB",)
    engine = connection.engine(dsn)
    try:
        with engine.connect() as c:
            assert str(c.execute(text("SHOW search_path")).scalar()).replace(" ", "") == "pg_catalog,pg_temp"
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# 2. a profiled table whose columns carry planted casts
# ---------------------------------------------------------------------------------------------

# mallory's types: an id with a cast to bigint, sign bits with an implicit cast to bit, each cast a trap
CAST_PLANT = """
CREATE TYPE {s}.evil_id AS (v bigint);
CREATE FUNCTION {s}.evil_id_bigint(x {s}.evil_id) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM public.trap('evil_id::bigint'); RETURN x.v; END $$;
CREATE CAST ({s}.evil_id AS bigint) WITH FUNCTION {s}.evil_id_bigint({s}.evil_id) AS IMPLICIT;
CREATE TYPE {s}.evil_bits AS (b bit(384));
CREATE FUNCTION {s}.evil_bits_bit(x {s}.evil_bits) RETURNS bit LANGUAGE plpgsql AS $$
BEGIN PERFORM public.trap('evil_bits::bit'); RETURN x.b; END $$;
CREATE CAST ({s}.evil_bits AS bit) WITH FUNCTION {s}.evil_bits_bit({s}.evil_bits) AS IMPLICIT;
-- bait_id: the id is evil_id; bait_bits: the bits code column is evil_bits
CREATE TABLE {s}.bait_id (id {s}.evil_id, embedding vector(384), bits bit(384));
CREATE TABLE {s}.bait_bits (id bigint, embedding vector(384), bits {s}.evil_bits);
GRANT USAGE ON SCHEMA {s} TO PUBLIC;
GRANT SELECT ON {s}.bait_id, {s}.bait_bits TO PUBLIC;
"""


@pytest.fixture
def cast_plant(migrated_dsn: str, conn: psycopg.Connection) -> Iterator[Scene]:
    """mallory (CREATE on public, her own schema) with the two bait tables, their rows and her own profile
    rows for them; admin is the superuser who ran migrate."""
    mallory = f"mallory_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {m} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; "
                         "GRANT CREATE ON SCHEMA public TO {m}; CREATE SCHEMA {m} AUTHORIZATION {m}").format(
        m=sql.Identifier(mallory)))
    try:
        m_dsn = role_dsn(migrated_dsn, mallory)
        plant_traps(m_dsn, mallory)
        x = demo.load_data().docs[:300]
        with psycopg.connect(m_dsn, autocommit=True) as m:
            m.execute(CAST_PLANT.replace("{s}", sql.Identifier(mallory).as_string(m)))
            bits = [codes.bits_to_str(b, 384) for b in codes.binarize_batch(x)]
            vecs = [sqlvec(v) for v in x]
            for i, (v, b) in enumerate(zip(vecs, bits)):
                m.execute(sql.SQL("INSERT INTO {}.bait_id VALUES (ROW(%s), %s, %s::bit(384))").format(
                    sql.Identifier(mallory)), (i, v, b))
                m.execute(sql.SQL("INSERT INTO {}.bait_bits VALUES (%s, %s, ROW(%s::bit(384)))").format(
                    sql.Identifier(mallory)), (i, v, b))
            for table in ("bait_id", "bait_bits"):
                name = m.execute("""INSERT INTO shrinkvec.profiles (table_schema, table_name, vector_column, dims)
                                    VALUES (%s, %s, 'embedding', 384) RETURNING name""", (mallory, table)).fetchone()
                assert name is not None
                m.execute("""INSERT INTO shrinkvec.codes (profile, column_name, position, kind, length)
                             VALUES (%s, 'bits', 0, 'bits', 384)""", (name[0],))
            m.execute("DELETE FROM public.pwned")
        yield Scene(migrated_dsn, m_dsn, mallory)
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {m} CASCADE; DROP ROLE {m}").format(m=sql.Identifier(mallory)))


def sqlvec(v: np.ndarray) -> str:
    return "[" + ",".join("%.9g" % f for f in v.tolist()) + "]"


BAITS = {"bait_id": ("id", "evil_id"), "bait_bits": ("bits", "evil_bits")}


@pytest.mark.parametrize("table", sorted(BAITS))
def test_tools_refuse_a_profiled_table_with_planted_casts(cast_plant: Scene, table: str, tmp_path: Path) -> None:
    dsn, mallory = cast_plant.admin_dsn, cast_plant.mallory
    column, typ = BAITS[table]
    message = f"column {column} of \"{mallory}\".\"{table}\" (the "
    data = demo.load_data()
    np.save(tmp_path / "q.npy", data.queries[:8])
    # the Python API: the profile is found, the search refuses it before any SQL built from it runs
    with connect(dsn) as admin:
        p = catalog.find_profile(admin, table, mallory)
        assert p is not None and [c.column for c in p.codes] == ["bits"]
        with pytest.raises(profile_check.ColumnTypeError, match=re.escape(message)) as err:
            query.search(admin, p, query.stages_for(p, ["bits"], [50]), data.queries[0], k=5)
        assert f"{mallory}.{typ}" in str(err.value)
        with pytest.raises(profile_check.ColumnTypeError, match=re.escape(message)):
            evaluate.Evaluator(admin, p, data.queries[:8], 5)
    # the CLI: one line naming the column and its type, exit 1
    for args in (["search", "--queries", "q.npy"], ["sql"],
                 ["eval", "--queries", "q.npy", "--configs", "bits@50", "--no-plot", "--quiet"],
                 ["tune", "--queries", "q.npy", "--configs", "bits@50", "--target-recall", "0.1", "--apply",
                  "--quiet"],
                 ["adapt", "--method", "center"]):
        run = run_cli([*args, "--table", table, "--schema", mallory, "--dsn", dsn], tmp_path)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and f"{mallory}.{typ}" in lines[0], (args, run.stderr)
    # the ORM, given the session: refused as well
    with Session(connection.engine(dsn)) as s:
        model = orm_model(mallory, table)
        with pytest.raises(profile_check.ColumnTypeError, match=re.escape(f"column {column} of")) as err:
            two_stage(model, data.queries[0], k=5, shortlist=50, bind=s)
        assert f"{mallory}.{typ}" in str(err.value)
    assert trap_calls(dsn, mallory) == {}
    assert not is_superuser(dsn, mallory)


def orm_model(schema: str, table: str) -> Any:
    """A model of a bait table as a careless user maps it (bigint id, bit(384) code column)."""

    class Base(DeclarativeBase):
        pass

    class Bait(Base):
        __tablename__ = table
        __table_args__ = {"schema": schema}
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        embedding = mapped_column(VECTOR(384), nullable=False)
        bits = bits_column("embedding", 384)

    return Bait


def test_the_check_passes_the_tools_own_tables(migrated_dsn: str, tmp_path: Path) -> None:
    """A loaded table (bits, prefix, int8; a halfvec one; a maxsim one) passes, and the ORM with bind searches."""
    data = demo.load_data()
    np.save(tmp_path / "d.npy", data.docs[:300])
    load(migrated_dsn, tmp_path / "d.npy", LoadOptions(table="docs", profile="bits,prefix:64,int8",
                                                       reject_file=tmp_path / "r.jsonl"))
    with connect(migrated_dsn) as c:
        p = catalog.find_profile(c, "docs")
        assert p is not None
        located = profile_check.check_profile(c, p)
        assert (located.ext_schema, located.vec_schema, located.vector_type) == ("public", "public", "vector")
        c.execute("CREATE TABLE public.half (id int, embedding public.halfvec(384))")
        checked = profile_check.check_columns(c, "public.half", [
            profile_check.Expected("id", "id column", (("pg_catalog", "integer"),)),
            profile_check.Expected("embedding", "vector column", (("vector", "vector"), ("vector", "halfvec")))])
        assert checked.type_names == {"id": "integer", "embedding": "halfvec"}
        # a type of the same name that is not the extension's is refused
        c.execute("CREATE SCHEMA fake; CREATE DOMAIN fake.int8vec AS bytea")
        c.execute("CREATE TABLE public.fake (id bigint, embedding public.vector(384), int8 fake.int8vec)")
        with pytest.raises(profile_check.ColumnTypeError, match="column int8 of public.fake .* has type fake.int8vec"):
            profile_check.check_columns(c, "public.fake", [
                profile_check.Expected("int8", "int8 code column", (("shrinkvec", "int8vec"),))])
    with Session(connection.engine(migrated_dsn)) as s:
        model = orm_model("public", "docs")
        rows = s.execute(two_stage(model, data.docs[5], k=3, shortlist=50, bind=s)).all()
        assert rows[0][0].id == 5
