"""Past one machine (docs/scale-out.md): a shrinkvec index on a partitioned table (one index per
partition, their ordered scans merged by a Merge Append), partition pruning, ATTACH and DETACH, and
streaming standbys that answer the same searches.

Every answer is checked against numpy's exact cosine order over the shipped demo docstrings
(4,000 x 384, all-MiniLM-L6-v2), partitioned by their top-level package: networkx, numpy and a
DEFAULT partition for the rest; mpmath and sklearn are held back for ATTACH PARTITION.

The partition tests use the session's server. The standby tests start a primary and a streaming
standby of their own (as tests/index/test_index_reliability.py::test_standby_replays_the_index does),
so they are skipped when the tests run against another server (SHRINKVEC_TEST_DSN).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql

from conftest import one_row, start_standby
from shrinkvec import demo

HELD_BACK = ("mpmath", "sklearn")  # not loaded at first: they arrive by ATTACH PARTITION
PARTITIONS = {
    "docs_networkx": "FOR VALUES IN ('networkx')",
    "docs_numpy": "FOR VALUES IN ('numpy')",
    "docs_rest": "DEFAULT",
}
SEARCH = "SELECT id FROM docs ORDER BY embedding <=> %s LIMIT 10"
own_servers_only = pytest.mark.skipif(bool(os.environ.get("SHRINKVEC_TEST_DSN")),
                                      reason="starts a primary and a standby of its own")


@dataclass(frozen=True)
class Demo:
    docs: np.ndarray  # float32, as loaded
    queries: np.ndarray
    pkg: np.ndarray  # top-level package of each doc (the partition key)
    dist: np.ndarray  # exact cosine distance, queries x docs, in float64

    def ids(self, *, packages: tuple[str, ...] | None = None, without: tuple[str, ...] = ()) -> np.ndarray:
        keep = ~np.isin(self.pkg, without)
        if packages is not None:
            keep &= np.isin(self.pkg, packages)
        return np.flatnonzero(keep)


@cache
def demo_data() -> Demo:
    data = demo.load_data()
    docs = data.docs.astype(np.float64)
    queries = data.queries.astype(np.float64)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    pkg = np.array([s.split(".")[0] for s in data.doc_sources])
    return Demo(data.docs, data.queries, pkg, 1.0 - queries @ docs.T)


def load(conn: psycopg.Connection, table: str, ids: np.ndarray) -> None:
    d = demo_data()
    with conn.cursor().copy(f"COPY {table} (id, pkg, grp, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "text", "int4", "vector"])
        for i in ids:
            copy.write_row((int(i), str(d.pkg[i]), int(i) % 100, d.docs[i]))


def create_docs(conn: psycopg.Connection, index_options: str = "") -> np.ndarray:
    """The partitioned docs table, loaded (all but HELD_BACK), with one shrinkvec index on the parent.
    Returns the ids loaded."""
    conn.execute("CREATE TABLE docs (id int NOT NULL, pkg text NOT NULL, grp int NOT NULL, embedding vector(384), "
                 "PRIMARY KEY (id, pkg)) PARTITION BY LIST (pkg)")
    for name, bounds in PARTITIONS.items():
        conn.execute(f"CREATE TABLE {name} PARTITION OF docs {bounds}")
    ids = demo_data().ids(without=HELD_BACK)
    load(conn, "docs", ids)
    conn.execute(f"CREATE INDEX docs_embedding_idx ON docs USING shrinkvec (embedding vector_cosine_ops) {index_options}")
    conn.execute("ANALYZE docs")
    return ids


def plan(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> dict[str, Any]:
    row = one_row(conn.execute("EXPLAIN (FORMAT JSON, COSTS OFF) " + query, params))
    top: dict[str, Any] = row[0][0]["Plan"]
    return top


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def index_scans(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(index, table) of every Index Scan in a plan, in plan order."""
    return [(n["Index Name"], n["Relation Name"]) for n in nodes(node) if n["Node Type"] == "Index Scan"]


def leaf_indexes(conn: psycopg.Connection, parent: str) -> dict[str, str]:
    """table -> index, for each partition's index of a partitioned index."""
    rows = conn.execute("SELECT i.indrelid::regclass::text, t.relid::text FROM pg_partition_tree(%s) t "
                        "JOIN pg_index i ON i.indexrelid = t.relid WHERE t.isleaf", (parent,)).fetchall()
    return {str(table): str(index) for table, index in rows}


def search_all_lists(conn: psycopg.Connection) -> None:
    """Every list probed and every entry of a partition reranked: the index scans are exact."""
    conn.execute("SET shrinkvec.probes = 1000")
    conn.execute("SET shrinkvec.shortlist = 4000")
    conn.execute("SET work_mem = '64MB'")


def reset_search(conn: psycopg.Connection) -> None:
    for name in ("shrinkvec.probes", "shrinkvec.shortlist", "work_mem"):
        conn.execute(f"RESET {name}")


def assert_exact(got: list[int], qi: int, ids: np.ndarray, k: int = 10) -> None:
    """got is the exact top k of the rows ids for query qi: the same distances, ascending (ties may swap ids)."""
    dist = demo_data().dist[qi]
    assert len(got) == len(set(got)) == min(k, len(ids)), got
    want = np.sort(dist[ids])[:k]
    np.testing.assert_allclose(dist[got], want, rtol=0, atol=1e-6)
    assert set(got) <= set(ids.tolist())


def recall(conn: psycopg.Connection, query: str, ids: np.ndarray, params: tuple[Any, ...] = ()) -> float:
    """Mean recall@10 over the 200 queries of `query` (its last parameter is the query vector) against
    numpy's top 10 of the rows ids."""
    d = demo_data()
    hits = 0
    for qi, q in enumerate(d.queries):
        got = {r[0] for r in conn.execute(query, (*params, q))}
        hits += len(got & set(ids[np.argsort(d.dist[qi][ids], kind="stable")[:10]].tolist()))
    return hits / (10 * len(d.queries))


def vector_text(v: np.ndarray) -> str:
    """pgvector's text form of v (for statements that take no bound parameters, as EXECUTE)."""
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def answers(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = (), n: int = 200) -> list[list[int]]:
    return [[r[0] for r in conn.execute(query, (*params, q))] for q in demo_data().queries[:n]]


# --- partitioned tables --------------------------------------------------------------------------------------


def test_an_index_on_the_parent_makes_one_per_partition(conn: psycopg.Connection) -> None:
    """CREATE INDEX on the parent makes a shrinkvec index on each partition, with the parent's WITH options,
    each over its own rows; a new partition gets one too. The introspection functions refuse the
    parent's (partitioned) index with a hint and work on each partition's."""
    d = demo_data()
    ids = create_docs(conn, "WITH (lists = 8)")
    leaves = leaf_indexes(conn, "docs_embedding_idx")
    assert set(leaves) == set(PARTITIONS)
    for table, index in leaves.items():
        am, options = one_row(conn.execute(
            "SELECT a.amname, c.reloptions FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = %s::regclass",
            (index,)))
        assert (am, options) == ("shrinkvec", ["lists=8"]), index
        rows = one_row(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))))[0]
        lists, entries = one_row(conn.execute("SELECT lists, entries FROM shrinkvec_index_info(%s)", (index,)))
        assert (lists, entries) == (8, rows) and rows > 500, (index, lists, entries, rows)
        live, indexed, ok = one_row(conn.execute(
            "SELECT live_rows, index_entries, ok FROM shrinkvec_index_check(%s)", (index,)))
        assert (live, indexed, ok) == (rows, rows, True)
    total = one_row(conn.execute("SELECT sum(entries) FROM pg_partition_tree('docs_embedding_idx') t, "
                                 "shrinkvec_index_info(t.relid) WHERE t.isleaf"))[0]
    assert total == len(ids) == len(d.docs) - np.isin(d.pkg, HELD_BACK).sum()
    for function in ("shrinkvec_index_info", "shrinkvec_index_check", "shrinkvec_index_entries",
                     "shrinkvec_index_centroids", "shrinkvec_index_repartition"):
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="cannot work on partitioned index") as err:
            conn.execute(sql.SQL("SELECT * FROM {}(%s)").format(sql.Identifier(function)), ("docs_embedding_idx",))
        assert err.value.diag.message_hint is not None and "pg_partition_tree" in err.value.diag.message_hint
    # a partition created later gets the parent's index, with the parent's options
    conn.execute("CREATE TABLE docs_later PARTITION OF docs FOR VALUES IN ('later')")
    index = leaf_indexes(conn, "docs_embedding_idx")["docs_later"]
    assert one_row(conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (index,)))[0] == ["lists=8"]


def test_top_k_is_merged_from_every_partition(conn: psycopg.Connection) -> None:
    """ORDER BY embedding <=> q LIMIT k is a Merge Append of each partition's index scan: with every list
    probed and reranked it is numpy's exact top 10 over all partitions, for each of the 200 queries (whose
    top 10 spans several partitions); with the index's defaults (made with no options) recall@10 >= 0.99."""
    d = demo_data()
    ids = create_docs(conn)
    leaves = leaf_indexes(conn, "docs_embedding_idx")
    top = plan(conn, SEARCH, (d.queries[0],))
    assert top["Node Type"] == "Limit"
    merge = top["Plans"][0]
    assert merge["Node Type"] == "Merge Append"
    assert sorted(index_scans(merge)) == sorted((index, table) for table, index in leaves.items())
    assert [n["Node Type"] for n in merge["Plans"]] == ["Index Scan"] * len(PARTITIONS)
    search_all_lists(conn)
    spans = 0
    for qi, q in enumerate(d.queries):
        got = [r[0] for r in conn.execute(SEARCH, (q,))]
        assert_exact(got, qi, ids)
        spans += len(set(d.pkg[got])) > 1
    assert spans > 100  # the merge matters: most top 10s come from more than one partition
    reset_search(conn)
    assert recall(conn, SEARCH, ids) >= 0.99


def test_settings_per_partition(conn: psycopg.Connection) -> None:
    """ALTER INDEX ... SET on one partition's index changes the scans of that partition only; PostgreSQL
    refuses it on the parent's index; a session SET still wins; RESET gives the build's choice back."""
    d = demo_data()
    ids = create_docs(conn, "WITH (lists = 8)")
    leaves = leaf_indexes(conn, "docs_embedding_idx")
    networkx = d.ids(packages=("networkx",))
    in_pkg = "SELECT id FROM docs WHERE pkg = %s ORDER BY embedding <=> %s LIMIT 10"
    before = {p: answers(conn, in_pkg, (p,)) for p in ("networkx", "numpy")}
    before_all = answers(conn, SEARCH)
    base_all = recall(conn, SEARCH, ids)
    base = recall(conn, in_pkg, networkx, ("networkx",))
    assert base >= 0.95
    with pytest.raises(psycopg.errors.WrongObjectType, match="partitioned index"):
        conn.execute("ALTER INDEX docs_embedding_idx SET (probes = 1)")
    conn.execute(sql.SQL("ALTER INDEX {} SET (probes = 1, shortlist = 40)").format(sql.Identifier(leaves["docs_networkx"])))
    info = {t: one_row(conn.execute("SELECT scan_probes, scan_shortlist FROM shrinkvec_index_info(%s)", (i,)))
            for t, i in leaves.items()}
    assert info["docs_networkx"] == (1, 40)
    assert info["docs_numpy"][0] > 1 and info["docs_rest"][0] > 1
    one_list = recall(conn, in_pkg, networkx, ("networkx",))
    assert one_list < min(0.8, base - 0.1)  # 1 of 8 lists
    assert answers(conn, in_pkg, ("numpy",)) == before["numpy"]  # the other partitions: unchanged
    assert recall(conn, SEARCH, ids) < base_all - 0.02  # the merged search misses networkx's rows
    # a session's SET overrides every partition's index setting
    search_all_lists(conn)
    for qi, q in enumerate(d.queries[:50]):
        assert_exact([r[0] for r in conn.execute(in_pkg, ("networkx", q))], qi, networkx)
    reset_search(conn)
    conn.execute(sql.SQL("ALTER INDEX {} RESET (probes, shortlist)").format(sql.Identifier(leaves["docs_networkx"])))
    assert answers(conn, in_pkg, ("networkx",)) == before["networkx"]
    assert answers(conn, SEARCH) == before_all
    # one setting for every partition: ALTER each partition's index (docs/scale-out.md)
    conn.execute("""DO $$
        DECLARE i regclass;
        BEGIN
            FOR i IN SELECT relid FROM pg_partition_tree('docs_embedding_idx') WHERE isleaf LOOP
                EXECUTE format('ALTER INDEX %s SET (probes = 1)', i);
            END LOOP;
        END $$""")
    assert {one_row(conn.execute("SELECT scan_probes FROM shrinkvec_index_info(%s)", (i,)))[0] for i in leaves.values()} == {1}
    assert recall(conn, SEARCH, ids) < min(0.8, base_all - 0.1)


def test_a_partition_key_filter_prunes_to_one_index(conn: psycopg.Connection) -> None:
    """WHERE pkg = 'numpy' plans one index scan, on that partition's index; its answers are that partition's
    exact top 10 (every list probed), and with a LIMIT past the partition's size every row of it comes out,
    as in the exact plan. An IN list merges just its partitions; a prepared statement prunes at run time."""
    d = demo_data()
    create_docs(conn)
    leaves = leaf_indexes(conn, "docs_embedding_idx")
    numpy_ = d.ids(packages=("numpy",))
    q = d.queries[0]
    pruned = plan(conn, "SELECT id FROM docs WHERE pkg = 'numpy' ORDER BY embedding <=> %s LIMIT 10", (q,))
    assert index_scans(pruned) == [(leaves["docs_numpy"], "docs_numpy")]
    assert not any(n["Node Type"] in ("Append", "Merge Append") for n in nodes(pruned))
    two = plan(conn, "SELECT id FROM docs WHERE pkg IN ('numpy', 'networkx') ORDER BY embedding <=> %s LIMIT 10", (q,))
    assert two["Plans"][0]["Node Type"] == "Merge Append"
    assert sorted(index_scans(two)) == sorted([(leaves["docs_numpy"], "docs_numpy"), (leaves["docs_networkx"], "docs_networkx")])
    search_all_lists(conn)
    for qi, qv in enumerate(d.queries[:100]):
        got = [r[0] for r in conn.execute("SELECT id FROM docs WHERE pkg = 'numpy' ORDER BY embedding <=> %s LIMIT 10", (qv,))]
        assert_exact(got, qi, numpy_)
    reset_search(conn)
    # LIMIT past the partition's size: every row of it, as the exact plan gives (which the planner prefers here)
    everything = "SELECT id FROM docs WHERE pkg = 'numpy' ORDER BY embedding <=> %s LIMIT 1000"
    conn.execute("SET enable_sort = off")  # the order must come from an index: the shrinkvec one
    assert index_scans(plan(conn, everything, (q,))) == [(leaves["docs_numpy"], "docs_numpy")]
    got = [r[0] for r in conn.execute(everything, (q,))]
    conn.execute("RESET enable_sort")
    conn.execute("SET enable_indexscan = off")
    assert index_scans(plan(conn, everything, (q,))) == []
    exact = [r[0] for r in conn.execute(everything, (q,))]
    conn.execute("RESET enable_indexscan")
    assert len(got) == len(exact) == len(numpy_)
    assert sorted(got) == sorted(exact) == sorted(numpy_.tolist())
    assert np.all(np.diff(d.dist[0][got]) >= -1e-6)  # in exact order
    # a prepared statement keeps custom plans (the default plan_cache_mode), each pruned to the one index scan
    conn.execute("PREPARE by_pkg(text, vector) AS SELECT id FROM docs WHERE pkg = $1 ORDER BY embedding <=> $2 LIMIT 10")
    for qi, qv in enumerate(d.queries[:8]):  # past the plan cache's first five custom plans
        run = sql.SQL("EXECUTE by_pkg('numpy', {})").format(sql.Literal(vector_text(qv)))
        rows = [r[0] for r in conn.execute(run)]
        assert len(rows) == 10 and set(rows) <= set(numpy_.tolist())
    assert one_row(conn.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'by_pkg'")) == (0, 8)
    stmt = sql.SQL("EXPLAIN (FORMAT JSON, COSTS OFF) EXECUTE by_pkg('numpy', {})").format(sql.Literal(vector_text(q)))
    assert index_scans(one_row(conn.execute(stmt))[0][0]["Plan"]) == [(leaves["docs_numpy"], "docs_numpy")]


def test_a_filter_on_another_column_returns_what_the_exact_plan_returns(conn: psycopg.Connection) -> None:
    """A filter on a column that is not the partition key (grp: 1% and 30% of the rows) through the merged
    index scans returns as many rows as the exact plan, the same ones when the LIMIT takes every match."""
    d = demo_data()
    ids = create_docs(conn)
    grp = ids % 100
    conn.execute("SET enable_seqscan = off")  # the planner prefers the exact plan for a 1% filter
    for where, limit, matches in (("grp = 7", 50, ids[grp == 7]), ("grp < 30", 10, ids[grp < 30])):
        query = f"SELECT id FROM docs WHERE {where} ORDER BY embedding <=> %s LIMIT {limit}"
        top = plan(conn, query, (d.queries[0],))
        assert top["Plans"][0]["Node Type"] == "Merge Append" and len(index_scans(top)) == len(PARTITIONS)
        index_rows = answers(conn, query, n=50)
        conn.execute("SET enable_indexscan = off")
        conn.execute("RESET enable_seqscan")
        exact_rows = answers(conn, query, n=50)
        conn.execute("RESET enable_indexscan")
        conn.execute("SET enable_seqscan = off")
        hits = 0
        for qi, (got, exact) in enumerate(zip(index_rows, exact_rows)):
            assert len(got) == len(exact) == min(limit, len(matches)), (where, qi)
            assert set(got) <= set(matches.tolist())
            if limit >= len(matches):
                assert sorted(got) == sorted(exact) == sorted(matches.tolist())
            hits += len(set(got) & set(exact))
        assert hits / sum(map(len, exact_rows)) >= 0.95, where


def test_attach_and_detach_partitions(conn: psycopg.Connection) -> None:
    """ATTACH of a loaded table builds its index under the parent's (or adopts a matching shrinkvec index it
    already has, with that index's own options), and its rows are searched at once; DETACH takes them out
    of the parent's searches and leaves the table with its index."""
    d = demo_data()
    create_docs(conn, "WITH (lists = 8)")
    conn.execute("CREATE TABLE docs_mpmath (LIKE docs)")  # the columns only: no index
    load(conn, "docs_mpmath", d.ids(packages=("mpmath",)))
    conn.execute("CREATE TABLE docs_sklearn (LIKE docs)")
    load(conn, "docs_sklearn", d.ids(packages=("sklearn",)))
    conn.execute("CREATE INDEX sklearn_own ON docs_sklearn USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 2)")
    conn.execute("ALTER TABLE docs ATTACH PARTITION docs_mpmath FOR VALUES IN ('mpmath')")
    conn.execute("ALTER TABLE docs ATTACH PARTITION docs_sklearn FOR VALUES IN ('sklearn')")
    leaves = leaf_indexes(conn, "docs_embedding_idx")
    assert set(leaves) == {*PARTITIONS, "docs_mpmath", "docs_sklearn"}
    assert leaves["docs_sklearn"] == "sklearn_own"  # adopted, not built twice
    assert one_row(conn.execute("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'docs_sklearn'::regclass "
                                "AND a.amname = 'shrinkvec'"))[0] == 1
    assert one_row(conn.execute("SELECT lists FROM shrinkvec_index_info('sklearn_own')"))[0] == 2
    mp = leaves["docs_mpmath"]
    assert one_row(conn.execute("SELECT lists, entries FROM shrinkvec_index_info(%s)", (mp,))) == \
        (8, len(d.ids(packages=("mpmath",))))
    assert sorted(index_scans(plan(conn, SEARCH, (d.queries[0],)))) == sorted((i, t) for t, i in leaves.items())
    everything = d.ids()
    search_all_lists(conn)
    attached = 0
    for qi, q in enumerate(d.queries):
        got = [r[0] for r in conn.execute(SEARCH, (q,))]
        assert_exact(got, qi, everything)
        attached += int(np.isin(d.pkg[got], HELD_BACK).sum())
    assert attached > 20  # the attached partitions' rows are among the answers
    conn.execute("ALTER TABLE docs DETACH PARTITION docs_sklearn")
    without = d.ids(without=("sklearn",))
    for qi, q in enumerate(d.queries):
        assert_exact([r[0] for r in conn.execute(SEARCH, (q,))], qi, without)
    assert "docs_sklearn" not in leaf_indexes(conn, "docs_embedding_idx")
    # the detached table keeps its index, now a standalone one, and searches with it
    alone = "SELECT id FROM docs_sklearn ORDER BY embedding <=> %s LIMIT 10"
    conn.execute("SET enable_seqscan = off")
    assert index_scans(plan(conn, alone, (d.queries[0],))) == [("sklearn_own", "docs_sklearn")]
    for qi, q in enumerate(d.queries[:50]):
        assert_exact([r[0] for r in conn.execute(alone, (q,))], qi, d.ids(packages=("sklearn",)))


def test_one_partition_at_a_time(conn: psycopg.Connection) -> None:
    """CREATE INDEX ON ONLY the parent, then CREATE INDEX CONCURRENTLY on each partition (each with its own
    options) and ALTER INDEX ... ATTACH PARTITION: the parent's index is valid once every partition's is
    attached, and the merged search uses them."""
    d = demo_data()
    conn.execute("CREATE TABLE docs (id int NOT NULL, pkg text NOT NULL, grp int NOT NULL, embedding vector(384)) "
                 "PARTITION BY LIST (pkg)")
    for name, bounds in PARTITIONS.items():
        conn.execute(f"CREATE TABLE {name} PARTITION OF docs {bounds}")
    ids = d.ids(without=HELD_BACK)
    load(conn, "docs", ids)
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        conn.execute("CREATE INDEX CONCURRENTLY ON docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("CREATE INDEX docs_embedding_idx ON ONLY docs USING shrinkvec (embedding vector_cosine_ops)")
    options = {"docs_networkx": "WITH (lists = 4)", "docs_numpy": "", "docs_rest": "WITH (lists = 8, shortlist = 80)"}
    for i, (table, with_) in enumerate(options.items()):
        valid = one_row(conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'docs_embedding_idx'::regclass"))[0]
        assert valid is False
        conn.execute(f"CREATE INDEX CONCURRENTLY {table}_v ON {table} USING shrinkvec (embedding vector_cosine_ops) {with_}")
        conn.execute(f"ALTER INDEX docs_embedding_idx ATTACH PARTITION {table}_v")
    assert one_row(conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'docs_embedding_idx'::regclass"))[0]
    lists = {t: one_row(conn.execute("SELECT lists FROM shrinkvec_index_info(%s)", (f"{t}_v",)))[0] for t in options}
    assert lists == {"docs_networkx": 4, "docs_numpy": 1, "docs_rest": 8}
    assert sorted(index_scans(plan(conn, SEARCH, (d.queries[0],)))) == sorted((f"{t}_v", t) for t in options)
    search_all_lists(conn)
    for qi, q in enumerate(d.queries[:50]):
        assert_exact([r[0] for r in conn.execute(SEARCH, (q,))], qi, ids)


def test_vacuum_repartitions_each_partition_on_its_own(conn: psycopg.Connection) -> None:
    """An index made on the empty parent is flat in each partition; VACUUM of the parent re-partitions the
    index of the partition that outgrew its lists (over 20,000 entries) and leaves the small one as it is."""
    d = demo_data()
    rng = np.random.default_rng(7)
    conn.execute("CREATE TABLE g (id int NOT NULL, part int NOT NULL, embedding vector(384)) PARTITION BY LIST (part)")
    conn.execute("CREATE TABLE g_big PARTITION OF g FOR VALUES IN (0)")
    conn.execute("CREATE TABLE g_small PARTITION OF g FOR VALUES IN (1)")
    conn.execute("CREATE INDEX g_v ON g USING shrinkvec (embedding vector_cosine_ops)")
    big = (d.docs[np.arange(21_000) % len(d.docs)] + 0.01 * rng.standard_normal((21_000, 384))).astype(np.float32)
    with conn.cursor().copy("COPY g (id, part, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "vector"])
        for i, v in enumerate(big):
            copy.write_row((i, 0, v))
        for i in range(300):
            copy.write_row((100_000 + i, 1, d.docs[i]))
    leaves = leaf_indexes(conn, "g_v")
    info = "SELECT generation, lists, entries FROM shrinkvec_index_info(%s)"
    assert one_row(conn.execute(info, (leaves["g_big"],))) == (0, 1, 21_000)
    conn.execute("VACUUM g")
    generation, lists, entries = one_row(conn.execute(info, (leaves["g_big"],)))
    assert (generation, entries) == (1, 21_000) and lists > 100
    assert one_row(conn.execute(info, (leaves["g_small"],))) == (0, 1, 300)
    live, indexed, ok = one_row(conn.execute("SELECT live_rows, index_entries, ok FROM shrinkvec_index_check(%s)",
                                             (leaves["g_big"],)))
    assert (live, indexed, ok) == (21_000, 21_000, True)
    # still the exact top 10 over both partitions when every list is probed
    search_all_lists(conn)
    conn.execute("SET shrinkvec.shortlist = 25000")
    conn.execute("SET work_mem = '256MB'")
    unit = big / np.linalg.norm(big, axis=1, keepdims=True)
    small = d.docs[:300] / np.linalg.norm(d.docs[:300], axis=1, keepdims=True)
    for q in d.queries[:10]:
        qn = q / np.linalg.norm(q)
        dist = np.concatenate([1 - unit @ qn, 1 - small @ qn])
        key = np.concatenate([np.arange(21_000), 100_000 + np.arange(300)])
        rows = conn.execute("SELECT id FROM g ORDER BY embedding <=> %s LIMIT 10", (q,)).fetchall()
        got = np.searchsorted(key, [r[0] for r in rows])
        np.testing.assert_allclose(dist[got], np.sort(dist)[:10], rtol=0, atol=1e-5)


# --- streaming standbys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replica:
    primary_dsn: str  # of the postgres database
    standby_dir: Path
    user: str
    port: int

    def primary(self, db: str) -> str:
        return self.primary_dsn.replace("/postgres?", f"/{db}?")

    def standby(self, db: str) -> str:
        return f"postgresql://{self.user}@/{db}?host={self.standby_dir}&port={self.port}"


@pytest.fixture(scope="module")
def replica() -> Iterator[Replica]:
    """A primary and a streaming standby of it (hot_standby_feedback = on), in a directory of their own,
    set up as test_index_reliability.py::test_standby_replays_the_index does."""
    if os.environ.get("SHRINKVEC_TEST_DSN"):
        pytest.skip("starts a primary and a standby of its own (SHRINKVEC_TEST_DSN names an external server)")
    from shrinkvec import server

    root = Path(tempfile.mkdtemp(prefix="shrinkvec-scale-out-"))
    root.chmod(0o755)
    primary_dir, standby_dir = root / "primary", root / "standby"
    run_as = "pgserver" if os.geteuid() == 0 else None
    pg_ctl = [str(server.bin_dir() / "pg_ctl"), "-D", str(standby_dir)]
    try:
        info = server.start(primary_dir)
        # feedback every second (not 10): the feedback test waits for the primary to see the standby's xmin
        start_standby(info, standby_dir, "wal_receiver_status_interval=1s")
        rep = Replica(info.dsn(), standby_dir, info.user, info.port)
        set_feedback(rep, True)
        yield rep
    finally:
        if (standby_dir / "postmaster.pid").exists():
            subprocess.run([*pg_ctl, "-w", "-m", "immediate", "stop"], user=run_as, capture_output=True)
        server.stop(primary_dir)
        shutil.rmtree(root, ignore_errors=True)


def set_feedback(rep: Replica, on: bool) -> None:
    """hot_standby_feedback on the standby (ALTER SYSTEM works there: it writes no WAL), reloaded."""
    value = "on" if on else "off"
    with psycopg.connect(rep.standby("postgres"), autocommit=True) as sb:
        sb.execute(sql.SQL("ALTER SYSTEM SET hot_standby_feedback = {}").format(sql.Literal(value)))
        sb.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while True:
        with psycopg.connect(rep.standby("postgres"), autocommit=True) as sb:
            if one_row(sb.execute("SHOW hot_standby_feedback"))[0] == value:
                return
        assert time.monotonic() < deadline, "the standby did not reload hot_standby_feedback"
        time.sleep(0.1)


def new_database(rep: Replica, name: str) -> str:
    """A database on the primary with CREATE EXTENSION shrinkvec CASCADE (the standby replays both)."""
    with psycopg.connect(rep.primary_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(rep.primary(name), autocommit=True) as c:
        c.execute("CREATE EXTENSION shrinkvec CASCADE")
    return name


def catch_up(primary: psycopg.Connection, rep: Replica) -> None:
    """Wait until the standby has replayed everything the primary wrote so far (a new database too). The
    insert position, not pg_current_wal_lsn() (the write position): a VACUUM's records can sit in the WAL
    buffers after it returns, until the WAL writer writes them."""
    lsn = one_row(primary.execute("SELECT pg_current_wal_insert_lsn()"))[0]
    deadline = time.monotonic() + 60
    with psycopg.connect(rep.standby("postgres"), autocommit=True) as sb:
        while one_row(sb.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)))[0] is not True:
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.05)


def leaf_info(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT t.relid::text, s.lists, s.entries, s.generation, s.scan_probes, s.scan_shortlist, s.scan_rerank "
        "FROM pg_partition_tree('docs_embedding_idx') t, shrinkvec_index_info(t.relid) s WHERE t.isleaf ORDER BY 1").fetchall()


@own_servers_only
def test_a_standby_answers_the_same_searches(replica: Replica) -> None:
    """A standby of a partitioned table answers every search as the primary does (the same ids, with the
    settings stored in a partition's index and with none), before and after inserts into the partitions and
    the ATTACH of a new one on the primary are replayed; a session SET on the standby works as on the primary.
    (test_index_reliability.py::test_standby_replays_the_index covers a plain table through updates,
    deletes, VACUUM and re-partitions.)"""
    d = demo_data()
    db = new_database(replica, "scale_out_standby")
    in_pkg = "SELECT id FROM docs WHERE pkg = %s ORDER BY embedding <=> %s LIMIT 10"
    with psycopg.connect(replica.primary(db), autocommit=True) as pr:
        register_vector(pr)
        ids = create_docs(pr, "WITH (lists = 8)")
        pr.execute("ALTER INDEX docs_networkx_embedding_idx SET (probes = 2, shortlist = 30)")
        catch_up(pr, replica)
        with psycopg.connect(replica.standby(db), autocommit=True) as sb:
            register_vector(sb)
            assert one_row(sb.execute("SELECT pg_is_in_recovery()"))[0] is True

            def same_answers() -> list[list[int]]:
                """The same partitions' indexes, plans and ids on both, with the indexes' settings and with
                every list searched (a session SET, on the standby too); returns the latter."""
                assert leaf_info(sb) == leaf_info(pr)
                assert plan(sb, SEARCH, (d.queries[0],)) == plan(pr, SEARCH, (d.queries[0],))
                for query, params in ((SEARCH, ()), (in_pkg, ("networkx",))):
                    assert answers(sb, query, params) == answers(pr, query, params)
                for c in (pr, sb):
                    search_all_lists(c)
                on_primary = answers(pr, SEARCH)
                assert answers(sb, SEARCH) == on_primary
                for c in (pr, sb):
                    reset_search(c)
                return on_primary

            for qi, got in enumerate(same_answers()):
                assert_exact(got, qi, ids)
            assert ("docs_networkx_embedding_idx", 8, 1049, 0, 2, 30, 200) in leaf_info(sb)  # ALTER INDEX replayed
            # on the primary: inserts (near copies of the held-back rows, into the DEFAULT partition), and
            # the scipy rows moved out of it into a partition of their own by ATTACH
            extra = d.ids(packages=HELD_BACK)
            noisy = d.docs[extra] + 1e-3 * np.random.default_rng(3).standard_normal((len(extra), 384)).astype(np.float32)
            with pr.cursor().copy("COPY docs (id, pkg, grp, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text", "int4", "vector"])
                for i, v in zip(extra, noisy):
                    copy.write_row((10_000 + int(i), "other", 0, v))
            pr.execute("CREATE TABLE docs_scipy (LIKE docs)")
            pr.execute("INSERT INTO docs_scipy SELECT * FROM docs WHERE pkg = 'scipy'")
            pr.execute("DELETE FROM docs WHERE pkg = 'scipy'")
            pr.execute("ALTER TABLE docs ATTACH PARTITION docs_scipy FOR VALUES IN ('scipy')")
            assert set(leaf_indexes(pr, "docs_embedding_idx")) == {*PARTITIONS, "docs_scipy"}
            catch_up(pr, replica)
            assert leaf_indexes(sb, "docs_embedding_idx") == leaf_indexes(pr, "docs_embedding_idx")
            after = same_answers()
    # numpy's exact top 10 over the rows now in the table
    keys = np.concatenate([ids, 10_000 + extra])
    vecs = np.concatenate([d.docs[ids], noisy]).astype(np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    qs = d.queries.astype(np.float64)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    dist = 1.0 - qs @ vecs.T
    at = {int(k): j for j, k in enumerate(keys)}
    for qi, got in enumerate(after):
        np.testing.assert_allclose(dist[qi, [at[g] for g in got]], np.sort(dist[qi])[:10], rtol=0, atol=1e-6)
    assert sum(g >= 10_000 for a in after for g in a) > 20  # the inserted rows are found, on the standby too


@own_servers_only
def test_hot_standby_feedback_keeps_the_pages_a_standby_scan_reads(replica: Replica) -> None:
    """Why standbys need hot_standby_feedback = on: a re-partition retires the index's pages and a later
    VACUUM on the primary recycles them once no primary snapshot needs them. With feedback, the standby's
    open scan holds them back and completes; without, the scan fails with SQLSTATE 40001 and a hint that
    names the setting (the standby replays the recycling with no recovery conflict to wait for)."""
    d = demo_data()
    db = new_database(replica, "scale_out_feedback")
    with psycopg.connect(replica.primary(db), autocommit=True) as pr:
        register_vector(pr)
        pr.execute("CREATE TABLE r (id int PRIMARY KEY, embedding vector(384))")
        with pr.cursor().copy("COPY r (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "vector"])
            for i in range(2000):
                copy.write_row((i, d.docs[i]))
        pr.execute("CREATE INDEX r_v ON r USING shrinkvec (embedding vector_cosine_ops)")
        # the first VACUUM after the load truncates the table's empty end under an ACCESS EXCLUSIVE lock,
        # which a standby query conflicts with whatever hot_standby_feedback says: take it out of the way
        pr.execute("VACUUM r")
        info = "SELECT generation, retired_pages, free_pages FROM shrinkvec_index_info('r_v')"

        def scan_across_recycling(expect_recycled: bool) -> list[int] | psycopg.Error:
            """Open an index scan on the standby, re-partition and VACUUM on the primary, then read the
            scan to its end (its later passes read the index's pages again)."""
            catch_up(pr, replica)
            with psycopg.connect(replica.standby(db)) as sb:  # a transaction: the cursor keeps its snapshot
                register_vector(sb)
                sb.execute("SET enable_seqscan = off")
                sb.execute("SET shrinkvec.shortlist = 10")
                cur = sb.cursor("knn")
                cur.execute("SELECT id FROM r ORDER BY embedding <=> %s", (d.queries[0],))
                first = [r[0] for r in cur.fetchmany(5)]
                xmin = int(one_row(sb.execute("SELECT backend_xmin::text FROM pg_stat_activity WHERE pid = pg_backend_pid()"))[0])
                deadline = time.monotonic() + 30
                while True:  # until the primary has the standby's xmin (feedback on) or none (off)
                    seen = one_row(pr.execute("SELECT min(backend_xmin::text::bigint) FROM pg_stat_replication"))[0]
                    if (seen is None) if expect_recycled else (seen is not None and seen <= xmin):
                        break
                    assert time.monotonic() < deadline, ("the primary's xmin of the standby", seen, xmin)
                    time.sleep(0.1)
                generation = one_row(pr.execute(info))[0]
                pr.execute("SELECT shrinkvec_index_repartition('r_v')")
                pr.execute("SELECT txid_current()")  # a transaction after the switch
                pr.execute("VACUUM r")
                gen, retired, free = one_row(pr.execute(info))
                assert gen == generation + 1
                assert (retired == 0 and free > 0) if expect_recycled else (retired > 0 and free == 0), (retired, free)
                catch_up(pr, replica)
                try:
                    return first + [r[0] for r in cur.fetchall()]
                except psycopg.errors.SerializationFailure as exc:
                    return exc

        kept = scan_across_recycling(expect_recycled=False)
        assert isinstance(kept, list) and sorted(kept) == list(range(2000))
        set_feedback(replica, False)
        try:
            failed = scan_across_recycling(expect_recycled=True)
        finally:
            set_feedback(replica, True)
        assert isinstance(failed, psycopg.errors.SerializationFailure)
        assert failed.sqlstate == "40001"
        assert "no longer a data page" in str(failed)
        assert failed.diag.message_hint is not None and "hot_standby_feedback = on" in failed.diag.message_hint
