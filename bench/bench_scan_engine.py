"""Issue 29: the scan engine, end to end, in one run.

    .venv/bin/python bench/bench_scan_engine.py --dsn postgresql://.../postgres [--set docs|big] \
        [--queries 200] [--shortlists 10,20,50,100,200,400] [--limits 10,100,1000] [--clients 1,2,4]

Tables (markdown in bench/results/scan_engine_<set>.md, a plot of ms/query against the shortlist per LIMIT in
scan_engine_<set>.png):

1. Per-code cost of the flat index (`lists = 1`, default options otherwise): the median execution time of
   EXPLAIN ANALYZE over the queries divided by the codes the scan read (every row of a flat index), beside the
   kernel's own ns per code (`sv_fs_scan` + `sv_fs_select` on as many codes, one thread, ctypes) and the
   scan's own phase timings (its DEBUG1 line: the code pass, the refine codes, the heap rows).
2. ms/query and recall@LIMIT against the shortlist and LIMIT, for the flat and the IVF index (`shrinkvec.shortlist`
   0 = the index's calibrated choice), and in the same run: FAISS IndexBinaryFlat (sign bits) + exact rerank
   of max(120, 4 LIMIT) candidates in numpy, FAISS `RR,IVF,RaBitQ` + IndexRefineFlat at LIMIT 10 (the
   cheapest nprobe / k_factor reaching 0.95), pgvector HNSW (m 16, ef_construction 64) at ef_search
   max(ef, LIMIT).  recall@LIMIT is against numpy's exact top LIMIT by cosine.
3. Queries per second with 1, 2 and 4 clients (pgbench, prepared, `-T --seconds`): the flat and IVF index at
   their defaults and HNSW at the smallest ef_search reaching recall@10 0.95, each query vector read from a
   small table by the statement (the same cost for every method).

The machine is shared and noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg import sql  # noqa: E402

from bench_peers import INDEX, TABLE, big_clustered, build_index, load_table, normalised  # noqa: E402
from shrinkvec import codes as C  # noqa: E402
from shrinkvec import server  # noqa: E402

from common import RESULTS, docstrings, machine, random_scan_inputs, write_markdown  # noqa: E402
from kernels_build import Kernels  # noqa: E402  (devtools/, on the path by common)

HNSW_EF = (40, 80, 160, 400)
WARMUP = 10
TARGET = 0.95
DEBUG_LINE = re.compile(r"shrinkvec index scan of \"[^\"]+\": (\d+) candidates, (\d+) heap rows fetched"
                        r"(?:; codes ([\d.]+) ms, refine ([\d.]+) ms, heap ([\d.]+) ms, passes (\d+), scored (\d+))?")


@dataclass
class Point:
    method: str
    setting: str
    limit: int
    shortlist: int  # 0: not a shortlist setting
    recall: float
    ms: float
    extra: dict[str, float] = field(default_factory=dict)


def exact_top(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k nearest rows of x by cosine for each query, nearest first (x, q unit rows)."""
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), 64):
        sim = q[s:s + 64] @ x.T
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, 1), axis=1, kind="stable")
        out[s:s + 64] = np.take_along_axis(part, order, 1)
    return out


def recall_at(got: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(g[:k]) & set(t[:k].tolist())) / k for g, t in zip(got, truth)]))


def knn(limit: int) -> sql.Composed:
    return sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT {}").format(sql.Identifier(TABLE),
                                                                                  sql.Literal(limit))


def round_robin(dsn: str, settings: list[dict[str, str]], q: np.ndarray, truth: np.ndarray,
                limit: int) -> list[tuple[float, float]]:
    """(recall@limit, median ms/query) of the KNN query under each setting (GUCs), measured round-robin: one
    connection per setting, and every query runs under every setting before the next query, so load drift
    on a shared machine hits every setting alike."""
    stmt = knn(limit)
    conns = []
    for gucs in settings:
        c = psycopg.connect(dsn, autocommit=True)
        register_vector(c)
        c.execute("SET max_parallel_workers_per_gather = 0")
        for k, v in gucs.items():
            c.execute("SELECT set_config(%s, %s, false)", (k, v))
        for v in q[:WARMUP]:
            c.execute(stmt, (v,), prepare=True).fetchall()
        conns.append(c)
    got: list[list[list[int]]] = [[] for _ in settings]
    times: list[list[float]] = [[] for _ in settings]
    for v in q:
        for i, c in enumerate(conns):
            t = time.perf_counter()
            got[i].append([int(r[0]) for r in c.execute(stmt, (v,), prepare=True).fetchall()])
            times[i].append((time.perf_counter() - t) * 1000)
    for c in conns:
        c.close()
    return [(recall_at(g, truth, limit), float(np.median(t))) for g, t in zip(got, times, strict=True)]


def scan_phases(conn: psycopg.Connection, q: np.ndarray, limit: int) -> dict[str, float]:
    """EXPLAIN ANALYZE execution ms (median) and the means of the scan's DEBUG1 counters over the queries."""
    stmt = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + knn(limit)
    notices: list[str] = []

    def keep(d: psycopg.errors.Diagnostic) -> None:
        notices.append(d.message_primary or "")

    conn.add_notice_handler(keep)
    conn.execute("SET client_min_messages = debug1")
    execs = []
    try:
        for v in q:
            plan = conn.execute(stmt, (v,)).fetchone()
            assert plan is not None
            execs.append(float(plan[0][0]["Execution Time"]))
    finally:
        conn.execute("RESET client_min_messages")
        conn.remove_notice_handler(keep)
    found = [m for m in (DEBUG_LINE.search(n) for n in notices) if m]
    out = {"exec_ms": statistics.median(execs)}
    if found:
        out["candidates"] = float(np.mean([int(m.group(1)) for m in found]))
        out["heap_rows"] = float(np.mean([int(m.group(2)) for m in found]))
        if found[0].group(3) is not None:
            for i, name in ((3, "codes_ms"), (4, "refine_ms"), (5, "heap_ms"), (6, "passes"), (7, "scored")):
                out[name] = float(np.median([float(m.group(i)) for m in found]))
    return out


def kernel_ns(n: int, dims: int) -> float:
    """ns per code of the scan kernel (fs_scan + select at ~1% kept) over n codes, best SIMD level, best of 7."""
    kernels = Kernels.load(RESULTS)
    for level in ("avx512", "avx2", "scalar"):
        if kernels.use(level) == level:
            break
    n -= n % 32
    nbytes = dims // 8
    _, blocks, w, alpha, sums, idx = random_scan_inputs(np.random.default_rng(0), n, dims)
    tables, delta, vsum, _ = kernels.fs_tables_ip(w, nbytes)
    soff, c0, c1 = 2 * C.FS_BIAS * nbytes, float(-delta * vsum), float(2 * delta)
    kernels.lib.sv_fs_scan(blocks.ctypes.data, n // 32, nbytes, tables.ctypes.data, sums.ctypes.data)
    lb = C.fs_bound(sums, soff, alpha, None, 1.0, -1.0, c0, c1)
    tau = float(np.partition(lb, n // 100)[n // 100])
    best = math.inf
    for _ in range(7):
        t = time.perf_counter()
        kernels.lib.sv_fs_scan(blocks.ctypes.data, n // 32, nbytes, tables.ctypes.data, sums.ctypes.data)
        kernels.lib.sv_fs_select(sums.ctypes.data, n, soff, alpha.ctypes.data, None, 1.0, -1.0, c0, c1, tau,
                                 idx.ctypes.data)
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9


def faiss_binary(x: np.ndarray, q: np.ndarray, truth: np.ndarray, limit: int) -> Point:
    """FAISS IndexBinaryFlat over sign bits, then an exact rerank of max(120, 4 limit) candidates in numpy."""
    import faiss

    d = x.shape[1]
    index = faiss.IndexBinaryFlat(d)
    index.add(np.packbits(x > 0, axis=1))
    qb = np.packbits(q > 0, axis=1)
    r = max(120, 4 * limit)
    got, times = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        _, cand = index.search(qb[i:i + 1], r)
        c = cand[0][cand[0] >= 0]
        sims = x[c] @ q[i]
        top = c[np.argsort(-sims, kind="stable")[:limit]]
        times.append((time.perf_counter() - t) * 1000)
        got.append(top.tolist())
    return Point("FAISS IndexBinaryFlat + rerank", f"rerank {r}", limit, 0, recall_at(got, truth, limit),
                 float(np.median(times[WARMUP:])))


def faiss_rabitq(x: np.ndarray, q: np.ndarray, truth: np.ndarray, log) -> Point:
    """FAISS RR,IVF,RaBitQ in IndexRefineFlat at LIMIT 10: the cheapest (k_factor, nprobe) reaching TARGET."""
    import faiss

    n, d = x.shape
    nlist = int(round(4 * math.sqrt(n)))
    index = faiss.IndexRefineFlat(faiss.index_factory(d, f"RR,IVF{nlist},RaBitQ", faiss.METRIC_INNER_PRODUCT))
    index.train(x)
    index.add(x)
    ivf = faiss.extract_index_ivf(index)
    best: Point | None = None
    for kf in (1, 2, 5, 10):
        index.k_factor = kf
        for nprobe in (4, 8, 16, 32, 64, 128, 256):
            if nprobe > nlist:
                break
            ivf.nprobe = nprobe
            got, times = [], []
            for i in range(len(q)):
                t = time.perf_counter()
                _, ids = index.search(q[i:i + 1], 10)
                times.append((time.perf_counter() - t) * 1000)
                got.append(ids[0].tolist())
            p = Point(f"FAISS RR,IVF{nlist},RaBitQ + RefineFlat", f"k_factor {kf}, nprobe {nprobe}", 10, 0,
                      recall_at(got, truth, 10), float(np.median(times[WARMUP:])))
            if p.recall >= TARGET:
                if best is None or p.ms < best.ms:
                    best = p
                break
    if best is None:
        raise RuntimeError("FAISS RaBitQ reached no setting of recall 0.95")
    log(f"  {best.method} {best.setting}: {best.recall:.3f}, {best.ms:.3f} ms")
    return best


def pgbench_qps(dsn: str, statement: str, sets: dict[str, str], clients: int, seconds: int, nq: int) -> float:
    """Transactions per second of pgbench running statement (:qid a random query number) with clients clients."""
    bindir = str(server.bin_dir())
    script = "".join(f"SET {k} = {v};\n" for k, v in sets.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "knn.sql")
        with open(path, "w") as f:
            f.write(f"\\set qid random(0, {nq - 1})\n{script}{statement};\n")
        out = subprocess.run([os.path.join(bindir, "pgbench"), "-n", "-M", "prepared", "-f", path, "-c", str(clients),
                              "-j", str(clients), "-T", str(seconds), dsn], check=True, capture_output=True,
                             text=True).stdout
    m = re.search(r"tps = ([\d.]+)", out)
    if not m:
        raise RuntimeError(f"no tps in pgbench's output:\n{out}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--set", choices=("docs", "big"), default="docs")
    ap.add_argument("--big-rows", type=int, default=250_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--shortlists", default="10,20,50,100,200,400")
    ap.add_argument("--limits", default="10,100,1000")
    ap.add_argument("--clients", default="1,2,4")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--skip-hnsw", action="store_true")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--only", default="flat,ivf", help="the shrinkvec indexes measured: flat, ivf")
    ap.add_argument("--options", default="", help="more WITH options of both shrinkvec indexes, e.g. 'refine = 4'")
    ap.add_argument("--storage", choices=("default", "plain"), default="default",
                    help="the vector column's storage: plain keeps 768-d rows in the heap page (no TOAST)")
    args = ap.parse_args()
    shortlists = [int(s) for s in args.shortlists.split(",")]
    limits = [int(s) for s in args.limits.split(",")]
    clients = [int(s) for s in args.clients.split(",")]

    def log(msg: str) -> None:
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    if args.set == "docs":
        x, q, name = docstrings()
        label = f"{name} {len(x) // 1000}k x {x.shape[1]}"
    else:
        x, q = big_clustered(args.big_rows, args.queries)
        label = f"clustered synthetic {args.big_rows // 1000}k x 768"
    x, q = normalised(x), normalised(q[:args.queries])
    n, d = x.shape
    truth = exact_top(x, q, max(limits))
    points: list[Point] = []
    notes: list[str] = []
    qps: list[list[str]] = []
    conn = psycopg.connect(args.dsn, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec")
    register_vector(conn)
    conn.execute("SET max_parallel_workers_per_gather = 0")
    log(f"{label}: loading")
    load_table(conn, x)
    if args.storage == "plain":
        # rows rewritten in place: vectors of up to ~2,000 dims fit a heap page, no TOAST pointer to follow
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN").format(sql.Identifier(TABLE)))
        conn.execute(sql.SQL("VACUUM FULL {}").format(sql.Identifier(TABLE)))
        conn.execute(sql.SQL("SELECT sum(vector_dims(embedding)) FROM {}").format(sql.Identifier(TABLE))).fetchone()
        label += ", STORAGE PLAIN"
    conn.execute("DROP TABLE IF EXISTS bench_queries")
    conn.execute(sql.SQL("CREATE TABLE bench_queries (qid int PRIMARY KEY, v vector({}))").format(sql.Literal(d)))
    with conn.cursor().copy("COPY bench_queries FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["int4", "vector"])
        for i, v in enumerate(q):
            cp.write_row((i, v))
    conn.execute("ANALYZE bench_queries")
    bench_stmt = f"SELECT id FROM {TABLE} ORDER BY embedding <=> (SELECT v FROM bench_queries WHERE qid = :qid) LIMIT 10"

    kns = kernel_ns(n, d)
    per_code: list[list[str]] = []
    for kind, opts in (("flat", "lists = 1"), ("ivf", "")):
        if kind not in args.only.split(","):
            continue
        opts = ", ".join(o for o in (opts, args.options) if o)
        with_clause = sql.SQL(" WITH ({})").format(sql.SQL(opts)) if opts else sql.SQL("")
        build_s, size = build_index(conn, "shrinkvec", with_clause)
        info = conn.execute("SELECT lists, probes, shortlist FROM shrinkvec_index_info(%s::regclass)",
                            (INDEX,)).fetchone()
        assert info is not None
        method = f"shrinkvec {kind}" + (f" ({args.options})" if args.options else "")
        log(f"{method}: built in {build_s:.1f} s, {size / 2**20:.1f} MB, lists {info[0]}, probes {info[1]}, "
            f"shortlist {info[2]}")
        notes.append(f"{method}: {info[0]} lists; calibrated probes {info[1]}, shortlist {info[2]}; "
                     f"built in {build_s:.1f} s")
        for limit in limits:
            measured = round_robin(args.dsn, [{"shrinkvec.shortlist": str(s)} for s in [0, *shortlists]], q,
                                   truth, limit)
            for s, (r, ms) in zip([0, *shortlists], measured, strict=True):
                conn.execute("SELECT set_config('shrinkvec.shortlist', %s, false)", (str(s),))
                ph = scan_phases(conn, q[:50], limit)
                points.append(Point(method, "defaults" if s == 0 else f"shortlist {s}", limit, s, r, ms, ph))
                log(f"  shortlist {s or 'default'}, LIMIT {limit}: recall {r:.3f}, {ms:.3f} ms, {ph}")
                if kind == "flat" and limit == 10:
                    ns = ph["exec_ms"] * 1e6 / n
                    per_code.append([f"{s or 'default'}", f"{ph['exec_ms']:.3f}", f"{ns:.2f}", f"{kns:.2f}",
                                     f"{ns / kns:.1f}", f"{ph.get('codes_ms', math.nan):.3f}",
                                     f"{ph.get('refine_ms', math.nan):.3f}", f"{ph.get('heap_ms', math.nan):.3f}",
                                     f"{ph.get('heap_rows', math.nan):.0f}", f"{ph.get('passes', math.nan):.0f}"])
        conn.execute("RESET shrinkvec.shortlist")
        for c in clients:
            t = pgbench_qps(args.dsn, bench_stmt, {}, c, args.seconds, len(q))
            qps.append([method, "defaults", str(c), f"{t:.0f}"])
            log(f"  {c} clients: {t:.0f} qps")
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX)))

    if not args.skip_faiss:
        for limit in limits:
            p = faiss_binary(x, q, truth, limit)
            points.append(p)
            log(f"  {p.method} LIMIT {limit}: {p.recall:.3f}, {p.ms:.3f} ms")
        points.append(faiss_rabitq(x, q, truth, log))

    if not args.skip_hnsw:
        log("HNSW: building")
        build_s, _ = build_index(conn, "hnsw", sql.SQL(" WITH (m = 16, ef_construction = 64)"))
        notes.append(f"pgvector HNSW m 16, ef_construction 64: built in {build_s:.1f} s")
        ef95 = None
        for limit in limits:
            efs = sorted({min(1000, max(ef, limit)) for ef in HNSW_EF})
            measured = round_robin(args.dsn, [{"hnsw.ef_search": str(e)} for e in efs], q, truth, limit)
            for e, (r, ms) in zip(efs, measured, strict=True):
                points.append(Point("pgvector HNSW", f"ef_search {e}", limit, 0, r, ms))
                log(f"  HNSW ef {e}, LIMIT {limit}: recall {r:.3f}, {ms:.3f} ms")
                if limit == 10 and ef95 is None and r >= TARGET:
                    ef95 = e
        conn.execute("RESET hnsw.ef_search")
        ef95 = ef95 or HNSW_EF[-1]
        for c in clients:
            t = pgbench_qps(args.dsn, bench_stmt, {"hnsw.ef_search": str(ef95)}, c, args.seconds, len(q))
            qps.append(["pgvector HNSW", f"ef_search {ef95}", str(c), f"{t:.0f}"])
            log(f"  HNSW {c} clients: {t:.0f} qps")
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX)))
    conn.close()

    floor_note = f"{label}, {len(q)} queries; machine: {machine()}"
    out = RESULTS / f"scan_engine_{args.set}.md"
    write_markdown(out, f"Per-code cost of the flat scan, LIMIT 10 ({n:,} codes)",
                   ["shortlist", "exec ms", "ns/code end to end", "kernel ns/code", "x kernel", "codes ms",
                    "refine ms", "heap ms", "heap rows", "passes"], per_code, [floor_note])
    rows = [[p.method, p.setting, str(p.limit), f"{p.recall:.3f}", f"{p.ms:.3f}",
             f"{p.extra['heap_rows']:.0f}" if "heap_rows" in p.extra else "",
             f"{p.extra['passes']:.0f}" if "passes" in p.extra else ""] for p in points]
    grid = RESULTS / f"scan_engine_{args.set}_grid.md"
    write_markdown(grid, "ms/query against shortlist and LIMIT",
                   ["method", "setting", "LIMIT", "recall@LIMIT", "ms/query", "heap rows", "passes"], rows,
                   [floor_note])
    fastest: dict[str, Point] = {}
    for p in points:
        if p.limit == 10 and p.recall >= TARGET and (p.method not in fastest or p.ms < fastest[p.method].ms):
            fastest[p.method] = p
    ref = {k: v.ms for k, v in fastest.items() if not k.startswith("shrinkvec")}
    trows = [[m, p.setting, f"{p.recall:.3f}", f"{p.ms:.3f}"] +
             [f"{ref[k] / p.ms:.2f}" if k in ref else "" for k in sorted(ref)] for m, p in fastest.items()]
    write_markdown(RESULTS / f"scan_engine_{args.set}_fastest.md",
                   "The fastest setting of each method reaching recall@10 0.95 (LIMIT 10)",
                   ["method", "setting", "recall@10", "ms/query", *[f"speed x {k}" for k in sorted(ref)]], trows,
                   [floor_note, "speed x P: P's ms / this method's ms (above 1: faster than P)"])
    base = {c: float(t) for m, _, c, t in qps if m == qps[0][0]} if qps else {}
    qrows = [[m, s, c, t, f"{float(t) / base.get('1', math.nan):.2f}" if m == qps[0][0] else ""]
             for m, s, c, t in qps]
    write_markdown(RESULTS / f"scan_engine_{args.set}_qps.md", "Queries per second (pgbench, LIMIT 10)",
                   ["method", "setting", "clients", "qps", "x 1 client"], qrows, [floor_note])
    (RESULTS / f"scan_engine_{args.set}.json").write_text(json.dumps([p.__dict__ for p in points], indent=1))
    for f in (out, grid, RESULTS / f"scan_engine_{args.set}_qps.md", RESULTS / f"scan_engine_{args.set}_fastest.md"):
        print(f.read_text())
    fig, axes = plt.subplots(1, len(limits), figsize=(5 * len(limits), 3.8), squeeze=False)
    for ax, limit in zip(axes[0], limits):
        for method in sorted({p.method for p in points if p.shortlist}):
            pts = [p for p in points if p.method == method and p.limit == limit and p.shortlist]
            ax.plot([p.shortlist for p in pts], [p.ms for p in pts], marker="o", label=method)
        for p in points:
            if not p.shortlist and p.limit == limit and p.setting != "defaults":
                ax.axhline(p.ms, ls=":", lw=0.8, color="gray")
        ax.set_xscale("log")
        ax.set_xlabel("shortlist")
        ax.set_ylabel("ms/query")
        ax.set_title(f"LIMIT {limit}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"scan_engine_{args.set}.png", dpi=110)
    log(f"wrote {out}, {grid} and the plot")


if __name__ == "__main__":
    main()
