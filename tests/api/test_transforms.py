"""Transforms: the numpy reference, the fitters, the C function, the catalog, and `shrinkvec adapt`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import one_row
from shrinkvec import catalog, codes, fitting, query, transforms
from shrinkvec.adapt import AdaptError, AdaptOptions, Hooks, Method, adapt
from shrinkvec.adaptor import AdaptorConfig, train
from shrinkvec.load import LoadOptions, load
from shrinkvec.transforms import Transform

SV = [sys.executable, "-m", "shrinkvec.cli"]
DIMS = 48
SMALL_ADAPTOR = AdaptorConfig(prefixes=(8, 16, 32), hidden=16, steps=40, eval_every=10, anchors=16, k=5, randoms=64)


def embeddings(n: int, d: int = DIMS, seed: int = 0) -> np.ndarray:
    """Normalised vectors with a common offset and unequal variances (like real embeddings: unbalanced signs)."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.2, 2.0, d)[rng.permutation(d)]
    x = rng.standard_normal((n, d)) * scales + rng.standard_normal(d) * 0.8
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def random_transform(rng: np.random.Generator, d_in: int, d_out: int, hidden: int, center: bool, name: str) -> Transform:
    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    mlp = hidden > 0
    return Transform(name=name, kind="adaptor" if mlp else "pca", dims_in=d_in, dims_out=d_out,
                     center=f(d_in) if center else None, matrix=f(d_out, d_in),
                     w1=f(hidden, d_out) if mlp else None, b1=f(hidden) if mlp else None,
                     w2=f(d_out, hidden) if mlp else None, b2=f(d_out) if mlp else None, source=name)


def sql_transform(conn: psycopg.Connection, v: np.ndarray, name: str) -> np.ndarray:
    row = one_row(conn.execute("SELECT shrinkvec.transform_vector(%s, %s)::real[]", (v, name)))
    return np.asarray(row[0], dtype=np.float32)


def stored_vs_reference(conn: psycopg.Connection, table: str = "t") -> tuple[int, int]:
    """(rows, rows whose stored codes differ from the numpy reference of the profile in the catalog)."""
    p = catalog.find_profile(conn, table)
    assert p is not None
    rows = conn.execute(f"SELECT id, embedding::real[], bits::text, prefix16::real[], int8vec_send(int8) "  # noqa: S608
                        f"FROM {table} ORDER BY id").fetchall()
    x = np.array([r[1] for r in rows], dtype=np.float32)
    enc = p.encode(x)
    bad = 0
    for i, r in enumerate(rows):
        q = enc["int8"][i]
        send = np.array([len(q), 0], dtype=">i2").tobytes() + q.tobytes()
        if (r[2] != codes.bits_to_str(enc["bits"][i], DIMS)
                or not np.array_equal(np.asarray(r[3], dtype=np.float32), enc["prefix16"][i])
                or bytes(r[4]) != send):
            bad += 1
    return len(rows), bad


def load_table(dsn: str, tmp_path: Path, n: int = 1200, seed: int = 0) -> np.ndarray:
    x = embeddings(n, seed=seed)
    np.save(tmp_path / "x.npy", x)
    load(dsn, tmp_path / "x.npy", LoadOptions(table="t", profile="bits,prefix:16,int8", batch_size=500))
    return x


# ---------------------------------------------------------------------------------------------
# numpy: reference and fitters
# ---------------------------------------------------------------------------------------------


def test_reference_matches_blas_and_shapes_are_checked() -> None:
    rng = np.random.default_rng(1)
    t = random_transform(rng, 20, 12, 7, True, "r")
    x = rng.standard_normal((50, 20)).astype(np.float32)
    np.testing.assert_allclose(t.apply(x), t.apply_fast(x), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(t.apply(x[3]), t.apply(x)[3])
    with pytest.raises(transforms.TransformError, match="expects 20 dimensions, not 19"):
        t.apply(x[:, :19])
    assert t.w2 is not None and t.b2 is not None
    with pytest.raises(transforms.TransformError, match="w2 has shape"):
        replace(t, w2=t.w2[:, :3]).check()
    assert t.checksum() != replace(t, b2=t.b2 + 1).checksum()


def test_center_balances_bits_and_pca_is_an_ordered_rotation() -> None:
    x = embeddings(2000)
    plain = (x > 0).mean(axis=0)
    c = fitting.fit_center(x, "median")
    centred = (c.apply(x) > 0).mean(axis=0)
    assert np.abs(centred - 0.5).max() < 0.01 < np.abs(plain - 0.5).max()
    p = fitting.fit_pca(x)
    assert p.matrix is not None
    np.testing.assert_allclose(p.matrix @ p.matrix.T, np.eye(DIMS), atol=1e-5)
    var = p.apply_fast(x).var(axis=0)
    assert (np.diff(var) <= 1e-6).all()
    # not whitened: distances of centred vectors are unchanged
    z = p.apply_fast(x[:5])
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.linalg.norm(x[:5] - p.center, axis=1), rtol=1e-5)
    with pytest.raises(transforms.TransformError, match="sample too small for pca: 10 vectors"):
        fitting.fit_pca(x[:10])


def test_adaptor_training_lowers_heldout_loss_and_is_deterministic() -> None:
    x = embeddings(1200)
    pca = fitting.fit_pca(x)
    a = train(x, pca.apply_fast, SMALL_ADAPTOR)
    b = train(x, pca.apply_fast, SMALL_ADAPTOR)
    np.testing.assert_array_equal(a.w1, b.w1)
    assert a.history[0][0] == 0
    assert min(v for _, v in a.history[1:]) < a.history[0][1]  # better than PCA alone on held-out anchors
    assert np.abs(a.w2).max() > 0
    # labelled pairs add the ranking loss and still train
    pairs = (x[:300] + 0.05 * embeddings(300, seed=5), x[:300])
    c = train(x, pca.apply_fast, SMALL_ADAPTOR, pairs=pairs)
    assert not np.array_equal(c.w1, a.w1)


# ---------------------------------------------------------------------------------------------
# The C function against the reference
# ---------------------------------------------------------------------------------------------


def test_sql_transform_equals_reference_bit_for_bit(migrated_dsn: str, conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(2)
    for i, (d_in, d_out, hidden, center) in enumerate([(384, 384, 64, True), (7, 3, 0, False), (1, 5, 2, True)]):
        t = random_transform(rng, d_in, d_out, hidden, center, f"t{i}")
        transforms.save(conn, t)
        x = rng.standard_normal((4, d_in)).astype(np.float32)
        for v in x:
            np.testing.assert_array_equal(sql_transform(conn, v, t.name), t.apply(v))
    center_only = Transform(name="c", kind="center", dims_in=4, dims_out=4, center=np.ones(4, np.float32))
    transforms.save(conn, center_only)
    np.testing.assert_array_equal(sql_transform(conn, np.arange(4, dtype=np.float32), "c"), [-1, 0, 1, 2])

    with pytest.raises(psycopg.errors.DataException, match="different vector dimensions 5 and 4"):
        sql_transform(conn, np.zeros(5, np.float32), "c")
    with pytest.raises(psycopg.errors.UndefinedObject, match='transform "nope" does not exist'):
        sql_transform(conn, np.zeros(4, np.float32), "nope")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d_in=st.integers(1, 40), d_out=st.integers(1, 40), hidden=st.integers(0, 12), center=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_property_sql_transform_equals_reference(migrated_dsn: str, d_in: int, d_out: int, hidden: int, center: bool,
                                                 seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = random_transform(rng, d_in, d_out, hidden, center, f"h{seed}-{d_in}-{d_out}-{hidden}-{center}")
    v = (rng.standard_normal(d_in) * rng.choice([1e-3, 1.0, 1e3])).astype(np.float32)
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        from pgvector.psycopg import register_vector

        register_vector(c)
        transforms.save(c, t)
        np.testing.assert_array_equal(sql_transform(c, v, t.name), t.apply(v))


def test_catalog_missing_is_named(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable, match="shrinkvec catalog does not exist"):
        sql_transform(conn, np.zeros(3, np.float32), "x")


# ---------------------------------------------------------------------------------------------
# adapt end to end
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["center", "pca", "adaptor"])
def test_adapt_codes_queries_and_new_rows_use_the_transform(migrated_dsn: str, conn: psycopg.Connection,
                                                            tmp_path: Path, method: Method) -> None:
    load_table(migrated_dsn, tmp_path)
    conn.execute("CREATE INDEX t_bits ON t USING shrinkvec (bits bit_hamming_ops)")
    r = adapt(migrated_dsn, AdaptOptions(table="t", method=method, batch_size=300, adaptor=SMALL_ADAPTOR))
    assert not r.resumed and r.rows == 1200 and r.sample == 1200
    p = catalog.find_profile(conn, "t")
    assert p is not None and p.transform == r.transform and p.transform_data is not None
    assert p.transform_data.kind == method and p.transform_data.version == 1
    assert stored_vs_reference(conn) == (1200, 0)
    # the index on the code column was rebuilt on the new codes, under its old name: an index scan
    # returns the same Hamming order as a sequential scan
    code = one_row(conn.execute("SELECT bits FROM t WHERE id = 7"))[0]
    scan = "SELECT id, bits <~> %(c)s FROM t ORDER BY bits <~> %(c)s, id LIMIT 20"
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + scan, {"c": code}).fetchall())
    assert "t_bits" in plan
    by_index = conn.execute(scan, {"c": code}).fetchall()
    conn.execute("SET enable_seqscan = on; SET enable_indexscan = off")
    assert by_index == conn.execute(scan, {"c": code}).fetchall()
    conn.execute("RESET enable_indexscan; RESET enable_seqscan")
    # plain SQL writes and the loader get codes of the transform too
    y = embeddings(3, seed=9)
    conn.execute("INSERT INTO t (id, embedding) VALUES (5000, %s)", (y[0],))
    conn.execute("UPDATE t SET embedding = %s WHERE id = 0", (y[1],))
    np.save(tmp_path / "more.npy", y)
    np.save(tmp_path / "ids.npy", np.array([6000, 6001, 6002]))
    load(migrated_dsn, tmp_path / "more.npy", LoadOptions(table="t", ids_path=tmp_path / "ids.npy", batch_size=10))
    assert stored_vs_reference(conn) == (1204, 0)
    # the query ranks codes through the same transform: Python SQL and shrinkvec.search() agree with numpy
    q = embeddings(5, seed=11)
    stages = query.stages_for(p, ["bits"], [50])
    got = query.search(conn, p, stages, q, 10)
    rows = conn.execute("SELECT id, embedding::real[], bits::text FROM t").fetchall()
    vecs = {rid: np.asarray(v, dtype=np.float32) for rid, v, _ in rows}
    for qi, (ids, _) in enumerate(got):
        sql_ids = [row[0] for row in conn.execute("SELECT id FROM shrinkvec.search('t', %s, 10, 50, 'bits')",
                                                   (q[qi],)).fetchall()]
        assert ids == sql_ids
        tq = p.transform_data.apply(q[qi])
        score = {rid: codes.bit_ip(codes.str_to_bits(b), DIMS, tq) for rid, _, b in rows}
        short = sorted(score, key=lambda i: (score[i], i))[:40]
        best = sorted(short, key=lambda i: codes.cosine_distance(vecs[i], q[qi]))[:5]
        assert set(best) <= set(ids)  # codes ranked with the transformed query, rerank exact on the raw vectors
    # a second adapt makes version 2; the first stays stored
    r2 = adapt(migrated_dsn, AdaptOptions(table="t", method="center", sample=500, statistic="median"))
    assert ":v2:" in r2.transform and r2.sample == 500
    assert one_row(conn.execute("SELECT count(*) FROM shrinkvec.transforms"))[0] == 2
    assert stored_vs_reference(conn)[1] == 0


def test_transforms_are_immutable(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    load_table(migrated_dsn, tmp_path, n=200)
    r = adapt(migrated_dsn, AdaptOptions(table="t", method="center"))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=r'transform ".*:center:v1:.*" is immutable'):
        conn.execute("UPDATE shrinkvec.transforms SET center[1] = 0 WHERE name = %s", (r.transform,))
    with pytest.raises(psycopg.errors.ObjectInUse, match=r"is in use by profile \"public.t.embedding\""):
        conn.execute("DELETE FROM shrinkvec.transforms WHERE name = %s", (r.transform,))
    r2 = adapt(migrated_dsn, AdaptOptions(table="t", method="center", statistic="median"))
    conn.execute("DELETE FROM shrinkvec.transforms WHERE name = %s", (r.transform,))  # no longer used: allowed
    assert [row[0] for row in conn.execute("SELECT name FROM shrinkvec.transforms").fetchall()] == [r2.transform]


class Interrupt(Exception):
    pass


def test_interrupted_reencode_keeps_old_codes_and_resumes(migrated_dsn: str, conn: psycopg.Connection,
                                                          tmp_path: Path) -> None:
    load_table(migrated_dsn, tmp_path)

    def stop_after_two(done: int, total: int) -> None:
        if done >= 200:
            raise Interrupt

    with pytest.raises(Interrupt):
        adapt(migrated_dsn, AdaptOptions(table="t", method="pca", batch_size=100), Hooks(rows=stop_after_two))
    p = catalog.find_profile(conn, "t")
    assert p is not None and p.transform is None  # not switched: the codes are the old ones, all consistent
    assert stored_vs_reference(conn) == (1200, 0)
    assert one_row(conn.execute("SELECT rows_done FROM shrinkvec.reencodes"))[0] == 200
    # writes while a re-encode is pending get both the old and the new codes
    conn.execute("INSERT INTO t (id, embedding) VALUES (7000, %s)", (embeddings(1, seed=3)[0],))
    with pytest.raises(AdaptError, match=r"re-encode .* \(pca\) is unfinished: rerun with --method pca"):
        adapt(migrated_dsn, AdaptOptions(table="t", method="center"))
    r = adapt(migrated_dsn, AdaptOptions(table="t", method="pca", batch_size=100))
    assert r.resumed and r.rows == 1000
    assert stored_vs_reference(conn) == (1201, 0)
    assert one_row(conn.execute("SELECT count(*) FROM shrinkvec.reencodes"))[0] == 0
    cols = {row[0] for row in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass "
                                           "AND attnum > 0 AND NOT attisdropped").fetchall()}
    assert cols == {"id", "embedding", "bits", "prefix16", "int8"}


def test_kill_9_during_reencode_then_rerun(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    load_table(migrated_dsn, tmp_path)
    script = (
        "import os, signal, sys\n"
        "from shrinkvec.adapt import AdaptOptions, Hooks, adapt\n"
        "def rows(done, total):\n"
        "    if done >= 300:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "adapt(sys.argv[1], AdaptOptions(table='t', method='pca', batch_size=100), Hooks(rows=rows))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, migrated_dsn], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert one_row(conn.execute("SELECT rows_done FROM shrinkvec.reencodes"))[0] == 300
    assert stored_vs_reference(conn) == (1200, 0)
    out = subprocess.run([*SV, "adapt", "--table", "t", "--method", "pca", "--quiet", "--dsn", migrated_dsn],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "resumed the re-encode" in out.stdout and "re-encoded 900 rows" in out.stdout
    p = catalog.find_profile(conn, "t")
    assert p is not None and p.transform is not None and ":pca:v1:" in p.transform
    assert stored_vs_reference(conn) == (1200, 0)


def test_restart_discards_an_unfinished_reencode(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    load_table(migrated_dsn, tmp_path, n=600)

    def stop(done: int, total: int) -> None:
        if done:
            raise Interrupt

    with pytest.raises(Interrupt):
        adapt(migrated_dsn, AdaptOptions(table="t", method="pca", batch_size=100), Hooks(rows=stop))
    r = adapt(migrated_dsn, AdaptOptions(table="t", method="center", restart=True))
    assert not r.resumed and ":center:v2:" in r.transform
    assert stored_vs_reference(conn) == (600, 0)


def test_bad_input_errors_name_the_problem(migrated_dsn: str, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SV, "adapt", *args, "--quiet", "--dsn", migrated_dsn], capture_output=True, text=True,
                              timeout=60)

    out = run("--table", "nope", "--method", "pca")
    assert out.returncode == 1 and out.stderr.strip() == "error: table public.nope does not exist"
    out = run("--table", "nope", "--method", "zca")
    assert out.returncode == 2 and "'zca' is not one of 'center', 'pca', 'adaptor'" in out.stderr
    load_table(migrated_dsn, tmp_path, n=30)
    out = run("--table", "t", "--method", "pca")
    assert out.returncode == 1
    assert out.stderr.startswith("error: sample too small for pca: 30 vectors, need at least 49"), out.stderr
    out = run("--table", "t", "--method", "pca", "--labels", str(tmp_path / "qrels.tsv"))
    assert out.returncode == 1 and "--labels is used by the adaptor only" in out.stderr
    (tmp_path / "qrels.tsv").write_text("query doc relevance\n1 2 1\nx y\n")
    out = run("--table", "t", "--method", "adaptor", "--sample", "5000", "--labels", str(tmp_path / "qrels.tsv"))
    assert out.returncode == 1 and "sample too small for adaptor" in out.stderr
    with psycopg.connect(migrated_dsn, autocommit=True) as c:
        c.execute("CREATE TABLE plain (id bigint PRIMARY KEY, embedding vector(3))")
    out = run("--table", "plain", "--method", "center")
    assert out.returncode == 1 and "table public.plain has no shrinkvec profile" in out.stderr


def test_labels_file_is_read(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    from shrinkvec.adapt import read_labels

    x = load_table(migrated_dsn, tmp_path, n=100)
    p = catalog.find_profile(conn, "t")
    assert p is not None
    (tmp_path / "q.tsv").write_text("qid\tdocid\trel\n1\t2\t1\n3\t4\t0\n5 0 6 2\n")
    qv, dv = read_labels(conn, p, tmp_path / "q.tsv", None)
    np.testing.assert_array_equal(qv, x[[1, 5]])
    np.testing.assert_array_equal(dv, x[[2, 6]])
    np.save(tmp_path / "queries.npy", x[:10] * 2)
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": 9, "doc": 1}) + "\n")
    qv, dv = read_labels(conn, p, tmp_path / "q.jsonl", tmp_path / "queries.npy")
    np.testing.assert_array_equal(qv, x[[9]] * 2)
    (tmp_path / "bad.tsv").write_text("1 2 1\n1 2 3 4 5\n")
    with pytest.raises(AdaptError, match=r"bad.tsv:2: cannot read"):
        read_labels(conn, p, tmp_path / "bad.tsv", None)
    assert os.path.exists(tmp_path / "q.tsv")


def test_numpy_gradients_match_finite_differences() -> None:
    from shrinkvec.transforms import adaptor as ad

    rng = np.random.default_rng(4)
    x = embeddings(200)
    cfg = replace(SMALL_ADAPTOR, prefixes=(4, 8), w_recon=0.3)
    z = fitting.fit_pca(x).apply_fast(x).astype(np.float64)
    xn = ad._normalize(x.astype(np.float64))[0]
    nbrs = ad.nearest(xn.astype(np.float32), np.arange(6), 3)
    b = ad._make_batch(cfg, xn, z, np.arange(6), nbrs, np.arange(100, 130))
    p = ad._Params(w1=rng.standard_normal((5, DIMS)) * 0.3, b1=rng.standard_normal(5) * 0.1,
                   w2=rng.standard_normal((DIMS, 5)) * 0.3, b2=rng.standard_normal(DIMS) * 0.1)
    zq, zd = z[:20], z[20:40]

    def loss() -> float:
        a = ad._forward(p, b.z)[0]
        return ad._unsup_loss(cfg, a, a - b.z, b, False)[0] + ad._rank_loss(cfg, ad._forward(p, zq)[0],
                                                                             ad._forward(p, zd)[0], False)[0]

    a, h, pre = ad._forward(p, b.z)
    da = ad._unsup_loss(cfg, a, a - b.z, b, True)[1]
    assert da is not None  # need_grad=True: the gradient is there
    grads = ad._backward(p, b.z, h, pre, da)
    aq, hq, preq = ad._forward(p, zq)
    adoc, hd, pred = ad._forward(p, zd)
    _, dq, dd = ad._rank_loss(cfg, aq, adoc, True)
    assert dq is not None and dd is not None
    for g, gq, gd in zip(grads, ad._backward(p, zq, hq, preq, dq), ad._backward(p, zd, hd, pred, dd)):
        g += gq + gd
    for arr, g in zip(p.arrays(), grads):
        for _ in range(4):
            i = tuple(int(rng.integers(0, s)) for s in arr.shape)
            old = arr[i]
            arr[i] = old + 1e-6
            up = loss()
            arr[i] = old - 1e-6
            down = loss()
            arr[i] = old
            assert abs((up - down) / 2e-6 - g[i]) < 1e-4 + 1e-3 * abs(g[i])


def test_torch_trainer_matches_numpy() -> None:
    pytest.importorskip("torch")
    from shrinkvec.adaptor_torch import train_torch

    x = embeddings(1200)
    pca = fitting.fit_pca(x)
    cfg = replace(SMALL_ADAPTOR, steps=20)
    a = train(x, pca.apply_fast, cfg)
    b = train_torch(x, pca.apply_fast, cfg)
    assert [s for s, _ in a.history] == [s for s, _ in b.history]
    np.testing.assert_allclose([v for _, v in a.history], [v for _, v in b.history], rtol=1e-5)


def test_orm_two_stage_ranks_codes_through_the_transform(migrated_dsn: str, conn: psycopg.Connection,
                                                         tmp_path: Path) -> None:
    from pgvector.sqlalchemy import VECTOR
    from sqlalchemy import BigInteger, create_engine
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    from shrinkvec.orm import bits_column, two_stage

    class Base(DeclarativeBase):
        pass

    class T(Base):
        __tablename__ = "t"
        id = mapped_column(BigInteger, primary_key=True)
        embedding = mapped_column(VECTOR(DIMS), nullable=False)
        bits = bits_column("embedding", DIMS)

    load_table(migrated_dsn, tmp_path, n=300)
    r = adapt(migrated_dsn, AdaptOptions(table="t", method="pca"))
    p = catalog.find_profile(conn, "t")
    assert p is not None
    q = embeddings(3, seed=12)
    want = query.search(conn, p, query.stages_for(p, ["bits"], [30]), q, 10)
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(migrated_dsn))
    with Session(engine) as session:
        for qi in range(3):
            rows = session.execute(two_stage(T, q[qi], k=10, shortlist=30, stage="bits", transform=r.transform)).all()
            assert [row[0].id for row in rows] == want[qi][0]
            # without being told: the profile's transform (shrinkvec.code_query) ranks the codes
            rows = session.execute(two_stage(T, q[qi], k=10, shortlist=30, stage="bits")).all()
            assert [row[0].id for row in rows] == want[qi][0]
    engine.dispose()


def test_writes_during_the_reencode_get_the_new_codes(migrated_dsn: str, conn: psycopg.Connection,
                                                      tmp_path: Path) -> None:
    load_table(migrated_dsn, tmp_path, n=1000)
    y = embeddings(3, seed=21)

    def write_between_batches(done: int, total: int) -> None:
        if done == 200:  # id 0 already has its new codes, id 900 not yet; 5000 is new
            conn.execute("UPDATE t SET embedding = %s WHERE id = 0", (y[0],))
            conn.execute("UPDATE t SET embedding = %s WHERE id = 900", (y[1],))
            conn.execute("INSERT INTO t (id, embedding) VALUES (5000, %s)", (y[2],))

    r = adapt(migrated_dsn, AdaptOptions(table="t", method="pca", batch_size=100), Hooks(rows=write_between_batches))
    assert r.rows == 999  # the shadow trigger gave id 900 its new codes before the fill reached it
    assert stored_vs_reference(conn) == (1001, 0)
    got = conn.execute("SELECT embedding::real[] FROM t WHERE id IN (0, 900, 5000) ORDER BY id").fetchall()
    np.testing.assert_array_equal(np.array([g[0] for g in got], dtype=np.float32), y)
