"""Insert cost of one row into a table of 100,000 synthetic 768-d vectors, one INSERT a statement (prepared,
autocommit), under each index: none, the shrinkvec index flat and IVF (316 and 1,000 lists: an insert compares its row with
the ~sqrt(lists) group centroids of the coarse level and the lists of the 4 nearest groups, not with every
centroid), with refine codes, and pgvector HNSW. Issue 16 asks what an IVF insert costs.

    .venv/bin/python bench/bench_insert.py [--dsn ...] [--rows 100000] [--inserts 3000]

Writes results/insert.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from rich.console import Console

from shrinkvec import server

from common import RESULTS, machine, write_markdown

DIMS = 768
INDEXES = [
    ("no index", None),
    ("shrinkvec flat (lists = 1)", "USING shrinkvec (v vector_cosine_ops) WITH (lists = 1)"),
    ("shrinkvec IVF lists = 316", "USING shrinkvec (v vector_cosine_ops) WITH (lists = 316)"),
    ("shrinkvec IVF lists = 1000", "USING shrinkvec (v vector_cosine_ops) WITH (lists = 1000)"),
    ("shrinkvec IVF lists = 1000, refine = 4", "USING shrinkvec (v vector_cosine_ops) WITH (lists = 1000, refine = 4)"),
    ("pgvector HNSW m=16 efc=64", "USING hnsw (v vector_cosine_ops) WITH (m = 16, ef_construction = 64)"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default=None, help="a database to use (default: the embedded server)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--inserts", type=int, default=3000)
    args = ap.parse_args()
    console = Console()
    rng = np.random.default_rng(16)
    x = rng.standard_normal((args.rows, DIMS)).astype(np.float32)
    y = rng.standard_normal((args.inserts, DIMS)).astype(np.float32)
    rows = []
    with psycopg.connect(args.dsn or server.start().dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        register_vector(conn)
        conn.execute("SET maintenance_work_mem = '512MB'")
        for label, index in INDEXES:
            conn.execute("DROP TABLE IF EXISTS bench_insert")
            conn.execute(sql.SQL("CREATE TABLE bench_insert (id int, v vector({}))").format(sql.Literal(DIMS)))
            with conn.cursor().copy("COPY bench_insert FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "vector"])
                for i, v in enumerate(x):
                    copy.write_row((i, v))
            if index is not None:
                conn.execute("CREATE INDEX bench_insert_v ON bench_insert " + index)  # constants above
            conn.execute("CHECKPOINT")
            start = time.perf_counter()
            with conn.cursor() as cur:
                for i, v in enumerate(y):
                    cur.execute("INSERT INTO bench_insert VALUES (%s, %s)", (args.rows + i, v), prepare=True)
            ms = (time.perf_counter() - start) * 1000 / args.inserts
            rows.append([label, f"{ms:.3f}"])
            console.print(f"{label}: {ms:.3f} ms/insert")
        conn.execute("DROP TABLE bench_insert")
    base = float(rows[0][1])
    for r in rows:
        r.append(f"{float(r[1]) / base:.2f}")
    write_markdown(RESULTS / "insert.md", "Insert cost", ["index", "ms/insert", "x no index"], rows,
                   [f"{machine()}; {args.rows:,} x {DIMS} synthetic rows, {args.inserts} single-row INSERTs "
                    "(prepared, autocommit) after a CHECKPOINT"])
    console.print(f"wrote {RESULTS / 'insert.md'}")


if __name__ == "__main__":
    main()
