"""Two-stage / funnel SQL (Python generator, shrinkvec.search(), the CLI) against a numpy oracle."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from conftest import one_row
from shrinkvec import catalog, codes, query
from shrinkvec.load import LoadOptions, load

SV = [sys.executable, "-m", "shrinkvec.cli"]


def cos_dist(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    return np.asarray(1 - (x64 @ q64) / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q64)), dtype=np.float64)


def oracle(x: np.ndarray, q: np.ndarray, stages: list[tuple[str, int]], k: int,
           lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> list[int]:
    """numpy: shortlist by each stage's code score in turn, rerank by cosine over the full vector."""
    cand = np.arange(len(x))
    for kind, n in stages:
        if kind.startswith("bits"):
            bits = np.unpackbits(codes.binarize_batch(x[cand]), axis=1, bitorder="big")[:, : x.shape[1]]
            score = -((bits.astype(np.float64) * 2 - 1) @ q.astype(np.float64))
        elif kind.startswith("prefix"):
            m = int(kind.split(":")[1])
            score = cos_dist(x[cand, :m], q[:m])
        else:
            assert lo is not None and hi is not None, "an int8 stage needs the ranges"
            deq = np.stack([codes.dequantize_int8(c, lo, hi) for c in codes.quantize_int8_batch(x[cand], lo, hi)])
            score = cos_dist(deq, q)
        cand = cand[np.argsort(score, kind="stable")[:n]]
    return [int(i) for i in cand[np.argsort(cos_dist(x[cand], q), kind="stable")[:k]]]


@pytest.fixture
def docs(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> np.ndarray:
    x = np.random.default_rng(5).standard_normal((2000, 48)).astype(np.float32)
    np.save(tmp_path / "docs.npy", x)
    load(migrated_dsn, tmp_path / "docs.npy", LoadOptions(table="docs", profile="bits,prefix:16,int8"))
    return x


def test_generated_queries_match_numpy_oracle(docs: np.ndarray, conn: psycopg.Connection) -> None:
    p = catalog.find_profile(conn, "docs")
    assert p is not None
    lo, hi = p.code("int8").lo, p.code("int8").hi
    qs = np.random.default_rng(9).standard_normal((8, 48)).astype(np.float32)
    plans = {
        ("bits",): [("bits", 60)],
        ("prefix:16",): [("prefix:16", 60)],
        ("int8",): [("int8", 30)],
        ("bits", "prefix:16"): [("bits", 200), ("prefix:16", 40)],
    }
    for specs, st in plans.items():
        stages = query.stages_for(p, specs, [n for _, n in st])
        got = query.search(conn, p, stages, qs, k=10)
        for q, (ids, dists) in zip(qs, got):
            want = oracle(docs, q, st, 10, lo, hi)
            assert ids == want, specs
            np.testing.assert_allclose(dists, cos_dist(docs[want], q), rtol=1e-5, atol=1e-6)
    # a shortlist of the whole table is exact search
    exact = query.search(conn, p, query.stages_for(p, ["bits"], [2000]), qs[:2], k=10)
    for q, (ids, _) in zip(qs[:2], exact):
        assert ids == [int(i) for i in np.argsort(cos_dist(docs, q), kind="stable")[:10]]


def test_sql_function_equals_python_queries(docs: np.ndarray, conn: psycopg.Connection) -> None:
    p = catalog.find_profile(conn, "docs")
    assert p is not None
    q = np.random.default_rng(11).standard_normal(48).astype(np.float32)
    for stage, n in [("bits", 50), ("prefix:16", 50), ("int8", 25), ("prefix16", 80)]:
        rows = conn.execute("SELECT id, distance FROM shrinkvec.search('docs', %s, 7, %s, %s)", (q, n, stage)).fetchall()
        ids, _ = query.search(conn, p, query.stages_for(p, [stage], [n]), q, k=7)[0]
        assert [r[0] for r in rows] == ids, stage
    default = conn.execute("SELECT id FROM shrinkvec.search('docs', %s)", (q,)).fetchall()
    assert len(default) == p.k
    with pytest.raises(psycopg.errors.DataException, match="expected 48 dimensions, got 3"):
        conn.execute("SELECT * FROM shrinkvec.search('docs', '[1,2,3]')")
    with pytest.raises(psycopg.errors.UndefinedObject, match="has no code"):
        conn.execute("SELECT * FROM shrinkvec.search('docs', %s, 5, 50, 'prefix:7')", (q,))


def test_sql_function_without_catalog_says_to_migrate(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE t (id bigint, embedding vector(3))")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="catalog does not exist") as exc:
        conn.execute("SELECT * FROM shrinkvec.search('t', '[1,2,3]')")
    assert "shrinkvec migrate" in (exc.value.diag.message_hint or "")


def test_sql_function_is_security_invoker_and_respects_rls(docs: np.ndarray, conn: psycopg.Connection) -> None:
    prosecdef = one_row(conn.execute("SELECT prosecdef FROM pg_proc WHERE oid = 'shrinkvec.search'::regproc"))[0]
    assert prosecdef is False
    role = f"reader_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA shrinkvec TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA shrinkvec TO {r};"
                             " GRANT SELECT ON docs TO {r}").format(r=sql.Identifier(role)))
        conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        conn.execute(sql.SQL("CREATE POLICY even ON docs FOR SELECT TO {} USING (id % 2 = 0)").format(sql.Identifier(role)))
        q = docs[1]  # an odd row: nearest to itself, invisible to the role
        owner = [r[0] for r in conn.execute("SELECT id FROM shrinkvec.search('docs', %s, 10, 400)", (q,))]
        assert owner[0] == 1
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        seen = [r[0] for r in conn.execute("SELECT id FROM shrinkvec.search('docs', %s, 10, 400)", (q,))]
        conn.execute("RESET ROLE")
        assert len(seen) == 10 and all(i % 2 == 0 for i in seen)
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP POLICY IF EXISTS even ON docs")
        conn.execute(sql.SQL("DROP OWNED BY {r}; DROP ROLE {r}").format(r=sql.Identifier(role)))


def test_cli_sql_is_runnable_with_dollar_parameters_and_search_prints_json(docs: np.ndarray, migrated_dsn: str,
                                                                           conn: psycopg.Connection, tmp_path: Path) -> None:
    p = catalog.find_profile(conn, "docs")
    assert p is not None
    q = np.random.default_rng(2).standard_normal((3, 48)).astype(np.float32)
    np.save(tmp_path / "q.npy", q)
    for extra, sizes in [(["--stage", "bits"], [120]), (["--funnel", "--shortlist", "300", "--shortlist", "60"], [300, 60]),
                         (["--stage", "int8", "--shortlist", "40"], [40])]:
        res = subprocess.run([*SV, "sql", "--table", "docs", *extra, "--dsn", migrated_dsn], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        text = res.stdout
        assert "$1" in text and "%(" not in text
        conn.execute(f"PREPARE s AS {text}")  # noqa: S608 - the generated statement
        args: list[object] = [q[0], 5, *sizes]
        if "int8" in extra:
            c = p.code("int8")
            assert c.lo is not None and c.hi is not None
            args += [[float(v) for v in c.lo], [float(v) for v in c.hi]]
        placeholders = sql.SQL(", ").join(sql.Placeholder() * len(args))
        got = [r[0] for r in psycopg.ClientCursor(conn).execute(sql.SQL("EXECUTE s ({})").format(placeholders), args)]
        conn.execute("DEALLOCATE s")
        specs = ["bits", "prefix:16"] if "--funnel" in extra else [extra[1]]
        want, _ = query.search(conn, p, query.stages_for(p, specs, sizes), q[0], k=5)[0]
        assert got == want, extra
    res = subprocess.run([*SV, "search", "--table", "docs", "--queries", str(tmp_path / "q.npy"), "--k", "4",
                          "--shortlist", "100", "--dsn", migrated_dsn], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(s) for s in res.stdout.splitlines()]
    assert [line["query"] for line in lines] == [0, 1, 2]
    for line, qv in zip(lines, q):
        assert line["ids"] == oracle(docs, qv, [("bits", 100)], 4)
        assert len(line["distances"]) == 4 and line["distances"] == sorted(line["distances"])


def test_cli_k_below_one_is_a_usage_error(tmp_path: Path) -> None:
    """--k 0 or negative is refused before anything runs (no server needed: the DSN is never used)."""
    np.save(tmp_path / "q.npy", np.zeros((1, 4), np.float32))
    for cmd in (["sql"], ["search", "--queries", str(tmp_path / "q.npy")]):
        for k in ("0", "-3"):
            res = subprocess.run([*SV, *cmd, "--table", "docs", "--k", k, "--dsn", "postgresql:///nowhere"],
                                 capture_output=True, text=True)
            assert res.returncode != 0, (cmd, k, res.stdout)
            err = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
            assert len(err) == 1 and "'--k'" in err[0] and k in err[0], (cmd, k, res.stderr)
            assert "Traceback" not in res.stderr


def test_cli_search_query_file_is_a_deprecated_alias_and_json_is_gone(docs: np.ndarray, migrated_dsn: str,
                                                                       tmp_path: Path) -> None:
    np.save(tmp_path / "q.npy", np.random.default_rng(3).standard_normal((2, 48)).astype(np.float32))
    base = [*SV, "search", "--table", "docs", "--k", "3", "--dsn", migrated_dsn]
    new = subprocess.run([*base, "--queries", str(tmp_path / "q.npy")], capture_output=True, text=True)
    old = subprocess.run([*base, "--query-file", str(tmp_path / "q.npy")], capture_output=True, text=True)
    assert new.returncode == 0 and old.returncode == 0, (new.stderr, old.stderr)
    assert old.stdout == new.stdout and len(new.stdout.splitlines()) == 2
    assert "--query-file is deprecated" in old.stderr and "deprecated" not in new.stderr
    help_text = subprocess.run([*SV, "search", "--help"], capture_output=True, text=True).stdout
    assert "--queries" in help_text and "--query-file" not in help_text and "--json" not in help_text
    both = subprocess.run([*base, "--queries", str(tmp_path / "q.npy"), "--query-file", str(tmp_path / "q.npy")],
                          capture_output=True, text=True)
    neither = subprocess.run(base, capture_output=True, text=True)
    as_json = subprocess.run([*base, "--queries", str(tmp_path / "q.npy"), "--json"], capture_output=True, text=True)
    assert both.returncode == 2 and "exclusive" in both.stderr
    assert neither.returncode == 2 and "Missing option '--queries'" in neither.stderr
    assert as_json.returncode == 2 and "No such option" in as_json.stderr and "--json" in as_json.stderr


HOSTILE_TABLE = 'docs"; DROP TABLE victim; --'
HOSTILE_COLUMN = "emb'); DROP TABLE victim; --"


def test_hostile_identifiers_cannot_inject(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    conn.execute("CREATE TABLE victim (x int)")
    x = np.random.default_rng(1).standard_normal((300, 16)).astype(np.float32)
    evil_payload = 'note"); DROP TABLE victim; --'
    pq.write_table(pa.table({"id": pa.array(range(300), pa.int64()), "embedding": [v.tolist() for v in x],
                             evil_payload: ["p"] * 300}), tmp_path / "e.parquet")
    schema = "s'; DROP TABLE victim; --"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    r = load(migrated_dsn, tmp_path / "e.parquet",
             LoadOptions(table=HOSTILE_TABLE, schema=schema, column=HOSTILE_COLUMN, profile="bits=b$1$x,prefix:8=p;--"))
    assert r.loaded == 300
    p = catalog.find_profile(conn, HOSTILE_TABLE, schema)
    assert p is not None and p.vector_column == HOSTILE_COLUMN
    # plain SQL writes still get codes (the trigger's body and WHEN quote everything)
    conn.execute(sql.SQL("INSERT INTO {} ({}, {}) VALUES (1000, %s)").format(
        sql.Identifier(schema, HOSTILE_TABLE), sql.Identifier("id"), sql.Identifier(HOSTILE_COLUMN)), (x[0],))
    bits = one_row(conn.execute(sql.SQL("SELECT {}::text FROM {} WHERE id = 1000").format(
        sql.Identifier("b$1$x"), sql.Identifier(schema, HOSTILE_TABLE))))[0]
    assert bits == codes.bits_to_str(codes.binarize(x[0]), 16)
    for specs in (["bits"], ["bits", "prefix:8"]):
        ids, _ = query.search(conn, p, query.stages_for(p, specs, [300, 100][: len(specs)]), x[3], k=3)[0]
        assert ids[0] == 3
    regclass = sql.Identifier(schema, HOSTILE_TABLE).as_string(conn)
    rows = conn.execute("SELECT id FROM shrinkvec.search(%s::regclass, %s, 3, 300)", (regclass, x[3])).fetchall()
    assert rows[0][0] == 3
    res = subprocess.run([*SV, "sql", "--table", HOSTILE_TABLE, "--schema", schema, "--funnel", "--dsn", migrated_dsn],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    conn.execute(f"PREPARE s AS {res.stdout}")  # noqa: S608
    got = psycopg.ClientCursor(conn).execute("EXECUTE s (%s, 3, 300, 100)", (x[3],)).fetchall()
    assert got[0][0] == 3
    assert one_row(conn.execute("SELECT to_regclass('victim') IS NOT NULL"))[0]
