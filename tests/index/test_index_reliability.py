"""The index under faults: kill -9 of the whole server during inserts, an index build, a VACUUM and a
re-partition;
WAL replay on a streaming standby; 4 writers with 4 readers; the scan's memory bound.

The crash and standby tests run their own embedded servers in temporary data dirs (they kill them),
so they are skipped when the tests run against another server (SHRINKVEC_TEST_DSN).

Soak: SHRINKVEC_CRASH_ROUNDS=N repeats each crash test N times (default 2 for inserts, 1 for the
build and VACUUM), SHRINKVEC_SOAK_SECONDS=S runs the writers and readers for S seconds (default 5).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from conftest import one_row, start_standby
from shrinkvec import demo
from shrinkvec.server import ServerInfo

INDEXES = {
    "crash_flat": "USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)",
    "crash_ivf": "USING shrinkvec (embedding vector_l2_ops) WITH (lists = 8)",
    "crash_bits": "USING shrinkvec (bits bit_hamming_ops)",
}
ROUNDS = int(os.environ.get("SHRINKVEC_CRASH_ROUNDS", "0"))
SOAK_SECONDS = float(os.environ.get("SHRINKVEC_SOAK_SECONDS", "5"))
own_server_only = pytest.mark.skipif(bool(os.environ.get("SHRINKVEC_TEST_DSN")), reason="kills its own embedded server")


def create_schema(conn: psycopg.Connection, table: str, docs: np.ndarray) -> None:
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, embedding vector({docs.shape[1]}), "
                 f"bits bit({docs.shape[1]}) GENERATED ALWAYS AS (binarize(embedding)::bit({docs.shape[1]})) STORED)")
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


@contextmanager
def own_server(data_dir: Path) -> Iterator[ServerInfo]:
    """An embedded server in data_dir with the extension in its postgres database, stopped at the end."""
    from shrinkvec import server

    info = server.start(data_dir)
    try:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        yield info
    finally:
        server.stop(data_dir)


def check(conn: psycopg.Connection, name: str) -> tuple[int, int, int, int, int, bool]:
    live, entries, missing, duplicated, dangling, ok = one_row(conn.execute(
        "SELECT live_rows, index_entries, missing, duplicated, dangling, ok FROM shrinkvec_index_check(%s)", (name,)))
    return int(live), int(entries), int(missing), int(duplicated), int(dangling), bool(ok)


def assert_recovered(conn: psycopg.Connection, table: str, names: list[str]) -> None:
    """After a crash: no live row is missing from an index nor there twice. Entries of rows whose
    transaction died with the server are allowed (the heap hides them) until VACUUM, which must then
    leave every index exactly equal to the heap. INDEX_CLEANUP ON: with dead rows on under 2% of the
    pages, VACUUM would otherwise skip the indexes (PostgreSQL 14+) and leave those entries."""
    for name in names:
        live, _, missing, duplicated, _, _ = check(conn, name)
        assert (missing, duplicated) == (0, 0), (name, check(conn, name))
    conn.execute(f"VACUUM (INDEX_CLEANUP ON) {table}")
    for name in names:
        row = check(conn, name)
        assert row[2:] == (0, 0, 0, True) and row[0] == row[1], (name, row)


def assert_answers_exactly(conn: psycopg.Connection, table: str, queries: np.ndarray) -> None:
    """The index's top 10 (a shortlist as large as the table) equals the exact scan's."""
    for q in queries:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET shrinkvec.shortlist = 100000")
        conn.execute("SET work_mem = '1GB'")
        got = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY embedding <=> %s LIMIT 10", (q,))]
        conn.execute("RESET enable_seqscan")
        conn.execute("SET enable_indexscan = off")
        exact = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY embedding <=> %s LIMIT 10", (q,))]
        conn.execute("RESET enable_indexscan")
        assert got == exact


def wait_until_running(dsn: str, prefix: str, timeout: float = 30) -> None:
    """Wait until some backend runs a statement starting with prefix."""
    with psycopg.connect(dsn, autocommit=True) as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if one_row(c.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
                         (prefix + "%",)))[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"no backend ran {prefix}")


def kill_during(info: ServerInfo, data_dir: Path, statements: list[str], prefix: str, delay: float) -> ServerInfo:
    """Run statements on one connection; once the last one (starting with prefix) runs, wait delay
    seconds and kill the server. Asserts they did not finish; returns the restarted server."""
    from shrinkvec import server

    failure: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(info.dsn(), autocommit=True) as c:
                for stmt in statements:
                    c.execute(stmt)
        except psycopg.Error as exc:
            failure.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_until_running(info.dsn(), prefix)
    time.sleep(delay)
    kill_server(info.pid)
    t.join(timeout=60)
    assert failure, f"{prefix} should have been killed before it finished"
    return server.start(data_dir)  # crash recovery replays the WAL


@pytest.mark.slow
@own_server_only
@pytest.mark.parametrize("round_", range(ROUNDS or 2))
def test_kill_9_during_inserts_then_recovery(server_root: Path, round_: int) -> None:
    from shrinkvec import server

    data = demo.load_data()
    data_dir = server_root / "pgdata"
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
            assert_recovered(conn, "crash", list(INDEXES))
            # the recovered index answers: each row's own vector finds it first
            conn.execute("SET enable_seqscan = off")
            for i in acked[-5:]:
                top = one_row(conn.execute("SELECT embedding <=> %s FROM crash ORDER BY embedding <=> %s LIMIT 1",
                                   (data.docs[i % 4000], data.docs[i % 4000])))
                assert top[0] < 1e-6
            # and keeps working after recovery
            conn.execute("INSERT INTO crash (id, embedding) VALUES (%s, %s)", (10_000_000, data.docs[3999]))
            conn.execute("VACUUM (INDEX_CLEANUP ON) crash")
            for name in INDEXES:
                assert one_row(conn.execute("SELECT ok FROM shrinkvec_index_check(%s)", (name,)))[0]
    finally:
        server.stop(data_dir)


def synthetic(n: int, dims: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)


@pytest.mark.slow
@own_server_only
@pytest.mark.parametrize("concurrently", [False, True], ids=["plain", "concurrently"])
@pytest.mark.parametrize("round_", range(ROUNDS or 1))
def test_kill_9_during_index_build(server_root: Path, concurrently: bool, round_: int) -> None:
    """A build killed midway leaves no index (plain: the catalog rolls back) or an invalid one
    (CONCURRENTLY) that REINDEX rebuilds; never a valid index with wrong contents."""
    data_dir = server_root / "pgdata"
    docs = synthetic(30_000, 384, round_)
    with own_server(data_dir) as info:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            create_schema(conn, "b", docs)
        how = "CONCURRENTLY " if concurrently else ""
        stmt = f"CREATE INDEX {how}b_ivf ON b USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 600)"
        info = kill_during(info, data_dir, [stmt], "CREATE INDEX", random.Random(round_).uniform(0.02, 0.25))
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            state = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('b_ivf')").fetchone()
            if concurrently:
                assert state is not None and state[0] is False, state  # left behind, and marked invalid
                conn.execute("REINDEX INDEX b_ivf")
            else:
                assert state is None, state  # rolled back with its transaction
                conn.execute(stmt)
            assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'b_ivf'::regclass").fetchone() == (True,)
            row = check(conn, "b_ivf")
            assert row == (30_000, 30_000, 0, 0, 0, True), row
            conn.execute("SET shrinkvec.probes = 600")
            assert_answers_exactly(conn, "b", docs[:3] + 0.01)


@pytest.mark.slow
@own_server_only
@pytest.mark.parametrize("round_", range(ROUNDS or 1))
def test_kill_9_during_vacuum(server_root: Path, round_: int) -> None:
    """A VACUUM killed midway (throttled, so the kill lands inside it) leaves indexes that are still
    exact supersets of the heap; the next VACUUM finishes the job."""
    data_dir = server_root / "pgdata"
    docs = synthetic(30_000, 384, 10 + round_)
    names = ["v_flat", "v_ivf", "v_bits"]
    with own_server(data_dir) as info:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            create_schema(conn, "v", docs)
            conn.execute("CREATE INDEX v_flat ON v USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)")
            conn.execute("CREATE INDEX v_ivf ON v USING shrinkvec (embedding vector_l2_ops) WITH (lists = 50)")
            conn.execute("CREATE INDEX v_bits ON v USING shrinkvec (bits)")
            conn.execute("DELETE FROM v WHERE id % 3 <> 0")
        info = kill_during(info, data_dir, ["SET vacuum_cost_delay = 5", "SET vacuum_cost_limit = 20", "VACUUM v"],
                           "VACUUM", random.Random(round_).uniform(0.3, 2.5))
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            assert conn.execute("SELECT count(*) FROM v").fetchone() == (10_000,)
            assert_recovered(conn, "v", names)
            assert_answers_exactly(conn, "v", docs[:3] + 0.01)
            # space freed by the VACUUM is reused
            conn.execute("INSERT INTO v (id, embedding) SELECT 100000 + id, embedding FROM v LIMIT 1000")
            for name in names:
                assert check(conn, name)[-1]


@pytest.mark.slow
@own_server_only
@pytest.mark.parametrize("round_", range(ROUNDS or 2))
def test_kill_9_during_repartition(server_root: Path, round_: int) -> None:
    """A re-partition killed midway (with a writer inserting beside it) leaves the old generation whole:
    after recovery every committed row is indexed once and answers are exact; inserts meet no stale state
    they cannot pass; the next re-partition completes."""
    data_dir = server_root / "pgdata"
    docs = synthetic(110_000, 128, 20 + round_)
    with own_server(data_dir) as info:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            conn.execute("CREATE TABLE k (id int PRIMARY KEY, embedding vector(128))")
            conn.execute("CREATE INDEX k_v ON k USING shrinkvec (embedding vector_l2_ops)")  # empty: flat
            with conn.cursor().copy("COPY k (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "vector"])
                for i, v in enumerate(docs[:100_000]):
                    copy.write_row((i, v))
        acked: list[int] = []

        def writer() -> None:
            try:
                with psycopg.connect(info.dsn(), autocommit=True) as c:
                    register_vector(c)
                    for i in range(100_000, 110_000):
                        c.execute("INSERT INTO k (id, embedding) VALUES (%s, %s)", (i, docs[i]))
                        acked.append(i)
            except psycopg.Error:
                pass

        t = threading.Thread(target=writer)
        t.start()
        info = kill_during(info, data_dir, ["SELECT shrinkvec_index_repartition('k_v')"], "SELECT shrinkvec_index_repartition",
                           random.Random(round_).uniform(0.05, 0.9))
        t.join(timeout=60)
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            ids = {r[0] for r in conn.execute("SELECT id FROM k").fetchall()}
            assert set(acked) <= ids
            assert_recovered(conn, "k", ["k_v"])  # VACUUM may re-partition here: it is due
            conn.execute("INSERT INTO k (id, embedding) SELECT id + 1000000, embedding FROM k WHERE id < 500")
            conn.execute("SELECT shrinkvec_index_repartition('k_v')")
            n = len(ids) + 500
            assert check(conn, "k_v") == (n, n, 0, 0, 0, True)
            conn.execute("SET shrinkvec.probes = 32768")
            for q in docs[:3] + 0.01:
                conn.execute("SET enable_seqscan = off")
                conn.execute("SET shrinkvec.shortlist = 100000")
                conn.execute("SET work_mem = '1GB'")
                stmt = "SELECT embedding <-> %s FROM k ORDER BY embedding <-> %s LIMIT 10"  # copies tie: distances
                got = [r[0] for r in conn.execute(stmt, (q, q))]
                conn.execute("RESET enable_seqscan")
                conn.execute("SET enable_indexscan = off")
                exact = [r[0] for r in conn.execute(stmt, (q, q))]
                conn.execute("RESET enable_indexscan")
                assert got == exact


@own_server_only
def test_standby_replays_the_index(server_root: Path) -> None:
    """A streaming standby from a base backup taken before the indexes existed replays their build,
    inserts, updates, deletes and VACUUM from WAL, and answers like the primary."""

    data = demo.load_data()
    primary_dir, standby_dir = server_root / "primary", server_root / "standby"
    run_as = "pgserver" if os.geteuid() == 0 else None
    with own_server(primary_dir) as info:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            register_vector(conn)
            create_schema(conn, "r", data.docs[:2000])
        pg_ctl = start_standby(info, standby_dir)
        try:
            standby_dsn = f"postgresql://{info.user}@/postgres?host={standby_dir}&port={info.port}"
            with psycopg.connect(info.dsn(), autocommit=True) as conn:
                register_vector(conn)
                for name, how in INDEXES.items():
                    conn.execute(f"CREATE INDEX {name} ON r {how}")
                for i in range(2000, 3000):
                    conn.execute("INSERT INTO r (id, embedding) VALUES (%s, %s)", (i, data.docs[i]))
                conn.execute("DELETE FROM r WHERE id % 4 = 0")
                conn.execute("UPDATE r SET embedding = embedding WHERE id % 4 = 1")
                conn.execute("VACUUM (INDEX_CLEANUP ON) r")
                for i in range(3000, 3200):
                    conn.execute("INSERT INTO r (id, embedding) VALUES (%s, %s)", (i, data.docs[i]))
                for name in INDEXES:  # a new generation of pages, and the old ones retired
                    conn.execute("SELECT shrinkvec_index_repartition(%s)", (name,))
                conn.execute("INSERT INTO r (id, embedding) SELECT id + 10000, embedding FROM r WHERE id < 3100")
                conn.execute("VACUUM (INDEX_CLEANUP ON) r")  # recycles the retired pages
                # the insert position: the VACUUM's last records may not be written out yet (no commit flushes them)
                lsn = one_row(conn.execute("SELECT pg_current_wal_insert_lsn()"))[0]
                with psycopg.connect(standby_dsn, autocommit=True) as sb:
                    register_vector(sb)
                    assert sb.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
                    deadline = time.monotonic() + 60
                    while one_row(sb.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)))[0] is not True:
                        assert time.monotonic() < deadline, "the standby did not catch up"
                        time.sleep(0.1)
                    for name in INDEXES:
                        assert check(sb, name) == check(conn, name), name
                        assert check(sb, name)[-1], name
                    for c in (conn, sb):
                        c.execute("SET enable_seqscan = off")
                        c.execute("SET shrinkvec.probes = 8")
                    for q in data.queries[:10]:
                        for col, op in (("embedding", "<=>"), ("embedding", "<->")):
                            stmt = f"SELECT id FROM r ORDER BY {col} {op} %s LIMIT 10"
                            assert [x[0] for x in sb.execute(stmt, (q,))] == [x[0] for x in conn.execute(stmt, (q,))]
                        stmt = "SELECT id FROM r ORDER BY bits <~> binarize(%s::vector) LIMIT 10"
                        assert [x[0] for x in sb.execute(stmt, (q,))] == [x[0] for x in conn.execute(stmt, (q,))]
        finally:
            subprocess.run([*pg_ctl, "-w", "-m", "immediate", "stop"], user=run_as, capture_output=True)


@pytest.mark.slow
def test_writers_and_readers_together(conn: psycopg.Connection, dsn: str) -> None:
    """4 writers (inserts, updates, deletes on disjoint id ranges) and 4 readers (index KNN) at once.
    Each reader checks, in the same snapshot as its query, that every row returned is live and that
    the distances come back sorted; then VACUUM, and the counts and both indexes match the heap."""
    data = demo.load_data()
    writers, readers = 4, 4
    create_schema(conn, "busy", data.docs[:1000])
    conn.execute("CREATE INDEX busy_v ON busy USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 4)")
    conn.execute("CREATE INDEX busy_b ON busy USING shrinkvec (bits)")
    stop = time.monotonic() + SOAK_SECONDS
    errors: list[BaseException] = []
    inserted: list[list[int]] = [[] for _ in range(writers)]
    deleted: list[list[int]] = [[] for _ in range(writers)]
    done = {"queries": 0, "writes": 0}
    span = 1000 // writers

    def writer(w: int) -> None:
        rng = random.Random(w)
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                register_vector(c)
                next_id = 10000 * (w + 1)
                while time.monotonic() < stop:
                    op = rng.random()
                    if op < 0.5:
                        c.execute("INSERT INTO busy (id, embedding) VALUES (%s, %s)",
                                  (next_id, data.docs[rng.randrange(4000)]))
                        inserted[w].append(next_id)
                        next_id += 1
                    elif op < 0.75:
                        victim = rng.randrange(w * span, (w + 1) * span)  # writers own disjoint id ranges
                        if c.execute("DELETE FROM busy WHERE id = %s", (victim,)).rowcount:
                            deleted[w].append(victim)
                    else:
                        c.execute("UPDATE busy SET embedding = %s WHERE id = %s",
                                  (data.docs[rng.randrange(4000)], rng.randrange(w * span, (w + 1) * span)))
                    done["writes"] += 1
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
                    with c.transaction():
                        c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        if r % 2:
                            rows = c.execute("SELECT id, embedding <=> %s FROM busy ORDER BY embedding <=> %s LIMIT 10",
                                             (q, q)).fetchall()
                            assert [x[1] for x in rows] == sorted(x[1] for x in rows)
                        else:
                            rows = c.execute("SELECT id, bits <~> binarize(%s::vector) FROM busy "
                                             "ORDER BY bits <~> binarize(%s::vector) LIMIT 10", (q, q)).fetchall()
                            assert [x[1] for x in rows] == sorted(x[1] for x in rows)
                        ids = [x[0] for x in rows]
                        assert len(ids) == 10 and len(set(ids)) == 10
                        # the same snapshot without the index: every returned row is live, none is missed
                        live = one_row(c.execute("SELECT count(*) FROM busy WHERE id = ANY(%s)", (ids,)))[0]
                        assert live == 10
                    done["queries"] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert done["queries"] > 20 and done["writes"] > 100, done
    conn.execute("VACUUM (INDEX_CLEANUP ON) busy")
    expected = 1000 + sum(map(len, inserted)) - sum(map(len, deleted))
    assert one_row(conn.execute("SELECT count(*) FROM busy"))[0] == expected
    for name in ("busy_v", "busy_b"):
        row = check(conn, name)
        assert row == (expected, expected, 0, 0, 0, True), (name, row)


def test_scan_memory_is_bounded_by_work_mem(conn: psycopg.Connection) -> None:
    """The shortlist's candidates and the executor's reorder queue (one vector a candidate) must fit
    work_mem: a larger shortlist is an error that names both, not an out-of-memory."""
    data = demo.load_data()
    create_schema(conn, "m", data.docs[:500])
    conn.execute("CREATE INDEX m_v ON m USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("CREATE INDEX m_b ON m USING shrinkvec (bits)")
    conn.execute("SET enable_seqscan = off")
    q = data.queries[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="shrinkvec.shortlist"):
        conn.execute("SET shrinkvec.shortlist = 100001")  # the GUC's own bound
    conn.execute("SET shrinkvec.shortlist = 100000")
    conn.execute("SET work_mem = '2MB'")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded,
                       match=r"shrinkvec.shortlist 100000 needs about \d+ kB .* more than work_mem \(2048 kB\)"):
        conn.execute("SELECT id FROM m ORDER BY embedding <=> %s LIMIT 10", (q,)).fetchall()
    # the bit opclass keeps 12 bytes a candidate and has no reorder queue: 1.2 MB fits
    rows = conn.execute("SELECT id FROM m ORDER BY bits <~> binarize(%s::vector) LIMIT 10", (q,)).fetchall()
    assert len(rows) == 10
    conn.execute("SET work_mem = '64kB'")
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="more than work_mem"):
        conn.execute("SELECT id FROM m ORDER BY bits <~> binarize(%s::vector) LIMIT 10", (q,)).fetchall()
    # raising work_mem (or lowering the shortlist) lets the query run
    conn.execute("SET work_mem = '256MB'")
    assert len(conn.execute("SELECT id FROM m ORDER BY embedding <=> %s LIMIT 10", (q,)).fetchall()) == 10
    conn.execute("SET work_mem = '64kB'")
    conn.execute("SET shrinkvec.shortlist = 30")
    assert len(conn.execute("SELECT id FROM m ORDER BY embedding <=> %s LIMIT 10", (q,)).fetchall()) == 10
