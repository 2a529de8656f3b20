"""Loading speed and memory of `shrinkvec load` against a bare binary COPY of the vectors alone.

    python bench/bench_load.py [--n 1000000] [--dims 768] [--small 100000] [--dsn DSN]

Generates N x dims float32 in a temp dir (never in the repo), then in the same run and server:
- bare: binary COPY of only the vector column into `vector(dims)`, batches of 10k rows, each its own
  transaction (COPY data built in numpy, the loader's technique: the fastest client we have);
- shrinkvec load: the same file with bits and a 128-d prefix (codes computed in numpy, sent in the same
  COPY, checked by the table's trigger), ids, progress records, reject checks.
Each run is a child process, so its peak RSS (VmHWM) is that run's alone. The loader also runs on a
`--small` file to show memory stays flat in N. Prints a table and writes bench/load.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import machine, write_markdown  # noqa: E402


def make_other_format(npy: Path, fmt: str) -> Path:
    """The same vectors as .parquet (id, embedding) or .jsonl, written in chunks."""
    x = np.load(npy, mmap_mode="r")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = npy.with_suffix(".parquet")
        schema = pa.schema([("id", pa.int64()), ("embedding", pa.list_(pa.float32()))])
        with pq.ParquetWriter(out, schema) as w:
            for s in range(0, len(x), 10_000):
                chunk = np.asarray(x[s:s + 10_000])
                w.write_table(pa.table({"id": pa.array(np.arange(s, s + len(chunk))),
                                        "embedding": pa.array(list(chunk), type=pa.list_(pa.float32()))}, schema=schema))
        return out
    out = npy.with_suffix(".jsonl")
    with open(out, "w") as f:
        for i in range(len(x)):
            f.write(json.dumps({"id": i, "embedding": [round(float(v), 6) for v in x[i]]}) + "\n")
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_file(path: Path, n: int, dims: int, chunk: int = 50_000) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dims))
    rng = np.random.default_rng(0)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        out[s:e] = rng.standard_normal((e - s, dims), dtype=np.float32)
        out.flush()
    del out


def child_bare(dsn: str, path: Path, batch: int) -> dict[str, float]:
    import mmap

    import psycopg

    from shrinkvec.load.copy_rows import COPY_SIGNATURE, COPY_TRAILER

    x = np.load(path, mmap_mode="r")
    n, d = x.shape
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_bare")
        conn.execute(f"CREATE TABLE bench_bare (embedding vector({d}) NOT NULL)")
        t0 = time.perf_counter()
        dtype = np.dtype([("nf", ">i2"), ("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("v", ">f4", (d,))])
        for s in range(0, n, batch):
            chunk = np.asarray(x[s:s + batch], dtype=np.float32)
            rows = np.zeros(len(chunk), dtype=dtype)
            rows["nf"], rows["len"], rows["dim"], rows["v"] = 1, 4 + 4 * d, d, chunk
            with conn.transaction(), conn.cursor().copy("COPY bench_bare (embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.write(COPY_SIGNATURE + rows.tobytes() + COPY_TRAILER)
            x._mmap.madvise(mmap.MADV_DONTNEED)  # type: ignore[attr-defined]
        seconds = time.perf_counter() - t0
        conn.execute("DROP TABLE bench_bare")
    return {"rows": n, "seconds": seconds}


def child_load(dsn: str, path: Path, batch: int, table: str) -> dict[str, float]:
    import psycopg

    from shrinkvec.load.loader import LoadOptions, load

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        if conn.execute("SELECT to_regclass('shrinkvec.profiles')").fetchone()[0]:
            conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (table,))
            conn.execute("DELETE FROM shrinkvec.loads WHERE table_name = %s", (table,))
    t0 = time.perf_counter()
    r = load(dsn, path, LoadOptions(table=table, profile="bits,prefix:128", batch_size=batch,
                                    reject_file=path.with_suffix(".rejects")))
    seconds = time.perf_counter() - t0
    assert r.rejected == 0 and r.loaded > 0, r.summary()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM shrinkvec.profiles WHERE table_name = %s", (table,))
    return {"rows": r.loaded, "seconds": seconds}


def run_child(kind: str, dsn: str, path: Path, batch: int) -> dict[str, float]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:  # each run starts without the previous run's dirty pages
        conn.execute("CHECKPOINT")
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--dsn", dsn, "--file", str(path),
                          "--batch-size", str(batch)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--dsn", default=None)
    ap.add_argument("--stream-n", default="20000,60000",
                    help="sizes at which to measure the loader's peak memory on .parquet and .jsonl ('' to skip)")
    ap.add_argument("--child", choices=["bare", "load"], default=None)
    ap.add_argument("--file", type=Path, default=None)
    args = ap.parse_args()

    if args.child:
        assert args.file is not None and args.dsn is not None
        if args.child == "bare":
            res = child_bare(args.dsn, args.file, args.batch_size)
        else:
            res = child_load(args.dsn, args.file, args.batch_size, "bench_load")
        res["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(res))
        return

    dsn = args.dsn
    if dsn is None:
        from shrinkvec import server

        dsn = server.start(BENCH.parent / ".cache" / "bench-pgdata").dsn()
    from shrinkvec.sql import catalog
    catalog.migrate(dsn)
    results = []
    with tempfile.TemporaryDirectory(prefix="shrinkvec-bench-") as tmp:
        for n in sorted({args.small, args.n}):
            path = Path(tmp) / f"vectors_{n}.npy"
            t = time.perf_counter()
            make_file(path, n, args.dims)
            print(f"generated {n} x {args.dims} float32 in {time.perf_counter() - t:.1f} s", flush=True)
            if n == args.n:
                bare = run_child("bare", dsn, path, args.batch_size)
                results.append(("bare binary COPY, vector only", n, bare))
                print(results[-1], flush=True)
            loaded = run_child("load", dsn, path, args.batch_size)
            results.append(("shrinkvec load, bits + prefix:128", n, loaded))
            print(results[-1], flush=True)
            path.unlink()
        for n in [int(v) for v in args.stream_n.split(",") if v]:
            npy = Path(tmp) / f"stream_{n}.npy"
            make_file(npy, n, args.dims)
            for fmt in ("parquet", "jsonl"):
                path = make_other_format(npy, fmt)
                loaded = run_child("load", dsn, path, args.batch_size)
                results.append((f"shrinkvec load from .{fmt}", n, loaded))
                print(results[-1], flush=True)
                path.unlink()
            npy.unlink()

    bare_rate = next(r["rows"] / r["seconds"] for name, n, r in results if name.startswith("bare"))
    header = ["run", "rows", "seconds", "rows/s", "vs bare COPY", "peak RSS (MB)"]
    rows = [[name, f"{n:,}", f"{r['seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
             f"{r['rows'] / r['seconds'] / bare_rate:.2f}x", f"{r['peak_rss_mb']:.0f}"] for name, n, r in results]
    for row in [header, *rows]:
        print(" | ".join(f"{c:>34}" if i == 0 else f"{c:>13}" for i, c in enumerate(row)))
    write_markdown(
        BENCH / "load.md", f"Loading {args.dims}-d float32 from .npy: shrinkvec load vs bare binary COPY", header, rows,
        [machine(), "",
         f"Same server and run; batches of {args.batch_size} rows, each its own transaction. The loader computes sign "
         "bits and a 128-d prefix in numpy and sends them in the same binary COPY; the table's trigger checks them "
         "(WHEN clause). Peak RSS is the child process's VmHWM (the .npy is memory-mapped and its pages released "
         "after each batch; parquet is read with iter_batches, jsonl line by line)."])


if __name__ == "__main__":
    main()
