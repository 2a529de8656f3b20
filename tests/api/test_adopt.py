"""Tables the tools did not create (the shapes LangChain, LlamaIndex and hand-made tables have): uuid,
varchar, text and integer keys, undimensioned vector columns, several vector columns. eval, tune, sql,
search and `shrinkvec adopt` find the key or take --id-column, and say what is wrong in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from conftest import one_row, role_dsn
from shrinkvec import catalog, demo, query
from shrinkvec.evaluation import configs
from shrinkvec.evaluation.evaluate import EvalError, Evaluator, resolve_profile
from shrinkvec.profile import Profile
from shrinkvec.sql import connection, tables
from shrinkvec.sql.profile_check import ColumnTypeError

SV = [sys.executable, "-m", "shrinkvec.cli"]
N, NQ, K = 1500, 30, 10


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.load_data()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SV, *args], capture_output=True, text=True, cwd=cwd)


def exact_rows(x: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    """Row numbers of the exact cosine top-k (numpy, float64)."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    d = 1 - (x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64))
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]


def make_table(dsn: str, name: str, id_type: str, x: np.ndarray, *, dims: bool = True) -> list[object]:
    """A framework-shaped table `name` (key `id` of id_type, document, jsonb metadata, embedding) holding x;
    returns the id of each row, in row order."""
    ids: list[object]
    if id_type == "uuid":
        ids = [uuid.UUID(int=(i * 7919 + 13) << 64 | i) for i in range(len(x))]
    elif id_type in ("text", "varchar"):
        ids = [f"doc-{(i * 7919) % 100_003:06d}" for i in range(len(x))]  # not in row order
    else:
        ids = [i * 3 + 5 for i in range(len(x))]
    vec = f"vector({x.shape[1]})" if dims else "vector"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE TABLE {name} (id {id_type} PRIMARY KEY, document text, cmetadata jsonb, embedding {vec})")
        with c.cursor().copy(f"COPY {name} (id, document, embedding) FROM STDIN") as cp:
            for i, v in zip(ids, x, strict=True):
                cp.write_row((str(i), f"text {i}", "[" + ",".join(f"{float(t):.8g}" for t in v) + "]"))
    return ids


@pytest.mark.parametrize("id_type", ["uuid", "varchar", "text", "integer"])
def test_eval_on_any_key_type(migrated_dsn: str, data: demo.DemoData, id_type: str) -> None:
    """eval's truth and answers compare by key on every key type: the exact configuration gets recall 1,
    and an index configuration's answers are the numpy top-k's rows (mapped through the ids)."""
    x, qs = data.docs[:N].astype(np.float32), data.queries[:NQ].astype(np.float32)
    ids = make_table(migrated_dsn, "fw", id_type, x)
    with connection.connect(migrated_dsn, autocommit=True) as conn:
        p = resolve_profile(conn, "fw", "public", None)
        assert (p.id_column, p.vector_column, p.dims, p.codes) == ("id", "embedding", x.shape[1], ())
        with Evaluator(conn, p, qs, K) as ev:
            assert ev.measure(configs.parse("exact")).recall == 1.0
            res = ev.measure(configs.parse("index@100"))
            assert res.recall >= 0.99
            # the truth is the numpy top-k of this file, through the ids' keys
            want = [[ev.keys(ids[r]) for r in exact_rows(x, q, K)] for q in qs]
            assert np.mean([len(set(w) & set(t.tolist())) / K for w, t in zip(want, ev.truth, strict=True)]) >= 0.99


def test_search_and_sql_without_a_profile(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> None:
    """A table with no profile: sql prints the plain ORDER BY, search answers with its uuids as text through
    the index, and they are the numpy top-k's ids."""
    x, qs = data.docs[:N].astype(np.float32), data.queries[:5].astype(np.float32)
    ids = make_table(migrated_dsn, "lc", "uuid", x)
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute("CREATE INDEX ON lc USING shrinkvec (embedding vector_cosine_ops)")
    out = run("sql", "--dsn", migrated_dsn, "--table", "lc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'ORDER BY s."embedding" OPERATOR("public".<=>) $1::"public"."vector"' in out.stdout
    np.save(tmp_path / "q.npy", qs)
    out = run("search", "--dsn", migrated_dsn, "--table", "lc", "--queries", str(tmp_path / "q.npy"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line)["ids"] for line in out.stdout.splitlines()]
    want = [[str(ids[r]) for r in exact_rows(x, q, K)] for q in qs]
    assert np.mean([len(set(g) & set(w)) / K for g, w in zip(got, want, strict=True)]) >= 0.98


def test_adopt_then_tune_apply(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> None:
    """adopt records the profile (key found, distance from the index's opclass), --create-index makes the
    index, a second adopt is refused, and tune --apply then stores its choice, read by a new connection."""
    x, qs = data.docs[:N].astype(np.float32), data.queries[:40].astype(np.float32)
    make_table(migrated_dsn, "li", "varchar", x)
    out = run("adopt", "--dsn", migrated_dsn, "--table", "li", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "id column id" in out.stdout and "no shrinkvec index yet: CREATE INDEX CONCURRENTLY" in out.stdout
    with connection.connect(migrated_dsn) as conn:
        p = catalog.find_profile(conn, "li")
        assert p is not None and (p.id_column, p.distance, p.codes) == ("id", "cosine", ())
    again = run("adopt", "--dsn", migrated_dsn, "--table", "li", "--create-index", cwd=tmp_path)
    assert again.returncode == 1 and "has a profile already" in again.stderr and "Traceback" not in again.stderr
    with connection.connect(migrated_dsn, autocommit=True) as conn:
        catalog.delete_profile(conn, p)
    out = run("adopt", "--dsn", migrated_dsn, "--table", "li", "--create-index", cwd=tmp_path)
    assert out.returncode == 0 and "created the shrinkvec index li_embedding_idx" in out.stdout, out.stderr
    np.save(tmp_path / "q.npy", qs)
    # the user's index is flat, as the measured configurations: it gets the settings, no second index is kept
    out = run("tune", "--dsn", migrated_dsn, "--table", "li", "--queries", str(tmp_path / "q.npy"), "--quiet",
              "--target-recall", "0.9", "--configs", "index@30 index@60", "--apply", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert 'set on the column\'s index "public"."li_embedding_idx", built as the measured one' in out.stdout, out.stdout
    with psycopg.connect(migrated_dsn) as c:
        assert one_row(c.execute("SELECT scan_shortlist FROM shrinkvec_index_info('li_embedding_idx')"))[0] in (30, 60)
        assert one_row(c.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'shrinkvec_%'"))[0] == 0
    # an index built otherwise (4 lists, for L2 here: with cosine the planner would prefer it to eval's own, and
    # eval says so) is left alone: tune keeps its own index, and names the other
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute("DROP INDEX li_embedding_idx")
        c.execute("CREATE INDEX li_ivf ON li USING shrinkvec (embedding vector_l2_ops) WITH (lists = 4)")
    out = run("tune", "--dsn", migrated_dsn, "--table", "li", "--queries", str(tmp_path / "q.npy"), "--quiet",
              "--target-recall", "0.9", "--configs", "index@30 index@60", "--apply", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "other shrinkvec indexes (li_ivf)" in out.stdout, out.stdout
    with psycopg.connect(migrated_dsn) as c:
        row = one_row(c.execute(
            "SELECT scan_shortlist FROM shrinkvec_index_info('public.shrinkvec_tuned_' || "
            "(SELECT split_part(relname, '_', 3) FROM pg_class WHERE relname LIKE 'shrinkvec_tuned_%')) "))
        assert row[0] in (30, 60)
    with connection.connect(migrated_dsn) as conn:
        tuned = catalog.find_profile(conn, "li")
        assert tuned is not None and tuned.search_config in ("index@30", "index@60")
        found = query.search(conn, tuned, query.plan(tuned), qs[:3])
    assert all(isinstance(i, str) and i.startswith("doc-") for ids, _ in found for i in ids)


def test_undimensioned_column_names_the_alter(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> None:
    """LangChain PGVector's undimensioned `vector`: every command says which ALTER TABLE declares it; after
    it, eval runs."""
    x = data.docs[:300].astype(np.float32)
    make_table(migrated_dsn, "langchain_pg_embedding", "varchar", x, dims=False)
    np.save(tmp_path / "q.npy", data.queries[:5])
    alter = f'ALTER TABLE "public"."langchain_pg_embedding" ALTER COLUMN "embedding" TYPE public.vector({x.shape[1]})'
    for cmd in (["eval", "--queries", str(tmp_path / "q.npy"), "--no-plot"], ["sql"], ["adopt"]):
        out = run(cmd[0], "--dsn", migrated_dsn, "--table", "langchain_pg_embedding", *cmd[1:], cwd=tmp_path)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "has no declared dimensions" in out.stderr and alter in out.stderr, out.stderr
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute(alter.replace("public.vector", "vector"))
    out = run("eval", "--dsn", migrated_dsn, "--table", "langchain_pg_embedding", "--queries", str(tmp_path / "q.npy"),
              "--no-plot", "--configs", "exact", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["recall"] == 1.0


def test_bad_tables_are_one_line_errors(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> None:
    """No key, a key of another type, two vector columns, a wrong --id-column or --column, a missing table:
    each a one-line error naming the fix, never a traceback."""
    x = data.docs[:50].astype(np.float32)
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute(f"CREATE TABLE nokey (n int, embedding vector({x.shape[1]}))")
        c.execute(f"CREATE TABLE jkey (k jsonb PRIMARY KEY, embedding vector({x.shape[1]}))")
        c.execute(f"CREATE TABLE two (id int PRIMARY KEY, a vector({x.shape[1]}), b halfvec({x.shape[1]}))")
        c.execute("CREATE TABLE empty_undim (id int PRIMARY KEY, embedding vector)")
    np.save(tmp_path / "q.npy", data.queries[:3])
    cases = {
        ("nokey",): "needs a one-column primary key or NOT NULL unique key of type smallint, integer, bigint, uuid, text, "
                    "character varying to identify rows (it has none): name one with --id-column",
        ("jkey",): "(its unique keys are k, of other types)",
        ("nokey", "--id-column", "embedding"): "id column 'embedding' of public.nokey has type",
        ("nokey", "--id-column", "nope"): "table public.nokey has no column 'nope' (the id column)",
        ("two",): "has several vector columns (a, b): name one with --column",
        ("two", "--column", "id"): "column 'id' of public.two has type integer, not pgvector's vector or halfvec",
        ("empty_undim",): "declare them with ALTER TABLE ... ALTER COLUMN ... TYPE public.vector(N)",
        ("missing",): "table public.missing does not exist",
    }
    for args, message in cases.items():
        for cmd in (["eval", "--queries", str(tmp_path / "q.npy"), "--no-plot"], ["search", "--queries",
                                                                                    str(tmp_path / "q.npy")], ["adopt"]):
            out = run(cmd[0], "--dsn", migrated_dsn, "--table", args[0], *args[1:], *cmd[1:], cwd=tmp_path)
            assert out.returncode == 1, (cmd, args, out.stdout)
            assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
            assert message in out.stderr, (cmd, args, out.stderr)
    # --column and --id-column choose among several
    out = run("adopt", "--dsn", migrated_dsn, "--table", "two", "--column", "b", "--distance", "l2", cwd=tmp_path)
    assert out.returncode == 0 and "vector column b (halfvec(384), l2), id column id" in out.stdout, out.stderr


def test_qrels_need_integer_ids(migrated_dsn: str, data: demo.DemoData) -> None:
    x, qs = data.docs[:200].astype(np.float32), data.queries[:4].astype(np.float32)
    make_table(migrated_dsn, "u", "uuid", x)
    with connection.connect(migrated_dsn, autocommit=True) as conn:
        with Evaluator(conn, resolve_profile(conn, "u", "public", None), qs, 5, {0: {1: 1}}) as ev:
            with pytest.raises(EvalError, match="--qrels names documents by integer id, and public.u.id is not"):
                ev.measure(configs.parse("exact"))


def test_hostile_key_types_are_refused(migrated_dsn: str, data: demo.DemoData) -> None:
    """Another role's table whose key is a domain over text, or whose vector is a domain: the tools take
    neither (a domain's or a type's owner could attach casts and operators the generated SQL would run)."""
    x = data.docs[:20].astype(np.float32)
    mallory = f"adopt_mallory_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute(f"CREATE ROLE {mallory} LOGIN")
        c.execute(f"GRANT CREATE ON SCHEMA public TO {mallory}")
    try:
        with psycopg.connect(role_dsn(migrated_dsn, mallory), autocommit=True) as m:
            m.execute("CREATE DOMAIN mtext AS text")
            m.execute(f"CREATE TABLE trap (id mtext PRIMARY KEY, embedding vector({x.shape[1]}))")
            m.execute(f"CREATE DOMAIN mvec AS vector({x.shape[1]})")
            m.execute("CREATE TABLE trap2 (id int PRIMARY KEY, embedding mvec)")
            m.execute("GRANT SELECT ON trap, trap2 TO PUBLIC")
        with connection.connect(migrated_dsn, autocommit=True) as conn:
            with pytest.raises(tables.TableError, match="of other types"):
                tables.table_profile(conn, "trap")
            with pytest.raises(tables.TableError, match="id column 'id' of public.trap has type public.mtext, not one of"):
                tables.table_profile(conn, "trap", id_column="id")
            with pytest.raises(tables.TableError, match="has no vector or halfvec column"):
                tables.table_profile(conn, "trap2")
            # a profile another role wrote for its table is checked again before its SQL runs
            planted = Profile(name="public.trap", schema="public", table="trap", vector_column="embedding",
                              dims=x.shape[1], codes=(), id_column="id")
            with pytest.raises(ColumnTypeError, match="column id of .* has type public.mtext"):
                query.search(conn, planted, query.Plan({}, (), 5), x[:1])
    finally:
        with psycopg.connect(migrated_dsn, autocommit=True) as c:
            c.execute(f"DROP OWNED BY {mallory}")
            c.execute(f"DROP ROLE {mallory}")


def test_eval_and_tune_on_a_partitioned_table(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> None:
    """A partitioned table (its key includes the partition column, so the id is named): eval's index is one per
    partition (their sizes and entries summed, each in the plan), and tune --apply gives every partition's
    index the chosen settings (a partitioned index takes none itself)."""
    x = data.docs[:N].astype(np.float32)
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute(f"CREATE TABLE pt (id bigint, k int, embedding vector({x.shape[1]}), PRIMARY KEY (id, k)) "
                  "PARTITION BY LIST (k)")
        c.execute("CREATE TABLE pt0 PARTITION OF pt FOR VALUES IN (0)")
        c.execute("CREATE TABLE pt1 PARTITION OF pt DEFAULT")
        with c.cursor().copy("COPY pt (id, k, embedding) FROM STDIN") as cp:
            for i, v in enumerate(x):
                cp.write_row((i, i % 2, "[" + ",".join(f"{float(t):.8g}" for t in v) + "]"))
    np.save(tmp_path / "q.npy", data.queries[:20])
    out = run("eval", "--dsn", migrated_dsn, "--table", "pt", "--queries", str(tmp_path / "q.npy"), "--no-plot",
              cwd=tmp_path)
    assert out.returncode == 1 and "name one with --id-column" in out.stderr
    out = run("eval", "--dsn", migrated_dsn, "--table", "pt", "--id-column", "id", "--queries", str(tmp_path / "q.npy"),
              "--no-plot", "--json", "--configs", "exact index@50", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    res = {r["config"]: r for r in json.loads(out.stdout)["results"]}
    assert res["exact"]["recall"] == 1.0 and res["index@50"]["recall"] >= 0.99
    assert res["index@50"]["index_mb"] > 0
    assert run("adopt", "--dsn", migrated_dsn, "--table", "pt", "--id-column", "id", cwd=tmp_path).returncode == 0
    out = run("tune", "--dsn", migrated_dsn, "--table", "pt", "--queries", str(tmp_path / "q.npy"), "--quiet",
              "--target-recall", "0.9", "--configs", "index@30", "--apply", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with psycopg.connect(migrated_dsn) as c:
        opts = c.execute("""SELECT c.relname, c.reloptions FROM pg_partition_tree(
                              (SELECT oid FROM pg_class WHERE relname LIKE 'shrinkvec_tuned_%')) t
                            JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf ORDER BY 1""").fetchall()
    assert len(opts) == 2 and all("shortlist=30" in o for _, o in opts), opts


def test_load_refuses_an_adopted_table_with_text_ids(migrated_dsn: str, data: demo.DemoData, tmp_path: Path) -> None:
    """shrinkvec load writes its files' integer ids: into an adopted table keyed by uuid it says so, in one line."""
    x = data.docs[:50].astype(np.float32)
    make_table(migrated_dsn, "lcu", "uuid", x)
    assert run("adopt", "--dsn", migrated_dsn, "--table", "lcu", cwd=tmp_path).returncode == 0
    np.save(tmp_path / "more.npy", x[:5])
    out = run("load", str(tmp_path / "more.npy"), "--dsn", migrated_dsn, "--table", "lcu", "--quiet", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "id column id is uuid: shrinkvec load writes the integer ids of its files" in out.stderr
