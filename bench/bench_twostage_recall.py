"""Recall@10 of the generated two-stage query against exact search, on the docstring embeddings.

    python bench/bench_twostage_recall.py [--queries 200] [--dsn DSN]

Loads bench/common.py `docstrings()` (../shared/data/docstrings when present, else the shipped demo
data) with `shrinkvec load` into a table with codes bits, prefix:64 and prefix:128, then runs
shrinkvec.query's two-stage SQL (shortlist 50/100/200/400 by asymmetric bits, by the 64-d prefix,
by the 128-d prefix; rerank by the full vector) and compares the ids with exact cosine top-10 in numpy.
Prints a table and writes bench/twostage_recall.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import docstrings, machine, write_markdown  # noqa: E402

SHORTLISTS = [50, 100, 200, 400]
STAGES = {"bits (asymmetric)": "bits", "prefix 64": "prefix:64", "prefix 128": "prefix:128"}
K = 10


def main() -> None:
    import psycopg

    from shrinkvec.load.loader import LoadOptions, load
    from shrinkvec.sql import catalog, query

    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dsn", default=None)
    args = ap.parse_args()
    dsn = args.dsn
    if dsn is None:
        from shrinkvec import server

        dsn = server.start(BENCH.parent / ".cache" / "bench-pgdata").dsn()
    docs, queries, name = docstrings()
    queries = queries[: args.queries]
    table = "bench_recall"
    with psycopg.connect(dsn, autocommit=True) as conn:
        catalog.migrate(dsn)
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (table,))
        conn.execute("DELETE FROM shrinkvec.loads WHERE table_name = %s", (table,))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.npy"
        np.save(path, docs)
        r = load(dsn, path, LoadOptions(table=table, profile="bits,prefix:64,prefix:128", reject_file=Path(tmp) / "r"))
    print(r.summary())

    x = docs.astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    truth = [set(np.argsort(1 - xn @ (q / np.linalg.norm(q)), kind="stable")[:K].tolist()) for q in queries.astype(np.float64)]
    rows = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        p = catalog.find_profile(conn, table)
        assert p is not None
        for label, stage in STAGES.items():
            cells = [label]
            for n in SHORTLISTS:
                t = time.perf_counter()
                res = query.search(conn, p, query.stages_for(p, [stage], [n]), queries, K)
                ms = (time.perf_counter() - t) * 1000 / len(queries)
                recall = float(np.mean([len(set(ids) & tr) / K for (ids, _), tr in zip(res, truth)]))
                cells.append(f"{recall:.3f} ({ms:.0f} ms)")
                print(label, n, f"{recall:.3f}", f"{ms:.1f} ms/query", flush=True)
            rows.append(cells)
        conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (table,))
    header = ["shortlist stage", *[f"shortlist {n}" for n in SHORTLISTS]]
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(row))
    write_markdown(BENCH / "twostage_recall.md", f"Recall@{K} of the two-stage query ({name})", header, rows,
                   [machine(), "",
                    f"{len(docs):,} x {docs.shape[1]}-d all-MiniLM-L6-v2 docstring embeddings, {len(queries)} queries; "
                    "recall@10 against exact cosine search, mean ms per query in parentheses (sequential scans, "
                    "no index: the shrinkvec index AM is separate work)."])


if __name__ == "__main__":
    main()
