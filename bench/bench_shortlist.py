"""Shortlist quality of the bit codes (numpy, no server): recall@10 of shortlist-then-exact-rerank
when the shortlist comes from Hamming against the binarised query vs the asymmetric bit_ip score,
at the same storage (1 bit per dimension).

    .venv/bin/python bench/bench_shortlist.py
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shrinkvec import codes  # noqa: E402

from common import RESULTS, docstrings, machine, write_markdown  # noqa: E402

K = 10
SHORTLISTS = [10, 20, 50, 100, 200, 500]


def recall_after_rerank(scores: np.ndarray, exact: np.ndarray, truth: np.ndarray, n: int) -> float:
    """Mean recall@K when the n lowest `scores` are reranked by the exact distances."""
    short = np.argpartition(scores, n - 1, axis=1)[:, :n]
    rerank = np.take_along_axis(exact, short, axis=1)
    top = np.take_along_axis(short, np.argsort(rerank, axis=1)[:, :K], axis=1)
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(top, truth)]))


def main() -> None:
    docs, queries, name = docstrings()
    exact = 1.0 - queries @ docs.T / (np.linalg.norm(queries, axis=1)[:, None] * np.linalg.norm(docs, axis=1)[None, :])
    truth = np.argsort(exact, axis=1)[:, :K]
    bits = np.unpackbits(codes.binarize_batch(docs), axis=1)[:, : docs.shape[1]].astype(np.float32)
    qbits = np.unpackbits(codes.binarize_batch(queries), axis=1)[:, : docs.shape[1]].astype(np.float32)
    signs = 2 * bits - 1
    hamming = qbits @ (1 - bits).T + (1 - qbits) @ bits.T
    bit_ip = -(queries @ signs.T)

    table = Table(title=f"recall@{K} after exact rerank, {len(docs):,} docs ({name}), {len(queries)} queries")
    table.add_column("shortlist")
    table.add_column("hamming(binarize(q))", justify="right")
    table.add_column("bit_ip(q) (asymmetric)", justify="right")
    rows, ham_r, ip_r = [], [], []
    for n in SHORTLISTS:
        h = recall_after_rerank(hamming, exact, truth, n)
        a = recall_after_rerank(bit_ip, exact, truth, n)
        ham_r.append(h)
        ip_r.append(a)
        rows.append([str(n), f"{h:.3f}", f"{a:.3f}"])
        table.add_row(*rows[-1])
    Console().print(table)
    write_markdown(RESULTS / "shortlist.md", f"Shortlist quality of 1-bit codes, {name}",
                   ["shortlist", "hamming(binarize(q))", "bit_ip(q)"], rows, [f"Machine: {machine()}."])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(SHORTLISTS, ham_r, "o-", label="Hamming of binarised query")
    ax.plot(SHORTLISTS, ip_r, "o-", label="asymmetric bit_ip")
    ax.set_xscale("log")
    ax.set_xlabel("shortlist size")
    ax.set_ylabel(f"recall@{K} after rerank")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "shortlist.png", dpi=110)


if __name__ == "__main__":
    main()
