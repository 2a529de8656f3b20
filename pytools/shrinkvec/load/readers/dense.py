"""Streaming readers of embedding files for the loader: .npy, .parquet, .jsonl / .jsonl.gz.

Every reader yields `Batch`es of at most `batch_size` input records, in file order, starting after
the first `skip` records (the resume point), with memory bounded by the batch size:
np.load(mmap_mode='r') slices (pages released after each batch), pyarrow iter_batches, line streaming.
A record's *position* is its row number (npy, parquet) or line number (jsonl), from 0.

Readers reject what they cannot parse (unparsable line, missing or bad id, missing or malformed
embedding, wrong dimension); the loader rejects NaN/Inf and duplicate ids.
"""

from __future__ import annotations

import gzip
import io
import json
import mmap
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shrinkvec.load.readers.base import (
    INT64_MAX,
    Batch,
    ReadError,
    Reject,
    arrow_sql_type,
    bad_text,
    parquet_batches,
    parquet_file,
    parse_record,
    wrong_dims,
)

# ---------------------------------------------------------------------------------------------
# .npy
# ---------------------------------------------------------------------------------------------


class NpyReader:
    """A 2-D float array; ids are row numbers, or the matching rows of an ids .npy."""

    def __init__(self, path: Path, ids_path: Path | None = None) -> None:
        self.path = path
        try:
            self.array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ReadError(f"{path}: not a readable .npy file ({exc})") from None
        if self.array.ndim != 2 or self.array.dtype.kind != "f":
            raise ReadError(f"{path}: expected a 2-D float array, got {self.array.ndim}-D {self.array.dtype}")
        self.ids: np.ndarray | None = None
        if ids_path is not None:
            if not ids_path.is_file():
                raise ReadError(f"no such file: {ids_path}")
            try:
                self.ids = np.load(ids_path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise ReadError(f"{ids_path}: not a readable .npy file ({exc})") from None
            if self.ids.ndim != 1 or self.ids.dtype.kind not in "iu":
                raise ReadError(f"{ids_path}: expected a 1-D integer array, got {self.ids.ndim}-D {self.ids.dtype}")
            if len(self.ids) != len(self.array):
                raise ReadError(f"{ids_path} has {len(self.ids)} ids for {len(self.array)} vectors")
        self.n = int(self.array.shape[0])
        self.total: int | None = self.n
        self.payload_columns: list[tuple[str, str]] = []

    def widths(self, sample: int) -> Counter[int]:
        return Counter({int(self.array.shape[1]): min(sample, self.n)}) if self.n else Counter()

    def _release(self) -> None:
        """Drop the pages read so far from this process (they stay in the page cache): flat RSS."""
        mm = getattr(self.array, "_mmap", None)
        if isinstance(mm, mmap.mmap) and hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_DONTNEED)

    def batches(self, dims: int, skip: int, batch_size: int) -> Iterator[Batch]:
        if self.array.shape[1] != dims:
            raise ReadError(f"{self.path}: expected {dims} dimensions, got {self.array.shape[1]}")
        for start in range(skip, self.n, batch_size):
            end = min(start + batch_size, self.n)
            x = np.array(self.array[start:end], dtype=np.float32)
            positions = np.arange(start, end, dtype=np.int64)
            if self.ids is None:
                ids = positions.copy()
            else:
                raw = np.asarray(self.ids[start:end])
                if raw.dtype == np.uint64 and (raw > INT64_MAX).any():
                    bad = np.nonzero(raw > INT64_MAX)[0]
                    keep = np.ones(len(raw), dtype=bool)
                    keep[bad] = False
                    rejects = [Reject(int(positions[i]), int(raw[i]), f"bad id {int(raw[i])}: out of bigint range")
                               for i in bad]
                    yield Batch(start, end - start, raw[keep].astype(np.int64), x[keep], positions[keep],
                                rejects=rejects)
                    self._release()
                    continue
                ids = raw.astype(np.int64)
            yield Batch(start, end - start, ids, x, positions)
            self._release()


# ---------------------------------------------------------------------------------------------
# .jsonl / .jsonl.gz
# ---------------------------------------------------------------------------------------------


class JsonlReader:
    """One JSON object a line: {"id": int, "embedding": [numbers], ...}; other keys go to `payload`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total: int | None = None
        self.payload_columns = [("payload", "jsonb")]
        try:
            with self._open() as f:
                f.read(1)
        except EOFError:
            raise ReadError(f"{path}: the compressed data ends early: the file is truncated") from None
        except zlib.error as exc:
            raise ReadError(f"{path}: corrupt compressed data ({exc})") from None
        except OSError as exc:
            raise ReadError(f"{path}: cannot read ({exc})") from None

    def _open(self) -> io.TextIOBase:
        if self.path.name.endswith(".gz"):
            return gzip.open(self.path, "rt", encoding="utf-8", errors="replace")
        return open(self.path, encoding="utf-8", errors="replace")

    def _lines(self, f: io.TextIOBase, first: int) -> Iterator[tuple[int, str]]:
        """(position, line) from `first` on; a corrupt or truncated file is a one-line ReadError."""
        pos = first - 1
        try:
            for pos, line in enumerate(f, first):
                yield pos, line
        except EOFError:
            raise ReadError(f"{self.path}: the compressed data ends after line {pos + 1}: the file is truncated") from None
        except (zlib.error, OSError) as exc:
            raise ReadError(f"{self.path}: corrupt compressed data after line {pos + 1} ({exc})") from None

    def widths(self, sample: int) -> Counter[int]:
        counts: Counter[int] = Counter()
        with self._open() as f:
            for pos, line in self._lines(f, 0):
                if pos >= sample:
                    break
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                width = self._width(obj)
                if width:
                    counts[width] += 1
        return counts

    @staticmethod
    def _width(obj: Any) -> int | None:
        """The embedding width of a parsed line (None or 0 without a non-empty embedding)."""
        if isinstance(obj, dict) and isinstance(obj.get("embedding"), list) and obj["embedding"]:
            return len(obj["embedding"])
        return None

    def batches(self, dims: int, skip: int, batch_size: int) -> Iterator[Batch]:
        with self._open() as f:
            lines = self._lines(f, 0)
            for _ in range(skip):
                if next(lines, None) is None:
                    return
            start = skip
            ids: list[int] = []
            vecs: list[np.ndarray] = []
            positions: list[int] = []
            payload: list[Any] = []
            rejects: list[Reject] = []
            count = 0
            for pos, line in lines:
                count += 1
                self._parse(pos, line, dims, ids, vecs, positions, payload, rejects)
                if count == batch_size:
                    yield self._batch(start, count, dims, ids, vecs, positions, payload, rejects)
                    start, count = pos + 1, 0
                    ids, vecs, positions, payload, rejects = [], [], [], [], []
            if count:
                yield self._batch(start, count, dims, ids, vecs, positions, payload, rejects)

    @staticmethod
    def _batch(start: int, count: int, dims: int, ids: list[int], vecs: list[np.ndarray], positions: list[int],
               payload: list[Any], rejects: list[Reject]) -> Batch:
        x = np.stack(vecs) if vecs else np.zeros((0, dims), dtype=np.float32)
        return Batch(start, count, np.asarray(ids, dtype=np.int64), x, np.asarray(positions, dtype=np.int64),
                     {"payload": payload}, rejects)

    def _parse(self, pos: int, line: str, dims: int, ids: list[int], vecs: list[np.ndarray], positions: list[int],
               payload: list[Any], rejects: list[Reject]) -> None:
        """One line: its record appended to the lists, or its reject to `rejects`."""
        record = parse_record(pos, line, rejects)
        if record is None:
            return
        rid, obj = record
        v = self._embedding(obj, dims)
        if isinstance(v, str):
            rejects.append(Reject(pos, rid, v))
            return
        why = bad_text(obj)
        if why:
            rejects.append(Reject(pos, rid, why))
            return
        ids.append(rid)
        vecs.append(v)
        positions.append(pos)
        payload.append(obj or None)

    @staticmethod
    def _embedding(obj: dict[str, Any], dims: int) -> np.ndarray | str:
        """The record's vector, taken out of `obj`, or why it is rejected."""
        emb = obj.pop("embedding", None)
        if not isinstance(emb, list):
            return "missing embedding" if emb is None else "bad embedding: not a list"
        if len(emb) != dims:
            return wrong_dims(dims, len(emb))
        # only JSON numbers: numpy would turn "4" into 4.0 and true into 1.0
        if not set(map(type, emb)) <= {int, float}:
            kinds = sorted({type(e).__name__ for e in emb} - {"int", "float"})
            return f"bad embedding: not a list of numbers (has {', '.join(kinds)})"
        try:
            with np.errstate(over="ignore"):  # overflow gives inf, rejected by the loader
                return np.array(emb, dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            return "bad embedding: not a list of numbers"


# ---------------------------------------------------------------------------------------------
# .parquet
# ---------------------------------------------------------------------------------------------


class ParquetReader:
    """Columns `id` (integer) and `embedding` (list of floats); other columns are payload."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path = path
        self.file = parquet_file(path, ("id", "embedding"))
        schema = self.file.schema_arrow
        et = schema.field("embedding").type
        if not (pa.types.is_list(et) or pa.types.is_large_list(et) or pa.types.is_fixed_size_list(et)) or not (
            pa.types.is_floating(et.value_type) or pa.types.is_integer(et.value_type)
        ):
            raise ReadError(f"{path}: column 'embedding' must be a list of floats, not {et}")
        self.total: int | None = int(self.file.metadata.num_rows)
        self.payload_columns = [
            (f.name, arrow_sql_type(f.type)) for f in schema if f.name not in ("id", "embedding")
        ]

    def widths(self, sample: int) -> Counter[int]:
        import pyarrow.compute as pc

        counts: Counter[int] = Counter()
        seen = 0
        for rb in self.file.iter_batches(batch_size=min(sample, 10_000), columns=["embedding"]):
            lengths = pc.list_value_length(rb.column(0)).drop_null().to_numpy(zero_copy_only=False)
            counts.update(int(n) for n in lengths[: sample - seen] if n > 0)
            seen += rb.num_rows
            if seen >= sample:
                break
        return counts

    def batches(self, dims: int, skip: int, batch_size: int) -> Iterator[Batch]:
        import pyarrow.compute as pc

        for start, rb in parquet_batches(self.file, skip, batch_size):
            yield self._convert(rb, start, dims, pc)

    def _convert(self, rb: Any, start: int, dims: int, pc: Any) -> Batch:
        n = rb.num_rows
        positions = np.arange(start, start + n, dtype=np.int64)
        id_col = rb.column(rb.schema.get_field_index("id"))
        id_valid = ~np.asarray(id_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        ids = np.asarray(id_col.fill_null(0).to_numpy(zero_copy_only=False))
        emb = rb.column(rb.schema.get_field_index("embedding"))
        emb_valid = ~np.asarray(emb.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = np.asarray(pc.list_value_length(emb).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        flat = np.asarray(emb.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)  # nulls -> NaN

        rejects: list[Reject] = []
        big = (ids > INT64_MAX) if ids.dtype == np.uint64 else np.zeros(n, dtype=bool)
        ok = id_valid & emb_valid & (lengths == dims) & ~big
        for i in np.nonzero(~ok)[0]:
            rid = int(ids[i]) if id_valid[i] else None
            if not id_valid[i]:
                reason = "missing id"
            elif big[i]:
                reason = f"bad id {rid}: out of bigint range"
            elif not emb_valid[i]:
                reason = "missing embedding"
            else:
                reason = wrong_dims(dims, int(lengths[i]))
            rejects.append(Reject(int(positions[i]), rid, reason))
        shaped = ok.copy()  # rows whose embedding has the right shape, before the payload checks
        values = {name: rb.column(rb.schema.get_field_index(name)).to_pylist() for name, _ in self.payload_columns}
        for name, typ in self.payload_columns:
            if typ not in ("text", "jsonb"):
                continue
            for i in np.nonzero(ok)[0]:
                why = bad_text(values[name][i])
                if why:
                    ok[i] = False
                    rejects.append(Reject(int(positions[i]), int(ids[i]), f"{why} (column {name})"))
        x = flat[np.repeat(shaped, lengths)].reshape(-1, dims)[ok[shaped]]
        payload = {name: [v for v, keep in zip(vals, ok, strict=True) if keep] for name, vals in values.items()}
        return Batch(start, n, ids[ok].astype(np.int64), x, positions[ok], payload, rejects)
