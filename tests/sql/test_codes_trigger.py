"""One codes trigger in the extension (issues 26 and 32): `shrinkvec.codes_trigger()`, in C.

- A one-table dump (`pg_dump -Fc -t docs -n shrinkvec`) restores into a fresh database where only
  CREATE EXTENSION shrinkvec CASCADE ran: the trigger's arguments travel with the table, new rows get their
  codes (equal to the numpy reference) and searches answer the same. This failed while every table had its
  own PL/pgSQL trigger function in its schema (`function public.shrinkvec_codes_<hash>() does not exist`).
- The schema swap: whoever owns the schema the extension was installed into (the installing role of a
  trusted extension, or a database owner through `public`) renames it and plants `binarize`; one superuser
  INSERT into a victim's table ran the planted code while the per-table trigger function named the schema as
  text. The C trigger calls the extension's C code directly: nothing runs, and the codes are right.
- The trigger's own contract: codes a client writes are replaced by the right ones, a NULL vector gives NULL
  codes, an UPDATE of the vector recomputes, a role with INSERT but no SELECT gets codes, and columns of the
  wrong type (or an argument list that does not describe the table) are refused with a clear error.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector, Vector
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import pg_tool, role_dsn
from shrinkvec import adapt, catalog, codes, ddl, demo, query, transforms
from shrinkvec.load import LoadOptions, load
from shrinkvec.profile import Profile, parse_codes

D = 384


def connect(dsn: str) -> psycopg.Connection:
    c = psycopg.connect(dsn, autocommit=True)
    register_vector(c)
    return c


def plain(dsn: str) -> psycopg.Connection:
    """A connection without pgvector's types (a database without the extension, or with it renamed away)."""
    return psycopg.connect(dsn, autocommit=True)


def dsn_for(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)  # type: ignore[arg-type]  # conninfo values are str | int


@pytest.fixture
def new_db(dsn: str, conn: psycopg.Connection) -> Iterator[str]:
    """A fresh database from template0 (no extensions); its DSN."""
    name = f"trig_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield dsn_for(dsn, name)
    finally:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def code_values(conn: psycopg.Connection, p: Profile, where: str, params: tuple[Any, ...]) -> dict[str, Any]:
    """The code columns of one row in comparable form: bits and multibit as text, prefix as float32, int8 as ints."""
    cols = []
    for c in p.codes:
        if c.kind == "prefix":
            cols.append(sql.SQL("{}::real[]").format(sql.Identifier(c.column)))
        else:
            cols.append(sql.SQL("{}::text").format(sql.Identifier(c.column)))
    row = conn.execute(sql.SQL("SELECT {} FROM {} WHERE {}").format(  # noqa: S608 (identifiers are quoted)
        sql.SQL(", ").join(cols), ddl.table_ident(p), sql.SQL(where)), params).fetchone()
    assert row is not None
    out: dict[str, Any] = {}
    for c, v in zip(p.codes, row):
        if v is None:
            out[c.column] = None
        elif c.kind == "prefix":
            out[c.column] = np.asarray(v, dtype=np.float32)
        elif c.kind == "int8":
            out[c.column] = np.asarray(json.loads(v), dtype=np.int8)
        else:
            out[c.column] = v
    return out


def reference(p: Profile, x: np.ndarray) -> dict[str, Any]:
    """What the numpy reference (Profile.encode / encode_docs) says the codes of one row are."""
    if p.multi:
        flat, offsets = codes.flat_tokens([x])
        enc = p.encode_docs(flat, offsets)
        return {c.column: codes.multibit_str(enc[c.column][0], c.length) for c in p.codes}
    enc1 = p.encode(np.asarray(x, dtype=np.float32)[None, :])
    out: dict[str, Any] = {}
    for c in p.codes:
        if c.kind == "bits":
            out[c.column] = codes.bits_to_str(enc1[c.column][0], c.length)
        else:
            out[c.column] = np.asarray(enc1[c.column][0])
    return out


def assert_codes(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for k in got:
        if isinstance(want[k], np.ndarray):
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
            assert got[k].dtype == want[k].dtype or want[k].dtype.kind == got[k].dtype.kind, k
        else:
            assert got[k] == want[k], k


def trigger_functions(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute("""SELECT t.tgfoid::regprocedure::text FROM pg_catalog.pg_trigger t
                           WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal ORDER BY t.tgname""",
                        (table,)).fetchall()
    return [str(r[0]) for r in rows]


# ---------------------------------------------------------------------------------------------
# the one-table dump
# ---------------------------------------------------------------------------------------------

MULTI_DIMS = 24


def make_docs(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 9)), MULTI_DIMS)).astype(np.float16).astype(np.float32)
            for _ in range(n)]


def load_case(dsn: str, tmp_path: Path, case: str, table: str) -> Any:
    """Load `table` for a case; returns the data rows (vectors, or token arrays for multibit)."""
    rejects = tmp_path / f"{table}.rejects.jsonl"
    if case == "multibit":
        docs = make_docs(120, seed=1)
        flat, offsets = codes.flat_tokens(docs)
        np.savez(tmp_path / f"{table}.npz", embeddings=flat.astype(np.float16), offsets=offsets)
        r = load(dsn, tmp_path / f"{table}.npz", LoadOptions(table=table, batch_size=50, reject_file=rejects))
        assert r.loaded == 120
        return docs
    x = demo.load_data().docs[:500]
    np.save(tmp_path / f"{table}.npy", x)
    spec = {"plain": "bits,prefix:32,int8", "center": "bits,bits:64,int8", "transform": "bits,prefix:32,int8"}[case]
    r = load(dsn, tmp_path / f"{table}.npy", LoadOptions(table=table, profile=spec, center=case == "center",
                                                         reject_file=rejects))
    assert r.loaded == 500
    if case == "transform":
        res = adapt.adapt(dsn, adapt.AdaptOptions(table=table, method="pca", vacuum="none"))
        assert ":pca:" in res.transform
    return x


def answers(conn: psycopg.Connection, case: str, table: str, data: Any) -> list[list[int | str]]:
    """Top ids of a few queries through every code stage (and shrinkvec.search / search_tokens)."""
    p = catalog.find_profile(conn, table)
    assert p is not None
    out: list[list[int | str]] = []
    if case == "multibit":
        for q in make_docs(3, seed=7):
            ids, _ = query.search(conn, p, query.plan(p, k=5, shortlists=[30]), [q])[0]
            out.append(ids)
            out.append([r[0] for r in conn.execute(
                "SELECT id FROM shrinkvec.search_tokens(%s::regclass, %s::vector[], 5, 30)",
                (table, query.tokens_literal(q))).fetchall()])
        return out
    for i in (3, 77, 222):
        q = data[i]
        for c in p.codes:
            ids, _ = query.search(conn, p, query.stages_for(p, [c.spec()], [50]), q, k=5)[0]
            out.append(ids)
        out.append([r[0] for r in conn.execute("SELECT id FROM shrinkvec.search(%s::regclass, %s, 5, 50)",
                                               (table, q)).fetchall()])
    return out


@pytest.mark.parametrize("case", ["plain", "center", "transform", "multibit"])
def test_one_table_dump_restores_into_a_fresh_database(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path,
                                                       new_db: str, case: str) -> None:
    table = f"docs_{case}"
    data = load_case(migrated_dsn, tmp_path, case, table)
    conn.execute(sql.SQL("CREATE TABLE bystander (id int)"))  # not in the dump
    assert trigger_functions(conn, table) == ["shrinkvec.codes_trigger()"]
    before = answers(conn, case, table, data)
    dump = tmp_path / f"{table}.dump"
    run = subprocess.run(
        [pg_tool("pg_dump"), "-Fc", "-t", f"public.{table}", "-n", "shrinkvec", "--file", str(dump), migrated_dsn],
        capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with plain(new_db) as r:
        r.execute("CREATE EXTENSION shrinkvec CASCADE")
    run = subprocess.run(
        [pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", new_db, str(dump)],
        capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    if case == "multibit":
        new = make_docs(2, seed=99)
        values = [query.tokens_literal(d) for d in new]
        insert = sql.SQL("INSERT INTO {} (id, embedding) VALUES (%s, %s::vector[])").format(sql.Identifier(table))
        wrong = sql.SQL("INSERT INTO {} (id, embedding, multibit) VALUES (%s, %s::vector[], '{{1}}')").format(
            sql.Identifier(table))
    else:
        new = [demo.load_data().docs[600], demo.load_data().docs[601]]
        values = [Vector(v).to_text() for v in new]
        insert = sql.SQL("INSERT INTO {} (id, embedding) VALUES (%s, %s::vector)").format(sql.Identifier(table))
        wrong = sql.SQL("INSERT INTO {} (id, embedding, bits) VALUES (%s, %s::vector, %s::bit(384))").format(
            sql.Identifier(table))
    with plain(new_db) as r:
        assert r.execute("SELECT to_regclass('bystander')").fetchone() == (None,)
        assert trigger_functions(r, table) == ["shrinkvec.codes_trigger()"]
        # the trigger needs no catalog: rows get their codes before `shrinkvec migrate` ran
        if case == "transform":  # ... except the transform's numbers, which live in the catalog
            with pytest.raises(psycopg.Error, match="the shrinkvec catalog does not exist in this database"):
                r.execute(insert, (5000, values[0]))
        else:
            r.execute(insert, (5000, values[0]))
    # `shrinkvec migrate` creates the catalog and registers the table's profile from its trigger
    catalog.migrate(new_db)
    with connect(new_db) as r:
        if case == "transform":  # a transformed profile waits for its transform
            assert catalog.find_profile(r, table) is None
            src = catalog.find_profile(conn, table)
            assert src is not None and src.transform is not None
            transforms.save(r, transforms.load(conn, src.transform), f"public.{table}")
            assert ddl.sync_triggers(r).registered == [f"public.{table}"]
            r.execute(insert, (5000, values[0]))
        p = catalog.find_profile(r, table)
        assert p is not None
        assert answers(r, case, table, data) == before
        # new rows get their codes, as numpy computes them: written without codes, and with wrong ones
        r.execute(wrong, (5001, values[1]) if case == "multibit" else (5001, values[1], "1" * D))
        for i, x in enumerate(new):
            assert_codes(code_values(r, p, "id = %s", (5000 + i,)), reference(p, x))
        assert ddl.sync_triggers(r) == ddl.SyncReport()  # nothing left to do


def test_migrate_registers_a_table_restored_into_a_migrated_database(migrated_dsn: str, conn: psycopg.Connection,
                                                                     tmp_path: Path, new_db: str) -> None:
    """The catalog is already at head when the table arrives: `shrinkvec migrate` has no revision to run and
    still registers the restored table's profile from its trigger."""
    data = load_case(migrated_dsn, tmp_path, "plain", "docs_late")
    before = answers(conn, "plain", "docs_late", data)
    dump = tmp_path / "late.dump"
    run = subprocess.run([pg_tool("pg_dump"), "-Fc", "-t", "public.docs_late", "--file", str(dump), migrated_dsn],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    catalog.migrate(new_db)
    run = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", new_db, str(dump)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with connect(new_db) as r:
        assert catalog.find_profile(r, "docs_late") is None
    assert catalog.migrate(new_db) == catalog.head_revision()
    with connect(new_db) as r:
        assert catalog.find_profile(r, "docs_late") is not None
        assert answers(r, "plain", "docs_late", data) == before


# ---------------------------------------------------------------------------------------------
# the schema swap, via INSERT
# ---------------------------------------------------------------------------------------------

PLANT = """
CREATE TABLE {log} (caller name, what text);
GRANT INSERT, SELECT ON {log} TO PUBLIC;
CREATE FUNCTION {schema}.sv_trap(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {log} VALUES (current_user, what);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
        EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', {attacker});
    END IF;
END $$;
CREATE FUNCTION {schema}.binarize(v {vector}) RETURNS bit LANGUAGE plpgsql AS $$
BEGIN PERFORM {schema}.sv_trap('binarize'); RETURN {real}.binarize(v); END $$;
CREATE FUNCTION {schema}.binarize(v {vector}, n integer) RETURNS bit LANGUAGE plpgsql AS $$
BEGIN PERFORM {schema}.sv_trap('binarize'); RETURN {real}.binarize(v, n); END $$;
CREATE FUNCTION {schema}.binarize(v {vector}, n integer, c real[]) RETURNS bit LANGUAGE plpgsql AS $$
BEGIN PERFORM {schema}.sv_trap('binarize'); RETURN {real}.binarize(v, n, c); END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO PUBLIC;
"""


@pytest.mark.parametrize("who", ["installer", "database_owner"])
def test_schema_swap_runs_nothing_on_insert(dsn: str, conn: psycopg.Connection, tmp_path: Path, who: str) -> None:
    """Issue 32, escalation 1 via INSERT: the role that owns the extension's schema renames it, creates a new
    one of the same name with a planted binarize(); a superuser INSERT into a victim's profiled table."""
    suffix = uuid.uuid4().hex[:8]
    attacker, victim, dbname = f"attacker_{suffix}", f"victim_{suffix}", f"swap_{suffix}"
    for role in (attacker, victim):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
            sql.Identifier(role)))
    owner = sql.SQL(" OWNER {}").format(sql.Identifier(attacker)) if who == "database_owner" else sql.SQL("")
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0{}").format(sql.Identifier(dbname), owner))
    db = dsn_for(dsn, dbname)
    try:
        with plain(db) as admin:
            admin.execute("CREATE EXTENSION vector")
            admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(victim)))
            if who == "installer":
                schema = "sv"
                admin.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(dbname),
                                                                                   sql.Identifier(attacker)))
                with plain(role_dsn(db, attacker)) as a:  # shrinkvec is trusted: the installer needs only CREATE
                    a.execute("CREATE SCHEMA sv")
                    a.execute("CREATE EXTENSION shrinkvec SCHEMA sv")
                    a.execute("GRANT USAGE ON SCHEMA sv TO PUBLIC")  # so that others can use it
            else:  # the database owner owns public (pg_database_owner); the admin installed there
                schema = "public"
                admin.execute("CREATE EXTENSION shrinkvec")
        catalog.migrate(db)  # the admin
        x = demo.load_data().docs[:100]
        np.save(tmp_path / "v.npy", x)
        r = load(role_dsn(db, victim), tmp_path / "v.npy",
                 LoadOptions(table="docs", profile="bits,bits:64", reject_file=tmp_path / "r.jsonl"))
        assert r.loaded == 100
        with plain(db) as admin:
            p = catalog.find_profile(admin, "docs")
            assert p is not None
        # the swap
        real = f"{schema}_real"
        vector = "public_real.vector" if schema == "public" else "public.vector"
        log = f"{schema}.sv_log"  # in the attacker's new schema
        with plain(role_dsn(db, attacker)) as a:
            a.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(schema), sql.Identifier(real)))
            a.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            a.execute(PLANT.format(schema=schema, real=real, vector=vector, log=log,
                                   attacker=sql.Literal(attacker).as_string(a)))
        table = "public_real.docs" if schema == "public" else "public.docs"
        with plain(db) as admin:
            # the plant is live: a call by name reaches it
            admin.execute(sql.SQL("SELECT {}.binarize('[1,-1]'::{})").format(sql.Identifier(schema), sql.SQL(vector)))
            admin.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(log)))
            admin.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(attacker)))
            # one superuser INSERT, one UPDATE, one COPY
            admin.execute(sql.SQL("INSERT INTO {} (id, embedding) VALUES (1000, %s::{})").format(
                sql.SQL(table), sql.SQL(vector)), (Vector(x[7]).to_text(),))
            admin.execute(sql.SQL("UPDATE {} SET embedding = %s::{} WHERE id = 1").format(
                sql.SQL(table), sql.SQL(vector)), (Vector(x[8]).to_text(),))
            calls = admin.execute(sql.SQL("SELECT caller, what FROM {}").format(sql.SQL(log))).fetchall()
            su = admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (attacker,)).fetchone()
            assert (calls, su) == ([], (False,)), f"the planted binarize ran: {calls}; attacker superuser: {su}"
            p_moved = Profile(name="x", schema=table.split(".")[0], table="docs", vector_column="embedding", dims=D,
                              codes=p.codes)
            assert_codes(code_values(admin, p_moved, "id = 1000", ()), reference(p, x[7]))
            assert_codes(code_values(admin, p_moved, "id = 1", ()), reference(p, x[8]))
    finally:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        for role in (attacker, victim):
            conn.execute(sql.SQL("DROP OWNED BY {r} CASCADE; DROP ROLE {r}").format(r=sql.Identifier(role)))


# ---------------------------------------------------------------------------------------------
# the trigger's contract
# ---------------------------------------------------------------------------------------------


def add_codes(conn: psycopg.Connection, table: str, spec: str, dims: int, vector_type: str = "vector",
              center: np.ndarray | None = None, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> Profile:
    cs = parse_codes(spec, dims)
    if lo is not None:
        from dataclasses import replace

        cs = tuple(replace(c, lo=lo, hi=hi) if c.kind == "int8" else c for c in cs)
    p = ddl.located(conn, Profile(name=f"public.{table}.embedding", schema="public", table=table,
                                  vector_column="embedding", dims=dims, codes=cs, center=center,
                                  vector_type=vector_type))
    ddl.add_codes(conn, p)
    return p


@pytest.mark.parametrize("vector_type", ["vector", "halfvec"])
def test_codes_are_always_the_vector_s(conn: psycopg.Connection, vector_type: str) -> None:
    dims = 40
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, dims)).astype(np.float16).astype(np.float32)
    x[0, :5] = 0.0
    x[0, 5] = -0.0
    center = (rng.standard_normal(dims) * 0.1).astype(np.float32)
    ranges = codes.int8_ranges(x)
    conn.execute(sql.SQL("CREATE TABLE t (id int PRIMARY KEY, embedding {}({}))").format(
        sql.SQL(vector_type), sql.Literal(dims)))
    p = add_codes(conn, "t", "bits,bits:13=b13,prefix:7,int8", dims, vector_type, center=center,
                  lo=ranges.lo, hi=ranges.hi)
    assert trigger_functions(conn, "t") == ["shrinkvec.codes_trigger()"]
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname ~ '^shrinkvec_(codes|stale|next)_'"
                        ).fetchone() == (0,)  # no function per table

    def val(v: np.ndarray) -> Any:
        return HalfVector(v) if vector_type == "halfvec" else v

    # without codes; with wrong codes (of the right types); then an UPDATE of the vector; a code alone
    conn.execute("INSERT INTO t (id, embedding) VALUES (0, %s), (1, %s)", (val(x[0]), val(x[1])))
    conn.execute("""INSERT INTO t (id, embedding, bits, b13, prefix7, int8)
                    VALUES (2, %s, %s::bit(40), B'0000000000000', '[1,2,3,4,5,6,7]', %s::int8vec)""",
                 (val(x[2]), "1" * dims, "[" + ",".join(["5"] * dims) + "]"))
    for i in range(3):
        assert_codes(code_values(conn, p, "id = %s", (i,)), reference(p, x[i]))
    conn.execute("UPDATE t SET embedding = %s WHERE id = 1", (val(x[3]),))
    assert_codes(code_values(conn, p, "id = 1", ()), reference(p, x[3]))
    conn.execute("UPDATE t SET bits = NULL, prefix7 = '[0,0,0,0,0,0,0]' WHERE id = 2")
    assert_codes(code_values(conn, p, "id = 2", ()), reference(p, x[2]))
    # a NULL vector: NULL codes, whatever was written
    conn.execute("INSERT INTO t (id, embedding, b13) VALUES (4, NULL, B'1111111111111')")
    conn.execute("UPDATE t SET embedding = NULL WHERE id = 0")
    for i in (0, 4):
        assert all(v is None for v in code_values(conn, p, "id = %s", (i,)).values())
    # COPY (binary, as the loader) and ddl.backfill give the same codes
    with conn.cursor().copy("COPY t (id, embedding) FROM STDIN") as cp:
        cp.write_row((5, (HalfVector(x[5]) if vector_type == "halfvec" else Vector(x[5])).to_text()))
    assert_codes(code_values(conn, p, "id = 5", ()), reference(p, x[5]))
    conn.execute("UPDATE t SET embedding = %s WHERE id = 4", (val(x[4]),))
    assert_codes(code_values(conn, p, "id = 4", ()), reference(p, x[4]))
    # and the SQL expressions of the kinds (ddl.code_expr, for ad-hoc SQL) give the same values
    for c in p.codes:
        same = conn.execute(sql.SQL("SELECT bool_and(({})::text = {}::text), count(*) FROM t WHERE embedding IS NOT NULL"
                                    ).format(ddl.code_expr(p, c, sql.Identifier("embedding")), sql.Identifier(c.column))
                            ).fetchone()
        assert same == (True, 4), c.column


def test_insert_without_select_gets_codes(dsn: str, conn: psycopg.Connection) -> None:
    role = f"writer_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        conn.execute("CREATE TABLE w (id int PRIMARY KEY, embedding vector(16))")
        p = add_codes(conn, "w", "bits,prefix:4", 16)
        conn.execute(sql.SQL("GRANT INSERT ON w TO {}").format(sql.Identifier(role)))
        x = np.random.default_rng(5).standard_normal(16).astype(np.float32)
        with connect(role_dsn(dsn, role)) as c:
            c.execute("INSERT INTO w (id, embedding) VALUES (1, %s)", (x,))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT * FROM w")
        assert_codes(code_values(conn, p, "id = 1", ()), reference(p, x))
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role)))


def trigger_on(conn: psycopg.Connection, table: str, *args: str) -> None:
    conn.execute(sql.SQL("CREATE TRIGGER codes BEFORE INSERT OR UPDATE ON {} FOR EACH ROW "
                         "EXECUTE FUNCTION shrinkvec.codes_trigger({})").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Literal(a) for a in args)))


@pytest.mark.parametrize(("columns", "args", "sqlstate", "message"), [
    ("bits text", ("bits", "bits", "8", "", ""), "42804",
     'column "bits" of relation "bad" has type text, expected bit\\(8\\)'),
    ("bits bit(16)", ("bits", "bits", "8", "", ""), "42804",
     'column "bits" of relation "bad" has type bit\\(16\\), expected bit\\(8\\)'),
    ("p real[]", ("p", "prefix", "4", "", ""), "42804",
     'column "p" of relation "bad" has type real\\[\\], expected vector\\(4\\)'),
    ("p fake.vector", ("p", "prefix", "4", "", ""), "42804",
     'column "p" of relation "bad" has type fake.vector, expected vector\\(4\\)'),
    ("q bytea", ("q", "int8", "8", "{0,0,0,0,0,0,0,0}", "{1,1,1,1,1,1,1,1}"), "42804",
     'column "q" of relation "bad" has type bytea, expected int8vec\\(8\\)'),
    ("m bit(8)", ("m", "multibit", "8", "", ""), "22023", "needs a vector\\[\\] or halfvec\\[\\] column"),
    ("b bit(8)", ("nope", "bits", "8", "", ""), "42703", 'column "nope" of relation "bad" does not exist'),
    ("b bit(8)", ("b", "bits", "0", "", ""), "22023", 'length "0" of code column "b"'),
    ("b bit(8)", ("b", "sign", "8", "", ""), "22023", 'unknown code kind "sign"'),
    ("q int8vec(8)", ("q", "int8", "8", "{0,0}", "{1,1}"), "22023", "needs lo and hi of 8 elements, got 2 and 2"),
    ("b bit(8)", ("b", "bits", "8"), "22023", "expected 6 arguments and 5 per code, got 9"),
    ("g bit(8) GENERATED ALWAYS AS (B'10101010') STORED", ("g", "bits", "8", "", ""), "0A000",
     'column "g" of relation "bad" is a generated column'),
])
def test_wrong_columns_and_arguments_are_refused(conn: psycopg.Connection, columns: str, args: tuple[str, ...],
                                                 sqlstate: str, message: str) -> None:
    conn.execute("CREATE SCHEMA fake")
    conn.execute("CREATE DOMAIN fake.vector AS bytea")  # a `vector` that is not pgvector's
    conn.execute(f"CREATE TABLE bad (id int, embedding vector(8), {columns})")
    trigger_on(conn, "bad", "v1", "embedding", "id", "cosine", "", "", *args)
    with pytest.raises(psycopg.Error, match=message) as exc:
        conn.execute("INSERT INTO bad (id, embedding) VALUES (1, '[1,2,3,4,5,6,7,8]')")
    assert exc.value.sqlstate == sqlstate


def test_vector_column_and_format_are_checked(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE bad (id int, embedding real[], b bit(2))")
    trigger_on(conn, "bad", "v1", "embedding", "id", "cosine", "", "", "b", "bits", "2", "", "")
    with pytest.raises(psycopg.Error, match='column "embedding" of relation "bad" has type real\\[\\], expected '
                                            'vector, halfvec, vector\\[\\] or halfvec\\[\\]') as exc:
        conn.execute("INSERT INTO bad VALUES (1, '{1,2}')")
    assert exc.value.sqlstate == "42804"
    conn.execute("CREATE TABLE bad2 (id int, embedding vector(2), b bit(2))")
    trigger_on(conn, "bad2", "v0", "embedding", "id", "cosine", "", "", "b", "bits", "2", "", "")
    with pytest.raises(psycopg.Error, match='the first argument must be "v1"') as exc:
        conn.execute("INSERT INTO bad2 VALUES (1, '[1,2]')")
    assert exc.value.sqlstate == "22023"
    with pytest.raises(psycopg.Error, match="not called by trigger manager"):
        conn.execute("SELECT shrinkvec.codes_trigger()")


# ---------------------------------------------------------------------------------------------
# tables made before 0.3.0
# ---------------------------------------------------------------------------------------------

LEGACY = """
CREATE FUNCTION public.{fn}() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN NEW."bits" := "public"."binarize"(NEW."embedding"); RETURN NEW; END $$;
CREATE FUNCTION public.{stale}(v public.vector, c0 bit) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE TRIGGER {trig} BEFORE INSERT OR UPDATE OF embedding, bits ON public.{table}
    FOR EACH ROW EXECUTE FUNCTION public.{fn}();
ALTER TABLE public.{table} ENABLE ALWAYS TRIGGER {trig};
"""


@pytest.mark.parametrize("renamed", [False, True])
def test_migrate_replaces_the_triggers_of_older_versions(migrated_dsn: str, conn: psycopg.Connection,
                                                         tmp_path: Path, renamed: bool) -> None:
    x = demo.load_data().docs[:50]
    np.save(tmp_path / "v.npy", x)
    assert load(migrated_dsn, tmp_path / "v.npy", LoadOptions(table="old", profile="bits",
                                                              reject_file=tmp_path / "r.jsonl")).loaded == 50
    p = catalog.find_profile(conn, "old")
    assert p is not None
    # what shrinkvec < 0.3.0 made: a PL/pgSQL function per table (and a stale function for transforms)
    catalog.downgrade(migrated_dsn, "0006")
    trig = ddl.trigger_name(p)
    conn.execute(sql.SQL("DROP TRIGGER {} ON old").format(sql.Identifier(trig)))
    conn.execute(LEGACY.format(fn=trig, stale=trig.replace("codes", "stale"), trig=trig, table="old"))
    assert trigger_functions(conn, "old") == [f"{trig}()"]
    table = "old"
    if renamed:  # the trigger and its functions keep the names made from the old table name
        conn.execute("ALTER TABLE old RENAME TO renamed")
        table = "renamed"
        p = catalog.find_profile(conn, "renamed")
        assert p is not None and ddl.trigger_name(p) != trig
    catalog.migrate(migrated_dsn)
    assert trigger_functions(conn, table) == ["shrinkvec.codes_trigger()"]
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname ~ '^shrinkvec_(codes|stale)_'").fetchone() == (0,)
    conn.execute(sql.SQL("INSERT INTO {} (id, embedding) VALUES (100, %s)").format(sql.Identifier(table)), (x[3],))
    assert_codes(code_values(conn, p, "id = 100", ()), reference(p, x[3]))
    assert ddl.sync_triggers(conn) == ddl.SyncReport()


class Interrupt(Exception):
    pass


def test_migrate_replaces_the_shadow_trigger_of_a_pending_reencode(migrated_dsn: str, conn: psycopg.Connection,
                                                                   tmp_path: Path) -> None:
    """A re-encode started before 0.3.0 has a PL/pgSQL shadow trigger (`shrinkvec_next_<hash>`): migrate makes it the
    extension's, and the re-encode then finishes with the right codes, rows written meanwhile included."""
    x = demo.load_data().docs[:400]
    np.save(tmp_path / "v.npy", x)
    assert load(migrated_dsn, tmp_path / "v.npy", LoadOptions(table="t", profile="bits,prefix:16,int8",
                                                              reject_file=tmp_path / "r.jsonl")).loaded == 400

    def stop(done: int, total: int) -> None:
        if done >= 100:
            raise Interrupt

    with pytest.raises(Interrupt):
        adapt.adapt(migrated_dsn, adapt.AdaptOptions(table="t", method="pca", batch_size=100, vacuum="none"),
                    adapt.Hooks(rows=stop))
    p = catalog.find_profile(conn, "t")
    assert p is not None and p.transform is None
    shadow = f"shrinkvec_next_{ddl.trigger_name(p).removeprefix('shrinkvec_codes_')}"
    assert trigger_functions(conn, "t") == ["shrinkvec.codes_trigger()", "shrinkvec.codes_trigger()"]
    # what shrinkvec < 0.3.0 had: a PL/pgSQL shadow trigger that fires on the vector only
    catalog.downgrade(migrated_dsn, "0006")
    conn.execute(sql.SQL("DROP TRIGGER {} ON t").format(sql.Identifier(shadow)))
    conn.execute(sql.SQL("CREATE FUNCTION public.{}() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'"
                         ).format(sql.Identifier(shadow)))
    conn.execute(sql.SQL("CREATE TRIGGER {t} BEFORE INSERT OR UPDATE OF embedding ON t FOR EACH ROW "
                         "EXECUTE FUNCTION public.{t}()").format(t=sql.Identifier(shadow)))
    catalog.migrate(migrated_dsn)
    assert trigger_functions(conn, "t") == ["shrinkvec.codes_trigger()", "shrinkvec.codes_trigger()"]
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname ~ '^shrinkvec_(codes|stale|next)_'").fetchone() == (0,)
    y = demo.load_data().docs[500]
    conn.execute("INSERT INTO t (id, embedding) VALUES (9000, %s)", (y,))
    r = adapt.adapt(migrated_dsn, adapt.AdaptOptions(table="t", method="pca", batch_size=100, vacuum="none"))
    assert r.resumed
    p = catalog.find_profile(conn, "t")
    assert p is not None and p.transform is not None
    assert trigger_functions(conn, "t") == ["shrinkvec.codes_trigger()"]
    for i, v in ((0, x[0]), (399, x[399]), (9000, y)):
        assert_codes(code_values(conn, p, "id = %s", (i,)), reference(p, v))


def test_a_renamed_table_keeps_one_trigger_through_adapt_and_drop(migrated_dsn: str, conn: psycopg.Connection,
                                                                  tmp_path: Path) -> None:
    """The trigger's name comes from the table's name when it was made; after a RENAME, re-creating it (adapt's
    switch, drop_codes) still replaces that one trigger instead of adding a second."""
    x = demo.load_data().docs[:300]
    np.save(tmp_path / "v.npy", x)
    assert load(migrated_dsn, tmp_path / "v.npy", LoadOptions(table="before", profile="bits,int8",
                                                              reject_file=tmp_path / "r.jsonl")).loaded == 300
    conn.execute("ALTER TABLE before RENAME TO after")
    adapt.adapt(migrated_dsn, adapt.AdaptOptions(table="after", method="center", vacuum="none"))
    assert trigger_functions(conn, "after") == ["shrinkvec.codes_trigger()"]
    p = catalog.find_profile(conn, "after")
    assert p is not None and p.transform is not None
    conn.execute("INSERT INTO after (id, embedding) VALUES (1000, %s)", (x[5],))
    assert_codes(code_values(conn, p, "id = 1000", ()), reference(p, x[5]))
    ddl.drop_codes(conn, p)
    assert trigger_functions(conn, "after") == []
