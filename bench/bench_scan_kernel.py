"""The index's scan kernel per code: the nibble-table scan of blocked sign codes (format 2) at every SIMD
level, against the per-byte float table it replaces (`sv_lut_scan`, format 1) and FAISS IndexBinaryFlat's
Hamming scan, one thread, same codes, same run.

    .venv/bin/python bench/bench_scan_kernel.py [--n 131072] [--dims 384 768] [--repeat 7]

Rows:
- "fs_scan": sums of the quantized query over each code's set bits (the integer part of the score);
- "fs_scan + select": the same plus the threshold test of every score against a k-th best (what a page costs
  the index scan before any entry reaches the heap); the threshold keeps ~1% of the codes here;
- "sv_lut_scan (before)": the format-1 scan, float per-byte tables, scalar (the same at every level);
- "FAISS IndexBinaryFlat": a top-10 Hamming search of one query over the n codes (its own layout),
  per code. Hamming is symmetric (the query is bits too): the cheapest peer scan of the same codes.

Two working sets: "memory" scans n codes once (n x dims/8 bytes: 6 MB at 384 dims, larger than L2), so it
includes reading the codes from memory as a scan of cold shared buffers does; "in cache" scans one index
page's worth (128 codes at 384 dims, 64 at 768) 2,000 times from C (bench/scan_repeat.c): the compute cost
per code once the page is in cache. ns/code is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import faiss  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shrinkvec import codes as C  # noqa: E402

from common import BENCH, RESULTS, machine, random_scan_inputs, write_markdown  # noqa: E402
from kernels_build import Kernels  # noqa: E402  (devtools/, on the path by common)

LEVELS = ["avx512", "avx2", "scalar"]


def best_ns(fn, n: int, repeat: int) -> float:
    """Best wall time of fn() over repeat runs, in ns per code."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9


def repeat_lib(kernels_lib: str) -> ctypes.CDLL:
    """Build bench/scan_repeat.c against the standalone kernels library."""
    out = RESULTS / "libscanrepeat.so"
    src = BENCH.parent / "extension" / "src"
    subprocess.run(["gcc", "-O2", "-fPIC", "-shared", f"-I{src}", str(BENCH / "scan_repeat.c"), kernels_lib,
                    f"-Wl,-rpath,{RESULTS}", "-o", str(out)], check=True)
    lib = ctypes.CDLL(str(out))
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    lib.fs_repeat.argtypes = [vp, sz, sz, vp, vp, sz]
    lib.lut_repeat.argtypes = [vp, sz, sz, vp, vp, sz]
    return lib


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32 * 4096)
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    n = args.n - args.n % 32
    kernels = Kernels.load(RESULTS)
    rep = repeat_lib(kernels.lib._name)
    reps = 2000
    rng = np.random.default_rng(0)
    rows: list[list[str]] = []
    plot: dict[int, dict[str, float]] = {}
    for dims in args.dims:
        nbytes = dims // 8
        codes, blocks, w, alpha, sums, idx = random_scan_inputs(rng, n, dims)
        res: dict[str, float] = {}

        index = faiss.IndexBinaryFlat(dims)
        index.add(codes)
        qbits = np.packbits(w > 0)[None, :]
        faiss_ns = best_ns(lambda: index.search(qbits, 10), n, args.repeat)

        kernels.use("scalar")
        before = best_ns(lambda: kernels.lut_scan(codes, w), n, max(2, args.repeat // 2))
        page = 128 if dims <= 384 else 64  # codes of one index page
        lut = np.empty(nbytes * 256, dtype=np.float32)
        kernels.lib.sv_lut_build(w.ctypes.data, dims, nbytes, lut.ctypes.data)
        pcodes = np.ascontiguousarray(codes[:page])
        pblocks = C.fs_blocks(pcodes)
        fout = np.empty(page, dtype=np.float32)
        before_cache = best_ns(lambda: rep.lut_repeat(pcodes.ctypes.data, page, nbytes, lut.ctypes.data,
                                                      fout.ctypes.data, reps), page * reps, args.repeat)
        for level in LEVELS:
            if kernels.use(level) != level:
                continue
            tables, delta, vsum, _ = kernels.fs_tables_ip(w, nbytes)
            assert np.array_equal(kernels.fs_scan(blocks, n // 32, nbytes, tables)[:1000],
                                  C.fs_sums(codes[:1000], C.fs_tables_ip(w, nbytes)[0]))
            scan = best_ns(lambda: kernels.lib.sv_fs_scan(blocks.ctypes.data, n // 32, nbytes, tables.ctypes.data,
                                                          sums.ctypes.data), n, args.repeat)
            soff, c0, c1 = 2 * C.FS_BIAS * nbytes, float(-delta * vsum), float(2 * delta)
            lb = C.fs_bound(sums, soff, alpha, None, 1.0, -1.0, c0, c1)
            tau = float(np.partition(lb, n // 100)[n // 100])

            def scan_select() -> None:
                kernels.lib.sv_fs_scan(blocks.ctypes.data, n // 32, nbytes, tables.ctypes.data, sums.ctypes.data)
                kernels.lib.sv_fs_select(sums.ctypes.data, n, soff, alpha.ctypes.data, None, 1.0, -1.0, c0, c1, tau,
                                         idx.ctypes.data)

            both = best_ns(scan_select, n, args.repeat)
            cache = best_ns(lambda: rep.fs_repeat(pblocks.ctypes.data, page // 32, nbytes, tables.ctypes.data,
                                                  sums.ctypes.data, reps), page * reps, args.repeat)
            res[f"fs_scan ({level})"] = scan
            rows.append([str(dims), f"fs_scan in cache ({level})", f"{cache:.2f}", f"{before_cache / cache:.1f}", ""])
            rows.append([str(dims), f"fs_scan ({level})", f"{scan:.2f}", f"{before / scan:.1f}", f"{faiss_ns / scan:.2f}"])
            rows.append([str(dims), f"fs_scan + select ({level})", f"{both:.2f}", f"{before / both:.1f}",
                         f"{faiss_ns / both:.2f}"])
        kernels.use("avx512")
        rows.append([str(dims), "sv_lut_scan (before, scalar)", f"{before:.2f}", "1.0", f"{faiss_ns / before:.2f}"])
        rows.append([str(dims), "sv_lut_scan in cache (before, scalar)", f"{before_cache:.2f}", "1.0", ""])
        rows.append([str(dims), "FAISS IndexBinaryFlat top-10 (1 thread)", f"{faiss_ns:.2f}", f"{before / faiss_ns:.1f}",
                     "1.00"])
        res["sv_lut_scan (before)"] = before
        res["FAISS IndexBinaryFlat"] = faiss_ns
        plot[dims] = res

    header = ["dims", "kernel", "ns/code", "x before (same working set; higher is faster)", "x FAISS (higher is faster)"]
    table = Table(title=f"index scan kernel, {n:,} codes, one thread")
    for h in header:
        table.add_column(h, justify="left" if h == "kernel" else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=140).print(table)
    write_markdown(RESULTS / "scan_kernel.md", f"Index scan kernel: ns per code, {n:,} codes", header, rows,
                   [f"Machine: {machine()}; faiss {faiss.__version__}; best of {args.repeat} runs; the machine is "
                    "shared, so compare ratios within this run."])
    fig, axes = plt.subplots(1, len(plot), figsize=(5 * len(plot), 3.5), squeeze=False)
    for ax, (dims, res) in zip(axes[0], plot.items()):
        labels = list(res)
        ax.barh(labels[::-1], [res[k] for k in labels][::-1],
                color=["tab:gray" if "before" in k or "FAISS" in k else "tab:orange" for k in labels][::-1])
        ax.set_xscale("log")
        ax.set_xlabel("ns per code (log, lower is better)")
        ax.set_title(f"{dims} dims")
    fig.tight_layout()
    fig.savefig(RESULTS / "scan_kernel.png", dpi=110)
    print(f"wrote {RESULTS / 'scan_kernel.md'} and .png")


if __name__ == "__main__":
    main()
