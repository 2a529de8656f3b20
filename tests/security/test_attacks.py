"""Attacks by an ordinary role: no privilege escalation, no row-level-security leak, no interference.

Three LOGIN roles without superuser: alice and bob are users, mallory is the attacker. All three have
CREATE on `public` (what `shrinkvec load --schema public` needs; PostgreSQL 15 revoked it from PUBLIC).
The admin (the test's superuser) created the extensions and ran `shrinkvec migrate`.

Each attack reproduced before the fix (issue 13) and must now fail or do nothing:
1. an operator `public.=(text, text)` that escalates when a superuser calls it, reached through a trigger
   (transform_vector's catalog query), search(), the tools' queries or the index check;
2. an index expression that escalates when a superuser runs shrinkvec_index_check on it;
3. shrinkvec_index_entries / _check / _info showing rows that a policy hides;
4. a poisoned transform stored under the name that alice's next `adapt` will pick;
5. a profile that squats the name of alice's next table.
Every trap logs each call it gets into `public.pwned`, so a call by any other role is seen even when it
does not escalate; and mallory must never become superuser.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from conftest import TRAP_FUNCTION, one_row, role_dsn
from shrinkvec import adapt, catalog, codes, demo, evaluate, query, transforms, tune
from shrinkvec.load import LoadOptions, load

SV = [sys.executable, "-m", "shrinkvec.cli"]


@pytest.fixture
def roles(migrated_dsn: str, conn: psycopg.Connection) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = {r: f"{r}_{suffix}" for r in ("alice", "bob", "mallory")}
    for role in names.values():
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
            sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)))
    try:
        yield names | {f"{k}_dsn": role_dsn(migrated_dsn, v) for k, v in names.items()} | {"admin_dsn": migrated_dsn}
    finally:
        for role in names.values():
            conn.execute(sql.SQL("DROP OWNED BY {r} CASCADE; DROP ROLE {r}").format(r=sql.Identifier(role)))


def connect(dsn: str) -> psycopg.Connection:
    c = psycopg.connect(dsn, autocommit=True)
    register_vector(c)
    return c


TRAPS = """
CREATE TABLE public.pwned (caller name, trap text);
GRANT INSERT, SELECT ON public.pwned TO PUBLIC;
-- logs every call, and makes mallory superuser when the caller is one
{trap_function}{eq_traps}
CREATE FUNCTION public.to_regclass(t text) RETURNS regclass LANGUAGE plpgsql AS $$
BEGIN
    IF current_user OPERATOR(pg_catalog.<>) '{mallory}' THEN PERFORM public.trap('to_regclass'); END IF;
    RETURN pg_catalog.to_regclass(t);
END $$;
"""


# an `=` for each type shrinkvec compares: it calls the trap, then answers as pg_catalog's would
EQ_TRAP = """
CREATE FUNCTION public.evil_{name}_eq(a {typ}, b {typ}) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_user OPERATOR(pg_catalog.<>) '{mallory}' THEN PERFORM public.trap('{typ} ='); END IF;
    RETURN a{cast} OPERATOR(pg_catalog.=) b{cast};
END $$;
CREATE OPERATOR public.= (LEFTARG = {typ}, RIGHTARG = {typ}, FUNCTION = public.evil_{name}_eq);
"""


def plant_traps(mallory_dsn: str, mallory: str) -> None:
    eq_traps = "".join(EQ_TRAP.format(name=typ, typ=typ, cast=cast, mallory=mallory)
                       for typ, cast in (("text", ""), ("bit", ""), ("regclass", "::oid")))
    with connect(mallory_dsn) as m:
        trap = TRAP_FUNCTION.format(schema="public", mallory=mallory)
        m.execute(TRAPS.replace("{trap_function}", trap).replace("{eq_traps}", eq_traps).replace("{mallory}", mallory))


def assert_not_pwned(admin: psycopg.Connection, mallory: str) -> None:
    calls = admin.execute("SELECT caller, trap FROM public.pwned WHERE caller <> %s", (mallory,)).fetchall()
    assert calls == [], f"mallory's traps ran as {calls}"
    assert admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (mallory,)).fetchone() == (False,)


def load_docs(dsn: str, tmp_path: Path, table: str, n: int = 600, profile: str = "bits,prefix:64,int8") -> None:
    np.save(tmp_path / f"{table}.npy", demo.load_data().docs[:n])
    result = load(dsn, tmp_path / f"{table}.npy", LoadOptions(table=table, profile=profile,
                                                             reject_file=tmp_path / f"{table}.rejects.jsonl"))
    assert result.loaded == n


# ---------------------------------------------------------------------------------------------
# 1. a planted operator
# ---------------------------------------------------------------------------------------------


def test_planted_operators_never_run_as_another_role(roles: dict[str, str], tmp_path: Path) -> None:
    mallory = roles["mallory"]
    load_docs(roles["alice_dsn"], tmp_path, "docs_a")
    res = adapt.adapt(roles["alice_dsn"], adapt.AdaptOptions(table="docs_a", method="center", vacuum="none"))
    assert ":center:v1:" in res.transform
    with connect(roles["alice_dsn"]) as a:
        a.execute("CREATE INDEX docs_a_bits ON public.docs_a USING shrinkvec (bits bit_hamming_ops)")
        a.execute("CREATE INDEX docs_a_vec ON public.docs_a USING shrinkvec (embedding vector_cosine_ops)")
        a.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON public.docs_a TO {}").format(sql.Identifier(roles["bob"])))
    plant_traps(roles["mallory_dsn"], mallory)
    data = demo.load_data()
    q = data.docs[3]
    with connect(roles["admin_dsn"]) as admin:
        for i, path in enumerate(("public, pg_catalog", "public")):  # a careless admin puts public first
            admin.execute(sql.SQL("SET search_path = {}").format(sql.SQL(path)))
            # the table's trigger (transform_vector's catalog query) and the WHEN clause
            admin.execute("INSERT INTO public.docs_a (id, embedding) VALUES (%s, %s)", (100000 + i, data.docs[700]))
            admin.execute("UPDATE public.docs_a SET embedding = %s WHERE id = %s", (data.docs[701], 100000 + i))
            admin.execute("VACUUM (INDEX_CLEANUP ON) public.docs_a")
            # search() in SQL, and the tools' generated queries
            assert admin.execute("SELECT id FROM shrinkvec.search('public.docs_a'::regclass, %s, 3, 50)",
                                 (q,)).fetchone() == (3,)
            p = catalog.find_profile(admin, "docs_a")
            assert p is not None and p.transform == res.transform
            for stage in ("bits", "prefix:64", "int8"):
                ids, _ = query.search(admin, p, query.stages_for(p, [stage], [50]), q, k=3)[0]
                assert ids[0] == 3, stage
            # the index introspection functions
            for idx in ("docs_a_bits", "docs_a_vec"):
                assert admin.execute("SELECT ok FROM shrinkvec_index_check(%s::regclass)", (f"public.{idx}",)
                                     ).fetchone() == (True,)
                admin.execute("SELECT count(*) FROM shrinkvec_index_entries(%s::regclass)", (f"public.{idx}",))
                admin.execute("SELECT * FROM shrinkvec_index_info(%s::regclass)", (f"public.{idx}",))
        # the new rows got their codes from the transform, as numpy says
        p = catalog.find_profile(admin, "docs_a")
        assert p is not None
        bits = next(c for c in p.codes if c.kind == "bits")
        row = admin.execute(sql.SQL("SELECT {}::text FROM public.docs_a WHERE id = 100000").format(
            sql.Identifier(bits.column))).fetchone()
        assert row is not None and row[0] == codes.bits_to_str(p.encode(data.docs[701][None, :])[bits.column][0], 384)
        # a non-superuser victim (bob writes alice's table) runs no trap either
        with connect(roles["bob_dsn"]) as b:
            b.execute("SET search_path = public, pg_catalog")
            b.execute("INSERT INTO public.docs_a (id, embedding) VALUES (100002, %s)", (data.docs[702],))
            assert b.execute("SELECT id FROM shrinkvec.search('public.docs_a'::regclass, %s, 1, 50)",
                             (data.docs[702],)).fetchone() == (100002,)
        assert_not_pwned(admin, mallory)
        # the traps are live: an unqualified text comparison under this search_path does call one
        admin.execute("SET search_path = public, pg_catalog")
        admin.execute("SELECT 'a'::text = 'a'::text")
        assert one_row(admin.execute("SELECT count(*) FROM public.pwned WHERE trap = 'text ='"))[0] > 0
        admin.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(mallory)))


def test_generated_sql_is_schema_qualified(roles: dict[str, str], tmp_path: Path) -> None:
    """What the tools generate (the two-stage SQL, the triggers) means the same under any search_path."""
    load_docs(roles["alice_dsn"], tmp_path, "docs_q", n=50)
    with connect(roles["alice_dsn"]) as a:
        p = catalog.find_profile(a, "docs_q")
        assert p is not None
        for stage in ("bits", "prefix:64", "int8"):
            text = query.build(p, query.stages_for(p, [stage], [20])).statement.as_string(a)
            assert 'OPERATOR("public".<=>)' in text and '::"public"."vector"' in text, text
            assert ("<^" not in text.replace('OPERATOR("public".<^', "")), text
        # the trigger is the extension's C function (it calls nothing by name); no function is made per table
        trig = a.execute("""SELECT t.tgfoid::regprocedure::text, pg_get_triggerdef(t.oid) FROM pg_trigger t
                            WHERE t.tgrelid = 'public.docs_q'::regclass AND NOT t.tgisinternal""").fetchall()
        assert len(trig) == 1 and trig[0][0] == "shrinkvec.codes_trigger()", trig
        assert "EXECUTE FUNCTION shrinkvec.codes_trigger('v1', 'embedding', 'id', 'cosine', ''" in trig[0][1], trig
        assert a.execute("SELECT count(*) FROM pg_proc WHERE proname ~ '^shrinkvec_(codes|stale|next)_'").fetchone() == (0,)


# ---------------------------------------------------------------------------------------------
# 2. an index expression run by shrinkvec_index_check
# ---------------------------------------------------------------------------------------------


def test_index_check_runs_index_expressions_as_the_owner(roles: dict[str, str]) -> None:
    mallory = roles["mallory"]
    plant_traps(roles["mallory_dsn"], mallory)
    with connect(roles["mallory_dsn"]) as m:
        m.execute("""CREATE FUNCTION public.evil(v bit) RETURNS bit IMMUTABLE LANGUAGE plpgsql AS $$
                     BEGIN PERFORM public.trap('index expression'); RETURN v; END $$""")
        m.execute("""CREATE FUNCTION public.evil_pred(v bit) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
                     BEGIN PERFORM public.trap('index predicate'); RETURN true; END $$""")
        m.execute("CREATE TABLE public.bait (id int, b bit(8))")
        m.execute("INSERT INTO public.bait SELECT i, (i % 256)::bit(8) FROM generate_series(1, 50) i")
        m.execute("CREATE INDEX bait_idx ON public.bait USING shrinkvec ((public.evil(b)::bit(8)) bit_hamming_ops) "
                  "WHERE public.evil_pred(b)")
    with connect(roles["admin_dsn"]) as admin:
        admin.execute("DELETE FROM public.pwned")
        check = admin.execute("SELECT live_rows, index_entries, ok FROM shrinkvec_index_check('public.bait_idx')"
                              ).fetchone()
        assert check == (50, 50, True)
        # the expression and the predicate ran, as mallory, never as the superuser
        callers = admin.execute("SELECT DISTINCT caller, trap FROM public.pwned ORDER BY 2").fetchall()
        assert callers == [(mallory, "index expression"), (mallory, "index predicate")]
        assert_not_pwned(admin, mallory)
        # the owner's expression runs under SECURITY_RESTRICTED_OPERATION: it cannot change roles or settings
        with connect(roles["mallory_dsn"]) as m:
            m.execute("""CREATE FUNCTION public.become(r text) RETURNS void VOLATILE LANGUAGE plpgsql AS $$
                         BEGIN EXECUTE pg_catalog.format('SET ROLE %I', r); END $$""")
            m.execute("""CREATE OR REPLACE FUNCTION public.evil(v bit) RETURNS bit IMMUTABLE LANGUAGE plpgsql AS $$
                         BEGIN PERFORM public.become('postgres'); RETURN v; END $$""")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="security-restricted operation"):
            admin.execute("SELECT ok FROM shrinkvec_index_check('public.bait_idx')")


# ---------------------------------------------------------------------------------------------
# 3. row-level security
# ---------------------------------------------------------------------------------------------


def test_introspection_refuses_where_row_level_security_applies(roles: dict[str, str]) -> None:
    alice, bob = roles["alice"], roles["bob"]
    with connect(roles["alice_dsn"]) as a:
        a.execute("CREATE TABLE public.secret (id int, owner name, b bit(16))")
        a.execute("INSERT INTO public.secret VALUES (1, %s, '1010101010101010'), (2, 'x', '1111000011110000'), "
                  "(3, 'y', '0000000011111111')", (bob,))
        a.execute("CREATE INDEX secret_idx ON public.secret USING shrinkvec (b bit_hamming_ops)")
        a.execute("ALTER TABLE public.secret ENABLE ROW LEVEL SECURITY")
        a.execute("CREATE POLICY mine ON public.secret FOR SELECT USING (owner = current_user)")
        a.execute(sql.SQL("GRANT SELECT ON public.secret TO {}").format(sql.Identifier(bob)))
        # the owner (to whom the policy does not apply) may inspect
        assert a.execute("SELECT count(*) FROM shrinkvec_index_entries('public.secret_idx')").fetchone() == (3,)
        assert a.execute("SELECT ok FROM shrinkvec_index_check('public.secret_idx')").fetchone() == (True,)
    with connect(roles["bob_dsn"]) as b:
        assert b.execute("SELECT count(*) FROM public.secret").fetchone() == (1,)  # the policy shows him one row
        for fn in ("shrinkvec_index_entries", "shrinkvec_index_check", "shrinkvec_index_info",
                   "shrinkvec_index_centroids"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match=f"{fn} cannot read index \"secret_idx\": row-level security applies"):
                b.execute(sql.SQL("SELECT * FROM {}('public.secret_idx')").format(sql.Identifier(fn)))
        # without SELECT on a table, nothing at all
    with connect(roles["mallory_dsn"]) as m:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table secret"):
            m.execute("SELECT * FROM shrinkvec_index_entries('public.secret_idx')")
    with connect(roles["admin_dsn"]) as admin:  # FORCE applies the policy to the owner too: refused as well
        admin.execute("ALTER TABLE public.secret FORCE ROW LEVEL SECURITY")
    with connect(roles["alice_dsn"]) as a:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security applies"):
            a.execute("SELECT * FROM shrinkvec_index_entries('public.secret_idx')")
    assert alice


# ---------------------------------------------------------------------------------------------
# 4. a poisoned transform
# ---------------------------------------------------------------------------------------------


def test_a_poisoned_transform_is_never_used(roles: dict[str, str], tmp_path: Path) -> None:
    mallory = roles["mallory"]
    load_docs(roles["alice_dsn"], tmp_path, "docs_t", n=800, profile="bits")
    with connect(roles["alice_dsn"]) as a:
        a.execute(sql.SQL("GRANT SELECT ON public.docs_t TO {}").format(sql.Identifier(mallory)))
    opts = adapt.AdaptOptions(table="docs_t", method="center", vacuum="none")
    with connect(roles["mallory_dsn"]) as m:
        # mallory predicts the name of alice's next transform: she can read the table and run the same fit
        p = catalog.find_profile(m, "docs_t")
        assert p is not None
        t = adapt.fit(opts, adapt.sample_vectors(m, p, opts.sample, opts.seed), None)
        name = transforms.make_name(f"public.docs_t.{p.vector_column}", t.kind, 1, t.checksum())
        poison = transforms.Transform(name=name, kind="center", dims_in=384, dims_out=384,
                                      center=np.full(384, 50, np.float32), version=1, source="public.docs_t.embedding")
        # she may not store a transform for alice's table, nor one without a table
        for rel in ("public.docs_t", None):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                transforms.save(m, poison, rel)
        # she stores it for a table of her own, under alice's name
        m.execute("CREATE TABLE public.decoy (id bigint, embedding vector(384))")
        transforms.save(m, poison, "public.decoy")
        # nor can she point alice's profile (or a re-encode) at it
        assert m.execute("UPDATE shrinkvec.profiles SET transform = %s WHERE table_name = 'docs_t'",
                         (name,)).rowcount == 0
    # alice's adapt refuses the squatted name instead of using mallory's numbers
    with pytest.raises(adapt.AdaptError, match="stored for another table|not visible to this role"):
        adapt.adapt(roles["alice_dsn"], opts)
    with connect(roles["alice_dsn"]) as a:
        p = catalog.find_profile(a, "docs_t")
        assert p is not None and p.transform is None
        # even as the owner of both tables, a profile may only use a transform fitted on its own table
        a.execute("CREATE TABLE public.other (id bigint, embedding vector(384))")
        transforms.save(a, transforms.Transform(name="alices-own", kind="center", dims_in=384, dims_out=384,
                                                center=np.zeros(384, np.float32), source="x"), "public.other")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            a.execute("UPDATE shrinkvec.profiles SET transform = 'alices-own' WHERE table_name = 'docs_t'")
    # a stored transform whose values do not match its checksum is refused when read
    with connect(roles["admin_dsn"]) as admin:
        admin.execute("ALTER TABLE shrinkvec.transforms DISABLE TRIGGER transforms_immutable")
        admin.execute("UPDATE shrinkvec.transforms SET center[1] = 7 WHERE name = 'alices-own'")
        admin.execute("ALTER TABLE shrinkvec.transforms ENABLE ALWAYS TRIGGER transforms_immutable")
    with connect(roles["alice_dsn"]) as a:
        with pytest.raises(transforms.TransformError, match="do not match its checksum"):
            transforms.load(a, "alices-own")


# ---------------------------------------------------------------------------------------------
# 5. a squatted profile name
# ---------------------------------------------------------------------------------------------


def test_a_profile_name_cannot_be_squatted(roles: dict[str, str], tmp_path: Path) -> None:
    alice, mallory = roles["alice"], roles["mallory"]
    with connect(roles["mallory_dsn"]) as m:
        m.execute("CREATE TABLE public.mine (id bigint, embedding vector(384))")
        # a profile row for her own table with alice's next table's name: the name is derived from the table
        row = m.execute("""INSERT INTO shrinkvec.profiles (name, table_schema, table_name, vector_column, dims)
                           VALUES ('public.docs_b.embedding', 'public', 'mine', 'embedding', 384)
                           RETURNING name, relation::text""").fetchone()
        assert row == ("public.mine.embedding", "mine")
        # nor may she name alice's (future or present) table
        with pytest.raises(psycopg.errors.UndefinedTable, match="table public.docs_b does not exist"):
            m.execute("""INSERT INTO shrinkvec.profiles (table_schema, table_name, vector_column, dims)
                         VALUES ('public', 'docs_b', 'embedding', 384)""")
        # a table she creates, profiles and drops leaves nothing behind that could block alice
        m.execute("CREATE TABLE public.docs_b (id bigint, embedding vector(384))")
        m.execute("""INSERT INTO shrinkvec.profiles (table_schema, table_name, vector_column, dims)
                     VALUES ('public', 'docs_b', 'embedding', 384)""")
        m.execute("DROP TABLE public.docs_b")
        assert m.execute("SELECT count(*) FROM shrinkvec.profiles WHERE table_name = 'docs_b'").fetchone() == (0,)
    load_docs(roles["alice_dsn"], tmp_path, "docs_b", n=100)
    with connect(roles["alice_dsn"]) as a:
        p = catalog.find_profile(a, "docs_b")
        assert p is not None and p.name == "public.docs_b.embedding"
        assert a.execute("SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = 'public.docs_b'::regclass"
                         ).fetchone() == (alice,)
    with connect(roles["admin_dsn"]) as admin:
        owners = admin.execute("""SELECT p.name, pg_get_userbyid(c.relowner) FROM shrinkvec.profiles p
                                  JOIN pg_class c ON c.oid = p.relation ORDER BY 1""").fetchall()
        assert owners == [("public.docs_b.embedding", alice), ("public.mine.embedding", mallory)]


# ---------------------------------------------------------------------------------------------
# legitimate paths, for a role without superuser
# ---------------------------------------------------------------------------------------------


def test_every_legitimate_path_works_without_superuser(roles: dict[str, str], tmp_path: Path) -> None:
    plant_traps(roles["mallory_dsn"], roles["mallory"])
    dsn = roles["alice_dsn"]
    data = demo.load_data()
    np.save(tmp_path / "d.npy", data.docs[:1000])
    np.save(tmp_path / "q.npy", data.queries[:20])
    run = subprocess.run([*SV, "load", "d.npy", "--table", "docs_l", "--profile", "bits,prefix:64", "--dsn", dsn],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([*SV, "adapt", "--table", "docs_l", "--method", "center", "--dsn", dsn],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with connect(dsn) as a:
        a.execute("CREATE INDEX docs_l_v ON public.docs_l USING shrinkvec (embedding vector_cosine_ops)")
        assert a.execute("SELECT ok FROM shrinkvec_index_check('public.docs_l_v')").fetchone() == (True,)
        p = evaluate.resolve_profile(a, "docs_l", "public", None)
        with evaluate.Evaluator(a, p, data.queries[:20], 10) as ev:
            from shrinkvec import configs

            choice = tune.tune(ev, configs.parse_many(["bits@100 bits@200"]), 0.9)
            msg = tune.apply(a, ev, choice)
        assert "default search is now" in msg
        prof = catalog.find_profile(a, "docs_l")
        assert prof is not None and prof.search_config is not None
    run = subprocess.run([*SV, "search", "--table", "docs_l", "--queries", "q.npy", "--k", "5",
                          "--dsn", dsn], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with connect(roles["admin_dsn"]) as admin:
        assert_not_pwned(admin, roles["mallory"])
