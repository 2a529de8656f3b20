"""The loader under kill -9 at random points, over many runs.

One input file mixes valid rows with every kind of invalid one (not JSON, wrong dimensions, NaN,
missing id, missing embedding, a repeated id). `shrinkvec load` is started again and again and
SIGKILLed at a random point: right after start (imports, migrate, creating the table and its
profile) or when its committed progress crosses a random record count. A final run finishes. Then:

- every valid row is in the table exactly once, with the codes the numpy reference gives;
- the reject file lists every invalid row exactly once, with its reason;
- the load's progress row accounts for every row.

SHRINKVEC_LOAD_KILLS=N sets the number of kills (default 8).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from shrinkvec import catalog, codes

SV = [sys.executable, "-m", "shrinkvec.cli"]
KILLS = int(os.environ.get("SHRINKVEC_LOAD_KILLS", "8"))
N, D = 3000, 32


def make_input(path: Path, rng: random.Random) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """Write the file; return the valid rows (id -> vector) and the invalid ones (position -> reason kind)."""
    x = np.random.default_rng(7).standard_normal((N, D)).astype(np.float32)
    valid: dict[int, np.ndarray] = {}
    invalid: dict[int, str] = {}
    lines = []
    for i in range(N):
        kind = rng.choice(["ok"] * 14 + ["json", "dims", "nan", "noid", "novec", "dup"])
        if kind == "dup" and i > 0:
            lines.append(json.dumps({"id": i - 1, "embedding": x[i].tolist()}))  # repeats the previous line's id
            invalid[i] = "duplicate id"
            continue
        if kind in ("ok", "dup"):
            lines.append(json.dumps({"id": i, "embedding": x[i].tolist()}))
            valid[i] = x[i]
        elif kind == "json":
            lines.append('{"id": ' + str(i) + ', "embedding": [1, 2')
            invalid[i] = "unparsable"
        elif kind == "dims":
            lines.append(json.dumps({"id": i, "embedding": x[i][: D - 1].tolist()}))
            invalid[i] = "wrong dimension"
        elif kind == "nan":
            v = x[i].tolist()
            v[rng.randrange(D)] = math.nan
            lines.append(json.dumps({"id": i, "embedding": v}))
            invalid[i] = "NaN"
        elif kind == "noid":
            lines.append(json.dumps({"embedding": x[i].tolist()}))
            invalid[i] = "missing id"
        else:
            lines.append(json.dumps({"id": i}))
            invalid[i] = "missing embedding"
    # a repeated id whose first occurrence was itself invalid is a valid row
    for pos, kind in list(invalid.items()):
        if kind == "duplicate id" and (pos - 1) not in valid:
            del invalid[pos]
            valid[pos - 1] = x[pos]
    path.write_text("\n".join(lines) + "\n")
    return valid, invalid


def progress(conn: psycopg.Connection) -> int:
    if not catalog.has_catalog(conn):
        return 0
    row = conn.execute("SELECT records_done FROM shrinkvec.loads WHERE table_name = 't'").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_kill_9_at_random_points_then_every_row_once(migrated_dsn: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    rng = random.Random(11)
    valid, invalid = make_input(tmp_path / "in.jsonl", rng)
    assert len(invalid) > 100
    args = [*SV, "load", "in.jsonl", "--table", "t", "--profile", "bits,prefix:8,int8", "--batch-size", "40",
            "--quiet", "--rejects", "rej.jsonl", "--dsn", migrated_dsn]
    kills = {"early": 0, "midway": 0}
    for k in range(KILLS):
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if k % 3 == 0:
            time.sleep(rng.uniform(0.05, 1.5))  # imports, migrate, table and profile creation, first batches
            kind = "early"
        else:
            target = min(progress(conn) + rng.randrange(40, 1200), N - 1)
            deadline = time.monotonic() + 60
            while proc.poll() is None and progress(conn) < target and time.monotonic() < deadline:
                time.sleep(0.005)
            kind = "midway"
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
            break  # it finished before the kill
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills[kind] += 1
    assert kills["midway"] >= 2, kills

    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr

    rows = conn.execute("SELECT id, bits::text, embedding::text FROM t ORDER BY id").fetchall()
    assert [r[0] for r in rows] == sorted(valid)  # every valid row, exactly once
    p = catalog.find_profile(conn, "t")
    assert p is not None
    for i, bits, emb in rows[:: max(1, len(rows) // 200)]:
        assert np.array_equal(np.array(json.loads(emb), dtype=np.float32), valid[i])
        assert bits == codes.bits_to_str(p.encode(valid[i][None])["bits"][0], D)
    rejects = [json.loads(line) for line in (tmp_path / "rej.jsonl").read_text().splitlines()]
    positions = [r["position"] for r in rejects]
    assert sorted(positions) == sorted(invalid)  # every invalid row, exactly once
    assert len(positions) == len(set(positions))
    reasons = {r["position"]: r["reason"] for r in rejects}
    for pos, kind in invalid.items():
        assert kind.lower() in reasons[pos].lower(), (pos, kind, reasons[pos])
    row = conn.execute("SELECT records_done, rows_loaded, rows_rejected, finished FROM shrinkvec.loads").fetchone()
    assert row == (N, len(valid), len(invalid), True), (row, kills)
