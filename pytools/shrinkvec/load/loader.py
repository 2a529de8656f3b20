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
sent in the same COPY; the table's trigger checks them against the SQL functions (see sql/ddl.py).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import psycopg
from psycopg import sql

from shrinkvec.load.copy_multi import copy_docs
from shrinkvec.load.copy_rows import copy_data
from shrinkvec.load.readers import Batch, NpyReader, Reader, ReadError, Reject, open_reader
from shrinkvec.load.setup import LoadError, LoadOptions, Target, prepare_target
from shrinkvec.sql import catalog, connection, ddl

__all__ = ["LoadError", "LoadOptions", "LoadResult", "default_reject_file", "load"]

STAGE_TABLE = "shrinkvec_load_stage"


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
# The load
# ---------------------------------------------------------------------------------------------


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


def _check(batch: Batch, t: Target) -> tuple[Batch, np.ndarray, list[Reject], list[Any]]:
    """Validate a batch (NaN/Inf, duplicate ids within it) and build its COPY data with every code."""
    rejects = list(batch.rejects)
    finite = np.isfinite(batch.vectors.sum(axis=1, dtype=np.float64))  # float64 sums of float32 cannot overflow
    what = "embedding"
    if batch.offsets is not None:  # multi-vector documents: a document is finite when all its tokens are
        what = "embeddings"
        keep = np.array([finite[a:b].all() for a, b in pairwise(batch.offsets)], dtype=bool)
    else:
        keep = finite
    for i in np.nonzero(~keep)[0]:
        rows = batch.vectors[i] if batch.offsets is None else batch.vectors[batch.offsets[i]:batch.offsets[i + 1]]
        reason = f"NaN value in {what}" if np.isnan(rows).any() else f"infinite value in {what}"
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
    data = _copy_data(t, batch, keep) if keep.any() else []
    return batch, keep, rejects, data


def _copy_data(t: Target, batch: Batch, keep: np.ndarray) -> list[Any]:
    """The COPY BINARY stream of the kept rows: single vectors (copy_rows) or documents (copy_multi)."""
    if batch.offsets is not None:
        return copy_docs(t.profile, batch, keep, t.payload_cols, t.vector_oid)
    return copy_data(t.profile, batch, keep, t.payload_cols)


def _prefetched(batches: Iterator[Batch], t: Target) -> Iterator[tuple[Batch, np.ndarray, list[Reject], list[Any]]]:
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


def _copy_batch(conn: psycopg.Connection, t: Target, batch: Batch, keep: np.ndarray, data: list[Any]) -> list[Reject]:
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
            rejects += _copy_batch(conn, t, batch, half, _copy_data(t, batch, half))
        return rejects


def _copy_rows(conn: psycopg.Connection, t: Target, batch: Batch, keep: np.ndarray, data: list[Any]) -> list[Reject]:
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
            for i, pos in zip(batch.ids[keep], batch.positions[keep], strict=True) if int(i) not in inserted]


def default_reject_file(path: Path, opts: LoadOptions) -> Path:
    """FILE.TABLE.rejects.jsonl (FILE.SCHEMA.TABLE outside public), one per input file and table, next to the
    input file; in the user's data dir (e.g. ~/.local/share/shrinkvec/rejects/) when the input's directory
    cannot be written (a read-only mount, an installed package's data)."""
    table = opts.table if opts.schema == "public" else f"{opts.schema}.{opts.table}"
    name = f"{path.name}.{re.sub(r'[^A-Za-z0-9_.-]', '_', table)}.rejects.jsonl"
    beside = path.absolute().parent
    if os.access(beside, os.W_OK | os.X_OK):
        return beside / name
    fallback = Path(platformdirs.user_data_dir("shrinkvec")) / "rejects"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback / name


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
    _check_reject_file(result.reject_file)  # type: ignore[arg-type]  # reject_file is set above
    catalog.migrate(dsn)
    with connection.connect(dsn, autocommit=True) as conn:
        _lock(conn, opts, source, path)
        target = prepare_target(conn, reader, opts)
        result.created_table = target.created
        if target.created:
            result.notes.append(f"created table {result.table} with {target.dims_note}")
        with conn.transaction():
            state = _progress_row(conn, opts, source, result.reject_file)  # type: ignore[arg-type]  # reject_file is set above
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
                    done = _commit_batch(conn, target, rf, (batch, keep, rejects, data), key, result)
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
    _finish(reader, result)
    return result


def _lock(conn: psycopg.Connection, opts: LoadOptions, source: Path, path: Path) -> None:
    """The session lock of this file's load into this table: LoadError when another load holds it."""
    lock = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                        (f"shrinkvec.load\x1f{opts.schema}\x1f{opts.table}\x1f{source}",)).fetchone()[0]  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    if not lock:
        raise LoadError(f"another shrinkvec load of {path} into {opts.table} is running")


def _commit_batch(conn: psycopg.Connection, t: Target, rf: Any,
                  checked: tuple[Batch, np.ndarray, list[Reject], list[Any]], key: tuple[str, str, str],
                  result: LoadResult) -> int:
    """One checked batch in one transaction: its valid rows copied, its rejects written (sorted by position)
    and the progress record advanced; then counted in `result`. Returns the records done."""
    batch, keep, rejects, data = checked
    with conn.transaction():
        refused = _copy_batch(conn, t, batch, keep, data) if keep.any() else []
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
    return done


def _finish(reader: Reader, result: LoadResult) -> None:
    """The hint about colliding row-number ids, and no empty reject file left behind."""
    if isinstance(reader, NpyReader) and reader.ids is None and result.taken_ids:
        result.hints.append(f"{result.taken_ids} ids were already in {result.table}: without --ids a .npy file's ids "
                            "are its row numbers (0, 1, ...), so they collide with another file's; pass --ids ids.npy")
    if result.rejected == 0 and result.reject_file is not None and result.reject_file.exists() \
            and result.reject_file.stat().st_size == 0:
        result.reject_file.unlink()
