"""Kernel throughput: our Hamming top-k scan over 1M x 1024-bit codes against FAISS IndexBinaryFlat,
one thread, one query at a time, in the same run, with the memory-bandwidth bound (a plain read of
the same 128 MB) beside them.

    .venv/bin/python bench/bench_kernels.py [--n 1000000] [--bits 1024] [--queries 20]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from common import BENCH, RESULTS, machine, median_ms, ms_bar_plot, write_markdown  # noqa: E402
from kernels_build import Kernels  # noqa: E402  (devtools/, on the path by common)


def read_lib() -> ctypes.CDLL:
    """Build and load bench/read_bandwidth.c (a plain vectorised read)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    lib = RESULTS / "libreadbw.so"
    subprocess.run(["gcc", "-O3", "-march=native", "-fPIC", "-shared", str(BENCH / "read_bandwidth.c"), "-o", str(lib)],
                   check=True)
    dll = ctypes.CDLL(str(lib))
    dll.read_words.restype = ctypes.c_uint64
    dll.read_words.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return dll


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    nbytes = args.bits // 8
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (args.n, nbytes), dtype=np.uint8)
    queries = rng.integers(0, 256, (args.queries, nbytes), dtype=np.uint8)
    mb = codes.nbytes / 1e6

    kernels = Kernels.load(RESULTS)
    index = faiss.IndexBinaryFlat(args.bits)
    index.add(codes)
    reader = read_lib()

    rows: list[tuple[str, float]] = []
    words = codes.view(np.uint64).reshape(-1)
    rows.append(("plain read of the codes (memory bound)",
                 median_ms(lambda: reader.read_words(words.ctypes.data, words.size), 10)))

    def run_faiss() -> None:
        for q in queries:
            index.search(q[None, :], args.k)

    faiss_ms = median_ms(run_faiss, 5) / args.queries
    rows.append(("FAISS IndexBinaryFlat (1 thread)", faiss_ms))

    # the answers must agree before the times mean anything
    _, faiss_ids = index.search(queries[:3], args.k)
    for level in ["avx512", "avx2", "scalar"]:
        if kernels.use(level) != level:
            continue
        for qi in range(3):
            ids, dists = kernels.hamming_topk(codes, queries[qi], args.k)
            fd, _ = index.search(queries[qi][None, :], args.k)
            assert np.array_equal(dists, fd[0]), f"{level}: distances differ from FAISS"

        def run_ours() -> None:
            for q in queries:
                kernels.hamming_topk(codes, q, args.k)

        rows.append((f"shrinkvec sv_hamming_topk ({level})", median_ms(run_ours, 5) / args.queries))
    kernels.use("avx512")

    console = Console()
    table = Table(title=f"Hamming top-{args.k}: {args.n:,} x {args.bits}-bit codes ({mb:.0f} MB), one query, one thread")
    for col in ["scan", "ms/query", "GB/s", "x FAISS"]:
        table.add_column(col, justify="right" if col != "scan" else "left")
    md_rows = []
    for name, ms in rows:
        cells = [name, f"{ms:.2f}", f"{mb / ms:.1f}", f"{faiss_ms / ms:.2f}"]
        table.add_row(*cells)
        md_rows.append(cells)
    console.print(table)
    write_markdown(
        RESULTS / "kernels.md",
        f"Hamming scan kernel: {args.n:,} x {args.bits}-bit codes",
        ["scan", "ms/query", "GB/s", "x FAISS (higher is faster)"],
        md_rows,
        [f"Machine: {machine()}; faiss {faiss.__version__}; median of 5 runs of {args.queries} queries, k={args.k}."],
    )
    ms_bar_plot(RESULTS / "kernels.png", [r[0] for r in rows], [r[1] for r in rows],
                f"Hamming top-{args.k} over {args.n:,} x {args.bits}-bit codes, 1 thread")
    console.print(f"wrote {RESULTS / 'kernels.md'} and {RESULTS / 'kernels.png'}")


if __name__ == "__main__":
    main()
