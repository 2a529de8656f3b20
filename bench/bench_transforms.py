"""Transforms (raw truncation, center, PCA, Matryoshka-Adaptor) on the docstring embeddings.

    python bench/bench_transforms.py [--dsn DSN] [--sql-queries 200] [--steps 1500]

One table with codes prefix:32, prefix:64, prefix:128, bits:64, bits:128, bits (384) is loaded with
`shrinkvec load`, then `shrinkvec adapt` (the Python API) switches it to each transform in turn:
center (mean), pca, adaptor (unsupervised), adaptor with labels (natural query/doc pairs). After each
switch the stored transform is read back from the catalog and measured:

- recall@10 of the two-stage query: shortlist 100 by the code (prefix: cosine on the transformed prefix;
  bits: asymmetric score of the transformed query against the sign bits), rerank by the exact cosine
  of the raw vectors; truth = exact cosine top-10 of the raw vectors. In numpy over all queries, and
  through SQL (the generated two-stage query, server-side transform) over the first --sql-queries;
- nDCG@10 of the code alone (no rerank) against the full vector: relevance 1 for each of the raw
  full-vector top-10, ideal DCG over 10 positions;
- nDCG@10 of the code alone against natural qrels: a query is the first paragraph of a docstring, its
  relevant documents are the paragraphs of the same docstring (docs.jsonl.gz `source`).

The labelled pairs for the supervised adaptor come from docstrings that no evaluation query comes from:
(first paragraph, another paragraph of the same docstring), as a qrels file of table ids.
Prints the tables and writes bench/results/transforms.md and transforms.png.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import RESULTS, SHARED, docstrings, machine  # noqa: E402

K = 10
SHORTLIST = 100
CODES = [("prefix", 32), ("prefix", 64), ("prefix", 128), ("bits", 64), ("bits", 128), ("bits", 384)]
TABLE = "bench_transforms"


def label(kind: str, n: int) -> str:
    return f"{kind} {n}"


def normalize(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def code_scores(kind: str, n: int, tx: np.ndarray, tq: np.ndarray) -> np.ndarray:
    """(queries, docs) similarity of each query to each doc's code (higher is nearer)."""
    if kind == "prefix":
        return normalize(tq[:, :n]) @ normalize(tx[:, :n]).T
    signs = np.where(tx[:, :n] > 0, 1.0, -1.0).astype(np.float32)
    return tq[:, :n] @ signs.T


def topk(scores: np.ndarray, k: int) -> np.ndarray:
    idx = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1)
    return np.take_along_axis(idx, order, axis=1)


def ndcg(ranked: np.ndarray, relevant: list[set[int]]) -> float:
    disc = 1.0 / np.log2(np.arange(2, K + 2))
    out = []
    for row, rel in zip(ranked, relevant):
        if not rel:
            continue
        dcg = sum(disc[i] for i, d in enumerate(row[:K]) if int(d) in rel)
        out.append(dcg / disc[: min(len(rel), K)].sum())
    return float(np.mean(out))


def natural_pairs(n_docs: int) -> tuple[list[set[int]], list[tuple[int, int]]]:
    """(relevant doc ids of each query by source, training pairs from sources no query comes from)."""
    with gzip.open(SHARED / "docs.jsonl.gz", "rt") as f:
        doc_src = [json.loads(line)["source"] for line in f]
    with gzip.open(SHARED / "queries.jsonl.gz", "rt") as f:
        q_src = [json.loads(line)["source"] for line in f]
    assert len(doc_src) == n_docs
    by_src: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(doc_src):
        by_src[s].append(i)
    relevant = [set(by_src.get(s, [])) for s in q_src]
    held = set(q_src)
    pairs = [(ids[0], d) for s, ids in sorted(by_src.items()) if s not in held and len(ids) > 1 for d in ids[1:4]]
    return relevant, pairs


def main() -> None:
    import psycopg

    from shrinkvec.load.loader import LoadOptions, load
    from shrinkvec.sql import catalog, query
    from shrinkvec.transforms.adapt import AdaptOptions, Hooks, adapt
    from shrinkvec.transforms.adaptor import AdaptorConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--sql-queries", type=int, default=200)
    ap.add_argument("--steps", type=int, default=AdaptorConfig().steps)
    args = ap.parse_args()
    dsn = args.dsn
    if dsn is None:
        from shrinkvec import server

        dsn = server.start(BENCH.parent / ".cache" / "bench-pgdata").dsn()
    docs, queries, name = docstrings()
    have_texts = (SHARED / "docs.jsonl.gz").exists() and len(docs) > 5000
    relevant, pairs = natural_pairs(len(docs)) if have_texts else ([], [])

    full = normalize(queries) @ normalize(docs).T
    truth = topk(full, K)
    truth_sets = [set(r.tolist()) for r in truth]

    catalog.migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (TABLE,))
        conn.execute("DELETE FROM shrinkvec.loads WHERE table_name = %s", (TABLE,))
        conn.execute("DELETE FROM shrinkvec.transforms WHERE source = %s", (f"public.{TABLE}.embedding",))
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "docs.npy", docs)
    spec = ",".join(f"{k}:{n}" if not (k == "bits" and n == docs.shape[1]) else "bits" for k, n in CODES)
    print(load(dsn, tmp / "docs.npy", LoadOptions(table=TABLE, profile=spec, reject_file=tmp / "r")).summary())
    if pairs:
        (tmp / "qrels.tsv").write_text("".join(f"{q} {d} 1\n" for q, d in pairs))

    cfg = replace(AdaptorConfig(), steps=args.steps)
    methods: list[tuple[str, dict[str, object]]] = [("raw truncation", {}), ("center", {"method": "center"}),
                                                    ("pca", {"method": "pca"}), ("adaptor", {"method": "adaptor"})]
    if pairs:
        methods.append(("adaptor + labels", {"method": "adaptor", "labels": tmp / "qrels.tsv"}))
    results: dict[str, dict[str, dict[str, float]]] = {}
    notes: dict[str, str] = {}
    nq_sql = min(args.sql_queries, len(queries))
    for mname, kw in methods:
        t0 = time.perf_counter()
        if kw:
            # vacuum full: measure the steady state (without it, every row still carries the previous codes)
            r = adapt(dsn, AdaptOptions(table=TABLE, adaptor=cfg, vacuum="full", **kw),  # type: ignore[arg-type]
                      Hooks(stage=lambda m: print("  ", m, flush=True),
                            train=lambda s, n, v: print(f"   step {s}/{n} held-out loss {v:.4f}", flush=True)))
            notes[mname] = f"adapt {time.perf_counter() - t0:.0f} s ({r.fit.get('steps', '-')} steps)" \
                if mname.startswith("adaptor") else f"adapt {time.perf_counter() - t0:.0f} s"
        with psycopg.connect(dsn, autocommit=True) as conn:
            p = catalog.find_profile(conn, TABLE)
            assert p is not None
            t = p.transform_data
            tx = docs if t is None else t.apply_fast(docs)
            tq = queries if t is None else t.apply_fast(queries)
            row: dict[str, dict[str, float]] = {}
            for kind, n in CODES:
                sc = code_scores(kind, n, tx, tq)
                short = topk(sc, SHORTLIST)
                rer = np.take_along_axis(short, np.argsort(-np.take_along_axis(full, short, 1), 1)[:, :K], 1)
                recall = float(np.mean([len(set(a.tolist()) & b) / K for a, b in zip(rer, truth_sets)]))
                alone = topk(sc, K)
                cell = {"recall": recall, "ndcg_full": ndcg(alone, truth_sets)}
                if relevant:
                    cell["ndcg_qrels"] = ndcg(alone, relevant)
                st = query.stages_for(p, [f"{kind}:{n}"], [SHORTLIST])
                ts = time.perf_counter()
                res = query.search(conn, p, st, queries[:nq_sql], K)
                cell["sql_ms"] = (time.perf_counter() - ts) * 1000 / nq_sql
                cell["sql_recall"] = float(np.mean([len(set(ids) & b) / K for (ids, _), b in zip(res, truth_sets)]))
                cell["np_recall_subset"] = float(np.mean([len(set(a.tolist()) & b) / K
                                                          for a, b in zip(rer[:nq_sql], truth_sets)]))
                row[label(kind, n)] = cell
            results[mname] = row
        print(mname, " | ".join(f"{c} r={v['recall']:.3f} n={v['ndcg_full']:.3f} sql={v['sql_recall']:.3f}"
                                 for c, v in row.items()), flush=True)
    full_qrels = ndcg(topk(full, K), relevant) if relevant else None

    cols = [label(k, n) for k, n in CODES]

    def table(metric: str, title: str) -> list[str]:
        lines = [f"### {title}", "", "| transform | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for m, row in results.items():
            lines.append(f"| {m} | " + " | ".join(f"{row[c][metric]:.3f}" for c in cols) + " |")
        return lines + [""]

    out = [f"## Transforms ({name}: {len(docs):,} x {docs.shape[1]}-d, {len(queries)} queries)", "", machine(), ""]
    out += table("recall", f"recall@{K} of the two-stage query (shortlist {SHORTLIST} by the code, exact rerank), "
                           "numpy, all queries")
    out += table("sql_recall", f"the same through SQL (generated two-stage query, server-side transform), first {nq_sql} queries")
    out += table("np_recall_subset", f"numpy on the same first {nq_sql} queries (should equal the SQL table)")
    out += table("ndcg_full", f"nDCG@{K} of the code alone against the full vector (relevant = full-vector top-{K})")
    if relevant:
        out += table("ndcg_qrels", f"nDCG@{K} of the code alone against natural qrels (same docstring); "
                                   f"the full vector scores {full_qrels:.3f}")
    out += table("sql_ms", "SQL ms per two-stage query (sequential scan, shortlist 100)")
    out += ["Fitting: " + "; ".join(f"{m}: {v}" for m, v in notes.items()) + ".",
            f"Labelled pairs for the supervised adaptor: {len(pairs):,} (query, doc) pairs from docstrings no "
            "evaluation query comes from." if pairs else ""]
    text = "\n".join(out) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transforms.md").write_text(text)
    try:
        plot(results, RESULTS / "transforms.png", name)
    except ImportError:
        print("matplotlib not installed: no plot")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (TABLE,))
        conn.execute("DELETE FROM shrinkvec.loads WHERE table_name = %s", (TABLE,))
        conn.execute("DELETE FROM shrinkvec.transforms WHERE source = %s", (f"public.{TABLE}.embedding",))


def plot(results: dict[str, dict[str, dict[str, float]]], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [label(k, n) for k, n in CODES]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(results)
    for ax, metric, title in [(axes[0], "recall", f"recall@{K}, two-stage (shortlist {SHORTLIST})"),
                              (axes[1], "ndcg_full", f"nDCG@{K} of the code alone vs full")]:
        for i, (m, row) in enumerate(results.items()):
            ax.bar(np.arange(len(cols)) + i * width, [row[c][metric] for c in cols], width, label=m)
        ax.set_xticks(np.arange(len(cols)) + width * (len(results) - 1) / 2, cols, rotation=30)
        ax.set_ylim(0, 1)
        ax.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle(f"Transforms on {name}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
