"""The index under faults: kill -9 of the whole server during inserts, and writers with readers.

The crash test runs its own embedded server in a temporary data dir (it kills it), so it is skipped
when the tests run against another server (SHRINKVEC_TEST_DSN).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from shrinkvec import demo

INDEXES = {
    "crash_flat": "USING shrinkvec (embedding vector_cosine_ops)",
    "crash_ivf": "USING shrinkvec (embedding vector_l2_ops) WITH (lists = 8)",
    "crash_bits": "USING shrinkvec (bits bit_hamming_ops)",
}


def create_schema(conn: psycopg.Connection, table: str, docs: np.ndarray) -> None:
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, embedding vector(384), "
                 "bits bit(384) GENERATED ALWAYS AS (binarize(embedding)::bit(384)) STORED)")
    with conn.cursor().copy(f"COPY {table} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i, v in enumerate(docs):
            copy.write_row((i, v))


def kill_server(pid: int) -> None:
    """SIGKILL the postmaster and every backend at once, as a power cut would."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


@pytest.mark.skipif(bool(os.environ.get("SHRINKVEC_TEST_DSN")), reason="kills its own embedded server")
@pytest.mark.parametrize("round_", range(2))
def test_kill_9_during_inserts_then_recovery(tmp_path: Path, round_: int) -> None:
    from shrinkvec import server

    data = demo.load_data()
    data_dir = tmp_path / "pgdata"
    info = server.start(data_dir)
    try:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION shrinkvec CASCADE")
            register_vector(conn)
            create_schema(conn, "crash", data.docs[:500])
            for name, how in INDEXES.items():
                conn.execute(f"CREATE INDEX {name} ON crash {how}")

        acked: list[int] = []
        failure: list[BaseException] = []

        def writer() -> None:
            try:
                with psycopg.connect(info.dsn(), autocommit=True) as c:
                    register_vector(c)
                    for start in range(500, 1_000_000, 10):  # until the crash
                        with c.transaction():
                            for i in range(start, start + 10):
                                c.execute("INSERT INTO crash (id, embedding) VALUES (%s, %s)", (i, data.docs[i % 4000]))
                        acked.extend(range(start, start + 10))
            except psycopg.Error as exc:  # the crash ends the writer
                failure.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.5 + random.Random(round_).random())
        kill_server(info.pid)
        t.join(timeout=30)
        assert failure, "the writer should have lost its connection"
        assert len(acked) > 0

        info = server.start(data_dir)  # crash recovery replays the WAL
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            ids = {r[0] for r in conn.execute("SELECT id FROM crash").fetchall()}
            assert set(acked) <= ids  # every committed row survived
            for name in INDEXES:
                row = conn.execute("SELECT live_rows, missing, duplicated, dangling, ok "
                                   "FROM shrinkvec_index_check(%s)", (name,)).fetchone()
                assert row[0] == len(ids) and row[1:] == (0, 0, 0, True), (name, row)
            # the recovered index answers: each row's own vector finds it first
            conn.execute("SET enable_seqscan = off")
            for i in acked[-5:]:
                top = conn.execute("SELECT embedding <=> %s FROM crash ORDER BY embedding <=> %s LIMIT 1",
                                   (data.docs[i % 4000], data.docs[i % 4000])).fetchone()
                assert top[0] < 1e-6
            # and keeps working after recovery
            conn.execute("INSERT INTO crash (id, embedding) VALUES (%s, %s)", (10_000_000, data.docs[3999]))
            conn.execute("VACUUM crash")
            for name in INDEXES:
                assert conn.execute("SELECT ok FROM shrinkvec_index_check(%s)", (name,)).fetchone()[0]
    finally:
        server.stop(data_dir)


def test_writers_and_readers_together(conn: psycopg.Connection, dsn: str) -> None:
    data = demo.load_data()
    create_schema(conn, "busy", data.docs[:1000])
    conn.execute("CREATE INDEX busy_v ON busy USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 4)")
    conn.execute("CREATE INDEX busy_b ON busy USING shrinkvec (bits)")
    stop = time.monotonic() + 4.0
    errors: list[BaseException] = []
    inserted: list[list[int]] = [[], []]
    deleted: list[list[int]] = [[], []]
    queries = [0]

    def writer(w: int) -> None:
        rng = random.Random(w)
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                register_vector(c)
                next_id = 10000 * (w + 1)
                while time.monotonic() < stop:
                    op = rng.random()
                    if op < 0.6:
                        c.execute("INSERT INTO busy (id, embedding) VALUES (%s, %s)",
                                  (next_id, data.docs[rng.randrange(4000)]))
                        inserted[w].append(next_id)
                        next_id += 1
                    elif op < 0.8:
                        victim = rng.randrange(w * 500, (w + 1) * 500)  # writers own disjoint id ranges
                        if c.execute("DELETE FROM busy WHERE id = %s", (victim,)).rowcount:
                            deleted[w].append(victim)
                    else:
                        c.execute("UPDATE busy SET embedding = %s WHERE id = %s",
                                  (data.docs[rng.randrange(4000)], rng.randrange(w * 500, (w + 1) * 500)))
        except BaseException as exc:
            errors.append(exc)

    def reader(r: int) -> None:
        rng = random.Random(100 + r)
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                register_vector(c)
                c.execute("SET enable_seqscan = off")
                while time.monotonic() < stop:
                    q = data.queries[rng.randrange(200)]
                    rows = c.execute("SELECT id, embedding <=> %s FROM busy ORDER BY embedding <=> %s LIMIT 10",
                                     (q, q)).fetchall()
                    assert len(rows) == 10 and len({r[0] for r in rows}) == 10
                    assert [r[1] for r in rows] == sorted(r[1] for r in rows)
                    queries[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert queries[0] > 10
    conn.execute("VACUUM busy")
    expected = 1000 + sum(map(len, inserted)) - sum(map(len, deleted))
    assert conn.execute("SELECT count(*) FROM busy").fetchone()[0] == expected
    for name in ("busy_v", "busy_b"):
        row = conn.execute("SELECT live_rows, index_entries, ok FROM shrinkvec_index_check(%s)", (name,)).fetchone()
        assert row == (expected, expected, True), (name, row)
