"""An index that grows with its table (issue 34): made on an empty table, it re-partitions itself at VACUUM
once it has outgrown its lists, while inserts and scans go on, and recycles the pages it retired.

The rows are synthetic clusters with variance decaying over the dims (as after a PCA): past the 20,000 rows
from which an index chooses more than one list. Every answer is compared with numpy's exact top k.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from conftest import one_row

DIMS = 48


def rows(n: int, seed: int) -> np.ndarray:
    """n rows around 64 fixed cluster centres whose spread falls as 1/sqrt(i+1) over the dims."""
    rng = np.random.default_rng(seed)
    sd = 1 / np.sqrt(np.arange(DIMS) + 1)
    centers = np.random.default_rng(0).standard_normal((64, DIMS)) * sd * 2
    x = centers[rng.integers(0, 64, n)] + rng.standard_normal((n, DIMS)) * sd
    return x.astype(np.float32)


def copy_rows(conn: psycopg.Connection, table: str, x: np.ndarray, first_id: int) -> None:
    with conn.cursor().copy(f"COPY {table} (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "vector"])
        for i, v in enumerate(x):
            copy.write_row((first_id + i, v))


def info(conn: psycopg.Connection, index: str) -> dict[str, object]:
    cur = conn.execute("SELECT * FROM shrinkvec_index_info(%s)", (index,))
    names = [d.name for d in cur.description or []]
    return dict(zip(names, one_row(cur)))


def check(conn: psycopg.Connection, index: str) -> tuple[int, int, int, int, int, bool]:
    live, entries, missing, duplicated, dangling, ok = one_row(conn.execute(
        "SELECT live_rows, index_entries, missing, duplicated, dangling, ok FROM shrinkvec_index_check(%s)", (index,)))
    return int(live), int(entries), int(missing), int(duplicated), int(dangling), bool(ok)


def top_k(conn: psycopg.Connection, table: str, q: np.ndarray, k: int = 10) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY v <-> %s LIMIT {k}", (q,))]


def exact_ids(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int = 10) -> list[int]:
    d = ((x - q) ** 2).sum(axis=1)
    return [int(i) for i in ids[np.argsort(d, kind="stable")[:k]]]


def recall(conn: psycopg.Connection, table: str, x: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> float:
    conn.execute("SET enable_seqscan = off")
    hits = sum(len(set(top_k(conn, table, q)) & set(exact_ids(x, ids, q))) for q in queries)
    conn.execute("RESET enable_seqscan")
    return hits / (10 * len(queries))


@pytest.fixture
def grown(conn: psycopg.Connection) -> Iterator[tuple[psycopg.Connection, np.ndarray]]:
    """A table whose index was made empty, then 26,000 rows loaded (not yet vacuumed)."""
    register_vector(conn)
    conn.execute(f"CREATE TABLE g (id bigint PRIMARY KEY, v vector({DIMS}))")
    conn.execute("CREATE INDEX g_v ON g USING shrinkvec (v vector_l2_ops)")
    x = rows(26_000, 1)
    copy_rows(conn, "g", x, 0)
    yield conn, x


def test_an_index_made_empty_repartitions_at_vacuum(grown: tuple[psycopg.Connection, np.ndarray]) -> None:
    """Flat (1 list) until VACUUM finds it past 20,000 rows; then sqrt(rows) lists, as CREATE INDEX after the
    load would choose, every row indexed once, and the recall of an index built after the load."""
    conn, x = grown
    ids = np.arange(len(x))
    before = info(conn, "g_v")
    assert (before["lists"], before["entries"], before["generation"], before["build_rows"]) == (1, 26_000, 0, 0)
    assert before["repartition_at"] == 20_001 and before["last_repartition"] is None
    assert before["largest_list"] == 26_000
    conn.execute("VACUUM g")
    after = info(conn, "g_v")
    assert after["lists"] == round(26_000 ** 0.5) and after["generation"] == 1
    assert after["build_rows"] == 26_000 and after["entries"] == 26_000 and after["last_repartition"] is not None
    assert after["repartition_at"] == 2 * 26_000
    assert int(after["largest_list"]) < 26_000 // 10  # type: ignore[call-overload]
    assert int(after["retired_pages"]) >= int(before["data_pages"])  # type: ignore[call-overload]
    assert after["probes"] is not None  # calibrated for target_recall, as a build is
    assert check(conn, "g_v") == (26_000, 26_000, 0, 0, 0, True)
    queries = rows(100, 2)
    grown_recall = recall(conn, "g", x, ids, queries)
    # the same table indexed after its load
    conn.execute("DROP INDEX g_v")
    conn.execute("CREATE INDEX g_built ON g USING shrinkvec (v vector_l2_ops)")
    built_recall = recall(conn, "g", x, ids, queries)
    assert info(conn, "g_built")["lists"] == after["lists"]
    assert grown_recall >= 0.93 and grown_recall >= built_recall - 0.03, (grown_recall, built_recall)


def test_vacuum_goes_on_when_the_repartition_does_not_fit(grown: tuple[psycopg.Connection, np.ndarray]) -> None:
    """With too little maintenance_work_mem, VACUUM says why it leaves the index as it is, and finishes."""
    conn, _ = grown
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    conn.execute("SET maintenance_work_mem = '1MB'")
    conn.execute("VACUUM g")
    assert any("was not re-partitioned" in n and "maintenance_work_mem (1024 kB)" in n for n in notices), notices
    assert info(conn, "g_v")["generation"] == 0
    conn.execute("RESET maintenance_work_mem")
    conn.execute("VACUUM g")
    assert info(conn, "g_v")["generation"] == 1


def test_the_build_says_what_the_index_will_do(conn: psycopg.Connection) -> None:
    """CREATE INDEX on an empty or small table says that the index is flat for now and when it re-partitions."""
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(f"{d.message_primary} {d.message_detail}"))
    conn.execute(f"CREATE TABLE s (id bigint PRIMARY KEY, v vector({DIMS}))")
    conn.execute("CREATE INDEX s_v ON s USING shrinkvec (v vector_l2_ops)")
    assert any("re-partitions" in n and "20000" in n.replace(",", "") for n in notices), notices


def test_repartition_takes_rows_inserted_while_it_runs(grown: tuple[psycopg.Connection, np.ndarray], dsn: str) -> None:
    """Rows inserted after the re-partition read the entries are taken at its switch; scans meanwhile
    answer from the old generation; an insert never waits unless it meets a retired page."""
    conn, x = grown
    gate_index(conn)
    extra = rows(600, 3) + 0.01
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(4242)")
        runner = Repartition(dsn, "g_gate")
        runner.start()
        wait_for_lock_waiter(conn, runner)  # the re-partition has read the entries and waits in the gate
        with psycopg.connect(dsn, autocommit=True) as writer:
            register_vector(writer)
            copy_rows(writer, "g", extra, 100_000)
            writer.execute("SET enable_seqscan = off")
            all_x = np.vstack([x, extra])
            all_ids = np.concatenate([np.arange(len(x)), 100_000 + np.arange(len(extra))])
            writer.execute("SET shrinkvec.probes = 1000")
            writer.execute("SET shrinkvec.shortlist = 100000")
            writer.execute("SET work_mem = '256MB'")
            for q in extra[:5]:
                assert top_k(writer, "g", q) == exact_ids(all_x, all_ids, q)
        holder.execute("SELECT pg_advisory_unlock(4242)")
        runner.join(timeout=120)
    assert runner.error is None, runner.error
    assert info(conn, "g_gate")["generation"] == 1
    assert check(conn, "g_gate") == (26_600, 26_600, 0, 0, 0, True)


def test_a_repartition_that_fails_leaves_the_index_working(grown: tuple[psycopg.Connection, np.ndarray],
                                                           dsn: str) -> None:
    """An error after the old pages were marked retired (here: an index expression failing on a row inserted
    during the re-partition) leaves the old generation in place: inserts clear the stale marks, nothing is
    lost, and the next re-partition succeeds."""
    conn, x = grown
    gate_index(conn)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(4242)")
        runner = Repartition(dsn, "g_gate", fail=True)
        runner.start()
        wait_for_lock_waiter(conn, runner)
        bomb = rows(1, 4)
        bomb[0, 0] = 12345.0  # the gate raises on this row, in the re-partition's session only
        copy_rows(conn, "g", bomb, 200_000)
        holder.execute("SELECT pg_advisory_unlock(4242)")
        runner.join(timeout=120)
    assert runner.error is not None and "gate refuses" in str(runner.error), runner.error
    failed = info(conn, "g_gate")
    assert failed["generation"] == 0
    assert int(failed["free_pages"]) > int(failed["data_pages"])  # type: ignore[call-overload]  # its new pages freed
    more = rows(300, 5)
    copy_rows(conn, "g", more, 300_000)
    assert check(conn, "g_gate") == (26_301, 26_301, 0, 0, 0, True)
    conn.execute("DELETE FROM g WHERE id = 200000")
    conn.execute("VACUUM g")  # removes its entry; an index on an expression is left to the function
    assert info(conn, "g_gate")["generation"] == 0
    assert one_row(conn.execute("SELECT shrinkvec_index_repartition('g_gate')"))[0] == round(26_300 ** 0.5)
    assert check(conn, "g_gate") == (26_300, 26_300, 0, 0, 0, True)


def test_a_scan_reads_the_generation_it_started_with(grown: tuple[psycopg.Connection, np.ndarray], dsn: str) -> None:
    """A cursor opened before a re-partition goes on in its generation and returns the exact order; VACUUM
    keeps the retired pages while it is open and recycles them after; new pages then reuse them."""
    conn, x = grown
    ids = np.arange(len(x))
    q = x[7] + 0.01
    with psycopg.connect(dsn) as reader:
        register_vector(reader)
        reader.execute("SET enable_seqscan = off")
        reader.execute("SET shrinkvec.shortlist = 100000")
        reader.execute("SET work_mem = '256MB'")
        cur = reader.cursor(name="early")
        cur.execute("SELECT id FROM g ORDER BY v <-> %s", (q,))
        first = [r[0] for r in cur.fetchmany(5)]
        conn.execute("VACUUM g")  # the re-partition
        assert info(conn, "g_v")["generation"] == 1
        rest = [r[0] for r in cur.fetchmany(25)]
        assert first + rest == exact_ids(x, ids, q, 30)
        conn.execute("INSERT INTO g VALUES (500000, %s)", (x[0],))  # an xid after the switch
        conn.execute("VACUUM g")
        assert int(info(conn, "g_v")["retired_pages"]) > 0  # type: ignore[call-overload]
        cur.close()
        reader.rollback()
    conn.execute("INSERT INTO g VALUES (500001, %s)", (x[1],))
    conn.execute("VACUUM g")
    recycled = info(conn, "g_v")
    assert recycled["retired_pages"] == 0 and int(recycled["free_pages"]) > 0  # type: ignore[call-overload]
    conn.execute("SELECT shrinkvec_index_repartition('g_v')")  # its new pages take the free ones first
    again = info(conn, "g_v")
    assert again["free_pages"] == 0
    grew = int(again["pages"]) - int(recycled["pages"])  # type: ignore[call-overload]
    new_pages = int(again["data_pages"]) + 8  # type: ignore[call-overload]  # and its centroids, directory
    assert new_pages - 8 - int(recycled["free_pages"]) <= grew <= new_pages - int(recycled["free_pages"])  # type: ignore[call-overload]
    assert check(conn, "g_v") == (26_002, 26_002, 0, 0, 0, True)
    # a generation written into recycled pages answers as well as the first one did
    all_x = np.vstack([x, x[:2]])
    all_ids = np.concatenate([np.arange(len(x)), [500000, 500001]])
    assert recall(conn, "g", all_x, all_ids, rows(100, 2)) >= 0.93


def test_repartition_refuses_a_non_owner_and_a_wrong_relation(conn: psycopg.Connection, dsn: str) -> None:
    register_vector(conn)
    conn.execute(f"CREATE TABLE o (id bigint PRIMARY KEY, v vector({DIMS}))")
    conn.execute("CREATE INDEX o_v ON o USING shrinkvec (v vector_l2_ops)")
    conn.execute("CREATE ROLE sv_not_owner")
    try:
        conn.execute("GRANT SELECT, INSERT ON o TO sv_not_owner")
        conn.execute("SET ROLE sv_not_owner")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of table o"):
            conn.execute("SELECT shrinkvec_index_repartition('o_v')")
        conn.execute("RESET ROLE")
        with pytest.raises(psycopg.errors.WrongObjectType, match="is not an index"):
            conn.execute("SELECT shrinkvec_index_repartition('o')")
        with pytest.raises(psycopg.errors.WrongObjectType, match="is not a shrinkvec index"):
            conn.execute("SELECT shrinkvec_index_repartition('o_pkey')")
    finally:
        conn.execute("RESET ROLE")
        conn.execute("DROP OWNED BY sv_not_owner")
        conn.execute("DROP ROLE sv_not_owner")


def test_a_bit_index_with_lists_grows_to_them(conn: psycopg.Connection) -> None:
    """WITH (lists = 8) on an empty table builds 1 list; VACUUM re-partitions into the 8 asked for."""
    conn.execute("CREATE TABLE b (id bigint PRIMARY KEY, bits bit(64))")
    conn.execute("CREATE INDEX b_b ON b USING shrinkvec (bits) WITH (lists = 8)")
    conn.execute("INSERT INTO b SELECT g, (random() * 9e18)::bigint::bit(64) FROM generate_series(1, 500) g")
    assert info(conn, "b_b")["lists"] == 1
    conn.execute("VACUUM b")
    assert info(conn, "b_b")["lists"] == 8
    assert check(conn, "b_b") == (500, 500, 0, 0, 0, True)
    q = one_row(conn.execute("SELECT bits FROM b WHERE id = 17"))[0]
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET shrinkvec.probes = 8")
    got = [r[0] for r in conn.execute("SELECT bits <~> %s FROM b ORDER BY bits <~> %s LIMIT 20", (q, q))]
    conn.execute("SET enable_indexscan = off")
    assert got == [r[0] for r in conn.execute("SELECT bits <~> %s FROM b ORDER BY bits <~> %s LIMIT 20", (q, q))]


@pytest.mark.slow
def test_writers_and_readers_while_the_index_repartitions(grown: tuple[psycopg.Connection, np.ndarray],
                                                          dsn: str) -> None:
    """4 writers and 4 readers while re-partitions run back to back: every reader's rows come back sorted
    and distinct, and afterwards the index holds every row once and answers exactly with every list probed.
    SHRINKVEC_SOAK_SECONDS=S runs it for S seconds (default 8)."""
    conn, x = grown
    stop = time.monotonic() + float(os.environ.get("SHRINKVEC_SOAK_SECONDS", "8"))
    errors: list[BaseException] = []
    inserted = [0] * 4
    repartitions = [0]

    def writer(w: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                register_vector(c)
                batch = rows(20_000, 10 + w)
                i = 0
                while time.monotonic() < stop and i < len(batch):
                    c.execute("INSERT INTO g VALUES (%s, %s)", (1_000_000 * (w + 1) + i, batch[i]))
                    i += 1
                inserted[w] = i
        except BaseException as exc:
            errors.append(exc)

    def reader(r: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                register_vector(c)
                c.execute("SET enable_seqscan = off")
                for q in rows(10_000, 20 + r):
                    if time.monotonic() >= stop:
                        break
                    got = c.execute("SELECT id, v <-> %s FROM g ORDER BY v <-> %s LIMIT 10", (q, q)).fetchall()
                    assert len(got) == 10 and len({g[0] for g in got}) == 10
                    assert [g[1] for g in got] == sorted(g[1] for g in got)
        except BaseException as exc:
            errors.append(exc)

    def repartitioner() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                while time.monotonic() < stop:
                    c.execute("SELECT shrinkvec_index_repartition('g_v')")
                    repartitions[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(4)]
    threads.append(threading.Thread(target=repartitioner))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert repartitions[0] >= 2 and sum(inserted) > 100, (repartitions, inserted)
    n = 26_000 + sum(inserted)
    assert check(conn, "g_v") == (n, n, 0, 0, 0, True)
    conn.execute("SET shrinkvec.probes = 32768")
    conn.execute("SET shrinkvec.shortlist = 100000")
    conn.execute("SET work_mem = '256MB'")
    conn.execute("SET enable_seqscan = off")
    for q in x[3:8]:  # every list probed: the exact answer
        conn.execute("SET enable_indexscan = on")
        got = [r[0] for r in conn.execute("SELECT v <-> %s FROM g ORDER BY v <-> %s LIMIT 10", (q, q))]
        conn.execute("SET enable_indexscan = off")
        assert got == [r[0] for r in conn.execute("SELECT v <-> %s FROM g ORDER BY v <-> %s LIMIT 10", (q, q))]


# ---- the gate: an index expression that waits (and fails on request) inside a re-partition ----

GATE = """
CREATE FUNCTION public.sv_gate(v vector) RETURNS vector LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF pg_catalog.current_setting('sv.gate', true) OPERATOR(pg_catalog.=) 'on' THEN
        PERFORM pg_catalog.pg_advisory_xact_lock_shared(4242);
        IF pg_catalog.current_setting('sv.fail', true) OPERATOR(pg_catalog.=) 'on'
           AND (v::pg_catalog.float4[])[1] OPERATOR(pg_catalog.=) 12345 THEN
            RAISE EXCEPTION 'the gate refuses this row';
        END IF;
    END IF;
    RETURN v;
END $$;
"""


def gate_index(conn: psycopg.Connection) -> None:
    """An index on sv_gate(v), which VACUUM leaves to shrinkvec_index_repartition (an expression)."""
    conn.execute(GATE)
    conn.execute(f"CREATE INDEX g_gate ON g USING shrinkvec ((sv_gate(v)::vector({DIMS})) vector_l2_ops)")
    conn.execute("DROP INDEX g_v")


class Repartition(threading.Thread):
    """shrinkvec_index_repartition in a session whose gate is on (waits on advisory lock 4242)."""

    def __init__(self, dsn: str, index: str, fail: bool = False) -> None:
        super().__init__()
        self.dsn, self.index, self.fail = dsn, index, fail
        self.error: BaseException | None = None
        self.pid = 0

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as c:
                self.pid = int(one_row(c.execute("SELECT pg_backend_pid()"))[0])
                c.execute("SET sv.gate = 'on'")
                if self.fail:
                    c.execute("SET sv.fail = 'on'")
                c.execute("SELECT shrinkvec_index_repartition(%s)", (self.index,))
        except BaseException as exc:
            self.error = exc


def wait_for_lock_waiter(conn: psycopg.Connection, runner: Repartition) -> None:
    deadline = time.monotonic() + 60
    while True:
        if runner.pid and one_row(conn.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
                (runner.pid,)))[0]:
            return
        assert runner.is_alive() and time.monotonic() < deadline, runner.error
        time.sleep(0.02)


GATE2 = """
CREATE FUNCTION public.sv_gate2(v vector) RETURNS vector LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF pg_catalog.current_setting('sv.gate', true) OPERATOR(pg_catalog.=) 'on' THEN
        IF (v::pg_catalog.float4[])[1] OPERATOR(pg_catalog.=) 777 THEN
            PERFORM pg_catalog.pg_advisory_xact_lock_shared(4243);
        ELSE
            PERFORM pg_catalog.pg_advisory_xact_lock_shared(4242);
        END IF;
    END IF;
    RETURN v;
END $$;
"""


def test_an_insert_beside_a_repartition_adds_no_duplicate(conn: psycopg.Connection, dsn: str) -> None:
    """Rows that fill the last page after the entries were read are taken when the page is retired (step 3);
    an insert that then meets that retired page, in the same generation, links a new page and clears the
    mark. The switch (step 4) must not take the page's rows a second time: no duplicate entries, no row
    returned twice."""
    register_vector(conn)
    conn.execute(f"CREATE TABLE d (id bigint PRIMARY KEY, v vector({DIMS}))")
    conn.execute(GATE2)
    conn.execute(f"CREATE INDEX d_gate ON d USING shrinkvec ((sv_gate2(v)::vector({DIMS})) vector_l2_ops) WITH (lists = 1)")
    x = rows(500, 7)
    copy_rows(conn, "d", x, 0)
    per_page = int(str(info(conn, "d_gate")["entries_per_page"]))
    fill = per_page - 500 % per_page
    extra = rows(fill, 8)
    extra[-1, 0] = 777  # the marker: its fetch in step 3 waits on lock 4243
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(4242), pg_advisory_lock(4243)")
        runner = Repartition(dsn, "d_gate")
        runner.start()
        wait_for_lock_waiter(conn, runner)  # step 2 waits: the entries were read
        with psycopg.connect(dsn, autocommit=True) as writer:
            register_vector(writer)
            copy_rows(writer, "d", extra, 10_000)  # the last page is now full
            holder.execute("SELECT pg_advisory_unlock(4242)")
            deadline = time.monotonic() + 60
            while not one_row(conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted "
                    "AND objid = 4243", (runner.pid,)))[0]:
                assert runner.is_alive() and time.monotonic() < deadline, runner.error
                time.sleep(0.02)
            # step 3 retired the full page and waits on the marker: this insert meets the retired page
            copy_rows(writer, "d", rows(1, 9), 20_000)
        holder.execute("SELECT pg_advisory_unlock(4243)")
        runner.join(timeout=120)
    assert runner.error is None, runner.error
    total = 500 + fill + 1
    assert info(conn, "d_gate")["generation"] == 1
    assert check(conn, "d_gate") == (total, total, 0, 0, 0, True)
    conn.execute("SET enable_seqscan = off")
    got = [r[0] for r in conn.execute(f"SELECT id FROM d ORDER BY sv_gate2(v)::vector({DIMS}) <-> %s LIMIT {total + 10}",
                                      (x[0],)).fetchall()]
    assert len(got) == len(set(got)) == total


def test_repartition_skips_rows_whose_toast_is_gone(conn: psycopg.Connection) -> None:
    """Deleted rows whose vectors lived out of line, after a VACUUM of the TOAST table alone (their chunks are
    gone, the heap tuples not yet pruned): a re-partition reads only versions some snapshot may still see,
    and leaves those out instead of failing on their missing chunks."""
    register_vector(conn)
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(600))")
    conn.execute("ALTER TABLE t ALTER COLUMN v SET STORAGE EXTERNAL")
    rng = np.random.default_rng(3)
    with conn.cursor().copy("COPY t (id, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "vector"])
        for i in range(60):
            copy.write_row((i, rng.standard_normal(600).astype(np.float32)))
    conn.execute("CREATE INDEX t_v ON t USING shrinkvec (v vector_l2_ops) WITH (lists = 2)")
    conn.execute("DELETE FROM t WHERE id < 10")
    conn.execute("VACUUM (PROCESS_MAIN false) t")
    conn.execute("SELECT shrinkvec_index_repartition('t_v')")
    assert info(conn, "t_v")["entries"] == 50
    assert check(conn, "t_v") == (50, 50, 0, 0, 0, True)
