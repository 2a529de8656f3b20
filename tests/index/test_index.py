"""The shrinkvec index access method against a real server, with numpy as the oracle.

Recall on the shipped real embeddings, exact Hamming order against numpy, inserts after the build,
VACUUM, the planner's choices, and the errors at CREATE INDEX and at query time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg import sql

from conftest import OPS, one_row
from shrinkvec import codes, demo

K = 10


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.load_data()


def load_docs(conn: psycopg.Connection, docs: np.ndarray, table: str = "docs", kind: str = "vector") -> None:
    """A table (id, embedding) filled with binary COPY, plus a generated bit column of the sign codes."""
    dim = docs.shape[1]
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, embedding {}({}), "
                         "bits bit({}) GENERATED ALWAYS AS (binarize(embedding)::bit({})) STORED)").format(
        sql.Identifier(table), sql.SQL(kind), sql.Literal(dim), sql.Literal(dim), sql.Literal(dim)))
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(table))) as copy:
        copy.set_types(["int4", kind])
        for i, v in enumerate(docs):
            copy.write_row((i, v if kind == "vector" else HalfVector(v)))
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def exact_ids(docs: np.ndarray, q: np.ndarray, metric: str, k: int = K) -> list[int]:
    if metric == "cosine":
        d = 1 - docs @ q / (np.linalg.norm(docs, axis=1) * np.linalg.norm(q))
    elif metric == "l2":
        d = np.linalg.norm(docs - q, axis=1)
    else:
        d = -(docs @ q)
    return [int(i) for i in np.argsort(d, kind="stable")[:k]]




def knn(conn: psycopg.Connection, q: np.ndarray | HalfVector, op: str, k: int = K, table: str = "docs",
        cast: str = "vector") -> list[tuple[int, float]]:
    query = sql.SQL("SELECT id, embedding {op} %s::{cast} FROM {t} ORDER BY embedding {op} %s::{cast} LIMIT {k}").format(
        op=sql.SQL(op), t=sql.Identifier(table), k=sql.Literal(k), cast=sql.SQL(cast))
    return conn.execute(query, (q, q)).fetchall()


def uses_index(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> bool:
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params).fetchall())
    return "Index Scan using" in plan and "Sort" not in plan.split("Index Scan")[0].split("Limit")[-1]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.parametrize("lists", [1, 16])
def test_vector_opclasses_recall_and_exact_order(conn: psycopg.Connection, data: demo.DemoData, metric: str,
                                                 lists: int) -> None:
    op, opclass = OPS[metric]
    load_docs(conn, data.docs)
    conn.execute(f"CREATE INDEX ON docs USING shrinkvec (embedding {opclass}) WITH (lists = {lists})")
    conn.execute("SET shrinkvec.shortlist = 100")
    conn.execute("SET shrinkvec.probes = 8")
    q0 = data.queries[0]
    assert uses_index(conn, f"SELECT id FROM docs ORDER BY embedding {op} %s::vector LIMIT 10", (q0,))
    hits = 0
    for q in data.queries[:50]:
        rows = knn(conn, q, op)
        assert len(rows) == K
        dists = [r[1] for r in rows]
        assert dists == sorted(dists)  # the executor's recheck gives exact order
        hits += len(set(r[0] for r in rows) & set(exact_ids(data.docs, q, metric)))
    recall = hits / (50 * K)
    assert recall >= (0.97 if lists == 1 else 0.9), recall


def test_halfvec_cosine(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs[:2000], kind="halfvec")
    conn.execute("CREATE INDEX ON docs USING shrinkvec (embedding halfvec_cosine_ops)")
    hits = 0
    for q in data.queries[:20]:
        rows = knn(conn, HalfVector(q), "<=>", cast="halfvec")
        hits += len(set(r[0] for r in rows) & set(exact_ids(data.docs[:2000], q, "cosine")))
    assert hits / 200 >= 0.95


def test_prefix_code_with_bits_option(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs)
    conn.execute("CREATE INDEX ix ON docs USING shrinkvec (embedding vector_cosine_ops) WITH (bits = 128)")
    info = conn.execute("SELECT code_bits, entry_bytes, entries FROM shrinkvec_index_info('ix')").fetchone()
    assert info == (128, 16 + 6 + 8, 4000)
    conn.execute("SET shrinkvec.shortlist = 200")
    hits = sum(len(set(r[0] for r in knn(conn, q, "<=>")) & set(exact_ids(data.docs, q, "cosine")))
               for q in data.queries[:20])
    assert hits / 200 >= 0.9


def test_bit_hamming_exact_order_across_batches(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs)
    conn.execute("CREATE INDEX ON docs USING shrinkvec (bits bit_hamming_ops)")
    conn.execute("SET shrinkvec.shortlist = 37")  # 300 rows need several batches
    doc_bits = np.unpackbits(codes.binarize_batch(data.docs), axis=1)
    for q in data.queries[:5]:
        qb = codes.binarize(q)
        expected = np.sort((doc_bits != np.unpackbits(qb)).sum(axis=1))[:300]
        q_text = codes.bits_to_str(qb, 384)
        assert uses_index(conn, "SELECT id FROM docs ORDER BY bits <~> %s::bit(384) LIMIT 300", (q_text,))
        rows = conn.execute("SELECT id, bits <~> %s::bit(384) FROM docs ORDER BY bits <~> %s::bit(384) LIMIT 300",
                            (q_text, q_text)).fetchall()
        assert [int(r[1]) for r in rows] == expected.tolist()
        assert len({r[0] for r in rows}) == 300  # no row twice across batches


def test_bit_prefix_query(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs)
    conn.execute("CREATE INDEX ON docs USING shrinkvec (bits) WITH (lists = 8)")
    conn.execute("SET shrinkvec.probes = 8")  # every list: exact
    doc_bits = np.unpackbits(codes.binarize_batch(data.docs), axis=1)[:, :100]
    q = codes.binarize(data.queries[3])
    q100 = codes.bits_to_str(q, 384)[:100]
    expected = np.sort((doc_bits != np.unpackbits(q)[:100]).sum(axis=1))[:50]
    rows = conn.execute("SELECT bits <^> %s::bit(100) FROM docs ORDER BY bits <^> %s::bit(100) LIMIT 50",
                        (q100, q100)).fetchall()
    assert [r[0] for r in rows] == expected.tolist()
    with pytest.raises(psycopg.errors.StringDataLengthMismatch, match="different bit lengths 384 and 100"):
        conn.execute("SELECT id FROM docs ORDER BY bits <~> %s::bit(100) LIMIT 5", (q100,)).fetchall()


def test_inserts_vacuum_and_check(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs[:1000])
    conn.execute("CREATE INDEX iv ON docs USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 4)")
    conn.execute("CREATE INDEX ib ON docs USING shrinkvec (bits)")
    # rows after the build go through aminsert
    with conn.cursor().copy("COPY docs (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i in range(1000, 3000):
            copy.write_row((i, data.docs[i]))
    for ix in ("iv", "ib"):
        check = one_row(conn.execute("SELECT live_rows, index_entries, ok FROM shrinkvec_index_check(%s)", (ix,)))
        assert check[0] == 3000 and check[2], (ix, check)
    pages_before = one_row(conn.execute("SELECT pages FROM shrinkvec_index_info('iv')"))[0]
    conn.execute("DELETE FROM docs WHERE id % 2 = 0")
    dirty = conn.execute("SELECT live_rows, index_entries, missing, duplicated, dangling, ok "
                         "FROM shrinkvec_index_check('iv')").fetchone()
    # dead rows' entries stay until VACUUM; they are not dangling (corruption), so the check is ok (issue 33)
    assert dirty == (1500, 3000, 0, 0, 0, True), dirty
    conn.execute("VACUUM docs")
    for ix in ("iv", "ib"):
        row = conn.execute("SELECT live_rows, index_entries, missing, duplicated, dangling, ok "
                           "FROM shrinkvec_index_check(%s)", (ix,)).fetchone()
        assert row == (1500, 1500, 0, 0, 0, True), (ix, row)
    # freed space is reused: inserting as many rows again does not grow the index much
    with conn.cursor().copy("COPY docs (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i in range(3000, 4000):
            copy.write_row((i, data.docs[i]))
    pages_after = one_row(conn.execute("SELECT pages FROM shrinkvec_index_info('iv')"))[0]
    assert pages_after <= pages_before + 4  # at most one new page per list
    assert one_row(conn.execute("SELECT ok FROM shrinkvec_index_check('iv')"))[0]
    # the search sees the new rows and never the deleted ones
    q = data.docs[3500]
    rows = knn(conn, q, "<=>")
    assert rows[0][0] == 3500 and all(r[0] % 2 == 1 or r[0] >= 3000 for r in rows)


def test_planner_uses_index_for_knn_and_answers_are_complete(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs)
    conn.execute("CREATE INDEX ON docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("SET shrinkvec.shortlist = 100")
    q = data.queries[0]
    assert uses_index(conn, "SELECT id FROM docs ORDER BY embedding <=> %s::vector LIMIT 10", (q,))
    # more rows than the first batch: the scan goes on, batch by batch, and returns them all
    conn.execute("SET enable_seqscan = off")  # (for so many rows the planner prefers a sort)
    assert uses_index(conn, "SELECT id FROM docs ORDER BY embedding <=> %s::vector LIMIT 500", (q,))
    got = [r[0] for r in conn.execute("SELECT id FROM docs ORDER BY embedding <=> %s::vector LIMIT 500", (q,))]
    assert len(got) == 500 and len(set(got)) == 500
    want = exact_ids(data.docs, q, "cosine", k=500)
    assert len(set(got) & set(want)) / 500 >= 0.9
    # the first batch is in exact order
    assert got[:10] == [r[0] for r in knn(conn, q, "<=>", k=10)]
    # not for filters or other orders
    assert not uses_index(conn, "SELECT id FROM docs WHERE id < 10", ())
    assert not uses_index(conn, "SELECT id FROM docs ORDER BY embedding <-> %s::vector LIMIT 10", (q,))


def test_max_scan_tuples_ends_a_scan_visibly(conn: psycopg.Connection, data: demo.DemoData) -> None:
    load_docs(conn, data.docs)
    conn.execute("CREATE INDEX ON docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET shrinkvec.max_scan_tuples = 300")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    q = data.queries[1]
    rows = conn.execute("SELECT id FROM docs WHERE id %% 50 = 0 ORDER BY embedding <=> %s::vector LIMIT 20",
                        (q,)).fetchall()
    assert len(rows) < 20 and any("stopped after 300 candidates" in n for n in notices), notices
    conn.execute("RESET shrinkvec.max_scan_tuples")
    rows = conn.execute("SELECT id FROM docs WHERE id %% 50 = 0 ORDER BY embedding <=> %s::vector LIMIT 20",
                        (q,)).fetchall()
    assert len(rows) == 20 and all(r[0] % 50 == 0 for r in rows)


def test_create_index_errors(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE e (v vector, b bit(20000), w vector(3), h bit(8))")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="column does not have dimensions"):
        conn.execute("CREATE INDEX ON e USING shrinkvec (v vector_cosine_ops)")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="more than 16000 bits"):
        conn.execute("CREATE INDEX ON e USING shrinkvec (b)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="bits = 5 exceeds the column's 3 dimensions"):
        conn.execute("CREATE INDEX ON e USING shrinkvec (w vector_l2_ops) WITH (bits = 5)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="option bits applies to vector"):
        conn.execute("CREATE INDEX ON e USING shrinkvec (h) WITH (bits = 4)")
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="bit_hamming_ops"):
        conn.execute("CREATE INDEX ON e USING shrinkvec (w bit_hamming_ops)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="lists"):
        conn.execute("CREATE INDEX ON e USING shrinkvec (w) WITH (lists = -1)")


def test_query_errors_and_empty_tables(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE e (id int, v vector(3), b bit(8))")
    conn.execute("CREATE INDEX ON e USING shrinkvec (v vector_cosine_ops) WITH (lists = 10)")
    conn.execute("CREATE INDEX ON e USING shrinkvec (b)")
    conn.execute("SET enable_seqscan = off")
    assert conn.execute("SELECT id FROM e ORDER BY v <=> '[1,2,3]' LIMIT 5").fetchall() == []
    conn.execute("INSERT INTO e VALUES (1, '[1,2,3]', '10101010'), (2, '[0,0,0]', '11111111'), (3, NULL, NULL)")
    rows = conn.execute("SELECT id FROM e ORDER BY v <=> '[1,2,3]' LIMIT 5").fetchall()
    # as the exact plan: the zero vector's NaN distance after the others, the NULL vector (not indexed:
    # the scan reads it from the table after every entry) last
    assert rows == [(1,), (2,), (3,)]
    assert conn.execute("SELECT id FROM e ORDER BY b <~> '10101011' LIMIT 5").fetchall() == [(1,), (2,), (3,)]
    with pytest.raises(psycopg.errors.DataException, match="different vector dimensions 3 and 2"):
        conn.execute("SELECT id FROM e ORDER BY v <=> '[1,2]' LIMIT 5").fetchall()
    with pytest.raises(psycopg.errors.StringDataLengthMismatch, match="different bit lengths 8 and 9"):
        conn.execute("SELECT id FROM e ORDER BY b <^> '101010101' LIMIT 5").fetchall()
    with pytest.raises(psycopg.errors.DataException, match="expected 3 dimensions, not 2"):
        conn.execute("INSERT INTO e (v) VALUES ('[1,2]'::vector)")
    assert one_row(conn.execute("SELECT ok FROM shrinkvec_index_check('e_v_idx')"))[0]


def test_unlogged_table_and_reindex(conn: psycopg.Connection, data: demo.DemoData) -> None:
    conn.execute("CREATE UNLOGGED TABLE u (id int, embedding vector(384))")
    conn.execute("CREATE INDEX ui ON u USING shrinkvec (embedding vector_cosine_ops)")
    with conn.cursor().copy("COPY u (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i in range(500):
            copy.write_row((i, data.docs[i]))
    assert one_row(conn.execute("SELECT ok FROM shrinkvec_index_check('ui')"))[0]
    conn.execute("REINDEX INDEX ui")
    assert conn.execute("SELECT entries, build_rows FROM shrinkvec_index_info('ui')").fetchone() == (500, 500)
    rows = knn(conn, data.docs[7], "<=>", table="u")
    assert rows[0][0] == 7


def test_introspection_needs_select_on_the_table(conn: psycopg.Connection, dsn: str) -> None:
    conn.execute("CREATE TABLE s (v vector(3))")
    conn.execute("CREATE INDEX si ON s USING shrinkvec (v)")
    conn.execute("DROP ROLE IF EXISTS sv_nobody")
    conn.execute("CREATE ROLE sv_nobody")
    try:
        conn.execute("SET ROLE sv_nobody")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table s"):
            conn.execute("SELECT * FROM shrinkvec_index_info('si')")
        conn.execute("RESET ROLE")
        with pytest.raises(psycopg.errors.WrongObjectType, match="is not a shrinkvec index"):
            conn.execute("CREATE INDEX sb ON s USING btree ((v::text))")
            conn.execute("SELECT * FROM shrinkvec_index_info('sb')")
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP ROLE sv_nobody")


def flat_scores(docs: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The flat cosine index's asymmetric score of every row in float64 (index/svindex.h), with the query
    quantized as the scan kernel's tables hold it (codes.fs_quantize: w ~ delta v): 1 - <q, c> - alpha
    delta (2 sum_{s_i > 0} v_i - sum v), in the index's rotated coordinates (codes.rotate): c the mean of the
    rotated normalised rows, s the signs of x - c and alpha = mean |x - c|."""
    x = codes.rotate((docs / np.linalg.norm(docs, axis=1, keepdims=True)).astype(np.float32))
    c = (x.astype(np.float64).sum(axis=0) / len(x)).astype(np.float32)
    r = x - c
    alpha = np.abs(r.astype(np.float64)).mean(axis=1)
    qr = codes.rotate((q / np.linalg.norm(q)).astype(np.float32))
    fq = codes.fs_quantize(qr)
    v = fq.v.astype(np.float64)
    ws = float(fq.delta) * (2 * ((r > 0) @ v) - fq.vsum)
    return np.asarray(1 - qr.astype(np.float64) @ c.astype(np.float64) - alpha * ws, dtype=np.float64)


@pytest.mark.parametrize("level", ["scalar", "avx2", "avx512"])
def test_vector_shortlist_equals_the_quantized_scoring(conn: psycopg.Connection, data: demo.DemoData, level: str) -> None:
    """The SIMD scan's shortlist is the top `shortlist` by the asymmetric score of the quantized query
    (numpy), bar float ties, at every kernel level: its threshold test never drops an entry that makes it."""
    load_docs(conn, data.docs)
    conn.execute("CREATE INDEX ON docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute(sql.SQL("SET shrinkvec.kernels = {}").format(sql.Literal(level)))
    n = 50
    conn.execute(f"SET shrinkvec.shortlist = {n}")
    conn.execute("SET shrinkvec.order_margin = 0")  # the first batch goes out whole: the shortlist itself
    for q in data.queries[:20]:
        got = {r[0] for r in knn(conn, q, "<=>", k=n)}
        score = flat_scores(data.docs, q)
        order = np.argsort(score, kind="stable")
        cut = score[order[n - 1]]
        sure = {int(i) for i in order[:n] if score[i] < cut - 1e-5}  # clear members, away from float ties
        assert sure <= got
        assert all(score[i] <= cut + 1e-5 for i in got)


def test_long_codes_use_the_row_major_layout(conn: psycopg.Connection) -> None:
    """Codes too long for a block of 32 on a page (here 2,000 bits) use lanes = 1 and scan exactly the same."""
    rng = np.random.default_rng(5)
    docs = rng.standard_normal((300, 2000)).astype(np.float32)
    load_docs(conn, docs)
    conn.execute("CREATE INDEX ix ON docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("CREATE INDEX ib ON docs USING shrinkvec (bits bit_hamming_ops)")
    assert one_row(conn.execute("SELECT entries_per_page FROM shrinkvec_index_info('ix')"))[0] < 32
    conn.execute("SET shrinkvec.shortlist = 300")
    q = docs[7] + 0.1 * rng.standard_normal(2000).astype(np.float32)
    rows = knn(conn, q, "<=>", k=10)
    assert [r[0] for r in rows] == exact_ids(docs, q, "cosine")
    qb = codes.binarize(q)
    q_text = codes.bits_to_str(qb, 2000)
    expected = np.sort((np.unpackbits(codes.binarize_batch(docs), axis=1) != np.unpackbits(qb)).sum(axis=1))[:40]
    got = conn.execute("SELECT bits <~> %s::bit(2000) FROM docs ORDER BY bits <~> %s::bit(2000) LIMIT 40",
                       (q_text, q_text)).fetchall()
    assert [int(r[0]) for r in got] == expected.tolist()


@pytest.mark.parametrize("version", [2, 3])
def test_old_index_format_is_refused_with_a_reindex_hint(conn: psycopg.Connection, data: demo.DemoData,
                                                         version: int) -> None:
    """An index whose meta page says format version 2 (before the rotation) raises an error naming the
    versions, with a REINDEX hint. Version 3 (0.4.0, before re-partitioning) reads as version 4 at
    generation 0: it answers, takes inserts and re-partitions without a REINDEX.

    The page is rewritten on disk in a scratch database that then serves as the file-level template of
    another (CREATE DATABASE ... STRATEGY FILE_COPY copies the files, so the copy reads the changed page)."""
    datadir = Path(one_row(conn.execute("SHOW data_directory"))[0])
    if not os.access(datadir, os.W_OK):
        pytest.skip("the server's data directory is not writable from the tests")
    info = conn.info
    src, dst = f"svold_src_{os.getpid()}", f"svold_dst_{os.getpid()}"

    def connect(db: str) -> psycopg.Connection:
        return psycopg.connect(host=info.host, port=info.port, user=info.user, dbname=db,
                               password=info.password or None, autocommit=True)

    for db in (src, dst):
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(src), sql.Identifier(info.dbname)))
    try:
        with connect(src) as c:
            register_vector(c)
            load_docs(c, data.docs[:200])
            c.execute("CREATE INDEX ix ON docs USING shrinkvec (embedding vector_cosine_ops)")
            path = datadir / one_row(c.execute("SELECT pg_relation_filepath('ix')"))[0]
            c.execute("CHECKPOINT")
        with open(path, "r+b") as f:  # meta page: header (24 bytes), then magic, version
            f.seek(28)
            assert int.from_bytes(f.read(4), "little") == 4
            f.seek(28)
            f.write(version.to_bytes(4, "little"))  # 2: the format before the rotation
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(dst), sql.Identifier(src)))
        with connect(dst) as c:
            register_vector(c)
            c.execute("SET ignore_checksum_failure = on")  # the page changed under its checksum
            c.execute("SET enable_seqscan = off")
            if version == 3:
                assert len(knn(c, data.queries[0], "<=>")) == K
                c.execute("INSERT INTO docs (id, embedding) SELECT id + 1000, embedding FROM docs")
                c.execute("SELECT shrinkvec_index_repartition('ix')")
                assert one_row(c.execute("SELECT generation FROM shrinkvec_index_info('ix')"))[0] == 1
                assert one_row(c.execute("SELECT ok FROM shrinkvec_index_check('ix')"))[0]
                return
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                               match="format version 2, this shrinkvec reads versions 3 to 4") as err:
                knn(c, data.queries[0], "<=>")
            assert "REINDEX INDEX public.ix" in (err.value.diag.message_hint or "")
            c.execute("REINDEX INDEX ix")
            assert len(knn(c, data.queries[0], "<=>")) == K
    finally:
        for db in (dst, src):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def test_default_lists_follow_the_row_count(conn: psycopg.Connection) -> None:
    """Without WITH (lists = ...), a vector index is flat up to 20,000 rows and has round(sqrt(rows)) lists
    above; a bit index stays flat (exact Hamming order); shrinkvec.probes = 0 (the default) visits a fifth."""
    rng = np.random.default_rng(3)
    load_docs(conn, rng.standard_normal((22_500, 16)).astype(np.float32))
    conn.execute("CREATE INDEX iv ON docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("CREATE INDEX ib ON docs USING shrinkvec (bits)")
    assert one_row(conn.execute("SELECT lists FROM shrinkvec_index_info('iv')"))[0] == 150
    assert one_row(conn.execute("SELECT lists FROM shrinkvec_index_info('ib')"))[0] == 1
    assert one_row(conn.execute("SHOW shrinkvec.probes"))[0] == "0"
    conn.execute("DELETE FROM docs WHERE id >= 20000")
    conn.execute("REINDEX INDEX iv")
    assert one_row(conn.execute("SELECT lists FROM shrinkvec_index_info('iv')"))[0] == 1


def test_truncate_of_an_ivf_index_says_what_to_do(conn: psycopg.Connection, data: demo.DemoData) -> None:
    """TRUNCATE rebuilds an index on an empty table: no rows to learn centroids from. It says so (a NOTICE
    saying when VACUUM re-partitions it), scans stay complete and correct meanwhile, and VACUUM brings the
    lists back once the table has rows again (0.4.0 needed a REINDEX)."""
    load_docs(conn, data.docs[:2000])
    conn.execute("CREATE INDEX iv ON docs USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 20)")
    notes: list[tuple[str, str, str]] = []
    conn.add_notice_handler(lambda d: notes.append((d.severity or "", d.message_primary or "", d.message_detail or "")))
    conn.execute("TRUNCATE docs")
    assert any(sev == "NOTICE" and 'has 1 list instead of 20: the table has 0 rows' in msg
               and "re-partitions it into 20 lists" in detail for sev, msg, detail in notes), notes
    with conn.cursor().copy("COPY docs (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i, v in enumerate(data.docs[:2000]):
            copy.write_row((i, v))
    conn.execute("SET enable_seqscan = off")
    q = data.docs[77]
    assert knn(conn, q, "<=>")[0][0] == 77
    assert conn.execute("SELECT lists FROM shrinkvec_index_info('iv')").fetchone() == (1,)
    conn.execute("VACUUM docs")
    assert conn.execute("SELECT lists, generation FROM shrinkvec_index_info('iv')").fetchone() == (20, 1)
    assert knn(conn, q, "<=>")[0][0] == 77


def test_a_type_named_vector_elsewhere_is_not_taken_for_pgvectors(conn: psycopg.Connection) -> None:
    """The opclass says what it indexes (support function 2): a domain over bit called `vector` in
    another schema is indexed as bits (the type's name used to decide, and read the bits as floats)."""
    conn.execute("CREATE SCHEMA other")
    conn.execute("CREATE DOMAIN other.vector AS bit(16)")
    conn.execute("CREATE TABLE dom (id int PRIMARY KEY, b other.vector)")
    rng = np.random.default_rng(3)
    rows = [(i, "".join(rng.choice(["0", "1"], 16))) for i in range(300)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO dom VALUES (%s, %s::bit(16))", rows)
    conn.execute("CREATE INDEX dom_b ON dom USING shrinkvec (b bit_hamming_ops)")
    assert conn.execute("SELECT element FROM shrinkvec_index_info('dom_b')").fetchone() == ("bit",)
    q = rows[7][1]
    conn.execute("INSERT INTO dom VALUES (1000, %s::bit(16))", (q,))  # through the index's insert path too
    rows.append((1000, q))
    conn.execute("SET enable_seqscan = off")
    got = conn.execute("SELECT id, b <~> %s::bit(16) FROM dom ORDER BY b <~> %s::bit(16) LIMIT 20", (q, q)).fetchall()
    want = sorted(((sum(a != b for a, b in zip(bits, q)), i) for i, bits in rows))[:20]
    assert [(i, float(d)) for d, i in want] == [(i, float(d)) for i, d in got]


def test_a_build_beyond_maintenance_work_mem_is_refused(conn: psycopg.Connection, data: demo.DemoData) -> None:
    """Centroids and one page per list stay in memory during a build: with more lists than
    maintenance_work_mem holds, the build fails up front with a clear error (54000), not by growing."""
    conn.execute("CREATE TABLE mem (id int PRIMARY KEY, v vector(384))")
    with conn.cursor().copy("COPY mem (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i, x in enumerate(data.docs[:2000]):
            copy.write_row((i, x))
    conn.execute("SET maintenance_work_mem = '1MB'")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded,
                       match=r'index "mem_v" with 200 lists needs \d+ kB for its centroids and list pages, '
                             r"more than maintenance_work_mem \(1024 kB\)"):
        conn.execute("CREATE INDEX mem_v ON mem USING shrinkvec (v vector_cosine_ops) WITH (lists = 200)")
    conn.execute("CREATE INDEX mem_v ON mem USING shrinkvec (v vector_cosine_ops) WITH (lists = 50)")
    conn.execute("RESET maintenance_work_mem")
    assert conn.execute("SELECT lists FROM shrinkvec_index_info('mem_v')").fetchone() == (50,)
