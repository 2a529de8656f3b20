"""Late interaction (issue 19): recall and speed of the two-stage MaxSim search, and bytes per document.

    python bench/bench_maxsim.py [--tokens DOCS.npz] [--query-tokens QUERIES.npz] [--queries 50] [--dsn DSN]

Loads the documents' token embeddings (an .npz of `embeddings` (T, 384), `offsets`, `ids`; default the
shipped pytools/shrinkvec/demo_data/tokens_docs.npz, 160 documents; devtools/make_token_data.py makes
the few thousand of the docstring set, see bench/README.md) with `shrinkvec load` into a table with a
multibit code, adds a bit(384)[] column of the same sign bits (the alternative storage), then measures:

- recall@10 of the two-stage query (shortlist 20, 50, 100, 200 by maxsim(q, multibit), rerank by the
  exact maxsim(q, tokens)) against exact float MaxSim over all documents computed in numpy;
- ms/query of the two-stage query and of the exact float MaxSim query over the same table, same run;
- ms/query of the shortlist alone scored from multibit and from bit[];
- bytes per document of vector[] (float32 tokens), multibit and bit[] (pg_column_size, averaged).

Prints the table and writes bench/results/maxsim.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import RESULTS, machine, median_ms, write_markdown  # noqa: E402

DEMO = BENCH.parent / "pytools" / "shrinkvec" / "demo_data"
SHORTLISTS = [20, 50, 100, 200]
K = 10
TABLE = "bench_maxsim"


def read_docs(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The documents of a token .npz, as float32 (tokens, dims) arrays, and their ids."""
    z = np.load(path)
    off = z["offsets"]
    emb = z["embeddings"].astype(np.float32)
    ids = z["ids"] if "ids" in z.files else np.arange(len(off) - 1)
    return [emb[a:b] for a, b in zip(off[:-1], off[1:])], ids


def main() -> None:
    import psycopg

    from shrinkvec import codes
    from shrinkvec.load.loader import LoadOptions, load
    from shrinkvec.sql import catalog, query

    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=Path, default=DEMO / "tokens_docs.npz", help="documents' token .npz")
    ap.add_argument("--query-tokens", type=Path, default=DEMO / "tokens_queries.npz", help="queries' token .npz")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the queries (median)")
    ap.add_argument("--dsn", default=None)
    args = ap.parse_args()
    dsn = args.dsn
    if dsn is None:
        from shrinkvec import server

        dsn = server.start(BENCH.parent / ".cache" / "bench-pgdata").dsn()
    docs, ids = read_docs(args.tokens)
    qs = read_docs(args.query_tokens)[0][: args.queries]
    dims = docs[0].shape[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        catalog.migrate(dsn)
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (TABLE,))
        conn.execute("DELETE FROM shrinkvec.loads WHERE table_name = %s", (TABLE,))
    with tempfile.TemporaryDirectory() as tmp:
        r = load(dsn, args.tokens, LoadOptions(table=TABLE, reject_file=Path(tmp) / "r", batch_size=500))
    print(r.summary(), flush=True)

    # exact float MaxSim over every document, in numpy (float64)
    truth = []
    for q in qs:
        s = np.array([codes.maxsim(q, d) for d in docs])
        truth.append(set(ids[np.argsort(-s, kind="stable")[:K]].tolist()))

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN bits bit({dims})[]")
        conn.execute(f"UPDATE {TABLE} SET bits = ARRAY(SELECT binarize(t) FROM unnest(embedding) AS t)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")
        sizes = conn.execute(f"SELECT avg(pg_column_size(embedding)), avg(pg_column_size(multibit)), "
                             f"avg(pg_column_size(bits)), avg(multibit_tokens(multibit)), count(*) FROM {TABLE}").fetchone()
        assert sizes is not None
        vec_b, mb_b, bit_b, tokens, n = (float(x) for x in sizes)
        p = catalog.find_profile(conn, TABLE)
        assert p is not None

        def run(pl: query.Plan) -> list[tuple[list[int], list[float]]]:
            return query.search(conn, p, pl, qs)

        rows: list[list[str]] = []
        exact_plan = query.plan(p, "exact", k=K)
        exact_ms = median_ms(lambda: run(exact_plan), args.repeat, warmup=1) / len(qs)
        exact_res = run(exact_plan)
        exact_recall = float(np.mean([len(set(i) & t) / K for (i, _), t in zip(exact_res, truth)]))
        for sl in SHORTLISTS:
            pl = query.plan(p, k=K, shortlists=[sl])
            ms = median_ms(lambda: run(pl), args.repeat, warmup=1) / len(qs)
            res = run(pl)
            recall = float(np.mean([len(set(i) & t) / K for (i, _), t in zip(res, truth)]))
            rows.append([f"two-stage, shortlist {sl}", f"{recall:.3f}", f"{ms:.2f}", f"{exact_ms / ms:.1f}x"])
            print(rows[-1], flush=True)
        rows.append(["exact float MaxSim (all documents)", f"{exact_recall:.3f}", f"{exact_ms:.2f}", "1.0x"])
        print(rows[-1], flush=True)

        # the shortlist alone (top 100), scored from multibit and from bit[]
        shortlist_ms = {}
        for col in ("multibit", "bits"):
            stmt = f"SELECT id FROM {TABLE} ORDER BY -maxsim(%s::vector[], {col}) LIMIT 100"
            query.register_tokens(conn, p)
            lits = [query.TokenArray(q) for q in qs]

            def scan(stmt: str = stmt, lits: list[query.TokenArray] = lits) -> None:
                for lit in lits:
                    conn.execute(stmt, (lit,), prepare=True).fetchall()

            shortlist_ms[col] = median_ms(scan, args.repeat, warmup=1) / len(qs)
    raw = tokens * dims * 4
    header = ["search", "recall@10", "ms/query", "speed-up vs exact"]
    notes = [
        f"{int(n)} documents ({args.tokens.name}), {tokens:.1f} tokens of {dims} dims on average, {len(qs)} queries "
        f"({args.query_tokens.name}); recall against exact float MaxSim in numpy; {machine()}.",
        f"Bytes per document (pg_column_size, average): vector[] {vec_b:,.0f} (float32 tokens {raw:,.0f} + headers); "
        f"multibit {mb_b:,.0f} ({vec_b / mb_b:.1f}x smaller than vector[]); bit({dims})[] {bit_b:,.0f} "
        f"({bit_b / mb_b:.2f}x multibit).",
        f"Shortlist of 100 alone (ORDER BY -maxsim(q, code) LIMIT 100), ms/query: multibit {shortlist_ms['multibit']:.2f}, "
        f"bit[] {shortlist_ms['bits']:.2f}.",
    ]
    for line in notes:
        print(line)
    write_markdown(RESULTS / "maxsim.md", "Late interaction: two-stage MaxSim", header, rows, notes)


if __name__ == "__main__":
    main()
