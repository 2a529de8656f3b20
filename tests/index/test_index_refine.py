"""Refine codes inside the index (WITH (refine = B), issue 16): the stored codes equal the numpy reference
(codes.refine_code) after a build, after inserts and after VACUUM moved entries; the funnel reads fewer
table rows at equal answers; bad options get clear errors.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgvector.psycopg import register_vector

from conftest import one_row
from shrinkvec import codes, demo


def fill(conn: psycopg.Connection, x: np.ndarray, table: str = "r") -> None:
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v vector({x.shape[1]}))")  # noqa: S608 (constants)
    with conn.cursor().copy(f"COPY {table} (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:  # noqa: S608
        copy.set_types(["int4", "vector"])
        for i, v in enumerate(x):
            copy.write_row((i, v))


def check_entries(conn: psycopg.Connection, index: str, x: dict[int, np.ndarray], bits: int, code_bits: int) -> int:
    """Every entry's refine code equals numpy's for its row (rotated: codes.rotate) and its list's centroid (as
    stored, rotated); returns the entries."""
    centroids = {list_: np.array(c, dtype=np.float32) for list_, c in conn.execute(
        "SELECT list, centroid FROM shrinkvec_index_centroids(%s, rotated => true)", (index,))}
    rows = conn.execute(
        "SELECT r.id, e.list, e.refine, e.refine_lo, e.refine_step, e.refine_norm2, e.refine_err2 "
        "FROM shrinkvec_index_entries(%s) e JOIN r ON r.ctid = e.tid", (index,)).fetchall()
    for id_, list_, refine, lo, step, norm2, err2 in rows:
        assert refine is not None, f"entry of row {id_} has no refine code"
        want = codes.refine_code(codes.rotate(x[id_][:code_bits]), centroids[list_], bits)
        assert bytes(refine) == want.code.tobytes(), (id_, list_)
        assert np.float32(lo) == want.lo and np.float32(step) == want.step
        assert np.float32(norm2) == pytest.approx(float(want.norm2), rel=1e-6, abs=1e-30)
        assert np.float32(err2).tobytes() == want.err2.tobytes(), (id_, err2, want.err2)
    return len(rows)


VALUES = st.one_of(st.floats(-4, 4, width=32), st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-30, 3e10]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), dims=st.one_of(st.integers(1, 20), st.sampled_from([31, 32, 33, 63, 64, 65, 383])),
       bits=st.sampled_from(codes.REFINE_BITS), opclass=st.sampled_from(["vector_l2_ops", "vector_ip_ops"]))
def test_refine_codes_equal_the_numpy_reference(conn: psycopg.Connection, data: st.DataObject, dims: int,
                                                bits: int, opclass: str) -> None:
    n = data.draw(st.integers(1, 40))
    x = np.array(data.draw(st.lists(st.lists(VALUES, min_size=dims, max_size=dims), min_size=n, max_size=n)),
                 dtype=np.float32)
    if data.draw(st.booleans()):
        x[: n // 2] = x[0]  # equal rows, and constant residuals (step 0) for a flat index of one row
    lists = data.draw(st.sampled_from([1, 2])) if n >= 2 else 1
    code_bits = data.draw(st.integers(1, dims))
    conn.execute("DROP TABLE IF EXISTS r")
    fill(conn, x)
    conn.execute(f"CREATE INDEX ri ON r USING shrinkvec (v {opclass}) "  # noqa: S608 (drawn constants)
                 f"WITH (lists = {lists}, bits = {code_bits}, refine = {bits})")
    assert check_entries(conn, "ri", dict(enumerate(x)), bits, code_bits) == n


def test_inserts_and_vacuum_keep_refine_codes(conn: psycopg.Connection) -> None:
    """Rows inserted after the build get refine codes (new refine pages as the data pages fill); VACUUM
    moves each page's last entries into the holes of dead ones, refine codes with them."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3000, 96)).astype(np.float32)
    register_vector(conn)
    fill(conn, x[:1000])
    conn.execute("ALTER TABLE r SET (autovacuum_enabled = off)")
    conn.execute("CREATE INDEX ri ON r USING shrinkvec (v vector_l2_ops) WITH (lists = 4, refine = 8)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO r VALUES (%s, %s)", [(i, x[i]) for i in range(1000, 3000)])
    rows = dict(enumerate(x))
    assert check_entries(conn, "ri", rows, 8, 96) == 3000
    conn.execute("DELETE FROM r WHERE id % 3 = 0 OR (id > 2500 AND id % 2 = 0)")
    conn.execute("VACUUM r")
    live = one_row(conn.execute("SELECT count(*) FROM r"))[0]
    assert check_entries(conn, "ri", rows, 8, 96) == live
    assert conn.execute("SELECT ok FROM shrinkvec_index_check('ri')").fetchone() == (True,)
    # inserts after the vacuum fill the holes: their refine slots are overwritten with their codes
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO r VALUES (%s, %s)", [(i, x[i]) for i in range(0, 600, 3)])
    assert check_entries(conn, "ri", rows, 8, 96) == live + 200
    info = one_row(conn.execute("SELECT refine_bits, refine_pages, entries FROM shrinkvec_index_info('ri')"))
    assert info[0] == 8 and info[1] > 0 and info[2] == live + 200


def heap_buffers(conn: psycopg.Connection, q: np.ndarray) -> tuple[list[int], int]:
    """The ids of the top 10 and the shared buffers the index scan touched (EXPLAIN ANALYZE, BUFFERS)."""
    ids = [r[0] for r in conn.execute("SELECT id FROM r ORDER BY v <=> %s LIMIT 10", (q,))]
    plan = one_row(conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM r ORDER BY v <=> %s LIMIT 10",
                        (q,)))[0][0]["Plan"]
    assert plan["Plans"][0]["Index Name"] == "ri"
    return ids, plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def test_the_funnel_reads_fewer_rows_for_the_same_answers(conn: psycopg.Connection) -> None:
    """768-d rows are TOASTed: each candidate the scan reads costs heap and TOAST pages. With refine codes
    and shrinkvec.rerank = 40 (the default), a shortlist of 200 reads 40 rows instead of 200: under half the
    buffers, and the same top 10."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((20, 768)).astype(np.float32)
    x = (centers[rng.integers(0, 20, 2000)] + 0.7 * rng.standard_normal((2000, 768))).astype(np.float32)
    queries = x[::200] + 0.1 * rng.standard_normal((10, 768)).astype(np.float32)
    register_vector(conn)
    fill(conn, x)
    conn.execute("ANALYZE r")
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET shrinkvec.shortlist = 200")
    conn.execute("SET shrinkvec.rerank = 40")
    results = {}
    for refine in (0, 4):
        conn.execute("DROP INDEX IF EXISTS ri")
        conn.execute(f"CREATE INDEX ri ON r USING shrinkvec (v vector_cosine_ops) WITH (refine = {refine})")
        results[refine] = [heap_buffers(conn, q) for q in queries]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    hits = hits0 = 0
    for q, (ids0, buf0), (ids4, buf4) in zip(queries, results[0], results[4], strict=True):
        assert buf4 * 2 < buf0, (buf4, buf0)
        want = set(np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10].tolist())
        hits0 += len(want & set(ids0))
        hits += len(want & set(ids4))
    assert hits0 / 100 >= 0.95 and hits / 100 >= 0.95


def test_recall_on_real_embeddings_with_small_reranks(conn: psycopg.Connection) -> None:
    """The shipped docstring embeddings, an IVF index with 4-bit refine codes: reading the rows of 20
    candidates out of a shortlist of 100 keeps recall@10 against numpy at 0.95 or more."""
    d = demo.load_data()
    docs = d.docs.astype(np.float32)
    register_vector(conn)
    fill(conn, docs)
    conn.execute("ANALYZE r")
    conn.execute("CREATE INDEX ri ON r USING shrinkvec (v vector_cosine_ops) WITH (lists = 40, refine = 4)")
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET shrinkvec.probes = 10")
    conn.execute("SET shrinkvec.rerank = 20")
    unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    queries = d.queries[:50].astype(np.float32)
    hits = 0
    for q in queries:
        want = np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10]
        got = [r[0] for r in conn.execute("SELECT id FROM r ORDER BY v <=> %s LIMIT 10", (q,))]
        hits += len(set(want.tolist()) & set(got))
    assert hits / (10 * len(queries)) >= 0.95


@pytest.mark.parametrize(("column", "options", "error", "message"), [
    ("vector(8)", "refine = 3", psycopg.errors.InvalidParameterValue,
     "refine must be 0, 2, 4 or 8 bits per dimension, not 3"),
    ("vector(8)", "refine = 9", psycopg.errors.InvalidParameterValue, "value 9 out of bounds for option \"refine\""),
    ("bit(8)", "refine = 4", psycopg.errors.InvalidParameterValue,
     "option refine applies to vector and halfvec columns, not bit"),
    ("vector(9000)", "refine = 8", psycopg.errors.ProgramLimitExceeded,
     "refine = 8 codes of 9000 dimensions need 9022 bytes an entry, more than a page holds \\(8112\\)"),
])
def test_bad_refine_options(conn: psycopg.Connection, column: str, options: str, error: type[Exception],
                            message: str) -> None:
    conn.execute(f"CREATE TABLE b (v {column})")  # noqa: S608 (constants)
    opclass = "bit_hamming_ops" if column.startswith("bit") else "vector_l2_ops"
    with pytest.raises(error, match=message):
        conn.execute(f"CREATE INDEX ON b USING shrinkvec (v {opclass}) WITH ({options})")  # noqa: S608


def test_centroids_of_a_bit_index_are_refused(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE b (v bit(8))")
    conn.execute("CREATE INDEX bi ON b USING shrinkvec (v bit_hamming_ops)")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="\"bi\" indexes bit"):
        conn.execute("SELECT * FROM shrinkvec_index_centroids('bi')")


def test_a_parallel_build_stores_what_a_serial_build_stores(conn: psycopg.Connection) -> None:
    """Workers (and the leader) split the second heap pass; the entries, their lists, codes and refine
    codes are those of a serial build (only their order within a list may differ)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6000, 64)).astype(np.float32)
    register_vector(conn)
    fill(conn, x)
    conn.execute("ALTER TABLE r SET (parallel_workers = 2)")
    conn.execute("SET min_parallel_table_scan_size = 0")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    entries = ("SELECT tid::text, list, code::text, encode(refine, 'hex'), refine_lo, refine_step "
               "FROM shrinkvec_index_entries('ri')")
    built = {}
    for workers in (0, 2):
        conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET client_min_messages = debug1")
        conn.execute("CREATE INDEX ri ON r USING shrinkvec (v vector_ip_ops) WITH (lists = 20, refine = 4)")
        conn.execute("RESET client_min_messages")
        launched = [m for m in notices if "parallel workers launched" in m]
        assert bool(launched) == (workers > 0), notices
        built[workers] = sorted(conn.execute(entries).fetchall())
        assert conn.execute("SELECT ok FROM shrinkvec_index_check('ri')").fetchone() == (True,)
        conn.execute("DROP INDEX ri")
    assert len(built[0]) == 6000 and built[0] == built[2]


def test_inserts_into_an_ivf_index_find_their_nearest_list(conn: psycopg.Connection) -> None:
    """An insert compares its row with the coarse level's group centroids and with the lists of the
    nearest groups only, not with every centroid: on the shipped real embeddings (200 lists) it still
    lands in the list of the nearest centroid (numpy) for nearly every row."""
    d = demo.load_data()
    docs = d.docs.astype(np.float32)
    register_vector(conn)
    fill(conn, docs[:2000])
    conn.execute("CREATE INDEX ri ON r USING shrinkvec (v vector_l2_ops) WITH (lists = 200, refine = 4)")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO r VALUES (%s, %s)", [(i, docs[i]) for i in range(2000, 4000)])
    centroids = np.array([c for _, c in conn.execute(
        "SELECT list, centroid FROM shrinkvec_index_centroids('ri') ORDER BY list")], dtype=np.float32)
    lists: dict[int, int] = dict(conn.execute(
        "SELECT r.id, e.list FROM shrinkvec_index_entries('ri') e JOIN r ON r.ctid = e.tid"))
    nearest = np.argmin(((docs[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2), axis=1)
    built = np.mean([lists[i] == nearest[i] for i in range(2000)])
    inserted = np.mean([lists[i] == nearest[i] for i in range(2000, 4000)])
    assert built >= 0.99 and inserted >= 0.95, (built, inserted)
    assert check_entries(conn, "ri", dict(enumerate(docs)), 4, 384) == 4000
