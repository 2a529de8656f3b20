"""Issue 29's batch policy: how many passes over the codes a scan makes and how many heap rows it reads, from
the DEBUG1 line each scan writes at its end ("N candidates, M heap rows fetched; codes .. ms, refine .. ms,
heap .. ms, passes P, scored S").  Real PostgreSQL, the demo docstrings, answers checked against numpy."""

from __future__ import annotations

import re

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from shrinkvec import demo

LINE = re.compile(r"(\d+) candidates, (\d+) heap rows fetched; codes [\d.]+ ms, refine [\d.]+ ms, heap [\d.]+ ms, "
                  r"passes (\d+), scored (\d+)")


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    return demo.load_data()


def fill(conn: psycopg.Connection, docs: np.ndarray, options: str) -> None:
    register_vector(conn)
    conn.execute("CREATE TABLE d (id int PRIMARY KEY, v vector(384))")
    with conn.cursor().copy("COPY d (id, v) FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["int4", "vector"])
        for i, v in enumerate(docs):
            cp.write_row((i, v))
    conn.execute(f"CREATE INDEX d_v ON d USING shrinkvec (v vector_cosine_ops) WITH ({options})")
    conn.execute("ANALYZE d")
    conn.execute("SET enable_seqscan = off")


def scans(conn: psycopg.Connection, queries: np.ndarray, limit: int) -> tuple[list[list[int]], list[tuple[int, ...]]]:
    """The ids each query returns and its scan's (candidates, heap rows, passes, scored)."""
    notes: list[str] = []

    def keep(d: psycopg.errors.Diagnostic) -> None:
        notes.append(d.message_primary or "")

    conn.add_notice_handler(keep)
    conn.execute("SET client_min_messages = debug1")
    try:
        ids = [[r[0] for r in conn.execute(f"SELECT id FROM d ORDER BY v <=> %s LIMIT {limit}", (q,))]
               for q in queries]
    finally:
        conn.execute("RESET client_min_messages")
        conn.remove_notice_handler(keep)
    counts = [tuple(int(g) for g in m.groups()) for m in (LINE.search(n) for n in notes) if m]
    assert len(counts) == len(queries), notes[:3]
    return ids, counts


def exact(docs: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    x = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    return [int(i) for i in np.argsort(-(x @ (q / np.linalg.norm(q))), kind="stable")[:k]]


def test_a_limit_past_a_quarter_of_a_small_shortlist_needs_one_pass(conn: psycopg.Connection,
                                                                    data: demo.DemoData) -> None:
    """Shortlist 10, LIMIT 10 (flat): the first pass keeps 128 candidates but reads the rows of 10; the
    executor wants more than the 2 that go out at once, and the scan reads the kept candidates' rows
    instead of passing over the codes again (0.4.0 made 2 passes here and was slower than shortlist 50)."""
    fill(conn, data.docs, "lists = 1")
    conn.execute("SET shrinkvec.shortlist = 10")
    q = data.queries[:30]
    ids, counts = scans(conn, q, 10)
    assert all(c[2] == 1 for c in counts), counts
    assert all(c[0] == 128 for c in counts), counts  # the first pass's candidates
    assert all(10 <= c[1] <= 128 for c in counts), counts
    hits = np.mean([len(set(g) & set(exact(data.docs, v, 10))) / 10 for g, v in zip(ids, q, strict=True)])
    assert hits >= 0.9, hits
    # a shortlist of 50 reads 50 rows in one pass: the small one reads about as many, in one pass too
    conn.execute("SET shrinkvec.shortlist = 50")
    _, wide = scans(conn, q, 10)
    assert all(c[2] == 1 and c[1] == 50 for c in wide), wide
    assert np.mean([c[1] for c in counts]) <= 1.25 * 50


def test_rows_past_the_first_pass_come_from_bigger_passes(conn: psycopg.Connection, data: demo.DemoData) -> None:
    """LIMIT 300 with shortlist 50: later passes take 4x the candidates of the one before (128, 512, 2048, ..),
    their rows read as the pool needs them; the answers are nearly those of the exact plan."""
    fill(conn, data.docs, "lists = 1")
    conn.execute("SET shrinkvec.shortlist = 50")
    q = data.queries[:10]
    ids, counts = scans(conn, q, 300)
    for c in counts:
        # candidates of the passes: 128 + 512 + 2048 + ... (each pass takes only entries after the last)
        sizes = [128 * 4**i for i in range(c[2])]
        assert c[0] <= sum(sizes) and c[0] > sum(sizes[:-1]), c
        assert c[1] <= c[0] and c[1] >= 300
    hits = np.mean([len(set(g) & set(exact(data.docs, v, 300))) / 300 for g, v in zip(ids, q, strict=True)])
    assert hits >= 0.9, hits
    assert all(len(g) == 300 for g in ids)


def test_refine_codes_read_a_few_rows_in_one_pass(conn: psycopg.Connection, data: demo.DemoData) -> None:
    """Refine codes, LIMIT 10 at the index's defaults: one pass of the calibrated shortlist (no minimum of
    128: the refine bounds choose the rows), fewer heap rows than candidates, recall >= 0.95 against numpy."""
    fill(conn, data.docs, "lists = 1, refine = 4")
    shortlist = conn.execute("SELECT shortlist FROM shrinkvec_index_info('d_v')").fetchone()
    assert shortlist is not None
    q = data.queries[:30]
    ids, counts = scans(conn, q, 10)
    assert all(c[2] == 1 and c[0] == shortlist[0] and c[1] < c[0] for c in counts), (shortlist, counts)
    assert all(c[3] >= c[0] for c in counts)  # every candidate was scored
    hits = np.mean([len(set(g) & set(exact(data.docs, v, 10))) / 10 for g, v in zip(ids, q, strict=True)])
    assert hits >= 0.95, hits


def test_a_toasted_vector_column_gets_a_notice_at_build(conn: psycopg.Connection) -> None:
    """600 dims (2,408 bytes a value, past TOAST_TUPLE_THRESHOLD) under pgvector's default storage: CREATE
    INDEX says the rerank pays a TOAST lookup a row and names the ALTER TABLE that avoids it; with STORAGE
    PLAIN, at 384 dims, or on an expression there is no notice."""
    rng = np.random.default_rng(29)
    register_vector(conn)
    conn.execute("CREATE TABLE wide (id int PRIMARY KEY, v vector(600), w vector(384))")
    with conn.cursor().copy("COPY wide (id, v, w) FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["int4", "vector", "vector"])
        for i in range(50):
            cp.write_row((i, rng.standard_normal(600).astype(np.float32), rng.standard_normal(384).astype(np.float32)))
    notes: list[str] = []

    def keep(d: psycopg.errors.Diagnostic) -> None:
        notes.append(f"{d.message_primary} | {d.message_hint}")

    conn.add_notice_handler(keep)

    def build(sql_text: str) -> list[str]:
        notes.clear()
        conn.execute(sql_text)
        return [n for n in notes if "TOAST" in n]

    toast = build("CREATE INDEX i1 ON wide USING shrinkvec (v vector_cosine_ops)")
    assert len(toast) == 1 and '"v"' in toast[0] and "600-dimension" in toast[0], notes
    assert "ALTER TABLE public.wide ALTER COLUMN v SET STORAGE PLAIN" in toast[0]
    assert build("CREATE INDEX i2 ON wide USING shrinkvec (w vector_cosine_ops)") == []
    assert build("CREATE INDEX i3 ON wide USING shrinkvec ((subvector(v, 1, 600)::vector(600)) vector_cosine_ops)") == []
    conn.execute("ALTER TABLE wide ALTER COLUMN v SET STORAGE PLAIN")
    assert build("CREATE INDEX i4 ON wide USING shrinkvec (v vector_cosine_ops)") == []
    conn.remove_notice_handler(keep)


def test_tables_the_tools_create_keep_wide_vectors_in_the_row(conn: psycopg.Connection) -> None:
    """ddl.create_table: vector(768) gets STORAGE PLAIN (no TOAST lookup per reranked row), vector(384) keeps
    pgvector's default (its values fit the row anyway)."""
    from shrinkvec.profile import Profile
    from shrinkvec.sql import ddl

    for dims, storage in ((768, "p"), (384, None)):
        table = f"t{dims}"
        p = ddl.located(conn, Profile(name=f"public.{table}.embedding", schema="public", table=table,
                                      vector_column="embedding", dims=dims, codes=()))
        ddl.create_table(conn, p)
        got = conn.execute("SELECT attstorage, (SELECT typstorage FROM pg_type WHERE oid = atttypid) FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attname = 'embedding'", (table,)).fetchone()
        assert got is not None
        assert got[0] == (storage or got[1]), (dims, got)


def test_settings_in_the_index_are_every_scans_defaults(conn: psycopg.Connection, data: demo.DemoData) -> None:
    """WITH (shortlist = 30) (or ALTER INDEX ... SET) is the shortlist of every scan that sets none: a LIMIT 10
    reads 30 rows; a session SET wins over it, RESET gives it back; ALTER INDEX changes it for scans to come;
    probes = 2 on an IVF index reads two lists' codes."""
    docs = data.docs[:3000]
    fill(conn, docs, "lists = 1, shortlist = 30")
    q = data.queries[:5]
    # the first batch reads the shortlist's rows; a scan not yet sure of its 10th reads as many again
    ids, counts = scans(conn, q, 10)
    assert min(c[1] for c in counts) == 30 and all(c[1] % 30 == 0 for c in counts), counts
    assert all(len(set(i) & set(exact(docs, v, 10))) >= 9 for i, v in zip(ids, q, strict=True))
    conn.execute("SET shrinkvec.shortlist = 60")
    counts = scans(conn, q, 10)[1]
    assert min(c[1] for c in counts) == 60 and all(c[1] % 60 == 0 for c in counts), counts
    conn.execute("RESET shrinkvec.shortlist")
    conn.execute("ALTER INDEX d_v SET (shortlist = 20)")
    counts = scans(conn, q, 10)[1]
    assert min(c[1] for c in counts) == 20 and all(c[1] % 20 == 0 for c in counts), counts
    assert conn.execute("SELECT scan_shortlist, scan_probes, scan_rerank FROM shrinkvec_index_info('d_v')"
                        ).fetchone() == (20, 1, 200)
    # rerank: the index's unless the session set shrinkvec.rerank, even to its default value
    conn.execute("ALTER INDEX d_v SET (rerank = 7)")
    rerank = "SELECT scan_rerank FROM shrinkvec_index_info('d_v')"
    assert conn.execute(rerank).fetchone() == (7,)
    conn.execute("SET shrinkvec.rerank = 200")
    assert conn.execute(rerank).fetchone() == (200,)
    conn.execute("RESET shrinkvec.rerank")
    assert conn.execute(rerank).fetchone() == (7,)
    with conn.transaction():  # a SET LOCAL ends with its transaction
        conn.execute("SET LOCAL shrinkvec.rerank = 9")
        assert conn.execute(rerank).fetchone() == (9,)
    assert conn.execute(rerank).fetchone() == (7,)
    conn.execute("DROP INDEX d_v")
    conn.execute("CREATE INDEX d_v ON d USING shrinkvec (v vector_cosine_ops) WITH (lists = 30, probes = 2)")
    list_of: dict[int, int] = dict(conn.execute(
        "SELECT d.id, e.list FROM shrinkvec_index_entries('d_v') e JOIN d ON d.ctid = e.tid"))

    def lists_used() -> list[int]:
        return [len({list_of[i] for i in ids}) for ids in scans(conn, q, 10)[0]]

    assert max(lists_used()) <= 2  # the index's probes: two lists' entries
    conn.execute("SET shrinkvec.probes = 30")
    assert max(lists_used()) > 2
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="shortlist"):
        conn.execute("ALTER INDEX d_v SET (shortlist = -3)")
