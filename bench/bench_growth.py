"""Issue 34: an index that grows with its table, against one built after the load and pgvector HNSW grown.

    .venv/bin/python bench/bench_growth.py --dsn postgresql://.../postgres [--set big|docs|wordllama]
        [--sizes 10000,25000,50000,100000,250000] [--queries 200] [--skip-hnsw]

Three tables get the same rows in the same order, in steps up to each size:
  grown   a shrinkvec index created on the empty table (defaults: no WITH, no SET); rows loaded by COPY;
          then VACUUM (what autovacuum runs on an insert-only table, which re-partitions the index when due);
  built   rows loaded by COPY with no index (the no-index load time), then the shrinkvec index rebuilt after
          each step (defaults): the index a REINDEX would give;
  hnsw    a pgvector HNSW index (m 16, ef_construction 64) created on the empty table; rows loaded by COPY;
  flat    (load time only) a shrinkvec index WITH (lists = 1) created on the empty table: the insert cost
          of 0.4.0, whose index made empty stayed flat, the yardstick of "inserts stay cheap".
At each size: recall@10 against numpy's exact cosine top 10 and the median ms/query of
`ORDER BY embedding <=> q LIMIT 10`, round-robin over the three tables' connections (each query runs on every
table before the next, so machine load hits all alike); the grown index also right after its load, before
VACUUM; HNSW at the smallest ef_search of 40, 80, 160, 320 reaching recall 0.95.  The load and
VACUUM/build times of each step are reported too.  Vectors are kept in the row (STORAGE PLAIN) for all three.

Markdown in bench/results/growth_<set>.md, a plot in growth_<set>.png.  The machine is shared and noisy:
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg import sql  # noqa: E402

from bench_geometry import pca_rotated  # noqa: E402
from bench_peers import big_clustered, normalised  # noqa: E402

from common import RESULTS, machine, write_markdown  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TABLES = ("grow_grown", "grow_built", "grow_hnsw")
HNSW_EF = (40, 80, 160, 320)
K = 10


def dataset(name: str, rows: int, nq: int) -> tuple[np.ndarray, np.ndarray, str]:
    if name == "big":
        x, q = big_clustered(rows, nq)
        return normalised(x), normalised(q), "clustered synthetic 768-d, sd ~ 1/sqrt(i+1)"
    folder = {"docs": "docstrings", "pca": "docstrings", "wordllama": "docstrings-wordllama"}[name]
    x = np.load(SHARED / folder / "docs.f16.npy").astype(np.float32)[:rows]
    q = np.load(SHARED / folder / "queries.f16.npy").astype(np.float32)[:nq]
    if name == "pca":
        x, q = pca_rotated(x, q)
    label = {"docs": "docstrings (MiniLM 384-d) as-is", "pca": "docstrings PCA-rotated",
             "wordllama": "docstrings by WordLlama 256-d (Matryoshka)"}
    return normalised(x), normalised(q), label[name]


def exact_top(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = np.empty((len(q), K), dtype=np.int64)
    for s in range(0, len(q), 50):
        sims = q[s:s + 50] @ x.T
        out[s:s + 50] = np.argsort(-sims, axis=1, kind="stable")[:, :K]
    return out


def copy_rows(conn: psycopg.Connection, table: str, x: np.ndarray, first: int) -> float:
    t = time.perf_counter()
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(table))) as cp:
        cp.set_types(["int4", "vector"])
        for i, v in enumerate(x):
            cp.write_row((first + i, v))
    return time.perf_counter() - t


def timed(conn: psycopg.Connection, stmt: sql.Composable) -> float:
    t = time.perf_counter()
    conn.execute(stmt)
    return time.perf_counter() - t


def round_robin(conns: list[psycopg.Connection], tables: list[str], q: np.ndarray, truth: np.ndarray
                ) -> list[tuple[float, float]]:
    """(recall@10, median ms) of each connection's KNN query on its table, every query on all before the next."""
    stmts = [sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT 10").format(sql.Identifier(t)) for t in tables]
    for c, s in zip(conns, stmts, strict=True):
        for v in q[:10]:
            c.execute(s, (v,), prepare=True).fetchall()
    got: list[list[set[int]]] = [[] for _ in conns]
    times: list[list[float]] = [[] for _ in conns]
    for v in q:
        for i, (c, s) in enumerate(zip(conns, stmts, strict=True)):
            t = time.perf_counter()
            got[i].append({int(r[0]) for r in c.execute(s, (v,), prepare=True).fetchall()})
            times[i].append((time.perf_counter() - t) * 1000)
    return [(float(np.mean([len(g & set(t.tolist())) / K for g, t in zip(gs, truth, strict=True)])),
             float(np.median(ts))) for gs, ts in zip(got, times, strict=True)]


def info(conn: psycopg.Connection, index: str) -> dict[str, object]:
    cur = conn.execute("SELECT * FROM shrinkvec_index_info(%s)", (index,))
    row = cur.fetchone()
    assert row is not None
    return dict(zip([d.name for d in cur.description or []], row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--set", choices=("big", "docs", "pca", "wordllama"), default="big")
    ap.add_argument("--sizes", default="")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip-hnsw", action="store_true")
    ap.add_argument("--no-autovacuum", action="store_true",
                    help="autovacuum off on the grown table, so the timed VACUUM of each step does the re-partition")
    args = ap.parse_args()
    default_sizes = "10000,25000,50000,100000,250000" if args.set == "big" else "5000,10000,20000,28000"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    x, q, label = dataset(args.set, max(sizes), args.queries)
    sizes = [min(s, len(x)) for s in sizes]
    d = x.shape[1]
    tables = list(TABLES if not args.skip_hnsw else TABLES[:2])

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    admin = psycopg.connect(args.dsn, autocommit=True)
    admin.execute("CREATE EXTENSION IF NOT EXISTS vector")
    admin.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec")
    admin.execute("ALTER EXTENSION shrinkvec UPDATE")
    register_vector(admin)
    for t in tables:
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))
        admin.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, embedding vector({}) STORAGE PLAIN)").format(
            sql.Identifier(t), sql.Literal(d)))
    admin.execute("CREATE INDEX grow_grown_idx ON grow_grown USING shrinkvec (embedding vector_cosine_ops)")
    if args.no_autovacuum:
        admin.execute("ALTER TABLE grow_grown SET (autovacuum_enabled = off)")
    admin.execute("DROP TABLE IF EXISTS grow_flat")
    admin.execute(sql.SQL("CREATE TABLE grow_flat (id int PRIMARY KEY, embedding vector({}) STORAGE PLAIN)").format(
        sql.Literal(d)))
    admin.execute("CREATE INDEX grow_flat_idx ON grow_flat USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)")
    if "grow_hnsw" in tables:
        admin.execute("CREATE INDEX grow_hnsw_idx ON grow_hnsw USING hnsw (embedding vector_cosine_ops) "
                      "WITH (m = 16, ef_construction = 64)")
    conns = []
    for _ in tables:
        c = psycopg.connect(args.dsn, autocommit=True)
        register_vector(c)
        c.execute("SET max_parallel_workers_per_gather = 0")
        conns.append(c)

    rows_out: list[list[str]] = []
    series: dict[str, list[float]] = {k: [] for k in ("grown_ms", "built_ms", "hnsw_ms", "grown_recall", "built_recall",
                                                     "hnsw_recall", "before_ms", "before_recall", "load_grown",
                                                     "load_none", "load_hnsw", "load_flat", "vacuum", "build")}
    loaded = 0
    cum = {"grown": 0.0, "none": 0.0, "hnsw": 0.0, "vacuum": 0.0, "flat": 0.0}
    for size in sizes:
        chunk = x[loaded:size]
        log(f"{label}: loading rows {loaded}..{size}")
        cum["grown"] += copy_rows(admin, "grow_grown", chunk, loaded)
        cum["none"] += copy_rows(admin, "grow_built", chunk, loaded)
        cum["flat"] += copy_rows(admin, "grow_flat", chunk, loaded)
        admin.execute("VACUUM grow_flat")  # as autovacuum would (it never re-partitions: lists = 1)
        if "grow_hnsw" in tables:
            cum["hnsw"] += copy_rows(admin, "grow_hnsw", chunk, loaded)
        loaded = size
        truth = exact_top(x[:size], q)
        for t in tables:
            admin.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t)))
        # the grown index right after its load, round-robin with the others as they stand (same conditions)
        before = round_robin(conns, tables, q, truth)[0]
        gen_before = info(admin, "grow_grown_idx")["generation"]
        vac = timed(admin, sql.SQL("VACUUM grow_grown"))
        cum["vacuum"] += vac
        for t in tables[1:]:
            admin.execute(sql.SQL("VACUUM {}").format(sql.Identifier(t)))
        admin.execute("DROP INDEX IF EXISTS grow_built_idx")
        build = timed(admin, sql.SQL("CREATE INDEX grow_built_idx ON grow_built USING shrinkvec (embedding vector_cosine_ops)"))
        gi, bi = info(admin, "grow_grown_idx"), info(admin, "grow_built_idx")
        # HNSW: the smallest ef_search reaching 0.95
        hnsw = (float("nan"), float("nan"), 0)
        measured = round_robin(conns[:2], tables[:2], q, truth)
        if "grow_hnsw" in tables:
            for ef in HNSW_EF:
                conns[2].execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(ef),))
                r, ms = round_robin(conns, tables, q, truth)[2]
                hnsw = (r, ms, ef)
                if r >= 0.95:
                    break
            measured = round_robin(conns, tables, q, truth)  # all three, the chosen ef in place
            hnsw = (measured[2][0], measured[2][1], hnsw[2])
        (gr, gms), (br, bms) = measured[0], measured[1]
        log(f"{size}: grown {gr:.3f} {gms:.2f} ms ({gi['lists']} lists, gen {gi['generation']}, rows at partitioning "
            f"{gi['build_rows']}, probes {gi['probes']}, shortlist {gi['shortlist']}), built {br:.3f} {bms:.2f} ms "
            f"({bi['lists']} lists, probes {bi['probes']}, shortlist {bi['shortlist']}), "
            f"hnsw {hnsw[0]:.3f} {hnsw[1]:.2f} ms ef {hnsw[2]}")
        rows_out.append([
            f"{size:,}", f"{gr:.3f} / {gms:.2f}", f"{br:.3f} / {bms:.2f}", f"{gms / bms:.2f}x",
            f"{hnsw[0]:.3f} / {hnsw[1]:.2f} (ef {hnsw[2]})" if hnsw[2] else "-",
            f"{hnsw[1] / gms:.2f}x" if hnsw[2] else "-",
            f"{before[0]:.3f} / {before[1]:.2f} (gen {gen_before})",
            f"{gi['lists']} / {bi['lists']}", f"{gi['largest_list']} / {bi['largest_list']}",
            f"{cum['grown']:.1f} / {cum['none']:.1f} / {cum['flat']:.1f}" + (f" / {cum['hnsw']:.1f}" if hnsw[2] else ""),
            f"{vac:.2f} / {build:.2f}",
        ])
        for k, v in (("grown_ms", gms), ("built_ms", bms), ("hnsw_ms", hnsw[1]), ("grown_recall", gr),
                     ("built_recall", br), ("hnsw_recall", hnsw[0]), ("before_ms", before[1]),
                     ("before_recall", before[0]), ("load_grown", cum["grown"]), ("load_none", cum["none"]),
                     ("load_hnsw", cum["hnsw"]), ("load_flat", cum["flat"]), ("vacuum", cum["vacuum"]),
                     ("build", build)):
            series[k].append(v)

    header = ["rows", "grown: recall / ms", "built after load: recall / ms", "grown / built time",
              "HNSW grown: recall / ms", "HNSW / grown time", "grown before VACUUM: recall / ms",
              "lists grown / built", "largest list grown / built", "load s (cumulative): grown / no index / flat (0.4.0) / HNSW",
              "step: VACUUM of grown / build s"]
    notes = [machine(), "", f"{label}; {len(q)} queries; `ORDER BY embedding <=> q LIMIT 10`, defaults (no SET); "
             "ms is the median round trip, round-robin over the tables. VACUUM is what autovacuum runs on an "
             "insert-only table; it re-partitions the grown index when due."]
    tag = args.set + ("_noautovacuum" if args.no_autovacuum else "")
    if args.no_autovacuum:
        notes.append("Autovacuum off on the grown table: each step's timed VACUUM does the re-partition.")
    write_markdown(RESULTS / f"growth_{tag}.md", f"Growth: {label}", header, rows_out, notes)
    print((RESULTS / f"growth_{tag}.md").read_text())

    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].plot(sizes, series["grown_ms"], "o-", label="shrinkvec grown", color="tab:orange")
    ax[0].plot(sizes, series["before_ms"], "o:", label="grown, before VACUUM", color="tab:orange", alpha=0.5)
    ax[0].plot(sizes, series["built_ms"], "s-", label="shrinkvec built after load", color="tab:red")
    if not args.skip_hnsw:
        ax[0].plot(sizes, series["hnsw_ms"], "^-", label="HNSW grown (ef for 0.95)", color="tab:gray")
    ax[0].set(xlabel="rows", ylabel="ms/query", title="latency")
    ax[1].plot(sizes, series["grown_recall"], "o-", color="tab:orange", label="grown")
    ax[1].plot(sizes, series["built_recall"], "s-", color="tab:red", label="built")
    if not args.skip_hnsw:
        ax[1].plot(sizes, series["hnsw_recall"], "^-", color="tab:gray", label="HNSW")
    ax[1].axhline(0.95, ls="--", color="k", lw=0.5)
    ax[1].set(xlabel="rows", ylabel="recall@10", title="recall")
    ax[2].plot(sizes, series["load_grown"], "o-", color="tab:orange", label="load with shrinkvec")
    ax[2].plot(sizes, np.add(series["load_grown"], series["vacuum"]), "o:", color="tab:orange",
               label="+ VACUUMs (re-partitions)")
    ax[2].plot(sizes, series["load_none"], "s-", color="tab:blue", label="load, no index")
    ax[2].plot(sizes, series["load_flat"], "d-", color="tab:green", label="load, flat index (0.4.0's grown)")
    if not args.skip_hnsw:
        ax[2].plot(sizes, series["load_hnsw"], "^-", color="tab:gray", label="load with HNSW")
    ax[2].set(xlabel="rows", ylabel="seconds (cumulative)", title="load", yscale="log")
    for a in ax:
        a.legend(fontsize=7)
    fig.suptitle(f"Growth from an empty table: {label}")
    fig.tight_layout()
    fig.savefig(RESULTS / f"growth_{tag}.png", dpi=110)
    for c in conns:
        c.close()
    for t in [*tables, "grow_flat"]:
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(t)))
    admin.close()


if __name__ == "__main__":
    main()
