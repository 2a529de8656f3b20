"""SQL-level cost of the code functions against pgvector's, same table, same run, one backend:

- ORDER BY bits <^> q_bits LIMIT 10 (ours) vs ORDER BY bits <~> q_bits LIMIT 10 (pgvector), on a stored bit(384);
- ORDER BY prefix_cosine_distance(embedding, q128) vs subvector(embedding, 1, 128) <=> q128;
- and, for scale, the exact scan and the asymmetric bit score.

    .venv/bin/python bench/bench_sql.py [--dsn DSN] [--queries 50]
"""

from __future__ import annotations

import argparse

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402
from psycopg import sql  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shrinkvec import codes, server  # noqa: E402

from common import RESULTS, docstrings, machine, ms_bar_plot, write_markdown  # noqa: E402

TABLE = "bench_sql_docs"


def load(conn: psycopg.Connection, docs: np.ndarray) -> None:
    """(Re)create the table: embedding vector(384) and a stored bit(384) of its sign bits."""
    dim = docs.shape[1]
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
    conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, embedding vector({d}), bits bit({d}))").format(
        sql.Identifier(TABLE), d=sql.Literal(dim)))
    bits = codes.binarize_batch(docs)
    with conn.cursor().copy(sql.SQL("COPY {} (id, embedding, bits) FROM STDIN").format(sql.Identifier(TABLE))) as copy:
        for i, (v, b) in enumerate(zip(docs, bits)):
            copy.write_row((i, v, codes.bits_to_str(b, dim)))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(TABLE)))


def time_query(conn: psycopg.Connection, query: str, params: list[dict], repeat: int = 3) -> tuple[float, list[list[int]]]:
    """Median over `repeat` passes of the mean ms per query, and the ids of the last pass."""
    passes = []
    ids: list[list[int]] = []
    with conn.cursor() as cur:
        for p in params[:3]:  # warm-up: prepare and fill the cache
            cur.execute(query, p, prepare=True)
        for _ in range(repeat):
            ids = []
            t0 = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            for p in params:
                cur.execute(query, p, prepare=True)
                ids.append([r[0] for r in cur.fetchall()])
            t1 = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            passes.append((t1 - t0).total_seconds() * 1000 / len(params))
    return float(np.median(passes)), ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    docs, queries, name = docstrings()
    queries = queries[: args.queries]
    dsn = args.dsn or server.start().dsn()
    console = Console()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        register_vector(conn)
        conn.execute("SET max_parallel_workers_per_gather = 0")  # one backend, like for like
        load(conn, docs)
        kernels = conn.execute("SELECT shrinkvec_kernels()").fetchone()[0]
        params = [
            {"q": q, "qbits": codes.bits_to_str(codes.binarize(q), q.size), "q128": q[:128].copy()}
            for q in queries
        ]
        t = sql.Identifier(TABLE).as_string(conn)
        cases = [
            ("hamming", "pgvector: bits <~> q_bits", f"SELECT id FROM {t} ORDER BY bits <~> %(qbits)s::bit(384) LIMIT 10"),
            ("hamming", "shrinkvec: bits <^> q_bits", f"SELECT id FROM {t} ORDER BY bits <^> %(qbits)s::bit(384) LIMIT 10"),
            ("prefix", "pgvector: subvector(e,1,128) <=> q128",
             f"SELECT id FROM {t} ORDER BY subvector(embedding, 1, 128) <=> %(q128)s LIMIT 10"),
            ("prefix", "shrinkvec: prefix_cosine_distance(e, q128)",
             f"SELECT id FROM {t} ORDER BY prefix_cosine_distance(embedding, %(q128)s) LIMIT 10"),
            ("scale", "pgvector: exact embedding <=> q", f"SELECT id FROM {t} ORDER BY embedding <=> %(q)s LIMIT 10"),
            ("scale", "shrinkvec: bits <^#> q (asymmetric)", f"SELECT id FROM {t} ORDER BY bits <^#> %(q)s LIMIT 10"),
        ]
        results = []
        for group, label, query in cases:
            ms, ids = time_query(conn, query, params)
            results.append((group, label, ms, ids))
            console.print(f"{label}: {ms:.2f} ms/query")
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TABLE)))

    # like-for-like pairs must return the same rows (ties aside) for the times to compare
    for a, b in [(0, 1), (2, 3)]:
        same = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(results[a][3], results[b][3])])
        assert same >= 0.9, f"{results[a][1]} and {results[b][1]} disagree ({same:.2f})"

    table = Table(title=f"{len(docs):,} rows ({name}, {docs.shape[1]}-d), {len(queries)} queries, one backend, kernels {kernels}")
    for col in ["query", "ms/query", "vs pgvector"]:
        table.add_column(col)
    md_rows = []
    for i, (group, label, ms, _) in enumerate(results):
        peer = results[i - 1][2] if label.startswith("shrinkvec") else ms
        cells = [label, f"{ms:.2f}", f"{peer / ms:.2f}x"]
        table.add_row(*cells)
        md_rows.append(cells)
    console.print(table)
    write_markdown(
        RESULTS / "sql.md",
        f"SQL level: {len(docs):,} rows, ORDER BY ... LIMIT 10",
        ["query", "ms/query", "speed vs the pgvector row above (higher is faster)"],
        md_rows,
        [f"Machine: {machine()}; PostgreSQL 18 + pgvector 0.8.2 (embedded), {len(queries)} queries, "
         f"median of 3 passes, max_parallel_workers_per_gather = 0, kernels {kernels}."],
    )
    ms_bar_plot(RESULTS / "sql.png", [r[1] for r in results], [r[2] for r in results],
                f"Sequential-scan KNN over {len(docs):,} rows")
    console.print(f"wrote {RESULTS / 'sql.md'} and {RESULTS / 'sql.png'}")


if __name__ == "__main__":
    main()
