"""`make bench`: run every benchmark; each prints a table and writes bench/results/*.md and *.png."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["bench_kernels.py", "bench_sql.py", "bench_shortlist.py", "bench_load.py", "bench_twostage_recall.py",
           "bench_index.py", "bench_transforms.py"]


def main() -> None:
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(BENCH / script), *sys.argv[1:]], cwd=BENCH, check=True)


if __name__ == "__main__":
    main()
