"""Late interaction end to end (issue 19): `shrinkvec load` of multi-vector documents (.npz, .jsonl,
.parquet) with rejects and resume, and the two-stage search (shortlist by maxsim(q, multibit), rerank by
maxsim(q, tokens)) through the query builder, shrinkvec.search_tokens(), the CLI and the ORM, all equal to the
numpy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pgvector.psycopg import register_vector
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import BigInteger, create_engine
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

from conftest import pairs
from shrinkvec import catalog, codes, query
from shrinkvec.cli import main
from shrinkvec.load import LoadOptions, load
from shrinkvec.orm import multibit_column, two_stage

DIMS = 24


def make_docs(n: int, seed: int = 0, dims: int = DIMS) -> list[np.ndarray]:
    """n documents of 1..40 float16-exact tokens (so .npz float16 storage loses nothing)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 41)), dims)).astype(np.float16).astype(np.float32)
            for _ in range(n)]


def save_npz(path: Path, docs: list[np.ndarray], ids: np.ndarray | None = None) -> None:
    flat, offsets = codes.flat_tokens(docs)
    extra = {} if ids is None else {"ids": ids}
    # numpy's stub types **kwds of savez as allow_pickle's bool: the arrays are the documented use
    np.savez(path, embeddings=flat.astype(np.float16), offsets=offsets, **extra)  # type: ignore[arg-type]


def reference_two_stage(q: np.ndarray, docs: dict[int, np.ndarray], shortlist: int, k: int) -> tuple[list[int], list[float]]:
    """The two-stage search in numpy: top `shortlist` by maxsim_bits, then top k by exact maxsim."""
    approx = {i: codes.maxsim_bits(q, codes.binarize_tokens(d), DIMS) for i, d in docs.items()}
    short = sorted(docs, key=lambda i: -approx[i])[:shortlist]
    exact = {i: codes.maxsim(q, docs[i]) for i in short}
    best = sorted(short, key=lambda i: (-exact[i], i))[:k]
    return best, [-exact[i] for i in best]


@pytest.fixture
def loaded(migrated_dsn: str, tmp_path: Path) -> tuple[str, dict[int, np.ndarray]]:
    """A table `docs` loaded from an .npz of 150 documents (ids 1000..1149)."""
    docs = make_docs(150)
    save_npz(tmp_path / "d.npz", docs, np.arange(1000, 1150))
    r = load(migrated_dsn, tmp_path / "d.npz", LoadOptions(table="docs", batch_size=40))
    assert (r.loaded, r.rejected, r.created_table) == (150, 0, True)
    return migrated_dsn, {1000 + i: d for i, d in enumerate(docs)}


def test_npz_load_stores_tokens_and_codes_equal_to_reference(loaded: tuple[str, dict[int, np.ndarray]],
                                                             conn: psycopg.Connection) -> None:
    _, docs = loaded
    p = catalog.find_profile(conn, "docs")
    assert p is not None and p.multi and p.distance == "maxsim" and [c.spec() for c in p.codes] == [f"multibit:{DIMS}"]
    rows = conn.execute("SELECT id, embedding::text[], multibit::text, binarize(embedding)::text, "
                        "multibit_send(multibit) FROM docs ORDER BY id").fetchall()
    assert [r[0] for r in rows] == sorted(docs)
    for rid, toks, mb, sql_mb, send in rows:
        d = docs[rid]
        np.testing.assert_array_equal(np.array([json.loads(t) for t in toks], dtype=np.float32), d)
        ref = codes.binarize_tokens(d)
        assert mb == sql_mb == codes.multibit_str(ref, DIMS)
        assert bytes(send) == codes.multibit_send(ref, DIMS)


@pytest.mark.parametrize("shortlist", [20, 60])
def test_two_stage_equals_reference(loaded: tuple[str, dict[int, np.ndarray]], conn: psycopg.Connection,
                                    shortlist: int) -> None:
    dsn, docs = loaded
    p = catalog.find_profile(conn, "docs")
    assert p is not None
    qs = make_docs(4, seed=9)
    pl = query.plan(p, k=10, shortlists=[shortlist])
    got = query.search(conn, p, pl, qs)
    for q, (ids, dists) in zip(qs, got):
        want_ids, want_d = reference_two_stage(q, docs, shortlist, 10)
        assert ids == want_ids
        np.testing.assert_allclose(dists, want_d, rtol=1e-5, atol=1e-4)
        # shrinkvec.search_tokens() runs the same search in SQL
        rows = conn.execute("SELECT id, distance FROM shrinkvec.search_tokens('docs', %s::vector[], 10, %s)",
                            (query.tokens_literal(q), shortlist)).fetchall()
        assert [r[0] for r in rows] == ids
        np.testing.assert_allclose([r[1] for r in rows], dists, rtol=1e-12)


def test_exact_plan_and_search_config(loaded: tuple[str, dict[int, np.ndarray]], conn: psycopg.Connection) -> None:
    _, docs = loaded
    p = catalog.find_profile(conn, "docs")
    assert p is not None
    q = make_docs(1, seed=5)[0]
    exact = sorted(docs, key=lambda i: (-codes.maxsim(q, docs[i]), i))[:5]
    assert query.search(conn, p, query.plan(p, "exact", k=5), [q])[0][0] == exact
    conn.execute("UPDATE shrinkvec.profiles SET search_config = 'exact'")
    assert [r[0] for r in conn.execute("SELECT id FROM shrinkvec.search_tokens('docs', %s::vector[], 5)",
                                       (query.tokens_literal(q),)).fetchall()] == exact
    conn.execute("UPDATE shrinkvec.profiles SET search_config = 'multibit@30'")
    want, _ = reference_two_stage(q, docs, 30, 5)
    assert [r[0] for r in conn.execute("SELECT id FROM shrinkvec.search_tokens('docs', %s::vector[], 5)",
                                       (query.tokens_literal(q),)).fetchall()] == want


def test_search_function_errors(loaded: tuple[str, dict[int, np.ndarray]], conn: psycopg.Connection,
                                tmp_path: Path) -> None:
    dsn, _ = loaded
    q = query.tokens_literal(make_docs(1, seed=5)[0])
    with pytest.raises(psycopg.Error, match="need 1 <= k <= shortlist, got k = 10 and shortlist 5") as exc:
        conn.execute("SELECT * FROM shrinkvec.search_tokens('docs', %s::vector[], 10, 5)", (q,))
    assert exc.value.sqlstate == "22023"
    with pytest.raises(psycopg.Error, match="expected query tokens of 24 dimensions, got 3") as exc:
        conn.execute("SELECT * FROM shrinkvec.search_tokens('docs', '{\"[1,2,3]\"}'::vector[])")
    assert exc.value.sqlstate == "22000"
    with pytest.raises(psycopg.Error, match="profile public.docs.embedding has no code bits") as exc:
        conn.execute("SELECT * FROM shrinkvec.search_tokens('docs', %s::vector[], 10, 50, 'bits')", (q,))
    assert exc.value.sqlstate == "42704"
    conn.execute("CREATE TABLE plain (id bigint PRIMARY KEY, embedding vector(3))")
    with pytest.raises(psycopg.Error, match="table public.plain has no shrinkvec profile") as exc:
        conn.execute("SELECT * FROM shrinkvec.search_tokens('plain', '{\"[1,2,3]\"}'::vector[])")
    assert exc.value.sqlstate == "42704"
    np.save(tmp_path / "v.npy", np.eye(3, dtype=np.float32))
    load(dsn, tmp_path / "v.npy", LoadOptions(table="single"))
    with pytest.raises(psycopg.Error, match="table public.single has a single-vector profile .distance cosine.: "
                                            "pass the query as one vector to shrinkvec.search..") as exc:
        conn.execute("SELECT * FROM shrinkvec.search_tokens('single', '{\"[1,2,3]\"}'::vector[])")
    assert exc.value.sqlstate == "42804"


def test_cli_search_and_sql(loaded: tuple[str, dict[int, np.ndarray]], tmp_path: Path) -> None:
    dsn, docs = loaded
    qs = make_docs(3, seed=11)
    save_npz(tmp_path / "q.npz", qs)
    res = CliRunner().invoke(main, ["search", "--table", "docs", "--queries", str(tmp_path / "q.npz"), "--dsn", dsn,
                                    "--k", "5", "--shortlist", "40"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert [x["ids"] for x in lines] == [reference_two_stage(q, docs, 40, 5)[0] for q in qs]
    res = CliRunner().invoke(main, ["sql", "--table", "docs", "--dsn", dsn])
    assert res.exit_code == 0, res.output
    assert "-- $1: query tokens, vector[] of 24-dim vectors" in res.output
    assert '"public"."maxsim"($1::"public"."vector"[], "s"."multibit")' in res.output


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "docs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    embedding = mapped_column(ARRAY(VECTOR(DIMS)), nullable=False)
    multibit = multibit_column("embedding", DIMS)


def test_orm_two_stage(loaded: tuple[str, dict[int, np.ndarray]]) -> None:
    dsn, docs = loaded
    q = make_docs(1, seed=21)[0]
    def connect() -> psycopg.Connection:
        c = psycopg.connect(dsn)
        register_vector(c)  # vector[] values load as lists of numpy arrays
        return c

    engine = create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)
    with Session(engine) as s:
        rows = pairs(s.execute(two_stage(Doc, q, k=5, shortlist=40, distance="maxsim")).all())
        want_ids, want_d = reference_two_stage(q, docs, 40, 5)
        assert [r[0].id for r in rows] == want_ids
        np.testing.assert_array_equal(np.stack(rows[0][0].embedding), docs[want_ids[0]])
        np.testing.assert_allclose([r[1] for r in rows], want_d, rtol=1e-5, atol=1e-4)
        filtered = s.execute(two_stage(Doc, q, k=5, shortlist=40, distance="maxsim").where(Doc.id % 2 == 0)).all()
        assert filtered and all(r[0].id % 2 == 0 for r in filtered)
    engine.dispose()


def write_jsonl(path: Path, docs: list[np.ndarray]) -> None:
    with open(path, "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "embeddings": d.tolist(), "lang": "en"}) + "\n")
        f.write(json.dumps({"id": 900, "embeddings": []}) + "\n")
        f.write(json.dumps({"id": 901, "embeddings": [[1.0] * DIMS, [1.0] * (DIMS - 1)]}) + "\n")
        f.write(json.dumps({"id": 902, "embeddings": [[1.0] * DIMS] * (codes.MAX_TOKENS + 1)}) + "\n")
        f.write(json.dumps({"id": 903, "embeddings": [[1e39] * DIMS]}) + "\n")
        f.write(json.dumps({"id": 904, "embeddings": "nope"}) + "\n")
        f.write(json.dumps({"id": 0, "embeddings": [[1.0] * DIMS]}) + "\n")


REJECTS = {
    900: "empty document: no token vectors",
    901: f"wrong dimension: token 1 has {DIMS - 1} dimensions, expected {DIMS}",
    902: "document has 1025 tokens, more than the limit of 1024",
    903: "infinite value in embeddings",
    904: "bad embeddings: not a list of token vectors",
    0: "duplicate id: already in the table",  # a later batch (batch_size 7)
}


def test_jsonl_load_rejects_and_resume(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    docs = make_docs(30, seed=3)
    write_jsonl(tmp_path / "d.jsonl", docs)
    rf = tmp_path / "rejects.jsonl"
    r = load(migrated_dsn, tmp_path / "d.jsonl", LoadOptions(table="j", batch_size=7, reject_file=rf))
    assert (r.loaded, r.rejected) == (30, len(REJECTS))
    got = {x["id"]: x["reason"] for x in map(json.loads, rf.read_text().splitlines())}
    assert got == REJECTS
    rows = conn.execute("SELECT id, multibit::text, payload FROM j ORDER BY id").fetchall()
    assert [r[0] for r in rows] == list(range(30))
    assert all(mb == codes.multibit_str(codes.binarize_tokens(docs[i]), DIMS) and pl == {"lang": "en"}
               for i, mb, pl in rows)
    again = load(migrated_dsn, tmp_path / "d.jsonl", LoadOptions(table="j", reject_file=rf))
    assert again.already_done


def test_interrupted_load_resumes_exactly_once(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """A load that stops after some batches (here: the progress record rolled back to 2 batches) continues with
    the first uncommitted batch; every document is loaded once, every reject listed once."""
    docs = make_docs(30, seed=3)
    write_jsonl(tmp_path / "d.jsonl", docs)
    rf = tmp_path / "rejects.jsonl"
    load(migrated_dsn, tmp_path / "d.jsonl", LoadOptions(table="j", batch_size=7, reject_file=rf))
    # simulate a kill after two batches: their rows stay, the rest and the finish mark go
    conn.execute("DELETE FROM j WHERE id >= 14")
    conn.execute("UPDATE shrinkvec.loads SET finished = false, records_done = 14, rows_loaded = 14, rows_rejected = 0, "
                 "reject_bytes = 0")
    rf.write_text("")
    r = load(migrated_dsn, tmp_path / "d.jsonl", LoadOptions(table="j", batch_size=7, reject_file=rf))
    assert (r.resumed_at, r.loaded) == (14, 16)
    assert conn.execute("SELECT count(*), count(DISTINCT id) FROM j").fetchone() == (30, 30)
    assert {x["id"] for x in map(json.loads, rf.read_text().splitlines())} == set(REJECTS)


def test_parquet_load(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    docs = make_docs(25, seed=4)
    embs = [d.tolist() for d in docs] + [[], [[1.0] * DIMS, [1.0] * 3]]
    pq.write_table(pa.table({"id": list(range(27)), "embeddings": embs, "title": [f"t{i}" for i in range(27)]}),
                   tmp_path / "d.parquet")
    rf = tmp_path / "r.jsonl"
    r = load(migrated_dsn, tmp_path / "d.parquet", LoadOptions(table="pq", batch_size=10, reject_file=rf))
    assert (r.loaded, r.rejected) == (25, 2)
    assert [x["reason"] for x in map(json.loads, rf.read_text().splitlines())] == [
        "empty document: no token vectors", f"wrong dimension: token 1 has 3 dimensions, expected {DIMS}"]
    rows = conn.execute("SELECT id, title, multibit::text FROM pq ORDER BY id").fetchall()
    assert [(i, t) for i, t, _ in rows] == [(i, f"t{i}") for i in range(25)]
    assert all(mb == codes.multibit_str(codes.binarize_tokens(docs[i]), DIMS) for i, _, mb in rows)


def test_load_errors_are_one_line(migrated_dsn: str, tmp_path: Path) -> None:
    runner = CliRunner()
    np.savez(tmp_path / "bad.npz", embeddings=np.zeros((5, 4), np.float32), offsets=np.array([0, 3, 2]))
    res = runner.invoke(main, ["load", str(tmp_path / "bad.npz"), "--table", "b", "--dsn", migrated_dsn, "--quiet"])
    assert res.exit_code != 0
    assert "offsets must be a 1-D integer array from 0 to the token count 5, never decreasing" in res.output
    assert len(res.output.strip().splitlines()) == 1
    np.savez(tmp_path / "nokey.npz", embeddings=np.zeros((5, 4), np.float32))
    res = runner.invoke(main, ["load", str(tmp_path / "nokey.npz"), "--table", "b", "--dsn", migrated_dsn, "--quiet"])
    assert "the .npz has no array 'offsets' (it has: embeddings)" in res.output
    save_npz(tmp_path / "d.npz", make_docs(3))
    res = runner.invoke(main, ["load", str(tmp_path / "d.npz"), "--table", "b", "--dsn", migrated_dsn, "--quiet",
                               "--distance", "l2"])
    assert "holds multi-vector documents: their distance is maxsim, not l2" in res.output
    res = runner.invoke(main, ["load", str(tmp_path / "d.npz"), "--table", "b", "--dsn", migrated_dsn, "--quiet",
                               "--profile", "bits"])
    assert "code bits:24 needs a single-vector distance (profile 'public.b.embedding' has distance maxsim)" in res.output
    np.save(tmp_path / "v.npy", np.zeros((3, 4), np.float32))
    res = runner.invoke(main, ["load", str(tmp_path / "v.npy"), "--table", "b", "--dsn", migrated_dsn, "--quiet",
                               "--distance", "maxsim"])
    assert "distance maxsim needs multi-vector documents" in res.output
    # a single-vector file into a multi-vector table
    assert runner.invoke(main, ["load", str(tmp_path / "d.npz"), "--table", "m", "--dsn", migrated_dsn,
                                "--quiet"]).exit_code == 0
    res = runner.invoke(main, ["load", str(tmp_path / "v.npy"), "--table", "m", "--dsn", migrated_dsn, "--quiet",
                               "--dims", "24"])
    assert res.exit_code != 0 and len(res.output.strip().splitlines()) == 1


def test_single_vector_entry_points_refuse_a_multi_vector_table(loaded: tuple[str, dict[int, np.ndarray]],
                                                               conn: psycopg.Connection, tmp_path: Path) -> None:
    dsn, _ = loaded
    with pytest.raises(psycopg.Error, match="table public.docs has a multi-vector profile .distance maxsim.: "
                                            "use shrinkvec.search_tokens.. with a vector.. query") as exc:
        conn.execute("SELECT * FROM shrinkvec.search('docs', %s::vector)", ("[" + ",".join(["1"] * DIMS) + "]",))
    assert exc.value.sqlstate == "42804"
    np.save(tmp_path / "q.npy", np.zeros((2, DIMS), np.float32))
    res = CliRunner().invoke(main, ["eval", "--table", "docs", "--queries", str(tmp_path / "q.npy"), "--dsn", dsn])
    assert res.exit_code != 0
    assert "has a multi-vector (maxsim) profile: shrinkvec eval and tune do not measure late interaction yet" in res.output
