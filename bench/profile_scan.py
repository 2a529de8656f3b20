"""Where a shrinkvec index scan's time goes (issue 29's "a profile first"): `perf record` on the backend that
runs a loop of `ORDER BY v <=> q LIMIT k` queries, its samples grouped by symbol into buffer access, the SIMD
kernel, the scan's own bookkeeping, heap fetches, TOAST, exact distances and the executor.

    .venv/bin/python bench/profile_scan.py --dsn "$DSN" --set big --options "" [--gucs shrinkvec.probes=10]

Needs `perf` (linux-tools) and the right to attach to the server's processes (root, or
kernel.perf_event_paranoid <= 1 for the server's user). The data sets are bench_peers.py's (`--set docs`, `pca`,
`wordllama`, `synthetic` at 28,000 rows; `big`: the clustered 250k x 768 set); a table of as many rows is reused.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

import bench_geometry
import bench_peers

TABLE = bench_peers.TABLE  # bench_peers.load_table fills it: a table bench_peers left is reused
# symbol patterns, first match wins: what each share of the samples is spent on
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("SIMD kernel (codes)", re.compile(r"^(fs_scan|fs_select|sv_lut_|lut_|xor_popcount|hamming_)")),
    ("exact distance", re.compile(r"^(cosine_distance|l2_distance|vector_|halfvec_|dot_|inner_product|"
                                  r"vector_negative_inner_product|sv_refine_dot|FunctionCall2Coll)")),
    ("TOAST", re.compile(r"^(_bt_|toast_|detoast|heap_fetch_toast|pglz|index_getnext|btgettuple|"
                         r"table_index_fetch|systable_)")),
    ("heap fetch", re.compile(r"^(heap_|heapam_|HeapTuple|ExecStoreBufferHeapTuple|table_tuple_fetch|"
                              r"XidInMVCCSnapshot|TransactionIdIsCurrent)")),
    ("buffer access", re.compile(r"^(hash_search|hash_bytes|PinBuffer|UnpinBuffer|LWLock|ReadBuffer|StartReadBuffer|"
                                 r"BufTableLookup|ReleaseBuffer|LockBuffer|BufferGetBlockNumber|ResourceOwner|"
                                 r"GetPrivateRefCount|ReadBuffer_common|PinBuffer_Locked|WaitReadBuffers)")),
    ("scan bookkeeping", re.compile(r"^(sv_|pg_qsort|qsort)")),
    ("memory and copies", re.compile(r"^(__mem|Alloc|palloc|pfree|MemoryContext)")),
]


def classify(symbol: str) -> str:
    for name, pattern in CATEGORIES:
        if pattern.search(symbol):
            return name
    return "executor, protocol and other"


def load(conn: psycopg.Connection, which: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The set's vectors and queries; (re)creates TABLE unless it already holds that many rows."""
    if which == "big":
        x, q = bench_peers.big_clustered(rows or 250_000, 100)
    else:
        label = bench_peers.GEOMETRY_SETS[which]
        x, q = bench_geometry.datasets(rows or 28_000, 200)[label]()
    have = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE))).fetchone() \
        if have and have[0] else None
    if not count or count[0] != len(x):
        bench_peers.load_table(conn, x)  # also reads every vector once, into shared_buffers
    else:
        conn.execute(sql.SQL("SELECT sum(vector_dims(embedding)) FROM {}").format(sql.Identifier(TABLE))).fetchone()
    return x, q


def query_loop(conn: psycopg.Connection, q: np.ndarray, k: int, stop: threading.Event, out: list[float]) -> None:
    stmt = sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT %s").format(sql.Identifier(TABLE))
    n, t = 0, time.perf_counter()
    while not stop.is_set():
        conn.execute(stmt, (q[n % len(q)], k), prepare=True).fetchall()
        n += 1
    out.append((time.perf_counter() - t) * 1000 / max(n, 1))


def profile(dsn: str, which: str, rows: int, options: str, gucs: dict[str, str], k: int, seconds: float) -> None:
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("perf is not installed (linux-tools): nothing to profile with")
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec")
        _, q = load(conn, which, rows)
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(TABLE + "_idx")))
        conn.execute(sql.SQL("CREATE INDEX {} ON {} USING shrinkvec (embedding vector_cosine_ops){}").format(
            sql.Identifier(TABLE + "_idx"), sql.Identifier(TABLE),
            bench_peers.with_clause(bench_peers.parse_options(options))))
        for name, value in gucs.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        conn.execute("SET enable_seqscan = off")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        for v in q[:20]:  # warm: index pages and rows in shared buffers
            conn.execute(sql.SQL("SELECT id FROM {} ORDER BY embedding <=> %s LIMIT %s").format(
                sql.Identifier(TABLE)), (v, k)).fetchall()
        stop, ms = threading.Event(), list[float]()
        loop = threading.Thread(target=query_loop, args=(conn, q, k, stop, ms))
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "perf.data"
            loop.start()
            subprocess.run([perf, "record", "-q", "-p", str(pid[0]), "-o", str(data), "--", "sleep", str(seconds)],
                           check=True, capture_output=True)
            stop.set()
            loop.join()
            report = subprocess.run([perf, "report", "-i", str(data), "--no-children", "--stdio", "--sort", "symbol"],
                                    check=True, capture_output=True, text=True).stdout
    shares: dict[str, float] = defaultdict(float)
    tops: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for line in report.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+\[([.k])\]\s+(\S+)", line)
        if m:
            share, symbol = float(m.group(1)), m.group(3)
            cat = "OS kernel (syscalls, scheduling)" if m.group(2) == "k" else classify(symbol)
            shares[cat] += share
            tops[cat].append((share, symbol))
    print(f"{which}, WITH ({options or 'defaults'}), {gucs or 'default GUCs'}, LIMIT {k}: "
          f"{ms[0]:.3f} ms/query over {seconds:g} s\n")
    print("| where | share of samples | ms/query | top symbols |\n|---|---|---|---|")
    for cat, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        top = ", ".join(f"{s} {p:.1f}%" for p, s in sorted(tops[cat], reverse=True)[:3])
        print(f"| {cat} | {share:.1f}% | {ms[0] * share / 100:.3f} | {top} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--set", default="docs", choices=[*bench_peers.GEOMETRY_SETS, "big"])
    ap.add_argument("--rows", type=int, default=0, help="rows of the set (default: 28,000, or 250,000 for big)")
    ap.add_argument("--options", default="", help="the index's WITH options, e.g. 'lists = 1, refine = 4'")
    ap.add_argument("--gucs", default="", help="comma-separated name=value, e.g. shrinkvec.shortlist=50")
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    gucs = dict(kv.split("=", 1) for kv in a.gucs.split(",") if kv)
    profile(a.dsn, a.set, a.rows, a.options, gucs, a.limit, a.seconds)


if __name__ == "__main__":
    main()
