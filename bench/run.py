"""`make bench`: run every benchmark; each prints a table and writes bench/results/*.md and *.png.

bench_index.py runs twice: on the docstrings and on BENCH_SYNTHETIC_N synthetic 768-d vectors (default
1,000,000; about half an hour on 2 cores, most of it pgvector's HNSW build). report.py then writes
bench/report.md and bench/report.png from both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_kernels.py",
    "bench_scan_kernel.py",
    "bench_scan_speed.py",
    "bench_filtered.py",
    "bench_sql.py",
    "bench_shortlist.py",
    "bench_load.py",
    "bench_insert.py",
    "bench_build.py",
    "bench_twostage_recall.py",
    "tune_check.py",
    "bench_index.py",
    "bench_transforms.py",
    "bench_maxsim.py",
]


def main() -> None:
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(BENCH / script), *sys.argv[1:]], cwd=BENCH, check=True)
    n = os.environ.get("BENCH_SYNTHETIC_N", "1000000")
    print(f"== bench_index.py --synthetic {n}", flush=True)
    subprocess.run([sys.executable, str(BENCH / "bench_index.py"), "--synthetic", n, "--queries", "100",
                    *sys.argv[1:]], cwd=BENCH, check=True)
    subprocess.run([sys.executable, str(BENCH / "report.py"), *sys.argv[1:]], cwd=BENCH, check=True)


if __name__ == "__main__":
    main()
