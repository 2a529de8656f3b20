"""Shared helpers of the benchmarks: data, timing, output."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from shrinkvec import codes as C

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "devtools"))  # kernels_build: the extension's kernels via ctypes
RESULTS = BENCH / "results"
SHARED = BENCH.parent.parent / "shared" / "data" / "docstrings"


def docstrings() -> tuple[np.ndarray, np.ndarray, str]:
    """(docs, queries, name): ../shared/data/docstrings when present, else the shipped demo data."""
    if (SHARED / "docs.f16.npy").exists():
        return (np.load(SHARED / "docs.f16.npy").astype(np.float32),
                np.load(SHARED / "queries.f16.npy").astype(np.float32), "shared docstrings")
    from shrinkvec import demo

    d = demo.load_data()
    return d.docs, d.queries, "demo docstrings"


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def machine() -> str:
    """One line naming the machine, for reports."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    return f"{date.today()}, {cpu}, {cores} cores, Python {platform.python_version()}"


def write_markdown(path: Path, title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
    """A markdown table with a title and notes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"## {title}", "", *notes, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def ms_bar_plot(path: Path, labels: list[str], ms: list[float], title: str) -> None:
    """Horizontal bars of ms per query, shrinkvec's rows in orange, peers in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    colors = ["tab:orange" if label.startswith("shrinkvec") else "tab:gray" for label in labels[::-1]]
    ax.barh(labels[::-1], ms[::-1], color=colors)
    ax.set_xlabel("ms per query (lower is better)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def random_scan_inputs(rng: np.random.Generator, n: int, dims: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n random codes of dims bits, their blocked layout, a query's weights, the codes' alphas and the
    kernels' output arrays (sums, selected indices)."""
    codes = rng.integers(0, 256, (n, dims // 8), dtype=np.uint8)
    return (codes, C.fs_blocks(codes), rng.standard_normal(dims).astype(np.float32),
            rng.random(n).astype(np.float32), np.empty(n, dtype=np.uint32), np.empty(n, dtype=np.uint32))
