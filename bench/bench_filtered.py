"""Issue 15's filtered search: `WHERE cat < X ORDER BY embedding <=> q LIMIT 10` at 0.1%, 1%, 10% and 50%
selectivity, on the shared docstrings: recall@10 against numpy's exact top-10 among the matching rows, and
ms/query, for the shrinkvec index (flat and IVF, iterative scans), the exact plan (no vector index: a
sequential or btree scan, filter, sort), and pgvector HNSW with hnsw.iterative_scan = relaxed_order.

Every method has its own copy of the table (one vector index each, plus a btree on cat, so the exact plan
can use it), and each query runs through every method and setting in turn (round-robin), so load changes
on the shared machine hit every method alike.

    .venv/bin/python bench/bench_filtered.py [--dsn ...] [--queries 200]

Writes results/filtered.md and results/filtered.png.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg import sql  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shrinkvec import server  # noqa: E402

from common import RESULTS, docstrings, machine, write_markdown  # noqa: E402

SELECTIVITIES = (0.001, 0.01, 0.1, 0.5)
CATS = 1000  # cat = id % 1000: `cat < s * 1000` keeps a fraction s of the rows


@dataclass
class Setting:
    method: str
    table: str
    label: str
    gucs: dict[str, str]
    ms: dict[float, list[float]] = field(default_factory=dict)
    recall: dict[float, list[float]] = field(default_factory=dict)


def load_table(conn: psycopg.Connection, table: str, docs: np.ndarray) -> None:
    t = sql.Identifier(table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, cat int NOT NULL, embedding vector({}))").format(
        t, sql.Literal(docs.shape[1])))
    with conn.cursor().copy(sql.SQL("COPY {} (id, cat, embedding) FROM STDIN WITH (FORMAT BINARY)").format(t)) as cp:
        cp.set_types(["int4", "int4", "vector"])
        for i, v in enumerate(docs):
            cp.write_row((i, i % CATS, v))
    conn.execute(sql.SQL("CREATE INDEX ON {} (cat)").format(t))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(t))


def setup(conn: psycopg.Connection, docs: np.ndarray, console: Console) -> list[Setting]:
    tables = {"exact": "f_exact", "flat": "f_flat", "ivf": "f_ivf", "hnsw": "f_hnsw"}
    for table in tables.values():
        load_table(conn, table, docs)
    lists = int(round(len(docs) ** 0.5))
    ddl = {
        "flat": "CREATE INDEX ON f_flat USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)",
        "ivf": f"CREATE INDEX ON f_ivf USING shrinkvec (embedding vector_cosine_ops) WITH (lists = {lists})",
        "hnsw": "CREATE INDEX ON f_hnsw USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
    }
    for name, stmt in ddl.items():
        t = time.perf_counter()
        conn.execute(stmt)
        console.print(f"built {name} in {time.perf_counter() - t:.1f} s")
    off = {"enable_indexscan": "on"}
    settings = [Setting("exact", "f_exact", "exact plan (btree on cat or seq scan, sort)", {})]
    for n in (100, 400):
        settings.append(Setting("shrinkvec flat", "f_flat", f"shrinkvec flat, shortlist {n}",
                                {**off, "shrinkvec.shortlist": str(n)}))
    for n, p in ((100, lists // 5), (400, lists // 5)):
        settings.append(Setting("shrinkvec ivf", "f_ivf", f"shrinkvec IVF {lists} lists, probes {p}, shortlist {n}",
                                {**off, "shrinkvec.shortlist": str(n), "shrinkvec.probes": str(p)}))
    for ef in (40, 100, 200):
        settings.append(Setting("hnsw", "f_hnsw", f"pgvector HNSW ef_search {ef}, relaxed_order",
                                {"hnsw.ef_search": str(ef), "hnsw.iterative_scan": "relaxed_order"}))
    return settings


def query_sql(table: str) -> sql.Composed:
    return sql.SQL("SELECT id FROM {} WHERE cat < %s ORDER BY embedding <=> %s LIMIT 10").format(sql.Identifier(table))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=None, help="a database to use (default: the embedded server)")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    console = Console()
    docs, queries, name = docstrings()
    queries = queries[: args.queries]
    dsn = args.dsn or server.start().dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        register_vector(conn)
        conn.execute("SET max_parallel_workers_per_gather = 0")
        settings = setup(conn, docs, console)
        norm = docs / np.linalg.norm(docs, axis=1, keepdims=True)
        cat = np.arange(len(docs)) % CATS
        for s in SELECTIVITIES:
            limit = int(round(s * CATS))
            mask = cat < limit
            ids = np.nonzero(mask)[0]
            for qi, q in enumerate(queries):
                d = 1 - norm[ids] @ (q / np.linalg.norm(q))
                truth = set(ids[np.argsort(d, kind="stable")[:10]].tolist())
                for st in settings:
                    with conn.transaction():
                        for k, v in st.gucs.items():
                            conn.execute(sql.SQL("SELECT set_config({}, {}, true)").format(sql.Literal(k),
                                                                                           sql.Literal(v)))
                        if st.method == "exact":
                            conn.execute("SET LOCAL enable_indexscan = off")  # no vector index either way
                            conn.execute("SET LOCAL enable_bitmapscan = on")
                        t = time.perf_counter()
                        got = [r[0] for r in conn.execute(query_sql(st.table), (limit, q)).fetchall()]
                        ms = (time.perf_counter() - t) * 1000
                    st.ms.setdefault(s, []).append(ms)
                    st.recall.setdefault(s, []).append(len(truth & set(got)) / 10)
            console.print(f"selectivity {s:.1%} done")

    header = ["method", *[f"{s:.1%}: recall / ms" for s in SELECTIVITIES]]
    rows = []
    table = Table(*header, title=f"filtered top-10, {name}, {len(queries)} queries")
    for st in settings:
        cells = [f"{statistics.mean(st.recall[s]):.3f} / {statistics.median(st.ms[s]):.2f}" for s in SELECTIVITIES]
        rows.append([st.label, *cells])
        table.add_row(st.label, *cells)
    console.print(table)
    notes = [f"{machine()}; {len(docs):,} rows ({name}), {len(queries)} queries, one backend, round-robin.",
             "recall@10 against numpy's exact top-10 among the rows with cat < X; ms: median per query.",
             "shrinkvec: iterative scans (exact order within a batch, relaxed across batches); "
             "HNSW: hnsw.iterative_scan = relaxed_order."]
    write_markdown(RESULTS / "filtered.md", "Filtered search", header, rows, notes)
    fig, axes = plt.subplots(1, len(SELECTIVITIES), figsize=(14, 4), sharey=True)
    for ax, s in zip(axes, SELECTIVITIES):
        for st in settings:
            ax.scatter(statistics.median(st.ms[s]), statistics.mean(st.recall[s]), label=st.label, s=30)
        ax.set_xscale("log")
        ax.set_title(f"selectivity {s:.1%}", fontsize=11)
        ax.set_xlabel("ms per query (log)", fontsize=10)
    axes[0].set_ylabel("recall@10", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9)
    fig.tight_layout(rect=(0, 0.18, 1, 1))
    fig.savefig(RESULTS / "filtered.png", dpi=110)
    console.print(f"wrote {RESULTS / 'filtered.md'} and filtered.png")


if __name__ == "__main__":
    main()
