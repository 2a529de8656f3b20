"""Issue 14's head-to-head on the shared docstrings: the shrinkvec index (flat and IVF) against pgvector HNSW
and FAISS IndexBinaryFlat + rerank, and against the format-1 index (before the SIMD scan) when it is
installed, all measured round-robin in one run.

Every method has its own copy of the table (so the planner has one index to choose), and each query is run
by every method and setting in turn before the next query: load changes on a shared machine hit every
method alike, so the ratios hold even when the absolute times drift.

    .venv/bin/python bench/bench_scan_speed.py --dsn postgresql://.../shrinkvec_bench \
        [--before-dsn postgresql://.../shrinkvec_before] [--queries 300] [--perf]

--before-dsn: a database where `CREATE EXTENSION shrinkvec_v1` installs the format-1 extension built from an
earlier commit under another name (bench/README.md says how); left out when not given.
--perf: also records `perf` on the backend during flat scans and prints where the time goes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field

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

K = 10


@dataclass
class Setting:
    method: str
    setting: str
    conn: str  # key of the connection
    sets: dict[str, str]
    query: str  # %s = the query vector
    times: list[float] = field(default_factory=list)
    hits: int = 0

    def recall(self, nq: int) -> float:
        return self.hits / (K * nq)

    def ms(self) -> float:
        return statistics.median(self.times) if self.times else math.nan


def exact_topk(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact cosine top-K ids of every query."""
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = qn @ dn.T
    part = np.argpartition(-sims, K, axis=1)[:, :K]
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def load_table(conn: psycopg.Connection, table: str, docs: np.ndarray) -> None:
    """(Re)create table (id bigint, embedding vector) and fill it with binary COPY."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({}))").format(
        sql.Identifier(table), sql.Literal(docs.shape[1])))
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier(table))) as copy:
        copy.set_types(["int8", "vector"])
        for i, v in enumerate(docs):
            copy.write_row((i, v))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def timed_build(conn: psycopg.Connection, ddl: str) -> float:
    t = time.perf_counter()
    conn.execute(ddl)
    return time.perf_counter() - t


def knn(table: str) -> str:
    return f"SELECT id FROM {table} ORDER BY embedding <=> %s::vector LIMIT {K}"


def setup(conns: dict[str, psycopg.Connection], docs: np.ndarray, lists: int, console: Console) -> list[Setting]:
    """Tables, indexes and the settings to measure."""
    main = conns["main"]
    main.execute("DROP EXTENSION IF EXISTS shrinkvec CASCADE")
    main.execute("CREATE EXTENSION shrinkvec CASCADE")
    register_vector(main)
    for t in ("speed_flat", "speed_ivf", "speed_hnsw"):
        load_table(main, t, docs)
    builds = {
        "flat": timed_build(main, "CREATE INDEX ON speed_flat USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)"),
        "ivf": timed_build(main, f"CREATE INDEX ON speed_ivf USING shrinkvec (embedding vector_cosine_ops) "
                                 f"WITH (lists = {lists})"),
        "bits": timed_build(main, f"CREATE INDEX ON speed_flat USING shrinkvec "
                                  f"((binarize(embedding)::bit({docs.shape[1]})) bit_hamming_ops)"),
        "hnsw": timed_build(main, "CREATE INDEX ON speed_hnsw USING hnsw (embedding vector_cosine_ops) "
                                  "WITH (m = 16, ef_construction = 64)"),
    }
    console.print("builds (s): " + ", ".join(f"{k} {v:.1f}" for k, v in builds.items()))
    out = [Setting("shrinkvec flat", f"shortlist {s}", "main", {"shrinkvec.shortlist": str(s)}, knn("speed_flat"))
           for s in (20, 30, 40, 50, 100)]
    out += [Setting(f"shrinkvec IVF lists={lists}",
                    f"probes {p}, shortlist {s}" if p else f"probes 0 (a fifth: {(lists + 4) // 5}), shortlist {s} (defaults)",
                    "main", {"shrinkvec.probes": str(p), "shrinkvec.shortlist": str(s)}, knn("speed_ivf"))
            for p, s in ((16, 40), (32, 40), (32, 50), (48, 50), (64, 50), (0, 100))]
    dim = docs.shape[1]
    out += [Setting("shrinkvec bit_hamming_ops + rerank", f"shortlist {s}", "main", {"shrinkvec.shortlist": str(s)},
                    f"SELECT id FROM (SELECT id, embedding FROM speed_flat ORDER BY binarize(embedding)::bit({dim}) "
                    f"<~> binarize(%s::vector)::bit({dim}) LIMIT {s}) c ORDER BY embedding <=> %s::vector LIMIT {K}")
            for s in (50, 100)]
    out += [Setting("pgvector HNSW m=16 efc=64", f"ef_search {e}", "main", {"hnsw.ef_search": str(e)},
                    knn("speed_hnsw")) for e in (20, 40, 60, 100, 200)]
    out.append(Setting("round-trip floor: 10 rows by primary key", "", "main", {},
                       "SELECT id FROM speed_flat WHERE id = ANY(%s)"))
    if "before" in conns:
        b = conns["before"]
        b.execute("DROP EXTENSION IF EXISTS shrinkvec_v1 CASCADE")
        b.execute("CREATE EXTENSION shrinkvec_v1 CASCADE")
        register_vector(b)
        load_table(b, "speed_flat", docs)
        t = timed_build(b, "CREATE INDEX ON speed_flat USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)")
        console.print(f"before (format 1) flat build {t:.1f} s")
        out += [Setting("shrinkvec flat, format 1 (before)", f"shortlist {s}", "before", {"shrinkvec.shortlist": str(s)},
                        knn("speed_flat")) for s in (20, 30, 40, 50, 100)]
    return out


def run(conns: dict[str, psycopg.Connection], settings: list[Setting], docs: np.ndarray, queries: np.ndarray,
        truth: np.ndarray) -> list[Setting]:
    """Every query through every setting in turn (plus FAISS in process); returns the FAISS settings."""
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(docs.shape[1])
    index.add(np.packbits(docs > 0, axis=1))
    unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    fs = [Setting("FAISS IndexBinaryFlat + numpy rerank (in process)", f"rerank {s}", "", {}, str(s))
          for s in (50, 100, 200)]
    current: dict[str, dict[str, str]] = {k: {} for k in conns}
    for c in conns.values():
        c.execute("SET jit = off")
    for qi, (q, tr) in enumerate(zip(queries, truth)):
        want = set(tr.tolist())
        for s in settings:
            c = conns[s.conn]
            for k, v in s.sets.items():
                if current[s.conn].get(k) != v:
                    c.execute(sql.SQL("SET {} = {}").format(sql.Identifier(*k.split(".")), sql.Literal(v)))
                    current[s.conn][k] = v
            params: tuple = (list(tr[:K].tolist()),) if "ANY" in s.query else (q,) * s.query.count("%s")
            start = time.perf_counter()
            ids = [r[0] for r in c.execute(s.query, params, prepare=True).fetchall()]
            if qi > 0 or len(queries) == 1:  # the first query warms caches and prepares statements
                s.times.append((time.perf_counter() - start) * 1000)
            s.hits += len(set(ids) & want)
        for s in fs:
            n = int(s.query)
            start = time.perf_counter()
            _, cand = index.search(np.packbits(q[None, :] > 0, axis=1), n)
            cc = cand[0][cand[0] >= 0]
            top = cc[np.argsort(-(unit[cc] @ q), kind="stable")[:K]]
            if qi > 0:
                s.times.append((time.perf_counter() - start) * 1000)
            s.hits += len(set(top.tolist()) & want)
    return fs


def perf_flat(conn: psycopg.Connection, queries: np.ndarray, shortlist: int, seconds: float, console: Console) -> list[str]:
    """perf record on the backend while it runs flat scans; the top symbols and the share of shrinkvec.so."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute(sql.SQL("SET shrinkvec.shortlist = {}").format(sql.Literal(shortlist)))
    data = RESULTS / "perf_flat.data"
    try:
        p = subprocess.Popen(["perf", "record", "-o", str(data), "-p", str(pid)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return ["perf is not installed"]
    time.sleep(0.5)
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        conn.execute(knn("speed_flat"), (queries[n % len(queries)],), prepare=True).fetchall()
        n += 1
    p.send_signal(2)
    p.wait()
    rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "--stdio",
                          "--percent-limit", "1"], capture_output=True, text=True).stdout
    dso = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "--stdio"],
                         capture_output=True, text=True).stdout
    lines = [f"perf of the backend over {n} flat scans (shortlist {shortlist}):"]
    lines += [ln.strip() for ln in dso.splitlines() if "%" in ln and not ln.startswith("#")][:6]
    lines += ["top symbols:"] + [ln.strip() for ln in rep.splitlines() if "%" in ln and not ln.startswith("#")][:15]
    for ln in lines:
        console.print(ln)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=None, help="default: the embedded server, database shrinkvec_bench")
    ap.add_argument("--before-dsn", default=None)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--perf", action="store_true")
    args = ap.parse_args()
    console = Console(width=150)
    docs, queries, name = docstrings()
    queries = queries[: args.queries]
    truth = exact_topk(docs, queries)
    lists = round(math.sqrt(len(docs)))  # what an index created without options gets
    dsn = args.dsn
    if dsn is None:
        info = server.start(server.default_data_dir())
        with psycopg.connect(info.dsn(), autocommit=True) as c:
            if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'shrinkvec_bench'").fetchone():
                c.execute("CREATE DATABASE shrinkvec_bench")
        dsn = info.dsn("shrinkvec_bench")
    conns = {"main": psycopg.connect(dsn, autocommit=True)}
    if args.before_dsn:
        conns["before"] = psycopg.connect(args.before_dsn, autocommit=True)
    settings = setup(conns, docs, lists, console)
    for c in conns.values():
        register_vector(c)
    fs = run(conns, settings, docs, queries, truth)
    rows = settings + fs
    nq = len(queries)

    def best(method_prefix: str) -> Setting | None:
        ok = [s for s in rows if s.method.startswith(method_prefix) and s.recall(nq) >= 0.95]
        return min(ok, key=lambda s: s.ms()) if ok else None

    hnsw, faiss_best = best("pgvector HNSW"), best("FAISS")
    flat = min((s for s in rows if s.method == "shrinkvec flat" and s.recall(nq) >= 0.95), key=lambda s: s.ms(),
               default=None)
    before = best("shrinkvec flat, format 1")
    ivf = best("shrinkvec IVF")
    if flat and ivf and ivf.ms() < flat.ms():
        flat_or_ivf = ivf
    else:
        flat_or_ivf = flat
    header = ["method", "setting", "recall@10", "ms/query (median)"]
    table = Table(title=f"{name}: {len(docs):,} docs, {nq} queries, round-robin")
    for h in header:
        table.add_column(h, justify="left" if h in ("method", "setting") else "right")
    md = []
    for s in rows:
        cells = [s.method, s.setting, "" if "floor" in s.method else f"{s.recall(nq):.3f}", f"{s.ms():.3f}"]
        table.add_row(*cells)
        md.append(cells)
    console.print(table)
    notes = [f"Machine: {machine()}. {name}, {len(docs):,} x {docs.shape[1]}, {nq} queries; recall@10 against the exact "
             "cosine top-10 (numpy); ms/query is the median over the queries (the first left out), each query run by "
             "every method in turn (round-robin), prepared statements from Python; FAISS in process, one thread."]
    ratios = []
    if flat:
        ratios.append(f"fastest flat setting at recall >= 0.95: {flat.setting}, {flat.recall(nq):.3f} in {flat.ms():.3f} ms")
    if ivf:
        ratios.append(f"fastest IVF setting at recall >= 0.95: {ivf.setting}, {ivf.recall(nq):.3f} in {ivf.ms():.3f} ms")
    if flat and hnsw:
        ratios.append(f"HNSW at its fastest >= 0.95 ({hnsw.setting}, {hnsw.recall(nq):.3f}): {hnsw.ms():.3f} ms = "
                      f"{hnsw.ms() / flat.ms():.2f}x the flat index's time (target >= 1.5)"
                      + (f", {hnsw.ms() / ivf.ms():.2f}x the IVF index's" if ivf else ""))
    if flat and faiss_best:
        ratios.append(f"FAISS + rerank at its fastest >= 0.95 ({faiss_best.setting}, {faiss_best.recall(nq):.3f}): "
                      f"{faiss_best.ms():.3f} ms; the flat index takes {flat.ms() / faiss_best.ms():.2f}x that "
                      "(target <= 2)" + (f", the IVF index {ivf.ms() / faiss_best.ms():.2f}x" if ivf else ""))
    floor = next((s for s in rows if "floor" in s.method), None)
    if floor and flat_or_ivf:
        ratios.append(f"round-trip floor (10 rows by primary key): {floor.ms():.3f} ms; the fastest index setting "
                      f">= 0.95 spends {flat_or_ivf.ms() - floor.ms():.3f} ms above it")
    if flat and before:
        ratios.append(f"format 1 (before) at its fastest >= 0.95 ({before.setting}): {before.ms():.3f} ms = "
                      f"{before.ms() / flat.ms():.2f}x the new flat index's time")
    same = [(a, b) for a in rows if a.method == "shrinkvec flat" for b in rows
            if b.method.startswith("shrinkvec flat, format 1") and a.setting == b.setting]
    if same:
        ratios.append("recall at the same shortlist, new - before: " + ", ".join(
            f"{a.setting} {a.recall(nq) - b.recall(nq):+.4f}" for a, b in same))
    for r in ratios:
        console.print(r)
    lines = perf_flat(conns["main"], queries, int(flat.setting.split()[-1]) if flat else 40, 8, console) \
        if args.perf else []
    write_markdown(RESULTS / "scan_speed.md", f"Scan speed head-to-head: {name}", header, md,
                   notes + [""] + [f"- {r}" for r in ratios] + ([""] + ["```"] + lines + ["```"] if lines else []))
    (RESULTS / "scan_speed.json").write_text(json.dumps(
        {"name": name, "machine": machine(), "queries": nq,
         "rows": [{**{k: v for k, v in asdict(s).items() if k not in ("times", "hits")},
                   "recall": s.recall(nq), "ms": s.ms()} for s in rows], "ratios": ratios, "perf": lines}, indent=1))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for method in dict.fromkeys(s.method for s in rows):
        pts = [(s.recall(nq), s.ms()) for s in rows if s.method == method]
        if "floor" in method:
            ax.axhline(pts[0][1], color="gray", ls=":", label=method)
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
    ax.set_xlabel("recall@10")
    ax.set_ylabel("ms/query (median)")
    ax.set_yscale("log")
    ax.set_xlim(left=0.85)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{name}: round-robin, one run")
    fig.tight_layout()
    fig.savefig(RESULTS / "scan_speed.png", dpi=120)
    console.print(f"wrote {RESULTS / 'scan_speed.md'} and .png")


if __name__ == "__main__":
    main()
