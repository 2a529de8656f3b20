"""shrinkvec against FAISS RaBitQ / SQ4 and pgvector HNSW on issue 28's geometries, in one run.

The data: bench_geometry.py's four sets (the docstrings as they are, all-MiniLM-L6-v2 384-d; the same vectors
PCA-rotated; WordLlama 256-d Matryoshka; synthetic Gaussian 384-d with per-dim sd ~ 1/sqrt(i+1)) and a larger
clustered synthetic set of N x 768 (`big_clustered`, below). Every vector is L2-normalised once, so that inner
product = cosine for FAISS and numpy, and PostgreSQL gets the same vectors.

For each set, one after another in this process:

- the exact cosine top-10 of every query (numpy), the truth for recall@10;
- FAISS, in process, one thread (`faiss.omp_set_num_threads(1)`), one query per `search` call:
  `RR,IVF{nlist},RaBitQ` (nlist = 4 sqrt(N)) wrapped in `IndexRefineFlat` at k_factor 1, 2, 5, 10, each over
  an nprobe sweep, and `RR,SQ4` in `IndexRefineFlat` at k_factor 1, 2, 5. Per k_factor the table keeps the
  smallest nprobe reaching recall 0.95, else the smallest within 0.005 of the sweep's best recall (chosen on
  the measured queries themselves); the plot shows the whole sweep. Size = the serialised index, with the
  float copy that `IndexRefineFlat` keeps (the base index alone in brackets);
- in the PostgreSQL of --dsn, a table `peers (id int PRIMARY KEY, embedding vector(d))` filled by binary COPY,
  then one index at a time: pgvector HNSW (m=16, ef_construction=64) at ef_search 40, 80, 160, 400, and the
  shrinkvec index for every setting of CONFIGS (or --shrinkvec-config), once as is and once more per
  --shrinkvec-extra (options appended to every setting's WITH). A query is one round trip of
  `SELECT id FROM peers ORDER BY embedding <=> $1 LIMIT 10` (prepared; `enable_seqscan = off`, and the plan
  is checked to use the index). Build s = `CREATE INDEX` wall time (`maintenance_work_mem = 2GB`), size =
  `pg_relation_size` of the index. The round-trip floor (10 rows by primary key) is measured beside them.

ms/query is the median over the queries (after 20 untimed ones). Builds are single-threaded by default
(FAISS one OpenMP thread, `max_parallel_maintenance_workers = 0`); --build-threads N gives both N.
The "x HNSW" column is HNSW's ms/query at its first ef_search reaching recall 0.95 (or, marked *, at its best
recall) divided by the row's ms/query: > 1 is faster than HNSW. FAISS rows pay no SQL round trip.
A server with shared_buffers large enough for the 250k table and its HNSW index (~2 GB) keeps reads in memory.

    .venv/bin/python bench/bench_peers.py --dsn "$(.venv/bin/shrinkvec server url)"
    .venv/bin/python bench/bench_peers.py --dsn ... --sets docs,wordllama --shrinkvec-extra "rotate = off"
    .venv/bin/python bench/bench_peers.py --dsn ... --skip-big      # the four 28k sets only

Writes the table to stdout, the plot to --plot (default bench/peers.png, not tracked) and every measured
point to bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from bench_geometry import datasets as geometry_datasets

from common import BENCH, RESULTS, machine

K = 10
TABLE = "peers"
INDEX = "peers_idx"
TARGET = 0.95
HNSW_EF = (40, 80, 160, 400)
RABITQ_K_FACTORS = (1, 2, 5, 10)
SQ4_K_FACTORS = (1, 2, 5)
NPROBES = (4, 8, 16, 32, 64, 128, 256)
WARMUP = 20

# (label, WITH options, GUCs): the shrinkvec settings measured (--shrinkvec-config replaces them). Settings with
# the same options share one index build.
CONFIGS: list[tuple[str, str, dict[str, str]]] = [
    ("defaults", "", {}),
    ("flat, defaults", "lists = 1", {}),
    ("flat, shortlist 50", "lists = 1", {"shrinkvec.shortlist": "50"}),
    ("flat, shortlist 100", "lists = 1", {"shrinkvec.shortlist": "100"}),
    ("flat refine 4, defaults", "lists = 1, refine = 4", {}),
    ("refine 4, defaults", "refine = 4", {}),
    ("refine 4, shortlist 200, rerank 40", "refine = 4", {"shrinkvec.shortlist": "200", "shrinkvec.rerank": "40"}),
    ("refine 8, shortlist 200, rerank 40", "refine = 8", {"shrinkvec.shortlist": "200", "shrinkvec.rerank": "40"}),
]
SHRINKVEC_GUCS = ("shrinkvec.shortlist", "shrinkvec.rerank", "shrinkvec.probes")

# --sets keys -> bench_geometry's dataset labels; "big" is the clustered N x 768 set of this script
GEOMETRY_SETS = {
    "docs": "docstrings (MiniLM 384-d)",
    "pca": "docstrings PCA-rotated",
    "wordllama": "WordLlama 256-d (Matryoshka)",
    "synthetic": "synthetic sd ~ 1/sqrt(i+1)",
}
ALL_SETS = (*GEOMETRY_SETS, "big")
DIMS = {"docs": 384, "pca": 384, "wordllama": 256, "synthetic": 384, "big": 768}


@dataclass
class Row:
    data: str
    system: str
    setting: str
    recall: float
    ms: float
    build_s: float = math.nan
    size_bytes: int = 0
    code_bytes: int = 0  # FAISS with IndexRefineFlat: the base index alone (size_bytes adds the float copy)
    in_table: bool = True  # False: a point of the nprobe sweep, plotted only
    extra: dict[str, str] = field(default_factory=dict)


def big_clustered(n: int, nq: int, d: int = 768, clusters: int = 1000, noise: float = 0.5,
                  seed: int = 2828) -> tuple[np.ndarray, np.ndarray]:
    """Clustered Gaussian N x d with the 1/sqrt(i+1) per-dim decay of bench_geometry's synthetic set.

    sd_i = 1/sqrt(i+1). `clusters` centres c ~ N(0, diag(sd^2)); a point is a uniformly drawn centre plus
    noise ~ N(0, diag((noise * sd)^2)): the same decaying profile in the centres and around them, so the
    leading dims carry both the cluster structure and most of the variance. Queries are drawn the same way
    (fresh points of the same centres). numpy's PCG64 seeded with `seed`: the same arrays on every run."""
    rng = np.random.default_rng(seed)
    sd = (1 / np.sqrt(np.arange(d) + 1)).astype(np.float32)
    centres = (rng.standard_normal((clusters, d), dtype=np.float32) * sd).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, d), dtype=np.float32)
        for s in range(0, m, 50_000):
            e = min(m, s + 50_000)
            lab = rng.integers(0, clusters, e - s)
            out[s:e] = centres[lab] + rng.standard_normal((e - s, d), dtype=np.float32) * (noise * sd)
        return out

    return draw(n), draw(nq)


def normalised(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def exact_top(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact top-K by inner product (= cosine: x and q are unit vectors), in blocks of queries."""
    out = np.empty((len(q), K), dtype=np.int64)
    for s in range(0, len(q), 50):
        sims = q[s:s + 50] @ x.T
        part = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[s:s + 50] = np.take_along_axis(part, order, axis=1)
    return out


def recall_of(got: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(t.tolist())) / K for g, t in zip(got, truth, strict=True)]))


# ---------------------------------------------------------------------------------------------------- options

OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([A-Za-z0-9_.+-]+)\s*$")
GUC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def parse_options(text: str) -> list[tuple[str, str]]:
    """'lists = 1, refine = 4' -> [('lists', '1'), ('refine', '4')]; anything else is an error."""
    out = []
    for item in filter(str.strip, text.split(",")):
        m = OPTION.match(item)
        if not m:
            raise argparse.ArgumentTypeError(f"not an index option 'name = value': {item!r}")
        out.append((m.group(1).lower(), m.group(2)))
    return out


def option_string(text: str) -> str:
    """argparse type of --shrinkvec-extra: the text, once it parses."""
    parse_options(text)
    return text


def with_clause(options: list[tuple[str, str]]) -> sql.Composable:
    """WITH ("name" = 'value', ...): names as identifiers, values as literals (reloptions take strings)."""
    if not options:
        return sql.SQL("")
    return sql.SQL(" WITH ({})").format(sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in options))


def parse_config(text: str) -> tuple[str, str, dict[str, str]]:
    """'label|lists = 1, refine = 4|shrinkvec.shortlist=200,shrinkvec.rerank=40' -> a CONFIGS entry."""
    parts = text.split("|")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected 'label|options|guc=value,...': {text!r}")
    label, opts, gucs_text = parts
    parse_options(opts)
    gucs = {}
    for item in filter(str.strip, gucs_text.split(",")):
        name, _, value = item.partition("=")
        if not GUC_NAME.match(name.strip()) or not value.strip():
            raise argparse.ArgumentTypeError(f"not a setting 'name=value': {item!r}")
        gucs[name.strip()] = value.strip()
    return label.strip(), opts, gucs


# ---------------------------------------------------------------------------------------------------- FAISS


def faiss_queries(index: Any, q: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(recall@K, median ms/query), one query per search call, after WARMUP untimed queries."""
    for v in q[:WARMUP]:
        index.search(v[None, :], K)
    got, times = [], []
    for v in q:
        t = time.perf_counter()
        _, ids = index.search(v[None, :], K)
        times.append((time.perf_counter() - t) * 1000)
        got.append([int(i) for i in ids[0] if i >= 0])
    return recall_of(got, truth), float(np.median(times))


def faiss_rows(data: str, x: np.ndarray, q: np.ndarray, truth: np.ndarray, build_threads: int,
               log: Callable[[str], None]) -> list[Row]:
    import faiss

    n, d = x.shape
    nlist = int(round(4 * math.sqrt(n)))
    rows: list[Row] = []
    for kind, factory, k_factors in (("RaBitQ", f"RR,IVF{nlist},RaBitQ", RABITQ_K_FACTORS),
                                     ("SQ4", "RR,SQ4", SQ4_K_FACTORS)):
        faiss.omp_set_num_threads(build_threads)
        base: Any = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        # IndexRefineFlat must wrap the base index while it is empty: it refuses a filled one (ntotal mismatch)
        index = faiss.IndexRefineFlat(base)
        t = time.perf_counter()
        index.train(x)
        index.add(x)
        build_s = time.perf_counter() - t
        size, codes = int(faiss.serialize_index(index).nbytes), int(faiss.serialize_index(base).nbytes)
        faiss.omp_set_num_threads(1)
        system = f"FAISS {factory} + RefineFlat"
        log(f"{data}: {system} built in {build_s:.1f} s, {size / 2**20:.1f} MB (codes {codes / 2**20:.1f} MB)")
        ivf = faiss.extract_index_ivf(index) if kind == "RaBitQ" else None
        ivf_index: Any = faiss.downcast_index(base.index)
        extra = {"qb": str(ivf_index.qb)} if kind == "RaBitQ" else {}
        for kf in k_factors:
            index.k_factor = kf
            sweep: list[Row] = []
            for nprobe in NPROBES if ivf is not None else (0,):
                if ivf is not None:
                    if nprobe > nlist:
                        break
                    ivf.nprobe = nprobe  # the default is 1
                r, ms = faiss_queries(index, q, truth)
                setting = f"k_factor {kf}" + (f", nprobe {nprobe}" if ivf is not None else "")
                sweep.append(Row(data, system, setting, r, ms, build_s, size, codes, False, dict(extra)))
                log(f"  {setting}: recall {r:.3f}, {ms:.3f} ms")
                if ivf is not None and r >= 0.999:
                    break  # more probes cannot help
            # the smallest nprobe reaching TARGET, else the smallest within 0.005 of the sweep's best recall
            top = max(s.recall for s in sweep)
            best = next(s for s in sweep if s.recall >= min(TARGET, top - 0.005))
            best.in_table = True
            rows += sweep
        del index, base
    return rows


# ---------------------------------------------------------------------------------------------------- PostgreSQL

KNN = sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT {}").format(sql.Identifier(TABLE), sql.Literal(K))


def scalar(conn: psycopg.Connection, query: str | sql.SQL | sql.Composed, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError("no row")
    return row[0]


def load_table(conn: psycopg.Connection, x: np.ndarray) -> int:
    """(Re)create the table, binary COPY, VACUUM ANALYZE, read every vector once; returns heap + TOAST bytes."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, embedding vector({}))").format(
        sql.Identifier(TABLE), sql.Literal(x.shape[1])))
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(TABLE))) as cp:
        cp.set_types(["int4", "vector"])
        for i, v in enumerate(x):
            cp.write_row((i, v))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(TABLE)))
    # COPY and VACUUM go through small buffer rings: read the heap and TOAST once so they are in shared_buffers
    conn.execute(sql.SQL("SELECT sum(vector_dims(embedding)) FROM {}").format(sql.Identifier(TABLE))).fetchone()
    return int(scalar(conn, "SELECT pg_table_size(%s::regclass)", (TABLE,)))


def build_index(conn: psycopg.Connection, method: str, opclass_with: sql.Composable) -> tuple[float, int]:
    """CREATE INDEX peers_idx ... USING method (embedding vector_cosine_ops) WITH ...: (seconds, bytes)."""
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(INDEX)))
    stmt = sql.SQL("CREATE INDEX {} ON {} USING {} (embedding vector_cosine_ops){}").format(
        sql.Identifier(INDEX), sql.Identifier(TABLE), sql.Identifier(method), opclass_with)
    t = time.perf_counter()
    conn.execute(stmt)
    seconds = time.perf_counter() - t
    return seconds, int(scalar(conn, "SELECT pg_relation_size(%s::regclass)", (INDEX,)))


def set_gucs(conn: psycopg.Connection, gucs: dict[str, str]) -> None:
    for g, v in gucs.items():
        conn.execute("SELECT set_config(%s, %s, false)", (g, v))


def reset_gucs(conn: psycopg.Connection, names: tuple[str, ...] | list[str]) -> None:
    for g in names:
        conn.execute(sql.SQL("RESET {}").format(sql.SQL(".").join(sql.Identifier(p) for p in g.split("."))))


def sql_queries(conn: psycopg.Connection, q: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(recall@K, median ms/query) of the KNN query, prepared, after WARMUP untimed queries; the plan must
    use the index."""
    plan = "\n".join(str(r[0]) for r in conn.execute(sql.SQL("EXPLAIN ") + KNN, (q[0],)).fetchall())
    if INDEX not in plan:
        raise RuntimeError(f"the plan does not use {INDEX}:\n" + "\n".join(line[:120] for line in plan.splitlines()))
    for v in q[:WARMUP]:
        conn.execute(KNN, (v,), prepare=True).fetchall()
    got, times = [], []
    for v in q:
        t = time.perf_counter()
        got.append([int(r[0]) for r in conn.execute(KNN, (v,), prepare=True).fetchall()])
        times.append((time.perf_counter() - t) * 1000)
    return recall_of(got, truth), float(np.median(times))


def round_trip_floor(conn: psycopg.Connection, truth: np.ndarray) -> float:
    """Median ms of fetching the 10 true neighbours by primary key: what any SQL query pays at least."""
    stmt = sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier(TABLE))
    for t in truth[:WARMUP]:
        conn.execute(stmt, (t.tolist(),), prepare=True).fetchall()
    times = []
    for t in truth:
        s = time.perf_counter()
        conn.execute(stmt, (t.tolist(),), prepare=True).fetchall()
        times.append((time.perf_counter() - s) * 1000)
    return float(np.median(times))


def shrinkvec_variants(configs: list[tuple[str, str, dict[str, str]]], extras: list[str]
                       ) -> list[tuple[str, list[tuple[str, str]], list[tuple[str, dict[str, str]]]]]:
    """(system label, WITH options, [(setting, GUCs)]) per index build: settings sharing options share a build."""
    out: list[tuple[str, list[tuple[str, str]], list[tuple[str, dict[str, str]]]]] = []
    for extra in ["", *extras]:
        system = "shrinkvec" + (f" + {extra.strip()}" if extra.strip() else "")
        by_opts: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for label, opts, gucs in configs:
            by_opts.setdefault(opts, []).append((label, gucs))
        for opts, settings in by_opts.items():
            out.append((system, parse_options(opts) + parse_options(extra), settings))
    return out


def pg_rows(conn: psycopg.Connection, data: str, x: np.ndarray, q: np.ndarray, truth: np.ndarray,
            configs: list[tuple[str, str, dict[str, str]]], extras: list[str], log: Callable[[str], None]
            ) -> tuple[list[Row], dict[str, str]]:
    t = time.perf_counter()
    table_bytes = load_table(conn, x)
    info = {"table MB": f"{table_bytes / 2**20:.1f}", "load s": f"{time.perf_counter() - t:.1f}"}
    log(f"{data}: {len(x):,} rows loaded in {info['load s']} s, table {info['table MB']} MB")
    rows = [Row(data, "SQL round-trip floor", "10 rows by primary key", math.nan, round_trip_floor(conn, truth))]

    build_s, size = build_index(conn, "hnsw", with_clause([("m", "16"), ("ef_construction", "64")]))
    log(f"{data}: HNSW built in {build_s:.1f} s, {size / 2**20:.1f} MB")
    for ef in HNSW_EF:
        set_gucs(conn, {"hnsw.ef_search": str(ef)})
        r, ms = sql_queries(conn, q, truth)
        rows.append(Row(data, "pgvector HNSW m=16 efc=64", f"ef_search {ef}", r, ms, build_s, size))
        log(f"  ef_search {ef}: recall {r:.3f}, {ms:.3f} ms")
    reset_gucs(conn, ["hnsw.ef_search"])

    for system, options, settings in shrinkvec_variants(configs, extras):
        build_s, size = build_index(conn, "shrinkvec", with_clause(options))
        opts = ", ".join(f"{k} = {v}" for k, v in options) or "no options"
        log(f"{data}: {system} ({opts}) built in {build_s:.1f} s, {size / 2**20:.1f} MB")
        for label, gucs in settings:
            reset_gucs(conn, SHRINKVEC_GUCS)
            set_gucs(conn, gucs)
            r, ms = sql_queries(conn, q, truth)
            rows.append(Row(data, system, label, r, ms, build_s, size, extra={"with": opts}))
            log(f"  {label}: recall {r:.3f}, {ms:.3f} ms")
        reset_gucs(conn, SHRINKVEC_GUCS)
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TABLE)))
    return rows, info


def check_options(conn: psycopg.Connection, configs: list[tuple[str, str, dict[str, str]]], extras: list[str],
                  dims: set[int]) -> None:
    """Every shrinkvec option combination on a tiny table of each dimension first: a typo fails now, not 20
    minutes in."""
    for d in sorted(dims):
        conn.execute("DROP TABLE IF EXISTS peers_check")
        conn.execute(sql.SQL("CREATE TABLE peers_check (id int, embedding vector({}))").format(sql.Literal(d)))
        conn.execute("INSERT INTO peers_check SELECT i, array_fill(i::real, ARRAY[%s])::vector "
                     "FROM generate_series(1, 50) i", (d,))
        try:
            for _, options, _ in shrinkvec_variants(configs, extras):
                conn.execute(sql.SQL("CREATE INDEX peers_check_idx ON peers_check USING shrinkvec "
                                     "(embedding vector_cosine_ops){}").format(with_clause(options)))
                conn.execute("DROP INDEX peers_check_idx")
        finally:
            conn.execute("DROP TABLE peers_check")


# ---------------------------------------------------------------------------------------------------- report


def hnsw_reference(rows: list[Row], data: str) -> tuple[float, str]:
    """(ms, note) of HNSW at its first ef_search reaching TARGET, else at its best recall (note '*')."""
    h = [r for r in rows if r.data == data and r.system.startswith("pgvector HNSW")]
    if not h:
        return math.nan, ""
    reach = [r for r in h if r.recall >= TARGET]
    return (reach[0].ms, "") if reach else (max(h, key=lambda r: r.recall).ms, "*")


def size_cell(r: Row) -> str:
    if not r.size_bytes:
        return ""
    mb = f"{r.size_bytes / 2**20:.1f}"
    return f"{mb} (codes {r.code_bytes / 2**20:.1f})" if r.code_bytes else mb


def markdown(rows: list[Row]) -> str:
    lines = ["| data | system | setting | recall@10 | ms/query | x HNSW@0.95 (higher is faster) | build s | size MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.in_table:
            continue
        ref, note = hnsw_reference(rows, r.data)
        ratio = f"{ref / r.ms:.2f}{note}" if not math.isnan(ref) and not math.isnan(r.recall) and r.ms > 0 else ""
        lines.append(" | ".join([
            f"| {r.data}", r.system, r.setting, "" if math.isnan(r.recall) else f"{r.recall:.3f}", f"{r.ms:.3f}", ratio,
            "" if math.isnan(r.build_s) else f"{r.build_s:.1f}", size_cell(r)]) + " |")
    return "\n".join(lines)


def plot(rows: list[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r.data for r in rows))
    ncols = min(3, len(sets))
    nrows = math.ceil(len(sets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    for ax, data in zip(axes.flat, sets, strict=False):
        mine = [r for r in rows if r.data == data and not math.isnan(r.recall)]
        groups: dict[str, list[Row]] = {}
        for r in mine:
            key = r.system
            if r.system.startswith("FAISS") and "IVF" in r.system:
                key = f"{r.system.split(',')[0]},IVF,RaBitQ+Refine kf {r.setting.split(',')[0].split()[-1]}"
            groups.setdefault(key, []).append(r)
        for key, pts in groups.items():
            pts = sorted(pts, key=lambda r: r.ms)
            style = "o-" if key.startswith(("pgvector", "FAISS")) else "s"
            ax.plot([p.ms for p in pts], [p.recall for p in pts], style, ms=4, label=key.replace("FAISS ", ""))
            if key.startswith("shrinkvec"):
                for p in pts:
                    ax.annotate(p.setting.replace("shortlist", "sl").replace("rerank", "rr"), (p.ms, p.recall),
                                fontsize=5, xytext=(3, -6), textcoords="offset points")
        floor = [r.ms for r in rows if r.data == data and r.system == "SQL round-trip floor"]
        if floor:
            ax.axvline(floor[0], color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("ms/query (median, log)")
        ax.set_ylabel(f"recall@{K}")
        ax.set_title(data, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(sets):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- main


def load_sets(keys: list[str], rows: int, nq: int, big_rows: int, big_nq: int
              ) -> list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]]:
    geo = geometry_datasets(rows, nq)
    out: list[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]]]] = []
    for k in keys:
        if k == "big":
            out.append((f"clustered synthetic {big_rows // 1000}k x 768", lambda: big_clustered(big_rows, big_nq)))
        else:
            out.append((GEOMETRY_SETS[k], geo[GEOMETRY_SETS[k]]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--sets", default=",".join(ALL_SETS), help=f"comma-separated, of {', '.join(ALL_SETS)}")
    ap.add_argument("--skip-big", action="store_true", help="leave out the clustered N x 768 set")
    ap.add_argument("--rows", type=int, default=28000, help="rows of the four geometry sets (bench_geometry's default)")
    ap.add_argument("--queries", type=int, default=200, help="queries of the four geometry sets")
    ap.add_argument("--big-rows", type=int, default=250_000)
    ap.add_argument("--big-queries", type=int, default=100)
    ap.add_argument("--build-threads", type=int, default=1,
                    help="FAISS OpenMP threads and PostgreSQL build processes (max_parallel_maintenance_workers + 1)")
    ap.add_argument("--shrinkvec-config", action="append", type=parse_config, default=None, metavar="LABEL|OPTIONS|GUCS",
                    help="replaces the default shrinkvec settings; repeatable, e.g. "
                         "'refine 4|refine = 4|shrinkvec.shortlist=200,shrinkvec.rerank=40'")
    ap.add_argument("--shrinkvec-extra", action="append", type=option_string, default=[], metavar="OPTIONS",
                    help="index options appended to every shrinkvec setting, e.g. 'rotate = off': another set of "
                         "shrinkvec rows per flag")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--plot", default=str(BENCH / "peers.png"))
    a = ap.parse_args()
    keys = [k.strip() for k in a.sets.split(",") if k.strip()]
    unknown = set(keys) - set(ALL_SETS)
    if unknown:
        ap.error(f"unknown sets {sorted(unknown)}: choose from {', '.join(ALL_SETS)}")
    if a.skip_big:
        keys = [k for k in keys if k != "big"]
    configs = a.shrinkvec_config or CONFIGS
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {msg}", flush=True)

    rows: list[Row] = []
    infos: dict[str, dict[str, str]] = {}
    with psycopg.connect(a.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec")
        register_vector(conn)
        set_gucs(conn, {"maintenance_work_mem": "2GB", "max_parallel_maintenance_workers": str(max(0, a.build_threads - 1)),
                        "max_parallel_workers_per_gather": "0", "jit": "off",
                        # on small tables the planner may cost a sequential scan + sort below the index
                        "enable_seqscan": "off"})
        check_options(conn, configs, a.shrinkvec_extra, {DIMS[k] for k in keys})
        versions = {r[0]: str(r[1]) for r in conn.execute(
            "SELECT extname, extversion FROM pg_extension WHERE extname IN ('vector', 'shrinkvec')").fetchall()}
        server = {g: str(scalar(conn, sql.SQL("SHOW {}").format(sql.Identifier(g))))
                  for g in ("server_version", "shared_buffers")}
        import faiss

        log(f"{machine()}; PostgreSQL {server['server_version']}, shared_buffers {server['shared_buffers']}, "
            f"pgvector {versions.get('vector')}, shrinkvec {versions.get('shrinkvec')}, faiss {faiss.__version__}")
        for data, make in load_sets(keys, a.rows, a.queries, a.big_rows, a.big_queries):
            x, q = make()
            x, q = normalised(x), normalised(q)
            t = time.perf_counter()
            truth = exact_top(x, q)
            log(f"{data}: {x.shape[0]:,} x {x.shape[1]}, {len(q)} queries, exact top-{K} in {time.perf_counter() - t:.1f} s")
            if not a.skip_faiss:
                rows += faiss_rows(data, x, q, truth, a.build_threads, log)
            pg, infos[data] = pg_rows(conn, data, x, q, truth, configs, a.shrinkvec_extra, log)
            rows += pg
            del x, q
    log("done")
    table = markdown(rows)
    print()
    print(table)
    print()
    for data, info in infos.items():
        print(f"- {data}: table (heap + TOAST) {info['table MB']} MB, loaded in {info['load s']} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps({
        "machine": machine(), "server": server, "versions": versions, "faiss": faiss.__version__, "args": vars(a),
        "tables": infos, "rows": [asdict(r) for r in rows]}, indent=1, default=str))
    plot(rows, a.plot)
    print(f"\nwrote {a.plot} and {RESULTS / 'peers.json'}")


if __name__ == "__main__":
    main()
