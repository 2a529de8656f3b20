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

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import role_dsn
from shrinkvec import catalog, demo

SV = [sys.executable, "-m", "shrinkvec.cli"]

TRAP_FN = """
CREATE TABLE public.pwned (caller name, trap text);
GRANT INSERT, SELECT ON public.pwned TO PUBLIC;
-- logs every call, and makes mallory superuser when the caller is one
CREATE FUNCTION public.trap(what text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO public.pwned VALUES (current_user, what);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
        EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '{mallory}');
    END IF;
    RETURN true;
END $$;
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
        m.execute(TRAP_FN.replace("{mallory}", mallory) + eq)


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
