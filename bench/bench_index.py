"""The shrinkvec index against pgvector, same server, same table, same queries.

For each method: build seconds, index MB, and for each search setting recall@10 (against exact
cosine top-10 computed in numpy) and median ms/query over the queries, run one at a time from
Python with a prepared statement.

    .venv/bin/python bench/bench_index.py                         # shared docstrings (or demo data)
    .venv/bin/python bench/bench_index.py --synthetic 1000000     # clustered synthetic 768-d
    .venv/bin/python bench/bench_index.py --skip hnsw             # leave out a method

Needs the embedded server (`shrinkvec server start`) or --dsn. Issue 16's runs used a server of its own
with shared_buffers = 8GB (ALTER SYSTEM, then a restart), so that every index fits in shared buffers.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg import sql  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from shrinkvec import server  # noqa: E402

from common import RESULTS, docstrings, machine, write_markdown  # noqa: E402

K = 10
TABLE = "bench_index"
STAGE_MAX_ROWS = 200_000  # the stored-column stage rows need a sequential scan: docstrings-sized tables only
STAGE_COLUMN = "__stage_column"


@dataclass
class Row:
    method: str
    setting: str
    recall: float
    ms: float
    build_s: float
    index_mb: float


def synthetic(n: int, dim: int, nq: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, str]:
    """Clustered unit vectors: 2000 anisotropic Gaussian clusters, queries drawn like the data."""
    rng = np.random.default_rng(seed)
    k = 2000
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    scales = (0.3 + rng.random(dim)).astype(np.float32)  # anisotropic: some dims spread more

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), dtype=np.float32)
        for s in range(0, m, 100_000):
            e = min(m, s + 100_000)
            lab = rng.integers(0, k, e - s)
            x = centres[lab] + 0.9 * rng.standard_normal((e - s, dim)).astype(np.float32) * scales
            out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    return draw(n), draw(nq), f"synthetic clustered {n:,} x {dim}"


def exact_topk(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact cosine top-K ids (row numbers) of every query, in blocks."""
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    out = np.empty((len(queries), K), dtype=np.int64)
    for s in range(0, len(queries), 64):
        q = queries[s:s + 64]
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ dn.T
        part = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[s:s + 64] = np.take_along_axis(part, order, axis=1)
    return out


def load(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """(Re)create the table and fill it with binary COPY."""
    dim = docs.shape[1]
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
    conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({}))").format(
        sql.Identifier(TABLE), sql.Literal(dim)))
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} (id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
                sql.Identifier(TABLE))) as copy:
            copy.set_types(["int8", "vector"])
            for i in track(range(len(docs)), description="loading", transient=True):
                copy.write_row((i, docs[i]))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(TABLE)))


def build(conn: psycopg.Connection, name: str, ddl: str) -> tuple[float, float]:
    """Create an index; returns (seconds, MB)."""
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    t = time.perf_counter()
    conn.execute(ddl)
    seconds = time.perf_counter() - t
    size = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()[0]
    return seconds, size / 2**20


def measure(conn: psycopg.Connection, query: str, queries: np.ndarray, truth: np.ndarray,
            settings: dict[str, str], expect_index: str | None) -> tuple[float, float]:
    """(recall@K, median ms/query) of a query whose every %s parameter is the query vector."""
    nparams = query.count("%s")
    for k, v in settings.items():
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(*k.split(".")), sql.Literal(v)))
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, (queries[0],) * nparams).fetchall())
    if expect_index is not None and expect_index not in plan:
        raise RuntimeError(f"the plan does not use {expect_index}:\n{plan}")
    hits, times = 0, []
    for q, t in zip(queries, truth):
        start = time.perf_counter()
        ids = [r[0] for r in conn.execute(query, (q,) * nparams, prepare=True).fetchall()]
        times.append((time.perf_counter() - start) * 1000)
        hits += len(set(ids) & set(t.tolist()))
    for k in settings:
        conn.execute(sql.SQL("RESET {}").format(sql.Identifier(*k.split("."))))
    return hits / (K * len(queries)), float(np.median(times))


def methods(n: int, dim: int) -> Iterator[tuple[str, str, str | None, str, list[dict[str, str]]]]:
    """(method, index DDL or '', index name, query, settings list) for every method."""
    t = TABLE
    knn = f"SELECT id FROM {t} ORDER BY embedding <=> %s::vector LIMIT {K}"
    lists = max(1, int(math.sqrt(n)))
    yield ("shrinkvec flat", f"CREATE INDEX bx_sv_flat ON {t} USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1)",
           "bx_sv_flat", knn, [{"shrinkvec.shortlist": str(s)} for s in (20, 30, 40, 50, 100, 200)])
    yield (f"shrinkvec ivf lists={lists}",
           f"CREATE INDEX bx_sv_ivf ON {t} USING shrinkvec (embedding vector_cosine_ops) WITH (lists = {lists})",
           "bx_sv_ivf", knn,
           [{"shrinkvec.probes": str(p), "shrinkvec.shortlist": str(s)}
            for p in (2, 4, 8, 16, 32) for s in ((40, 50, 100, 200) if n <= STAGE_MAX_ROWS else (50, 100, 200, 400))])
    # refine codes (issue 16): the 1-bit shortlist re-scored by 2/4/8-bit codes inside the index, and only
    # shrinkvec.rerank rows read from the table
    big = n > STAGE_MAX_ROWS
    for b in (2, 4, 8):
        yield (f"shrinkvec ivf lists={lists} refine={b}",
               f"CREATE INDEX bx_sv_ivf_r{b} ON {t} USING shrinkvec (embedding vector_cosine_ops) "
               f"WITH (lists = {lists}, refine = {b})",
               f"bx_sv_ivf_r{b}", knn,
               [{"shrinkvec.probes": str(p), "shrinkvec.shortlist": str(s), "shrinkvec.rerank": str(r)}
                for p in ((2, 4, 8, 16) if big else (4, 8, 16)) for s in ((100, 200, 400) if big else (50, 100, 200))
                for r in (20, 40)])
    yield ("shrinkvec flat refine=4",
           f"CREATE INDEX bx_sv_flat_r4 ON {t} USING shrinkvec (embedding vector_cosine_ops) WITH (lists = 1, refine = 4)",
           "bx_sv_flat_r4", knn,
           [{"shrinkvec.shortlist": str(s), "shrinkvec.rerank": str(r)} for s in (100, 200, 400) for r in (20, 40)])
    bits = (f"SELECT id FROM (SELECT id, embedding FROM {t} ORDER BY binarize(embedding)::bit({dim}) "
            f"<~> binarize(%s::vector)::bit({dim}) LIMIT {{s}}) c ORDER BY embedding <=> %s::vector LIMIT {K}")
    yield ("shrinkvec bit_hamming_ops on binarize + rerank",
           f"CREATE INDEX bx_sv_bits ON {t} USING shrinkvec ((binarize(embedding)::bit({dim})) bit_hamming_ops)",
           "bx_sv_bits", bits, [{"shrinkvec.shortlist": str(s), "__shortlist": str(s)} for s in (100, 200, 400)])
    yield ("pgvector exact", "", None, knn, [{"enable_indexscan": "off"}])
    yield ("pgvector hnsw", f"CREATE INDEX bx_hnsw ON {t} USING hnsw (embedding vector_cosine_ops) "
           "WITH (m = 16, ef_construction = 64)", "bx_hnsw", knn,
           [{"hnsw.ef_search": str(e)} for e in (20, 40, 60, 100, 200, 400)])
    rerank = (f"SELECT id FROM (SELECT id, embedding FROM {t} ORDER BY binary_quantize(embedding)::bit({dim}) "
              f"<~> binary_quantize(%s::vector)::bit({dim}) LIMIT {{s}}) c ORDER BY embedding <=> %s::vector LIMIT {K}")
    yield ("pgvector hnsw on binary_quantize + rerank",
           f"CREATE INDEX bx_hnsw_bq ON {t} USING hnsw ((binary_quantize(embedding)::bit({dim})) bit_hamming_ops) "
           "WITH (m = 16, ef_construction = 64)", "bx_hnsw_bq", rerank,
           [{"hnsw.ef_search": str(s), "__shortlist": str(s)} for s in (100, 200, 400)])
    # pgvector's guidance: lists = rows / 1000 up to 1M rows, sqrt(rows) above
    ivf_lists = max(1, n // 1000) if n <= 1_000_000 else int(math.sqrt(n))
    probes = sorted({max(1, round(ivf_lists * f)) for f in (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)})
    yield (f"pgvector ivfflat lists={ivf_lists}",
           f"CREATE INDEX bx_ivfflat ON {t} USING ivfflat (embedding vector_cosine_ops) WITH (lists = {ivf_lists})",
           "bx_ivfflat", knn, [{"ivfflat.probes": str(p)} for p in probes])
    if n <= STAGE_MAX_ROWS:
        # shrinkvec's two-stage SQL over a stored code column (what `shrinkvec sql` generates), no index:
        # a sequential scan of the bits column, then the exact rerank
        stage = (f"SELECT id FROM (SELECT id, embedding FROM {t} ORDER BY bits <^#> %s::vector LIMIT {{s}}) c "
                 f"ORDER BY embedding <=> %s::vector LIMIT {K}")
        yield ("shrinkvec two-stage: bits column (seq scan) + rerank", STAGE_COLUMN, None, stage,
               [{"__shortlist": str(s)} for s in (50, 100, 200)])


def run(docs: np.ndarray, queries: np.ndarray, name: str, dsn: str, skip: list[str], console: Console) -> list[Row]:
    n, dim = docs.shape
    console.print(f"[bold]{name}[/]: {n:,} docs, {len(queries)} queries; exact top-{K} in numpy")
    truth = exact_topk(docs, queries)
    rows: list[Row] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        # a fresh copy of the extension as installed now (same version number across rebuilds)
        conn.execute("DROP EXTENSION IF EXISTS shrinkvec CASCADE")
        conn.execute("CREATE EXTENSION shrinkvec CASCADE")
        register_vector(conn)
        conn.execute("SET maintenance_work_mem = '8GB'")
        conn.execute("SET jit = off")
        t = time.perf_counter()
        load(conn, docs)
        console.print(f"loaded in {time.perf_counter() - t:.1f} s")
        heap_mb = conn.execute("SELECT pg_table_size(%s::regclass)", (TABLE,)).fetchone()[0] / 2**20
        rows.append(Row("table (heap + TOAST)", "", float("nan"), float("nan"), float("nan"), heap_mb))
        for method, ddl, index, query, settings in methods(n, dim):
            if any(s in method for s in skip):
                continue
            if ddl == STAGE_COLUMN:
                build_s, mb = add_bits_column(conn, dim)
                console.print(f"{method}: column filled in {build_s:.1f} s, {mb:.1f} MB of codes")
            else:
                build_s, mb = build(conn, index, ddl) if ddl else (0.0, 0.0)
            if ddl and ddl != STAGE_COLUMN:
                console.print(f"{method}: built in {build_s:.1f} s, {mb:.1f} MB")
            # an exact scan costs seconds a query at 1M rows: time it on the first 20 queries
            qs, tr = (queries[:20], truth[:20]) if method == "pgvector exact" else (queries, truth)
            for s in settings:
                s = dict(s)
                shortlist = s.pop("__shortlist", None)
                q = query.replace("{s}", shortlist) if shortlist else query
                recall, ms = measure(conn, q, qs, tr, s, index)
                setting = ", ".join(f"{k}={v}" for k, v in s.items() if k != "enable_indexscan")
                if shortlist:
                    setting = f"{setting}, rerank {shortlist}" if setting else f"rerank {shortlist}"
                rows.append(Row(method, setting, recall, ms, build_s, mb))
                console.print(f"  {setting or '-'}: recall {recall:.3f}, {ms:.2f} ms")
            if ddl and index:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
    if not any(s in "faiss IndexBinaryFlat + numpy rerank" for s in skip):
        rows += faiss_rows(docs, queries, truth, console)
    return rows


def add_bits_column(conn: psycopg.Connection, dim: int) -> tuple[float, float]:
    """A stored bit(dim) column of binarize(embedding), as `shrinkvec load` writes: (seconds, MB of codes)."""
    t = time.perf_counter()
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN bits bit({})").format(sql.Identifier(TABLE), sql.Literal(dim)))
    conn.execute(sql.SQL("UPDATE {} SET bits = binarize(embedding)").format(sql.Identifier(TABLE)))
    # VACUUM FULL: without it the UPDATE leaves the heap twice its size and the scan reads the dead half
    conn.execute(sql.SQL("VACUUM FULL ANALYZE {}").format(sql.Identifier(TABLE)))
    seconds = time.perf_counter() - t
    size = conn.execute(sql.SQL("SELECT sum(pg_column_size(bits)) FROM {}").format(sql.Identifier(TABLE))).fetchone()[0]
    return seconds, float(size) / 2**20


def faiss_rows(docs: np.ndarray, queries: np.ndarray, truth: np.ndarray, console: Console) -> list[Row]:
    """FAISS IndexBinaryFlat (sign bits, one thread) for the shortlist + exact cosine rerank in numpy:
    the out-of-database reference, with every vector in RAM. Times include the query's binarisation,
    the Hamming search and the rerank, one query at a time."""
    import faiss

    faiss.omp_set_num_threads(1)
    n, dim = docs.shape
    t = time.perf_counter()
    index = faiss.IndexBinaryFlat(dim)
    index.add(np.packbits(docs > 0, axis=1))
    build_s = time.perf_counter() - t
    mb = n * dim / 8 / 2**20
    unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    console.print(f"faiss IndexBinaryFlat: built in {build_s:.2f} s, {mb:.1f} MB (+ {unit.nbytes / 2**20:.0f} MB "
                  "of float vectors in RAM for the rerank)")
    out = []
    for s in (50, 100, 200, 400):
        hits, times = 0, []
        for q, tr in zip(queries, truth):
            start = time.perf_counter()
            _, cand = index.search(np.packbits(q[None, :] > 0, axis=1), s)
            c = cand[0][cand[0] >= 0]
            top = c[np.argsort(-(unit[c] @ q), kind="stable")[:K]]
            times.append((time.perf_counter() - start) * 1000)
            hits += len(set(top.tolist()) & set(tr.tolist()))
        recall, ms = hits / (K * len(queries)), float(np.median(times))
        out.append(Row("faiss IndexBinaryFlat + numpy rerank", f"rerank {s}", recall, ms, build_s, mb))
        console.print(f"  rerank {s}: recall {recall:.3f}, {ms:.3f} ms")
    return out


def report(rows: list[Row], name: str, stem: str, console: Console) -> None:
    table = Table(title=f"{name}: recall@{K} vs exact cosine")
    header = ["method", "setting", f"recall@{K}", "ms/query", "build s", "index MB"]
    for h in header:
        table.add_column(h, justify="right" if h not in ("method", "setting") else "left")
    md = []
    for r in rows:
        cells = [r.method, r.setting,
                 "" if math.isnan(r.recall) else f"{r.recall:.3f}",
                 "" if math.isnan(r.ms) else f"{r.ms:.2f}",
                 "" if math.isnan(r.build_s) or r.build_s == 0 else f"{r.build_s:.1f}",
                 f"{r.index_mb:.1f}" if r.index_mb else ""]
        table.add_row(*cells)
        md.append(cells)
    console.print(table)
    write_markdown(RESULTS / f"{stem}.md", f"Index: {name}", header, md,
                   [f"Machine: {machine()}.", f"PostgreSQL 18 + pgvector 0.8.2 (embedded); exact top-{K} from numpy; "
                    "ms/query is the median over the queries, one at a time, prepared statements."])
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"name": name, "machine": machine(), "k": K, "rows": [asdict(r) for r in rows]}, indent=1))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(r.method for r in rows):
        pts = [(r.recall, r.ms) for r in rows if r.method == method and not math.isnan(r.recall)]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
    ax.set_xlabel(f"recall@{K}")
    ax.set_ylabel("ms/query (median)")
    ax.set_yscale("log")
    ax.set_title(name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=120)
    console.print(f"wrote {RESULTS / (stem + '.md')} and .png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=0, help="rows of clustered synthetic data instead of docstrings")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--skip", action="append", default=[], help="leave out methods whose name contains this")
    args = parser.parse_args()
    console = Console(width=140)
    if args.synthetic:
        docs, queries, name = synthetic(args.synthetic, args.dim, args.queries)
        stem = f"index_synthetic_{args.synthetic}"
    else:
        docs, queries, name = docstrings()
        queries = queries[: args.queries]
        stem = "index_docstrings"
    if args.dsn:
        dsn = args.dsn
    else:
        info = server.start(server.default_data_dir())
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'shrinkvec_bench'").fetchone():
                conn.execute("CREATE DATABASE shrinkvec_bench")
        dsn = info.dsn("shrinkvec_bench")
    rows = run(docs, queries, name, dsn, args.skip, console)
    report(rows, name, stem, console)


if __name__ == "__main__":
    main()
