"""Index build time with 0, 1 and 2 parallel maintenance workers, and with the server's default: the
shrinkvec index (IVF, sqrt(rows) lists, without and with 4-bit refine codes) against pgvector HNSW
(m=16, ef_construction=64), on the clustered synthetic 768-d rows of bench_index.py (issue 16).

    .venv/bin/python bench/bench_build.py [--rows 250000] [--dsn ...]

Each build runs once per setting (HNSW builds take tens of seconds). PostgreSQL gives a build as many
workers as max_parallel_maintenance_workers allows and the table's size earns (768-d vectors are
TOASTed, so the heap itself is small: the planner may grant fewer than asked, the same for both
indexes); `workers` is the setting, and the ratio is HNSW's time over shrinkvec's in the same row.
Writes results/build.md.
"""

from __future__ import annotations

import argparse
import math
import time

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from rich.console import Console
from rich.table import Table

from bench_index import TABLE, load, synthetic
from shrinkvec import server

from common import RESULTS, machine, write_markdown


def build_seconds(conn: psycopg.Connection, ddl: str) -> float:
    conn.execute("DROP INDEX IF EXISTS bench_build_ix")
    start = time.perf_counter()
    conn.execute(ddl)
    seconds = time.perf_counter() - start
    conn.execute("DROP INDEX bench_build_ix")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--dsn", default=None, help="a database to use (default: the embedded server)")
    args = ap.parse_args()
    console = Console()
    docs, _, name = synthetic(args.rows, 768, 1)
    lists = max(1, int(math.sqrt(args.rows)))
    t = sql.Identifier(TABLE).as_string()
    indexes = [
        (f"shrinkvec IVF lists={lists}",
         f"CREATE INDEX bench_build_ix ON {t} USING shrinkvec (embedding vector_cosine_ops) WITH (lists = {lists})"),
        (f"shrinkvec IVF lists={lists} refine=4",
         f"CREATE INDEX bench_build_ix ON {t} USING shrinkvec (embedding vector_cosine_ops) "
         f"WITH (lists = {lists}, refine = 4)"),
        ("pgvector HNSW m=16 efc=64",
         f"CREATE INDEX bench_build_ix ON {t} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"),
    ]
    rows: list[list[str]] = []
    with psycopg.connect(args.dsn or server.start().dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        register_vector(conn)
        loaded = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]
        if not loaded or conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE))).fetchone()[0] \
                != args.rows:
            load(conn, docs)
        conn.execute("SET maintenance_work_mem = '8GB'")
        default = conn.execute("SHOW max_parallel_maintenance_workers").fetchone()[0]
        for workers in ("0", "1", "2", f"default ({default})"):
            conn.execute("SET max_parallel_maintenance_workers = " + (default if workers.startswith("default")
                                                                    else workers))
            seconds = [build_seconds(conn, ddl) for _, ddl in indexes]
            for (label, _), s in zip(indexes, seconds):
                ratio = f"{seconds[2] / s:.1f}x" if "shrinkvec" in label else ""
                rows.append([workers, label, f"{s:.1f}", ratio])
                console.print(f"workers {workers}: {label}: {s:.1f} s {ratio}")
    table = Table(title=f"build seconds, {name}")
    header = ["max_parallel_maintenance_workers", "index", "build s", "HNSW / this"]
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    write_markdown(RESULTS / "build.md", f"Build time: {name}", header, rows,
                   [f"Machine: {machine()}.", "One build per setting; PostgreSQL 18 + pgvector 0.8.2; "
                    "maintenance_work_mem = 8GB."])


if __name__ == "__main__":
    main()
