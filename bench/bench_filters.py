"""Filtered search: the plan PostgreSQL chooses against the exact plan, for filters that keep 0.1%, 1%, 10%
and 50% of the rows, written as the frameworks write them (issue 30).

- `jsonb_path_match(meta, '$.f01 == true')`: LangChain PGVector's filter (the planner guesses its selectivity);
- `meta->>'g01' = 'y'`: LlamaIndex's filter, without and with an expression index (+ ANALYZE, its statistics);
- `cat < N`: a plain column with statistics (the planner knows the selectivity).

Per filter and share: the chosen plan (index or exact), its time per query against the exact plan's (both
measured by EXPLAIN (ANALYZE) execution time, the median over the queries), the rows each returned and the
chosen plan's recall@10 against the exact plan. Target: the chosen plan never more than 1.3x the exact plan,
and never fewer rows.

    python bench/bench_filters.py --dsn "$DSN" [--rows 28000] [--queries 20] [--set docs|pca|wordllama|synthetic]

--set takes bench_geometry.py's four sets (the docstrings as they are, PCA-rotated, embedded by WordLlama, and
synthetic sd ~ 1/sqrt(i+1)); without it, the docstrings (shared, else the demo's 4,000).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from common import docstrings

SETS = {"docs": "docstrings (", "pca": "docstrings PCA", "wordllama": "WordLlama", "synthetic": "synthetic"}
SHARES = {"f0001": 0.001, "f001": 0.01, "f01": 0.1, "f05": 0.5}


def setup(conn: psycopg.Connection, docs: np.ndarray, seed: int) -> None:
    """The table `filt`: docs, a jsonb with a boolean per share (f0001...) and a string per share (g0001...),
    an int column `cat` whose `cat < share * 1000` keeps that share, and a shrinkvec index."""
    rng = np.random.default_rng(seed)
    n, d = docs.shape
    conn.execute("DROP TABLE IF EXISTS filt")
    conn.execute(f"CREATE TABLE filt (id bigint PRIMARY KEY, meta jsonb, cat int, embedding vector({d}))")
    u = rng.random(n)
    cat = rng.integers(0, 1000, n)
    with conn.cursor().copy("COPY filt (id, meta, cat, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "jsonb", "int4", "vector"])
        for i in range(n):
            keep = {k: bool(u[i] < s) for k, s in SHARES.items()}
            meta = {**keep, **{"g" + k[1:]: ("y" if v else "n") for k, v in keep.items()}}
            cp.write_row((i, Jsonb(meta), int(cat[i]), docs[i]))
    conn.execute("CREATE INDEX filt_idx ON filt USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("VACUUM ANALYZE filt")


def timed(conn: psycopg.Connection, query: str, q: np.ndarray, exact: bool) -> tuple[float, list[int], bool]:
    """Execution ms (EXPLAIN ANALYZE), the ids, and whether the plan used the shrinkvec index."""
    with conn.transaction():
        if exact:
            conn.execute("SET LOCAL enable_indexscan = off")
            conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, {"q": q}).fetchone()[0][0]
        ids = [r[0] for r in conn.execute(query, {"q": q}).fetchall()]
    return float(plan["Execution Time"]), ids, "filt_idx" in str(plan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--rows", type=int, default=0, help="rows (default: every doc of the set)")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", choices=sorted(SETS), default=None, help="one of bench_geometry.py's four sets")
    args = ap.parse_args()
    if args.set is not None:
        from bench_geometry import datasets

        sets = datasets(args.rows or 28_000, args.queries)
        name = next(n for n in sets if n.startswith(SETS[args.set]))
        docs, queries = sets[name]()
    else:
        docs, queries, name = docstrings()
    if args.rows:
        reps = -(-args.rows // len(docs))
        rng = np.random.default_rng(args.seed)
        docs = np.concatenate([docs + (rng.standard_normal(docs.shape).astype(np.float32) * 0.01 if r else 0)
                               for r in range(reps)])[: args.rows]
    qs = queries[: args.queries]
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        register_vector(conn)
        t = time.perf_counter()
        setup(conn, docs, args.seed)
        print(f"{name}: {len(docs):,} rows x {docs.shape[1]}, {len(qs)} queries; setup {time.perf_counter() - t:.1f} s")
        filters: list[tuple[str, str, float]] = []
        for k, s in SHARES.items():
            filters.append(("jsonb_path_match", f"jsonb_path_match(meta, '$.{k} == true')", s))
        for k, s in SHARES.items():
            filters.append(("->> =", f"meta->>'g{k[1:]}' = 'y'", s))
        for k, s in SHARES.items():
            filters.append(("cat < N", f"cat < {int(s * 1000)}", s))
        rows = run(conn, filters, qs)
        for k in SHARES:
            conn.execute(f"CREATE INDEX ON filt ((meta->>'g{k[1:]}'))")
        conn.execute("ANALYZE filt")
        rows += run(conn, [("->> = (expr index)", f, s) for n, f, s in filters if n == "->> ="], qs)
    print()
    print("| filter | keeps | plan | chosen ms | exact ms | chosen / exact | rows chosen / exact | recall@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def run(conn: psycopg.Connection, filters: list[tuple[str, str, float]], qs: np.ndarray) -> list[list[str]]:
    out = []
    for label, where, share in filters:
        query = f"SELECT id FROM filt WHERE {where} ORDER BY embedding <=> %(q)s LIMIT 10"
        chosen_ms, exact_ms, nrows, erows, rec, used = [], [], 0, 0, [], 0
        for q in qs:
            timed(conn, query, q, False)  # warm
            ms, ids, idx = timed(conn, query, q, False)
            ems, eids, _ = timed(conn, query, q, True)
            chosen_ms.append(ms)
            exact_ms.append(ems)
            nrows += len(ids)
            erows += len(eids)
            rec.append(len(set(ids) & set(eids)) / max(1, len(eids)))
            used += idx
        c, e = statistics.median(chosen_ms), statistics.median(exact_ms)
        plan = "index" if used == len(qs) else "exact" if used == 0 else f"index {used}/{len(qs)}"
        out.append([label, f"{share:.1%}", plan, f"{c:.2f}", f"{e:.2f}", f"{c / e:.2f}x", f"{nrows}/{erows}",
                    f"{np.mean(rec):.3f}"])
        print(" ".join(out[-1]), flush=True)
    return out


if __name__ == "__main__":
    main()
