"""The done-when check of `shrinkvec tune`: is the recall it promises kept on queries it never saw?

    .venv/bin/python bench/tune_check.py [--targets 0.95 0.99] [--dsn DSN]

Loads the docstrings (bench/common.py: ../shared/data/docstrings, else the demo data) with `shrinkvec load`
(codes bits, prefix:128, int8), splits the queries once (seed 2026) into a tune half and a check half,
runs `shrinkvec tune --json` on the tune half for each target (tune splits that half again into selection
and held-out), then `shrinkvec eval --configs <chosen>` on the check half. Writes bench/tune_check.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import docstrings, machine, write_markdown  # noqa: E402

TABLE = "bench_tune"


def sv(*args: str, cwd: Path) -> str:
    res = subprocess.run([sys.executable, "-m", "shrinkvec.cli", *args], capture_output=True, text=True, cwd=cwd)
    if res.returncode not in (0, 2):
        raise SystemExit(f"shrinkvec {args[0]} failed: {res.stderr.strip()}")
    return res.stdout


def main() -> None:
    import psycopg

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--targets", type=float, nargs="+", default=[0.95, 0.99])
    ap.add_argument("--dsn", default=None)
    args, _ = ap.parse_known_args()
    dsn = args.dsn
    if dsn is None:
        from shrinkvec import server

        dsn = server.start(BENCH.parent / ".cache" / "bench-pgdata").dsn()
    docs, queries, name = docstrings()
    perm = np.random.default_rng(2026).permutation(len(queries))
    half = len(queries) // 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        np.save(d / "docs.npy", docs)
        np.save(d / "tune.npy", queries[np.sort(perm[:half])])
        np.save(d / "check.npy", queries[np.sort(perm[half:])])
        with psycopg.connect(dsn, autocommit=True) as conn:
            sv("migrate", "--dsn", dsn, cwd=d)
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (TABLE,))
            conn.execute("DELETE FROM shrinkvec.loads WHERE table_name = %s", (TABLE,))
        print(sv("load", "docs.npy", "--table", TABLE, "--profile", "bits,prefix:128,int8", "--quiet", "--dsn", dsn,
                 cwd=d).strip())
        for target in args.targets:
            t = json.loads(sv("tune", "--table", TABLE, "--queries", "tune.npy", "--target-recall", str(target),
                              "--json", "--quiet", "--dsn", dsn, cwd=d))
            e = json.loads(sv("eval", "--table", TABLE, "--queries", "check.npy", "--configs", t["config"],
                              "--no-plot", "--json", "--quiet", "--dsn", dsn, cwd=d))["results"][0]
            ok = e["recall"] >= target - 0.01
            print(f"target {target}: {t['config']} (met on selection: {t['met']}), selection {t['selection_recall']:.3f}, "
                  f"held-out {t['recall']:.3f}, check half {e['recall']:.3f} -> {'ok' if ok else 'MISSED'}", flush=True)
            rows.append([str(target), f"`{t['config']}`", f"{t['bytes_per_row']:.0f}",
                         f"{t['selection_recall']:.3f} ({t['queries']['selection']})",
                         f"{t['recall']:.3f} ({t['queries']['held_out']})", f"{e['recall']:.3f} ({e['queries']})",
                         f"{e['ms_p50']:.2f}", "yes" if ok else "no"])
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {TABLE}")
            conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (TABLE,))
    write_markdown(BENCH / "tune_check.md", f"shrinkvec tune, checked on unseen queries ({name})",
                   ["target recall@10", "chosen", "bytes/row", "selection recall (queries)", "held-out recall (queries)",
                    "check-half recall (queries)", "check p50 ms", "within 0.01 or above"], rows,
                   [machine(), "", f"{len(docs):,} documents; {len(queries)} queries split with seed 2026 into a tune half "
                    "(split again by tune into selection and held-out) and a check half that tune never sees."])
    print(f"wrote {BENCH / 'tune_check.md'}")


if __name__ == "__main__":
    main()
