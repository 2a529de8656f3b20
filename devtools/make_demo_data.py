"""Make the demo dataset shipped in this folder from ../shared/data/docstrings (not run by users).

    python devtools/make_demo_data.py ../shared/data/docstrings

Takes 200 of the 1,000 queries (seeded), every document from the same docstring as one of them (its
relevant documents), and random other documents up to 4,000 in all. Embeddings stay float16
(all-MiniLM-L6-v2, 384-d, L2-normalised); documents are renumbered 0..3999 and keep their
original id as `orig_id`.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

N_DOCS = 4000
N_QUERIES = 200
SEED = 20261122


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def main(src: Path, out: Path) -> None:
    docs = read_jsonl(src / "docs.jsonl.gz")
    queries = read_jsonl(src / "queries.jsonl.gz")
    d_emb = np.load(src / "docs.f16.npy")
    q_emb = np.load(src / "queries.f16.npy")
    rng = np.random.default_rng(SEED)

    q_idx = np.sort(rng.choice(len(queries), N_QUERIES, replace=False))
    sources = {queries[i]["source"] for i in q_idx}
    relevant = [i for i, d in enumerate(docs) if d["source"] in sources]
    rest = np.setdiff1d(np.arange(len(docs)), relevant)
    fill = rng.choice(rest, N_DOCS - len(relevant), replace=False)
    d_idx = np.sort(np.concatenate([np.asarray(relevant), fill]))

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "docs.f16.npy", d_emb[d_idx])
    np.save(out / "queries.f16.npy", q_emb[q_idx])
    with gzip.GzipFile(out / "docs.jsonl.gz", "wb", mtime=0) as f:
        for new_id, i in enumerate(d_idx):
            row = {"id": new_id, "orig_id": int(i), "source": docs[i]["source"], "text": docs[i]["text"]}
            f.write((json.dumps(row) + "\n").encode())
    with gzip.GzipFile(out / "queries.jsonl.gz", "wb", mtime=0) as f:
        for new_id, i in enumerate(q_idx):
            row = {"id": new_id, "orig_id": int(i), "source": queries[i]["source"], "text": queries[i]["text"]}
            f.write((json.dumps(row) + "\n").encode())
    print(f"{len(d_idx)} documents ({len(relevant)} relevant to the queries), {len(q_idx)} queries -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2
         else Path(__file__).resolve().parents[1] / "pytools" / "shrinkvec" / "demo_data")
