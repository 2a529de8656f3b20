"""Rows whose vector is NULL come after every other through the index, as in the exact plan (issue 30):
a filter whose only matches have a NULL vector, a LIMIT above the row count, HOT-updated rows, a partial
index's predicate, an expression index, the bit opclass, a NULL query, rescans; and a filter whose
selectivity the planner can only guess keeps a small table on the exact plan.

Each query runs with the index forced (its plan checked) and with index scans off; the two must return
the same rows (and the numpy order for the non-NULL ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from conftest import OPS
from shrinkvec import demo

N = 2000


@pytest.fixture(scope="module")
def docs() -> np.ndarray:
    return demo.load_data().docs[:N].astype(np.float32)


def fill(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """n(id, cat, v, b): every 9th row has a NULL vector (and bits); cat = id % 50."""
    register_vector(conn)
    conn.execute("CREATE TABLE n (id int PRIMARY KEY, cat int NOT NULL, v vector(384), b bit(384))")
    with conn.cursor().copy("COPY n (id, cat, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "vector"])
        for i, x in enumerate(docs):
            copy.write_row((i, i % 50, None if i % 9 == 0 else x))
    conn.execute("UPDATE n SET b = binarize(v)::bit(384)")
    conn.execute("ALTER TABLE n SET (autovacuum_enabled = off)")
    conn.execute("VACUUM ANALYZE n")


def run(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = (), *, index: str | None) -> list[tuple[Any, ...]]:
    """Rows of the query with the index `index` forced (its plan checked) or with index scans off (None)."""
    conn.execute("SET enable_seqscan = " + ("off" if index else "on"))
    conn.execute("SET enable_sort = " + ("off" if index else "on"))
    conn.execute("SET enable_indexscan = " + ("on" if index else "off"))
    conn.execute("SET enable_bitmapscan = off")
    if index:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params).fetchall())
        assert index in plan, plan
    return conn.execute(query, params).fetchall()


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.parametrize("lists", [1, 8])
def test_null_vectors_come_last(conn: psycopg.Connection, docs: np.ndarray, metric: str, lists: int) -> None:
    fill(conn, docs)
    op, opclass = OPS[metric]
    conn.execute(f"CREATE INDEX n_v ON n USING shrinkvec (v {opclass}) WITH (lists = {lists})")
    conn.execute("SET shrinkvec.probes = 2")
    q = docs[5]
    # a filter whose matches are rows 0, 9, 18 (NULL vectors) and 1 (not NULL)
    matches = "SELECT id, v {op} %s IS NULL FROM n WHERE id IN (0, 1, 9, 18) ORDER BY v {op} %s LIMIT 10"
    text = matches.format(op=op)
    got, exact = run(conn, text, (q, q), index="n_v"), run(conn, text, (q, q), index=None)
    assert got == exact and len(got) == 4 and got[0] == (1, False), got
    assert sorted(r[0] for r in got[1:]) == [0, 9, 18] and all(r[1] for r in got[1:])
    # only NULL rows match: as many as the exact plan, where the index used to return none
    only = f"SELECT id FROM n WHERE cat = 0 AND mod(id, 9) = 0 ORDER BY v {op} %s LIMIT 100"
    got_ids = [r[0] for r in run(conn, only, (q,), index="n_v")]
    want = [r[0] for r in run(conn, only, (q,), index=None)]
    assert sorted(got_ids) == sorted(want) and len(want) == len([i for i in range(N) if i % 450 == 0])
    # a LIMIT above the row count: every row once, the NULL ones last, the others in the numpy order
    everything = f"SELECT id FROM n ORDER BY v {op} %s LIMIT {N + 50}"
    ids = [r[0] for r in run(conn, everything, (q,), index="n_v")]
    assert len(ids) == N and len(set(ids)) == N
    n_null = len([i for i in range(N) if i % 9 == 0])
    assert all(i % 9 == 0 for i in ids[-n_null:]) and not any(i % 9 == 0 for i in ids[:-n_null])


def test_hot_updated_partial_and_expression_indexes(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """A HOT-updated row with a NULL vector comes back once (by its chain's root); a partial index returns
    only the NULL rows its predicate takes; an expression index returns the rows whose expression is NULL;
    a row deleted or updated to a vector after the snapshot's view is seen as the snapshot sees it."""
    fill(conn, docs)
    q = docs[3]
    conn.execute("CREATE INDEX n_v ON n USING shrinkvec (v vector_l2_ops)")
    conn.execute("UPDATE n SET cat = 77 WHERE id IN (9, 27, 30)")  # cat is not indexed: HOT updates
    hot = "SELECT id FROM n WHERE cat = 77 ORDER BY v <-> %s LIMIT 10"
    assert run(conn, hot, (q,), index="n_v") == run(conn, hot, (q,), index=None) == [(30,), (9,), (27,)]
    conn.execute("UPDATE n SET v = %s WHERE id = 27", (docs[27],))  # NULL -> a vector: a new index entry
    conn.execute("DELETE FROM n WHERE id = 9")
    assert [r[0] for r in run(conn, hot, (q,), index="n_v")] == [r[0] for r in run(conn, hot, (q,), index=None)]
    assert sorted(r[0] for r in run(conn, hot, (q,), index="n_v")) == [27, 30]

    conn.execute("DROP INDEX n_v")
    conn.execute("CREATE INDEX n_part ON n USING shrinkvec (v vector_l2_ops) WHERE cat < 10")
    part = f"SELECT id FROM n WHERE cat < 10 ORDER BY v <-> %s LIMIT {N}"
    got = [r[0] for r in run(conn, part, (q,), index="n_part")]
    want = [r[0] for r in run(conn, part, (q,), index=None)]
    assert len(got) == len(want) and set(got) == set(want) and got[-5:] != []
    assert all(i % 50 < 10 for i in got)

    conn.execute("DROP INDEX n_part")
    even = "(CASE WHEN mod(cat, 2) = 0 THEN v END)::vector(384)"
    conn.execute(f"CREATE INDEX n_expr ON n USING shrinkvec (({even}) vector_l2_ops)")
    expr = f"SELECT id FROM n WHERE cat < 4 ORDER BY ({even}) <-> %s LIMIT {N}"
    got = [r[0] for r in run(conn, expr, (q,), index="n_expr")]
    want = [r[0] for r in run(conn, expr, (q,), index=None)]
    assert len(got) == len(want) == len(set(got)) and set(got) == set(want)
    assert got[: len(want) // 4] == want[: len(want) // 4]  # the non-NULL head in exact order


def test_bit_opclass_null_query_and_rescans(conn: psycopg.Connection, docs: np.ndarray) -> None:
    fill(conn, docs)
    conn.execute("CREATE INDEX n_b ON n USING shrinkvec (b bit_hamming_ops) WITH (lists = 4)")
    qb = "SELECT binarize(%s)::bit(384)"
    bits = conn.execute(qb, (docs[8],)).fetchone()[0]  # type: ignore[index]
    text = "SELECT id FROM n WHERE cat = 0 ORDER BY b <~> %s LIMIT 100"
    got, want = run(conn, text, (bits,), index="n_b"), run(conn, text, (bits,), index=None)
    assert sorted(got) == sorted(want) and len(want) == N // 50
    # a NULL query (a generic plan cannot fold it away): every row, also those with a NULL vector
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute(f"PREPARE knn_null(bit) AS SELECT id FROM n ORDER BY b <~> $1 LIMIT {N + 1}")
    assert "n_b" in "\n".join(r[0] for r in conn.execute("EXPLAIN EXECUTE knn_null(NULL)").fetchall())
    assert sorted(r[0] for r in conn.execute("EXECUTE knn_null(NULL)").fetchall()) == list(range(N))
    conn.execute("RESET plan_cache_mode")
    # rescans: a lateral join runs the scan once per outer row, each time with its NULL rows
    lateral = ("SELECT o.id, x.id FROM (VALUES (0), (1), (2)) o(id), LATERAL (SELECT id FROM n "
               "WHERE cat = o.id AND mod(id, 9) = 0 ORDER BY b <~> %s LIMIT 50) x ORDER BY 1, 2")
    got = run(conn, lateral, (bits,), index="n_b")
    assert got == run(conn, lateral, (bits,), index=None) and len(got) > 3


def test_a_cut_scan_has_no_tail(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """shrinkvec.max_scan_tuples ends a scan early (a NOTICE says so): the NULL rows, which come after
    every entry, are not read then."""
    fill(conn, docs)
    conn.execute("CREATE INDEX n_v ON n USING shrinkvec (v vector_l2_ops)")
    conn.execute("SET shrinkvec.max_scan_tuples = 300")
    rows = run(conn, "SELECT id FROM n WHERE mod(id, 9) = 0 ORDER BY v <-> %s LIMIT 10", (docs[1],), index="n_v")
    assert rows == []


def test_guessed_filter_selectivity_keeps_the_exact_plan(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """A filter the planner can only guess (a function: a third of the rows; an expression without
    statistics: 0.5%) is costed as a selective one: on a small table the exact plan wins then, where the
    index used to be chosen and read every row for a filter that keeps a few. A filter with statistics
    that keeps half the rows still gets the index."""
    register_vector(conn)
    conn.execute("CREATE TABLE f (id int PRIMARY KEY, meta jsonb, cat int, v vector(384))")
    with conn.cursor().copy("COPY f (id, meta, cat, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "jsonb", "int4", "vector"])
        for i, x in enumerate(docs):
            from psycopg.types.json import Jsonb

            copy.write_row((i, Jsonb({"rare": i % 1000 == 0, "g": "y" if i % 2 else "n"}), i % 2, x))
    conn.execute("CREATE INDEX f_v ON f USING shrinkvec (v vector_cosine_ops)")
    conn.execute("ANALYZE f")
    q = docs[11]

    def plan(where: str) -> str:
        return "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM f WHERE {where} ORDER BY v <=> %s LIMIT 10", (q,)).fetchall())

    assert "f_v" in plan("true")  # no filter: the index
    assert "f_v" in plan("cat = 1")  # half the rows, with statistics: the index
    guessed = plan("jsonb_path_match(meta, '$.rare == true')")
    assert "f_v" not in guessed and "Seq Scan" in guessed, guessed
    assert "f_v" not in plan("meta->>'g' = 'y'")
    rows = conn.execute("SELECT id FROM f WHERE jsonb_path_match(meta, '$.rare == true') ORDER BY v <=> %s LIMIT 10",
                        (q,)).fetchall()
    assert sorted(r[0] for r in rows) == [0, 1000]


def test_serializable_tail_sees_a_concurrent_insert(conn: psycopg.Connection, dsn: str, docs: np.ndarray) -> None:
    """A serializable transaction whose index scan reads the NULL tail conflicts with a concurrent insert of a
    row it did not see, as with the exact plan's sequential scan (write skew is caught)."""
    fill(conn, docs)
    conn.execute("CREATE INDEX n_v ON n USING shrinkvec (v vector_l2_ops)")
    conn.execute("CREATE TABLE audit (x int)")
    q = docs[4]
    with psycopg.connect(dsn) as t1, psycopg.connect(dsn, autocommit=True) as t2:
        register_vector(t1)
        t1.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        for s in ("SET enable_seqscan = off", "SET enable_sort = off"):
            t1.execute(s)
        t1.execute("SELECT count(*) FROM audit").fetchone()  # the snapshot
        t2.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        t2.execute("SELECT count(*) FROM audit").fetchone()
        t2.execute("INSERT INTO n VALUES (99999, 101, NULL, NULL)")
        t2.execute("COMMIT")
        query = "SELECT id FROM n WHERE cat = 101 ORDER BY v <-> %s LIMIT 5"
        plan = "\n".join(r[0] for r in t1.execute("EXPLAIN " + query, (q,)).fetchall())
        assert "n_v" in plan
        assert t1.execute(query, (q,)).fetchall() == []  # 99999 is after t1's snapshot
        with pytest.raises(psycopg.errors.SerializationFailure):
            t1.execute("INSERT INTO audit VALUES (1)")
            t1.commit()


def test_no_tail_where_no_row_can_be_null_and_the_tail_is_bounded(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """A partial index WHERE v IS NOT NULL has no NULL rows to add: an exhausted scan reads no table pages
    after its entries. Otherwise the tail's rows count against max_scan_tuples."""
    register_vector(conn)
    conn.execute("CREATE TABLE s (id int PRIMARY KEY, cat int, v vector(384))")
    with conn.cursor().copy("COPY s (id, cat, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "vector"])
        for i in range(6000):
            copy.write_row((i, i % 7, docs[i % N] if i < 200 else None))
    conn.execute("VACUUM ANALYZE s")
    heap_pages = one(conn, "SELECT relpages FROM pg_class WHERE relname = 's'")
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")

    def buffers(query: str) -> int:
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, (docs[1],)).fetchone()[0][0]  # type: ignore[index]
        node = plan["Plan"]["Plans"][0] if plan["Plan"]["Node Type"] == "Limit" else plan["Plan"]
        return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])

    nothing = "SELECT id FROM s WHERE cat = 99 ORDER BY v <-> %s LIMIT 10"
    conn.execute("CREATE INDEX s_all ON s USING shrinkvec (v vector_l2_ops)")
    with_tail = buffers(nothing)
    assert with_tail >= heap_pages  # the tail read the table
    conn.execute("DROP INDEX s_all")
    conn.execute("CREATE INDEX s_part ON s USING shrinkvec (v vector_l2_ops) WHERE v IS NOT NULL")
    conn.execute("SET enable_bitmapscan = off")
    partial = buffers(nothing.replace("WHERE", "WHERE v IS NOT NULL AND"))
    # the same entries' pages and rows, without a read of the table's pages after them
    assert partial <= with_tail - heap_pages + 5, (partial, with_tail, heap_pages)
    # the bound: 200 entries, then the tail's rows until max_scan_tuples
    conn.execute("DROP INDEX s_part")
    conn.execute("CREATE INDEX s_all ON s USING shrinkvec (v vector_l2_ops)")
    conn.execute("SET shrinkvec.max_scan_tuples = 1000")
    rows = conn.execute("SELECT id FROM s ORDER BY v <-> %s LIMIT 6000", (docs[1],)).fetchall()
    assert 200 < len(rows) < 1500, len(rows)
    conn.execute("RESET shrinkvec.max_scan_tuples")
    assert len(conn.execute("SELECT id FROM s ORDER BY v <-> %s LIMIT 6000", (docs[1],)).fetchall()) == 6000


def one(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_repartition_keeps_a_broken_hot_chain(conn: psycopg.Connection, dsn: str, docs: np.ndarray) -> None:
    """A row whose vector a HOT update set before the index existed, while an older snapshot still saw the
    NULL version (a broken HOT chain: CREATE INDEX indexes the live version under the chain's root, whose own
    version is NULL), keeps its entry through a re-partition, which reads the chain's last version, not its
    first."""
    register_vector(conn)
    # a row per page, with room for its new version beside it (pad keeps the rows apart, and is dropped then)
    conn.execute("CREATE TABLE h (id int PRIMARY KEY, pad text STORAGE PLAIN, v vector(384)) WITH (fillfactor = 40)")
    conn.execute("INSERT INTO h SELECT i, repeat('x', 2500), NULL FROM generate_series(0, 199) i")
    with psycopg.connect(dsn) as old:
        old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT count(*) FROM h").fetchone()  # its snapshot keeps the NULL versions
        with conn.cursor() as cur:  # HOT updates: no index on v yet
            cur.executemany("UPDATE h SET v = %s, pad = '' WHERE id = %s", [(docs[i], i) for i in range(200)])
        hot = one(conn, "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'h'")
        assert hot == 200, hot
        conn.execute("CREATE INDEX h_v ON h USING shrinkvec (v vector_l2_ops) WITH (lists = 4)")
        assert one(conn, "SELECT indcheckxmin FROM pg_index WHERE indexrelid = 'h_v'::regclass")  # broken chains
        conn.execute("SELECT shrinkvec_index_repartition('h_v')")
        assert one(conn, "SELECT entries FROM shrinkvec_index_info('h_v')") == 200
        old.execute("COMMIT")
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")
    conn.execute("SET shrinkvec.probes = 4")
    ids = [r[0] for r in conn.execute("SELECT id FROM h ORDER BY v <-> %s LIMIT 400", (docs[0],)).fetchall()]
    assert sorted(ids) == list(range(200))


@pytest.mark.parametrize("refine", [False, True])
def test_hot_updated_rows_are_returned(conn: psycopg.Connection, docs: np.ndarray, refine: bool) -> None:
    """A HOT update (a column the index does not cover) leaves the entry on the chain's root: the scan reads
    the visible version and returns the row by the root's TID, which the executor's fetch follows (a
    heap-only tuple's own TID it cannot: those rows used to vanish from the answers)."""
    register_vector(conn)
    conn.execute("CREATE TABLE u (id int PRIMARY KEY, note text, v vector(384)) WITH (fillfactor = 50)")
    with conn.cursor().copy("COPY u (id, note, v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "vector"])
        for i in range(600):
            copy.write_row((i, "a", docs[i]))
    options = " WITH (refine = 4)" if refine else ""
    conn.execute(f"CREATE INDEX u_v ON u USING shrinkvec (v vector_cosine_ops){options}")
    conn.execute("UPDATE u SET note = 'b' WHERE id % 2 = 0")
    hot = one(conn, "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'u'")
    assert hot >= 250, hot  # most are HOT
    q = docs[10]
    for limit in (10, 600):
        query = f"SELECT id FROM u ORDER BY v <=> %s LIMIT {limit}"
        got = [r[0] for r in run(conn, query, (q,), index="u_v")]
        want = [r[0] for r in run(conn, query, (q,), index=None)]
        assert len(got) == limit and len(set(got) & set(want)) >= (600 if limit == 600 else 9)
    assert sorted(r[0] for r in run(conn, "SELECT id FROM u WHERE note = 'b' ORDER BY v <=> %s LIMIT 600", (q,),
                                   index="u_v")) == list(range(0, 600, 2))
