"""shrinkvec load: formats, codes equal to the numpy reference, rejects, resume, one-line errors."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import one_row
from shrinkvec import catalog, codes
from shrinkvec.load import LoadOptions, load

SV = [sys.executable, "-m", "shrinkvec.cli"]


def rand(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def stored_codes(conn: psycopg.Connection, table: str = "t") -> dict[int, tuple[str, np.ndarray, bytes]]:
    rows = conn.execute(
        f'SELECT id, bits::text, prefix8::text, int8vec_send("int8") FROM {table} ORDER BY id'  # noqa: S608
    ).fetchall()
    return {r[0]: (r[1], np.array(json.loads(r[2]), dtype=np.float32), bytes(r[3])) for r in rows}


def expected_codes(conn: psycopg.Connection, x: np.ndarray, table: str = "t") -> list[tuple[str, np.ndarray, bytes]]:
    p = catalog.find_profile(conn, table)
    assert p is not None
    enc = p.encode(x)
    out = []
    for i in range(len(x)):
        q = enc["int8"][i]
        send = np.array([len(q), 0], dtype=">i2").tobytes() + q.tobytes()
        out.append((codes.bits_to_str(enc["bits"][i], 32), enc["prefix8"][i], send))
    return out


def test_npy_load_codes_equal_reference_and_sql_writes(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    x = rand(300, 32)
    x[5, :] = 0.0  # zero vector, sign bits all 0
    np.save(tmp_path / "v.npy", x)
    r = load(migrated_dsn, tmp_path / "v.npy", LoadOptions(table="t", profile="bits,prefix:8,int8", batch_size=64))
    assert (r.loaded, r.rejected, r.created_table) == (300, 0, True)
    got = stored_codes(conn)
    want = expected_codes(conn, x)
    assert sorted(got) == list(range(300))
    for i in range(300):
        assert got[i][0] == want[i][0]
        np.testing.assert_array_equal(got[i][1], want[i][1])
        assert got[i][2] == want[i][2]

    # plain SQL: INSERT without codes, INSERT with wrong codes, UPDATE of the vector, text COPY
    y = rand(4, 32, seed=7)
    conn.execute("INSERT INTO t (id, embedding) VALUES (1000, %s)", (y[0],))
    conn.execute("INSERT INTO t (id, embedding, bits, prefix8) VALUES (1001, %s, %s::bit(32), %s)",
                 (y[1], "1" * 32, np.zeros(8, dtype=np.float32)))
    conn.execute("UPDATE t SET embedding = %s WHERE id = 0", (y[2],))
    with conn.cursor().copy("COPY t (id, embedding) FROM STDIN") as cp:
        cp.write_row((1002, "[" + ",".join(repr(float(v)) for v in y[3]) + "]"))
    got = stored_codes(conn)
    want = expected_codes(conn, np.stack([y[0], y[1], y[2], y[3]]))
    for i, rid in enumerate([1000, 1001, 0, 1002]):
        assert got[rid][0] == want[i][0], rid
        np.testing.assert_array_equal(got[rid][1], want[i][1])
        assert got[rid][2] == want[i][2], rid


def test_jsonl_rejects_every_kind_and_keeps_valid_rows(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    x = rand(20, 16)
    lines = [json.dumps({"id": i, "embedding": x[i].tolist(), "title": f"doc {i}"}) for i in range(20)]
    bad = {
        3: "{not json",
        6: json.dumps({"id": 106, "embedding": x[6].tolist()[:15]}),
        8: json.dumps({"embedding": x[8].tolist()}),
        10: json.dumps({"id": 5, "embedding": x[10].tolist()}),  # duplicate of id 5
        12: json.dumps({"id": 112, "embedding": x[12].tolist()}).replace(str(x[12].tolist()[0]), "NaN", 1),
        14: json.dumps({"id": 114, "embedding": [1e39] + x[14].tolist()[1:]}),
        16: json.dumps({"id": "abc", "embedding": x[16].tolist()}),
    }
    for pos, text in bad.items():
        lines[pos] = text
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    rejects = tmp_path / "rej.jsonl"
    r = load(migrated_dsn, path, LoadOptions(table="t", batch_size=4, reject_file=rejects))
    assert (r.loaded, r.rejected) == (13, 7)
    got = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [g["position"] for g in got] == sorted(bad)
    reasons = {g["position"]: g["reason"] for g in got}
    assert reasons[3].startswith("unparsable line")
    assert reasons[6] == "wrong dimension: expected 16 dimensions, got 15"
    assert reasons[8] == "missing id"
    assert reasons[10].startswith("duplicate id")
    assert reasons[12] == "NaN value in embedding"
    assert reasons[14] == "infinite value in embedding"
    assert reasons[16].startswith("bad id")
    ids = [row[0] for row in conn.execute("SELECT id FROM t ORDER BY id")]
    assert ids == sorted(set(range(20)) - set(bad))
    title, emb = one_row(conn.execute("SELECT payload->>'title', embedding FROM t WHERE id = 5"))
    assert title == "doc 5"
    np.testing.assert_array_equal(np.asarray(emb.to_numpy()), x[5])  # first occurrence kept


def test_parquet_payload_and_rejects(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    x = rand(50, 12)
    embs = [v.tolist() for v in x]
    embs[7] = embs[7][:5]
    embs[9] = None
    ids: list[int | None] = list(range(1000, 1050))
    ids[11] = None
    table = pa.table({"id": pa.array(ids, pa.int64()), "embedding": pa.array(embs, pa.list_(pa.float32())),
                      "title": [f"t{i}" for i in range(50)], "score": [float(i) / 2 for i in range(50)]})
    pq.write_table(table, tmp_path / "v.parquet", row_group_size=16)
    r = load(migrated_dsn, tmp_path / "v.parquet",
             LoadOptions(table="pq", profile="bits:8,prefix:4", batch_size=10, reject_file=tmp_path / "r.jsonl"))
    assert (r.loaded, r.rejected) == (47, 3)
    reasons = {json.loads(s)["position"]: json.loads(s)["reason"] for s in (tmp_path / "r.jsonl").read_text().splitlines()}
    assert reasons == {7: "wrong dimension: expected 12 dimensions, got 5", 9: "missing embedding", 11: "missing id"}
    row = one_row(conn.execute("SELECT title, score, bits8::text, prefix4::text FROM pq WHERE id = 1020"))
    assert row[:2] == ("t20", 10.0)
    assert row[2] == codes.bits_to_str(codes.binarize(x[20], 8), 8)
    np.testing.assert_array_equal(np.array(json.loads(row[3]), dtype=np.float32), x[20][:4])


def test_rerun_is_a_no_op_and_duplicates_from_another_file_are_rejected(migrated_dsn: str, conn: psycopg.Connection,
                                                                         tmp_path: Path) -> None:
    x = rand(30, 8)
    np.save(tmp_path / "a.npy", x)
    load(migrated_dsn, tmp_path / "a.npy", LoadOptions(table="t", batch_size=7))
    again = load(migrated_dsn, tmp_path / "a.npy", LoadOptions(table="t", batch_size=7))
    assert again.already_done and again.loaded == 0
    np.save(tmp_path / "b.npy", rand(40, 8, seed=1))  # ids 0..39: 0..29 exist
    r = load(migrated_dsn, tmp_path / "b.npy", LoadOptions(table="t", batch_size=7, reject_file=tmp_path / "r.jsonl"))
    assert (r.loaded, r.rejected) == (10, 30)
    assert one_row(conn.execute("SELECT count(*) FROM t"))[0] == 40
    stored = np.asarray(one_row(conn.execute("SELECT embedding FROM t WHERE id = 3"))[0].to_numpy())
    np.testing.assert_array_equal(stored, x[3])  # the first file's row stays


def _cli(*args: str, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SV, *args, "--dsn", dsn], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_one_line_errors(migrated_dsn: str, tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", rand(10, 8))
    np.save(tmp_path / "w.npy", rand(10, 9))
    (tmp_path / "v.csv").write_text("1,2\n")
    assert _cli("load", "v.npy", "--table", "t", "--quiet", dsn=migrated_dsn, cwd=tmp_path).returncode == 0
    cases = {
        ("load", "missing.npy", "--table", "t"): "error: no such file: missing.npy",
        ("load", "v.csv", "--table", "t"): "error: unknown format of v.csv",
        ("load", "w.npy", "--table", "t"): "wrong dimension: expected 8 dimensions, got 9",
        ("sql", "--table", "nope"): "error: table public.nope does not exist",
        ("search", "--table", "t", "--queries", "w.npy"): "error: expected 8 dimensions, got 9",
        ("search", "--table", "t", "--queries", "v.csv"): "error: v.csv: not a readable .npy file",
        ("load", "v.npy", "--table", "u", "--profile", "bits,prefix:99"): "prefix:99: length must be between 1 and 8",
    }
    for args, message in cases.items():
        res = _cli(*args, "--quiet" if args[0] == "load" else "--schema=public", dsn=migrated_dsn, cwd=tmp_path)
        assert res.returncode == 1, (args, res.stderr)
        err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(err) == 1 and message in err[0], (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_kill_9_midway_then_rerun_loads_every_row_exactly_once(migrated_dsn: str, conn: psycopg.Connection,
                                                                tmp_path: Path) -> None:
    n, d = 6000, 64
    x = rand(n, d, seed=3)
    lines = [json.dumps({"id": i, "embedding": x[i].tolist()}) for i in range(n)]
    bad_positions = list(range(17, n, 250))
    for pos in bad_positions:
        lines[pos] = "garbage"
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    args = ["load", "big.jsonl", "--table", "t", "--batch-size", "50", "--quiet", "--rejects", "rej.jsonl"]
    proc = subprocess.Popen([*SV, *args, "--dsn", migrated_dsn], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    done = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if catalog.has_catalog(conn):
            row = conn.execute("SELECT records_done FROM shrinkvec.loads").fetchone()
            done = row[0] if row else 0
            if done >= n // 4:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < done < n, "the load was not caught midway"
    loaded_before = one_row(conn.execute("SELECT count(*) FROM t"))[0]
    assert 0 < loaded_before < n - len(bad_positions)

    res = subprocess.run([*SV, *args, "--dsn", migrated_dsn], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "resumed after" in res.stdout
    ids = [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")]
    assert ids == sorted(set(range(n)) - set(bad_positions))
    rejects = [json.loads(s)["position"] for s in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert rejects == bad_positions  # each reject exactly once
    row = conn.execute("SELECT rows_loaded, rows_rejected, finished FROM shrinkvec.loads").fetchone()
    assert row == (n - len(bad_positions), len(bad_positions), True)


def test_npy_with_ids_file_rejects_duplicates_and_cli_migrate_twice(migrated_dsn: str, conn: psycopg.Connection,
                                                                     tmp_path: Path) -> None:
    for _ in range(2):
        res = subprocess.run([*SV, "migrate", "--dsn", migrated_dsn], capture_output=True, text=True)
        assert res.returncode == 0 and f"revision {catalog.head_revision()}" in res.stdout, res.stderr
    x = rand(12, 8)
    x[4, 2] = np.nan
    np.save(tmp_path / "v.npy", x)
    np.save(tmp_path / "ids.npy", np.array([10, 11, 12, 10, 14, 15, 16, 17, 11, 19, 20, 21], dtype=np.int64))
    res = subprocess.run([*SV, "load", "v.npy", "--ids", "ids.npy", "--table", "t", "--batch-size", "5",
                          "--dsn", migrated_dsn], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "loaded 9 rows" in res.stdout and "rejected 3" in res.stdout
    assert [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")] == [10, 11, 12, 15, 16, 17, 19, 20, 21]
    rejects = [json.loads(s) for s in (tmp_path / "v.npy.t.rejects.jsonl").read_text().splitlines()]
    assert [(r["position"], r["id"], r["reason"].split(":")[0]) for r in rejects] == [
        (3, 10, "duplicate id"), (4, 14, "NaN value in embedding"), (8, 11, "duplicate id")]


def test_load_into_existing_pgvector_table_adds_codes_and_backfills(migrated_dsn: str, conn: psycopg.Connection,
                                                                     tmp_path: Path) -> None:
    old = rand(50, 16, seed=21)
    conn.execute("CREATE TABLE mine (id bigint PRIMARY KEY, embedding vector(16) NOT NULL, note text DEFAULT 'x')")
    with conn.cursor().copy("COPY mine (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "vector"])
        for i, v in enumerate(old):
            cp.write_row((1000 + i, v))
    new = rand(30, 16, seed=22)
    np.save(tmp_path / "n.npy", new)
    r = load(migrated_dsn, tmp_path / "n.npy", LoadOptions(table="mine", profile="bits,prefix:4", batch_size=8))
    assert (r.loaded, r.rejected, r.created_table) == (30, 0, False)
    p = catalog.find_profile(conn, "mine")
    assert p is not None
    both = np.concatenate([new, old])
    ids = list(range(30)) + list(range(1000, 1050))
    enc = p.encode(both)
    got: dict[int, str] = dict(conn.execute("SELECT id, bits::text FROM mine").fetchall())
    assert got == {i: codes.bits_to_str(enc["bits"][j], 16) for j, i in enumerate(ids)}
    assert one_row(conn.execute("SELECT count(*) FROM mine WHERE prefix4 IS NULL OR note <> 'x'"))[0] == 0

    conn.execute("CREATE TABLE other (id integer PRIMARY KEY, embedding vector(16))")
    res = subprocess.run([*SV, "load", "n.npy", "--table", "other", "--quiet", "--restart", "--dsn", migrated_dsn],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.strip() == (
        "error: table public.other needs a bigint column 'id' with a unique index or primary key")


def test_resuming_a_changed_file_is_refused(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", rand(20, 8))
    load(migrated_dsn, tmp_path / "v.npy", LoadOptions(table="t", batch_size=5))
    # as if the load had been interrupted after two batches, then the file rewritten
    conn.execute("UPDATE shrinkvec.loads SET finished = false, records_done = 10")
    np.save(tmp_path / "v.npy", rand(21, 8))
    res = subprocess.run([*SV, "load", "v.npy", "--table", "t", "--quiet", "--dsn", migrated_dsn],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().endswith("changed since its interrupted load into t: rerun with --restart")
    r = load(migrated_dsn, tmp_path / "v.npy", LoadOptions(table="t", batch_size=5, restart=True,
                                                            reject_file=tmp_path / "r.jsonl"))
    assert (r.loaded, r.rejected) == (1, 20)  # ids 0..19 are in the table already


# ---- issue 17: every bad input is a one-line error or a reject with its reason ---------------------------


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line of a failed CLI run (and no traceback, no bare 'Aborted!')."""
    assert "Traceback" not in res.stderr and "Aborted" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


def _jsonl_lines(x: np.ndarray, **extra: str) -> list[str]:
    return [json.dumps({"id": i, "embedding": x[i].tolist(), **{k: f"{v}{i}" for k, v in extra.items()}})
            for i in range(len(x))]


def test_rejects_in_a_missing_directory_fails_before_anything_is_created(migrated_dsn: str, conn: psycopg.Connection,
                                                                          tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", rand(10, 8))
    res = _cli("load", "v.npy", "--table", "t", "--rejects", "nodir/r.jsonl", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    assert _one_error_line(res) == (f"error: cannot write the reject file nodir/r.jsonl: directory {tmp_path / 'nodir'} "
                                    "does not exist")
    assert one_row(conn.execute("SELECT to_regclass('public.t')"))[0] is None  # no empty table left behind
    assert one_row(conn.execute("SELECT count(*) FROM shrinkvec.loads"))[0] == 0
    assert catalog.find_profile(conn, "t") is None


def test_corrupt_and_truncated_gzip_are_one_line_errors(migrated_dsn: str, conn: psycopg.Connection,
                                                        tmp_path: Path) -> None:
    lines = _jsonl_lines(rand(3000, 8, seed=5))
    with gzip.open(tmp_path / "ok.jsonl.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    data = (tmp_path / "ok.jsonl.gz").read_bytes()
    corrupt = bytearray(data)
    for i in range(40, 80):
        corrupt[i] ^= 0x55
    (tmp_path / "corrupt.jsonl.gz").write_bytes(bytes(corrupt))
    (tmp_path / "short.jsonl.gz").write_bytes(data[: len(data) // 10])  # ends within the first 1000 lines
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])  # ends after two batches of 1000

    res = _cli("load", "corrupt.jsonl.gz", "--table", "c", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    assert "error: corrupt.jsonl.gz: corrupt compressed data (Error -3 while decompressing data" in _one_error_line(res)

    res = _cli("load", "short.jsonl.gz", "--table", "s", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    assert _one_error_line(res).startswith("error: short.jsonl.gz: the compressed data ends after line ")
    assert one_row(conn.execute("SELECT to_regclass('public.s')"))[0] is None  # nothing loaded, no table

    res = _cli("load", "cut.jsonl.gz", "--table", "u", "--batch-size", "500", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    err = _one_error_line(res)
    m = re.fullmatch(r"error: cut\.jsonl\.gz: the compressed data ends after line (\d+): the file is truncated; "
                     r"(\d+) rows of it are in public\.u, the load stops at record (\d+)", err)
    assert m is not None, err
    last_line, rows, stop = map(int, m.groups())
    assert rows == stop == last_line // 500 * 500 > 0
    assert one_row(conn.execute("SELECT count(*) FROM u"))[0] == rows  # the whole batches before the cut


def test_payload_with_nul_or_lone_surrogate_is_rejected_and_the_rest_loads(migrated_dsn: str, conn: psycopg.Connection,
                                                                          tmp_path: Path) -> None:
    x = rand(12, 8)
    lines = _jsonl_lines(x, title="doc ")
    lines[3] = '{"id": 3, "embedding": %s, "title": "a\\u0000b"}' % json.dumps(x[3].tolist())
    lines[5] = '{"id": 5, "embedding": %s, "meta": {"k": ["\\ud800"]}}' % json.dumps(x[5].tolist())
    lines[6] = '{"id": 6, "embedding": %s, "score": NaN}' % json.dumps(x[6].tolist())
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    res = _cli("load", "p.jsonl", "--table", "t", "--batch-size", "4", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rejects = {r["position"]: r for r in map(json.loads, (tmp_path / "p.jsonl.t.rejects.jsonl").read_text().splitlines())}
    assert rejects[3]["reason"] == "bad payload: a string contains \\u0000, which PostgreSQL text and jsonb cannot store"
    assert rejects[5]["reason"] == "bad payload: a string contains the lone surrogate \\ud800, which is not valid Unicode"
    assert rejects[6]["reason"] == "bad payload: nan is not a JSON number"
    assert sorted(rejects) == [3, 5, 6]
    assert [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")] == [0, 1, 2, 4, 7, 8, 9, 10, 11]
    again = _cli("load", "p.jsonl", "--table", "t", "--batch-size", "4", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.startswith("nothing to do"), again.stderr

    # parquet text payload: NUL is rejected in that column, the row next to it loads
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()),
                      "embedding": pa.array([v.tolist() for v in x[:3]], pa.list_(pa.float32())),
                      "title": ["ok", "bad\x00", "fine"]})
    pq.write_table(table, tmp_path / "p.parquet")
    r = load(migrated_dsn, tmp_path / "p.parquet", LoadOptions(table="pt", reject_file=tmp_path / "pr.jsonl"))
    assert (r.loaded, r.rejected) == (2, 1)
    assert [r[0] for r in conn.execute("SELECT title FROM pt ORDER BY id")] == ["ok", "fine"]
    assert json.loads((tmp_path / "pr.jsonl").read_text())["reason"].endswith("cannot store (column title)")


def test_rows_the_table_refuses_are_rejected_one_by_one(migrated_dsn: str, conn: psycopg.Connection,
                                                        tmp_path: Path) -> None:
    conn.execute("CREATE TABLE mine (id bigint PRIMARY KEY, embedding vector(8) NOT NULL, "
                 "payload jsonb CHECK (payload->>'title' IS DISTINCT FROM 'forbidden'))")
    x = rand(10, 8)
    lines = _jsonl_lines(x, title="doc ")
    for pos in (2, 7):
        lines[pos] = json.dumps({"id": pos, "embedding": x[pos].tolist(), "title": "forbidden"})
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    r = load(migrated_dsn, tmp_path / "m.jsonl", LoadOptions(table="mine", batch_size=5, reject_file=tmp_path / "r"))
    assert (r.loaded, r.rejected) == (8, 2)
    got = [json.loads(s) for s in (tmp_path / "r").read_text().splitlines()]
    assert [g["position"] for g in got] == [2, 7]
    assert all(g["reason"].startswith('refused by PostgreSQL: new row for relation "mine" violates check constraint')
               for g in got), got
    assert [r[0] for r in conn.execute("SELECT id FROM mine ORDER BY id")] == [0, 1, 3, 4, 5, 6, 8, 9]


def test_embedding_numbers_must_be_json_numbers(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    x = rand(5, 4)
    lines = _jsonl_lines(x)
    lines[1] = '{"id": 1, "embedding": [1, 2, 3, "4"]}'
    lines[2] = '{"id": 2, "embedding": [1.5, true, 3, 4]}'
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    r = load(migrated_dsn, tmp_path / "e.jsonl", LoadOptions(table="t", reject_file=tmp_path / "r"))
    assert (r.loaded, r.rejected) == (3, 2)
    reasons = [json.loads(s)["reason"] for s in (tmp_path / "r").read_text().splitlines()]
    assert reasons == ["bad embedding: not a list of numbers (has str)", "bad embedding: not a list of numbers (has bool)"]
    assert [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")] == [0, 3, 4]


def test_new_table_width_is_the_most_common_not_the_first_line(migrated_dsn: str, conn: psycopg.Connection,
                                                               tmp_path: Path) -> None:
    x = rand(20, 8)
    lines = [json.dumps({"id": 100, "embedding": [1.0, 2.0]}), *_jsonl_lines(x)]
    (tmp_path / "w.jsonl").write_text("\n".join(lines) + "\n")
    res = _cli("load", "w.jsonl", "--table", "t", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("created table public.t with 8 dimensions, the most common width among the first "
                                 "21 embeddings (20; 1 of width 2: rows of other widths are rejected"), res.stdout
    p = catalog.find_profile(conn, "t")
    assert p is not None and p.dims == 8
    assert one_row(conn.execute("SELECT count(*) FROM t"))[0] == 20
    reject = json.loads((tmp_path / "w.jsonl.t.rejects.jsonl").read_text())
    assert reject == {"table": "public.t", "position": 0, "id": 100,
                      "reason": "wrong dimension: expected 8 dimensions, got 2"}

    # --dims decides; when no record has that width, nothing valid is loaded: exit 1
    res = _cli("load", "w.jsonl", "--table", "two", "--dims", "2", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 0 and "with 2 dimensions (--dims)" in res.stdout, res.stdout + res.stderr
    res = _cli("load", "w.jsonl", "--table", "three", "--dims", "3", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    assert _one_error_line(res) == ("error: nothing valid was loaded into public.three: all 21 records were rejected "
                                    f"(see {tmp_path / 'w.jsonl.three.rejects.jsonl'})")


def test_second_npy_without_ids_collides_and_says_so(migrated_dsn: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", rand(20, 8))
    np.save(tmp_path / "b.npy", rand(20, 8, seed=1))
    assert _cli("load", "a.npy", "--table", "t", "--quiet", dsn=migrated_dsn, cwd=tmp_path).returncode == 0
    res = _cli("load", "b.npy", "--table", "t", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    assert ("20 ids were already in public.t: without --ids a .npy file's ids are its row numbers (0, 1, ...), so they "
            "collide with another file's; pass --ids ids.npy") in res.stdout
    assert _one_error_line(res).startswith("error: nothing valid was loaded into public.t: all 20 records were rejected")
    np.save(tmp_path / "ids.npy", np.arange(100, 120, dtype=np.int64))
    res = _cli("load", "b.npy", "--ids", "ids.npy", "--table", "t", "--restart", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 0 and "loaded 20 rows" in res.stdout, res.stderr
    assert one_row(conn.execute("SELECT count(*) FROM t"))[0] == 40


def test_reject_files_are_per_table_and_say_their_table(migrated_dsn: str, tmp_path: Path) -> None:
    lines = _jsonl_lines(rand(6, 4))
    lines[2] = "garbage"
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n")
    for table in ("one", "two"):
        res = _cli("load", "f.jsonl", "--table", table, "--quiet", dsn=migrated_dsn, cwd=tmp_path)
        assert res.returncode == 0, res.stderr
    for table in ("one", "two"):
        got = [json.loads(s) for s in (tmp_path / f"f.jsonl.{table}.rejects.jsonl").read_text().splitlines()]
        assert [(g["table"], g["position"]) for g in got] == [(f"public.{table}", 2)]
    assert not (tmp_path / "f.jsonl.rejects.jsonl").exists()


def test_a_file_changed_after_a_finished_load_is_not_called_interrupted(migrated_dsn: str, tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", rand(20, 8))
    assert _cli("load", "v.npy", "--table", "t", "--quiet", dsn=migrated_dsn, cwd=tmp_path).returncode == 0
    np.save(tmp_path / "v.npy", rand(21, 8))
    res = _cli("load", "v.npy", "--table", "t", "--quiet", dsn=migrated_dsn, cwd=tmp_path)
    assert res.returncode == 1
    err = _one_error_line(res)
    assert "interrupted" not in err
    assert err.endswith("v.npy changed since it was loaded into t: rerun with --restart to load it again "
                        "(ids already in the table are rejected as duplicates)"), err
