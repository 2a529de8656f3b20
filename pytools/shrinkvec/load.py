"""`shrinkvec load`: stream a file of embeddings into a profiled table with binary COPY.

Resume semantics (exactly once, also after kill -9):

- Rows are keyed by id (bigint PRIMARY KEY). Input is read in batches of consecutive records, in file
  order; each batch is one transaction that COPYs its valid rows *and* advances the load's progress
  record in `shrinkvec.loads` (key: table + absolute path of the file; checked against its size and
  mtime). A killed load leaves only whole committed batches; a rerun skips the records of those batches
  without reading them into the table and continues with the first uncommitted one.
- Rejected records are appended to the reject file (JSON lines: position, id, reason) and fsynced
  *before* the batch commits; the committed progress record holds the reject file's length, and a
  rerun truncates the file to it, so every reject is listed exactly once too.
- A batch whose COPY fails with a data error the checks in Python did not foresee, or a constraint
  of the table (CHECK, NOT NULL, another unique index), is split in halves
  until the refused rows are found; they are rejected with PostgreSQL's message, the rest loads.
- Duplicate ids within a batch are found in numpy (the first one is loaded). A batch whose COPY hits
  an id already in the table rolls back to a savepoint and is loaded through a temp table with
  INSERT ... ON CONFLICT DO NOTHING; the ids not inserted are rejected as duplicates. Valid rows are
  never lost because of invalid ones.
- A finished load is recorded as such: rerunning it loads nothing (use --restart to forget it).

Codes: every code of the profile is computed in numpy in one pass per batch (Profile.encode) and
sent in the same COPY; the table's trigger checks them against the SQL functions (see ddl.py).
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from shrinkvec import catalog, ddl
from shrinkvec.profile import Code, Profile, ProfileError, calibrate, parse_codes
from shrinkvec.readers import Batch, NpyReader, Reader, ReadError, Reject, decide_dims, open_reader, wrong_dims

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = b"\xff\xff"
STAGE_TABLE = "shrinkvec_load_stage"
WIDTH_SAMPLE = 1000  # records whose most common embedding width a new table takes (unless --dims)


class LoadError(RuntimeError):
    """The load cannot start or continue (message is one line)."""


@dataclass
class LoadOptions:
    table: str
    schema: str = "public"
    column: str = "embedding"
    profile: str | None = None  # code spec such as "bits,prefix:128,int8"; default "bits" for new tables
    distance: str = "cosine"
    center: bool = False
    ids_path: Path | None = None
    batch_size: int = 10_000
    reject_file: Path | None = None
    restart: bool = False
    dims: int | None = None  # width of a new table's vectors (default: the most common in the first records)


@dataclass
class LoadResult:
    loaded: int = 0
    rejected: int = 0
    resumed_at: int = 0
    records: int = 0
    seconds: float = 0.0
    reject_file: Path | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    already_done: bool = False
    created_table: bool = False
    table: str = ""
    loaded_before: int = 0  # rows an interrupted earlier run of this load committed
    notes: list[str] = field(default_factory=list)  # said before the counts (how the table was made)
    hints: list[str] = field(default_factory=list)  # said after them (what to do about the rejects)
    taken_ids: int = 0  # rows rejected because their id was already in the table

    @property
    def rows_per_second(self) -> float:
        return self.loaded / self.seconds if self.seconds > 0 else 0.0

    @property
    def nothing_loaded(self) -> bool:
        """True when this load (with its interrupted earlier runs) put no valid row into the table."""
        return not self.already_done and self.loaded + self.loaded_before == 0

    def summary(self) -> str:
        if self.already_done:
            return "nothing to do: this file was already loaded into the table (use --restart to load it again)"
        parts = [*self.notes, f"loaded {self.loaded} rows in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)"]
        if self.resumed_at:
            parts.append(f"resumed after {self.resumed_at} records")
        parts.append(f"rejected {self.rejected}")
        if self.rejected:
            reasons = "; ".join(f"{n} {r}" for r, n in self.reasons.most_common())
            parts.append(f"({reasons}) -> {self.reject_file}")
        return "; ".join([", ".join(parts), *self.hints])


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0] if not reason.startswith("bad id") else "bad id"


# ---------------------------------------------------------------------------------------------
# Binary COPY rows, built in numpy
# ---------------------------------------------------------------------------------------------


def _row_dtype(p: Profile, nfields: int) -> np.dtype:
    """Structured dtype of one COPY BINARY tuple's fixed part: id, vector, codes."""
    fields: list[tuple[Any, ...]] = [("nf", ">i2"), ("id_len", ">i4"), ("id", ">i8"),
                                     ("v_len", ">i4"), ("v_dim", ">i2"), ("v_unused", ">i2"), ("v", ">f4", (p.dims,))]
    for i, c in enumerate(p.codes):
        fields += c.code_kind.copy_fields(f"c{i}", c.length, p.dims)
    return np.dtype(fields)


def encode_rows(p: Profile, ids: np.ndarray, x: np.ndarray, nfields: int) -> np.ndarray:
    """The fixed part of every tuple (id, vector, every code computed in numpy), as a record array."""
    rows = np.empty(len(ids), dtype=_row_dtype(p, nfields))  # every field is set below
    rows["nf"] = nfields
    rows["id_len"] = 8
    rows["id"] = ids
    rows["v_len"] = 4 + 4 * p.dims
    rows["v_dim"] = p.dims
    rows["v_unused"] = 0
    rows["v"] = x
    for i, (c, code) in enumerate(zip(p.codes, p.encode(x).values())):
        c.code_kind.copy_fill(rows, f"c{i}", c.length, p.dims, code)
    return rows


def _field(value: Any, sqltype: str) -> bytes:
    """One payload field in COPY BINARY form (length-prefixed), NULL as -1."""
    if value is None:
        return b"\xff\xff\xff\xff"
    if sqltype == "bigint":
        data = struct.pack(">q", int(value))
    elif sqltype == "double precision":
        data = struct.pack(">d", float(value))
    elif sqltype == "boolean":
        data = b"\x01" if value else b"\x00"
    elif sqltype == "text":
        data = str(value).encode()
    else:  # jsonb: version 1 + JSON text
        data = b"\x01" + json.dumps(value, default=str).encode()
    return struct.pack(">i", len(data)) + data


def copy_data(p: Profile, batch: Batch, keep: np.ndarray, payload_cols: list[tuple[str, str]]) -> list[Any]:
    """A whole COPY BINARY stream (signature, tuples, trailer) for the kept rows of a batch, as buffers."""
    all_kept = bool(keep.all())
    ids = batch.ids if all_kept else batch.ids[keep]
    x = batch.vectors if all_kept else batch.vectors[keep]
    rows = encode_rows(p, ids, x, 2 + len(p.codes) + len(payload_cols))
    if not payload_cols:
        return [COPY_SIGNATURE, memoryview(rows.view(np.uint8)), COPY_TRAILER]
    fixed = memoryview(rows.view(np.uint8))
    size = rows.dtype.itemsize
    idx = np.nonzero(keep)[0]
    parts = [COPY_SIGNATURE]
    columns = [(batch.payload[name], typ) for name, typ in payload_cols]
    for j, i in enumerate(idx):
        parts.append(bytes(fixed[j * size:(j + 1) * size]))
        parts.extend(_field(values[i], typ) for values, typ in columns)
    parts.append(COPY_TRAILER)
    return [b"".join(parts)]


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------


@dataclass
class _Target:
    profile: Profile
    payload_cols: list[tuple[str, str]]  # payload columns of the input that the table has
    created: bool
    dims_note: str = ""  # how a new table's width was decided


def _file_dims(reader: Reader, opts: LoadOptions) -> tuple[int, str]:
    """The width of the file's embeddings: --dims, or the most common width among its first records
    (one wrong first line does not decide it), and a note saying which."""
    if opts.dims is not None:
        if opts.dims < 1:
            raise LoadError("--dims must be at least 1")
        return opts.dims, f"{opts.dims} dimensions (--dims)"
    try:
        return decide_dims(reader.widths(WIDTH_SAMPLE), WIDTH_SAMPLE)
    except ReadError as exc:
        msg = str(exc)
        raise LoadError(msg if msg.startswith(str(reader.path)) else f"{reader.path}: {msg}") from None


def _sample(reader: Reader, dims: int, n: int) -> np.ndarray:
    """Up to n finite vectors from the start of the file (calibrates int8 ranges and the center)."""
    for b in reader.batches(dims, 0, n):
        x = b.vectors[np.isfinite(b.vectors).all(axis=1)]
        if len(x):
            return x
    raise LoadError("the file has no valid vector to calibrate the codes on")


def _prepare_target(conn: psycopg.Connection, reader: Reader, opts: LoadOptions) -> _Target:
    """The table's profile, creating table and profile when the table does not exist."""
    existing = catalog.find_profile(conn, opts.table, opts.schema)
    file_dims, note = _file_dims(reader, opts)
    if existing is not None:
        if existing.vector_column != opts.column and opts.column != "embedding":
            raise LoadError(f"table {opts.table} is profiled on column {existing.vector_column!r}, not {opts.column!r}")
        if file_dims != existing.dims:
            raise LoadError(f"{reader.path}: {wrong_dims(existing.dims, file_dims)} (table {opts.table}; {note})")
        if opts.profile is not None:
            wanted = [c.spec() for c in parse_codes(opts.profile, existing.dims)]
            have = [c.spec() for c in existing.codes]
            if wanted != have:
                raise LoadError(f"table {opts.table} has codes {','.join(have)}, not {','.join(wanted)}")
        cols = {r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (sql.Identifier(opts.schema, opts.table).as_string(conn),)).fetchall()}
        return _Target(existing, [(n, t) for n, t in reader.payload_columns if n in cols], False)

    if catalog.table_exists(conn, opts.table, opts.schema):
        return _profile_existing_table(conn, reader, opts, file_dims, note)
    try:
        codes = parse_codes(opts.profile or "bits", file_dims)
    except ProfileError as exc:
        raise LoadError(str(exc)) from None
    clash = {c.column for c in codes} & ({"id", opts.column} | {n for n, _ in reader.payload_columns})
    if clash:
        raise LoadError(f"code column {sorted(clash)[0]!r} clashes with a column of the input")
    profile = _new_profile(reader, opts, file_dims, codes)
    with conn.transaction():
        ddl.create_table(conn, profile, reader.payload_columns)
        catalog.save_profile(conn, profile)
    return _Target(profile, list(reader.payload_columns), True, note)


def _new_profile(reader: Reader, opts: LoadOptions, dims: int, codes: tuple[Code, ...]) -> Profile:
    """The profile of a table about to get codes: centre and int8 ranges fitted on the first 10k vectors."""
    profile = Profile(name=f"{opts.schema}.{opts.table}.{opts.column}", schema=opts.schema, table=opts.table,
                      vector_column=opts.column, dims=dims, codes=codes, distance=opts.distance)  # type: ignore[arg-type]
    if opts.center or any(c.code_kind.calibrated for c in codes):
        sample = _sample(reader, dims, 10_000)
        if opts.center:
            profile = replace(profile, center=sample.mean(axis=0).astype(np.float32))
        profile = calibrate(profile, sample)
    return profile


def _profile_existing_table(conn: psycopg.Connection, reader: Reader, opts: LoadOptions, file_dims: int,
                            note: str) -> _Target:
    """A pgvector table without a profile: add the code columns and trigger (no rewrite), fill the codes
    of its rows in batches, and record the profile. Needs a bigint id column with a unique index."""
    name = sql.Identifier(opts.schema, opts.table).as_string(conn)
    dims = catalog.vector_dims(conn, opts.table, opts.column, opts.schema)
    if dims is None:
        raise LoadError(f"{opts.table}.{opts.column} must be declared with dimensions, e.g. vector({file_dims})")
    if dims != file_dims:
        raise LoadError(f"{reader.path}: {wrong_dims(dims, file_dims)} (table {opts.table}; {note})")
    unique_id = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                          AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indnatts = 1
                            AND a.attname = 'id' AND a.atttypid = 'int8'::regtype)""",
        (name,)).fetchone()[0]  # type: ignore[index]
    if not unique_id:
        raise LoadError(f"table {opts.schema}.{opts.table} needs a bigint column 'id' with a unique index or primary key")
    try:
        codes = parse_codes(opts.profile or "bits", dims)
    except ProfileError as exc:
        raise LoadError(str(exc)) from None
    cols = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (name,)).fetchall()}
    clash = sorted({c.column for c in codes} & cols)
    if clash:
        raise LoadError(f"table {opts.table} already has a column {clash[0]!r}: name the code, e.g. bits=my_bits")
    profile = _new_profile(reader, opts, dims, codes)
    with conn.transaction():
        ddl.add_codes(conn, profile)
        catalog.save_profile(conn, profile)
    ddl.backfill(conn, profile)
    return _Target(profile, [(n, t) for n, t in reader.payload_columns if n in cols], False)


def _progress_row(conn: psycopg.Connection, opts: LoadOptions, source: Path, reject_file: Path) -> dict[str, Any] | None:
    """The load's progress record (created when missing); None when the load already finished."""
    st = source.stat()
    key = (opts.schema, opts.table, str(source))
    row = conn.execute(
        """SELECT source_size, source_mtime_ns, records_done, rows_loaded, rows_rejected, reject_file,
                  reject_bytes, finished
           FROM shrinkvec.loads WHERE table_schema = %s AND table_name = %s AND source = %s""", key).fetchone()
    if row is not None and opts.restart:
        conn.execute("DELETE FROM shrinkvec.loads WHERE table_schema = %s AND table_name = %s AND source = %s", key)
        row = None
    if row is None:
        conn.execute(
            """INSERT INTO shrinkvec.loads (table_schema, table_name, source, source_size, source_mtime_ns, reject_file)
               VALUES (%s, %s, %s, %s, %s, %s)""", (*key, st.st_size, st.st_mtime_ns, str(reject_file)))
        return {"records_done": 0, "rows_loaded": 0, "rows_rejected": 0, "reject_file": str(reject_file),
                "reject_bytes": 0}
    size, mtime, done, loaded, rejected, rfile, rbytes, finished = row
    if (size, mtime) != (st.st_size, st.st_mtime_ns):
        if finished:
            raise LoadError(f"{source} changed since it was loaded into {opts.table}: rerun with --restart to load "
                            "it again (ids already in the table are rejected as duplicates)")
        raise LoadError(f"{source} changed since its interrupted load into {opts.table}: rerun with --restart")
    if finished:
        return None
    return {"records_done": done, "rows_loaded": loaded, "rows_rejected": rejected, "reject_file": rfile,
            "reject_bytes": rbytes}


def _write_rejects(f: Any, rejects: list[Reject], table: str) -> None:
    if not rejects:
        return
    for r in rejects:
        f.write((json.dumps({"table": table, "position": r.position, "id": r.id, "reason": r.reason}) + "\n").encode())
    f.flush()
    os.fsync(f.fileno())


def _check(batch: Batch, t: _Target) -> tuple[Batch, np.ndarray, list[Reject], list[Any]]:
    """Validate a batch (NaN/Inf, duplicate ids within it) and build its COPY data with every code."""
    rejects = list(batch.rejects)
    keep = np.isfinite(batch.vectors.sum(axis=1, dtype=np.float64))  # float64 sums of float32 cannot overflow
    for i in np.nonzero(~keep)[0]:
        reason = "NaN value in embedding" if np.isnan(batch.vectors[i]).any() else "infinite value in embedding"
        rejects.append(Reject(int(batch.positions[i]), int(batch.ids[i]), reason))
    # the first valid row of each id is kept: a rejected row does not make a later one a duplicate,
    # so the outcome does not depend on where batch boundaries fall
    valid = np.nonzero(keep)[0]
    _, first = np.unique(batch.ids[valid], return_index=True)
    unique = np.zeros(len(batch.ids), dtype=bool)
    unique[valid[first]] = True
    for i in np.nonzero(keep & ~unique)[0]:
        rejects.append(Reject(int(batch.positions[i]), int(batch.ids[i]), "duplicate id: earlier in the file"))
    keep &= unique
    data = copy_data(t.profile, batch, keep, t.payload_cols) if keep.any() else []
    return batch, keep, rejects, data


def _prefetched(batches: Iterator[Batch], t: _Target) -> Iterator[tuple[Batch, np.ndarray, list[Reject], list[Any]]]:
    """Read, check and encode the next batch in a worker thread while the current one is COPYing
    (numpy and psycopg release the GIL): at most three batches in memory."""
    def next_one() -> tuple[Batch, np.ndarray, list[Reject], list[Any]] | None:
        b = next(batches, None)
        return None if b is None else _check(b, t)

    with ThreadPoolExecutor(1, thread_name_prefix="shrinkvec-read") as pool:
        fut = pool.submit(next_one)
        while (item := fut.result()) is not None:
            fut = pool.submit(next_one)
            yield item


def _copy_batch(conn: psycopg.Connection, t: _Target, batch: Batch, keep: np.ndarray, data: list[Any]) -> list[Reject]:
    """COPY the kept rows of a batch into the table; the kept rows not loaded come back as rejects: ids
    already in the table, and rows PostgreSQL refuses (a data error the checks in Python did not foresee,
    a CHECK or other constraint of the user's table), found by splitting the batch in halves, so one bad
    row never blocks its batch."""
    try:
        with conn.transaction():  # a savepoint inside the batch's transaction
            return _copy_rows(conn, t, batch, keep, data)
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        idx = np.nonzero(keep)[0]
        if len(idx) == 1:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return [Reject(int(batch.positions[idx[0]]), int(batch.ids[idx[0]]), f"refused by PostgreSQL: {reason}")]
        rejects: list[Reject] = []
        for part in (idx[: len(idx) // 2], idx[len(idx) // 2:]):
            half = np.zeros_like(keep)
            half[part] = True
            rejects += _copy_batch(conn, t, batch, half, copy_data(t.profile, batch, half, t.payload_cols))
        return rejects


def _copy_rows(conn: psycopg.Connection, t: _Target, batch: Batch, keep: np.ndarray, data: list[Any]) -> list[Reject]:
    """COPY the kept rows; rows whose id already exists come back as rejects."""
    p = t.profile
    cols = [p.id_column, p.vector_column, *(c.column for c in p.codes), *(n for n, _ in t.payload_cols)]
    col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    copy_into = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)")
    try:
        with conn.transaction(), conn.cursor().copy(copy_into.format(ddl.table_ident(p), col_list)) as cp:
            for buf in data:
                cp.write(buf)
        return []
    except psycopg.errors.UniqueViolation:
        pass
    # Some id is already in the table: load through a temp table, skipping existing ids.
    conn.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA").format(
        sql.Identifier(STAGE_TABLE), col_list, ddl.table_ident(p)))
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(STAGE_TABLE)))
    with conn.cursor().copy(copy_into.format(sql.Identifier(STAGE_TABLE), col_list)) as cp:
        for buf in data:
            cp.write(buf)
    inserted = {r[0] for r in conn.execute(
        sql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s} ON CONFLICT ({id}) DO NOTHING RETURNING {id}").format(
            t=ddl.table_ident(p), c=col_list, s=sql.Identifier(STAGE_TABLE), id=sql.Identifier(p.id_column))
    ).fetchall()}
    return [Reject(int(pos), int(i), "duplicate id: already in the table")
            for i, pos in zip(batch.ids[keep], batch.positions[keep]) if int(i) not in inserted]


def default_reject_file(path: Path, opts: LoadOptions) -> Path:
    """./FILE.TABLE.rejects.jsonl (FILE.SCHEMA.TABLE outside public): one per input file and table."""
    table = opts.table if opts.schema == "public" else f"{opts.schema}.{opts.table}"
    return Path.cwd() / f"{path.name}.{re.sub(r'[^A-Za-z0-9_.-]', '_', table)}.rejects.jsonl"


def _check_reject_file(path: Path) -> None:
    """The reject file can be written: checked before anything is created."""
    if path.is_dir():
        raise LoadError(f"reject file {path} is a directory")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise LoadError(f"cannot write the reject file {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise LoadError(f"cannot write the reject file {path}: permission denied")


def _open_rejects(path: Path) -> Any:
    try:
        return open(path, "r+b" if path.exists() else "w+b")
    except OSError as exc:
        raise LoadError(f"cannot write the reject file {path}: {exc.strerror}") from None


def load(dsn: str, path: Path, opts: LoadOptions,
         progress: Callable[[int, int | None, int], None] | None = None) -> LoadResult:
    """Load a file into opts.table (see the module docstring). `progress(records_done, total, rows)`
    is called after every committed batch."""
    reader = open_reader(path, opts.ids_path)
    source = path.resolve()
    result = LoadResult(reject_file=opts.reject_file or default_reject_file(path, opts),
                        table=f"{opts.schema}.{opts.table}")
    if opts.batch_size < 1:
        raise LoadError("--batch-size must be at least 1")
    _check_reject_file(result.reject_file)  # type: ignore[arg-type]
    catalog.migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        lock = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                            (f"shrinkvec.load\x1f{opts.schema}\x1f{opts.table}\x1f{source}",)).fetchone()[0]  # type: ignore[index]
        if not lock:
            raise LoadError(f"another shrinkvec load of {path} into {opts.table} is running")
        target = _prepare_target(conn, reader, opts)
        result.created_table = target.created
        if target.created:
            result.notes.append(f"created table {result.table} with {target.dims_note}")
        with conn.transaction():
            state = _progress_row(conn, opts, source, result.reject_file)  # type: ignore[arg-type]
        if state is None:
            result.already_done = True
            return result
        result.reject_file = Path(state["reject_file"])
        result.resumed_at = int(state["records_done"])
        result.loaded_before = int(state["rows_loaded"])
        key = (opts.schema, opts.table, str(source))
        t0 = time.perf_counter()
        with _open_rejects(result.reject_file) as rf:
            rf.truncate(int(state["reject_bytes"]))
            rf.seek(0, os.SEEK_END)
            done = result.resumed_at
            batches = reader.batches(target.profile.dims, result.resumed_at, opts.batch_size)
            try:
                for batch, keep, rejects, data in _prefetched(batches, target):
                    with conn.transaction():
                        refused = _copy_batch(conn, target, batch, keep, data) if keep.any() else []
                        rejects += refused
                        rejects.sort(key=lambda r: r.position)
                        _write_rejects(rf, rejects, result.table)
                        taken = sum(1 for r in refused if r.reason.startswith("duplicate id: already"))
                        n_loaded = int(keep.sum()) - len(refused)
                        done = batch.start + batch.count
                        conn.execute(
                            """UPDATE shrinkvec.loads SET records_done = %s, rows_loaded = rows_loaded + %s,
                                   rows_rejected = rows_rejected + %s, reject_bytes = %s, updated_at = now()
                               WHERE table_schema = %s AND table_name = %s AND source = %s""",
                            (done, n_loaded, len(rejects), rf.tell(), *key))
                    result.loaded += n_loaded
                    result.rejected += len(rejects)
                    result.taken_ids += taken
                    result.reasons.update(_reason_kind(r.reason) for r in rejects)
                    if progress is not None:
                        progress(done, reader.total, result.loaded)
            except ReadError as exc:
                raise LoadError(f"{exc}; {result.loaded_before + result.loaded} rows of it are in {result.table}, "
                                f"the load stops at record {done}") from None
            conn.execute("UPDATE shrinkvec.loads SET finished = true, updated_at = now() "
                         "WHERE table_schema = %s AND table_name = %s AND source = %s", key)
        result.records = done
        result.seconds = time.perf_counter() - t0
        conn.execute(sql.SQL("ANALYZE {}").format(ddl.table_ident(target.profile)))
    if isinstance(reader, NpyReader) and reader.ids is None and result.taken_ids:
        result.hints.append(f"{result.taken_ids} ids were already in {result.table}: without --ids a .npy file's ids "
                            "are its row numbers (0, 1, ...), so they collide with another file's; pass --ids ids.npy")
    if result.rejected == 0 and result.reject_file.exists() and result.reject_file.stat().st_size == 0:
        result.reject_file.unlink()
    return result
