"""Readers of multi-vector documents (late interaction: one vector a token), for `shrinkvec load`:

- `.npz` with `embeddings` (T, dims) float, every document's tokens one after the other, `offsets` (n+1)
  int (document i is rows offsets[i]:offsets[i+1]) and optionally `ids` (n) int (default: 0, 1, ...);
- `.jsonl` (optionally .gz) lines `{"id": 1, "embeddings": [[...], [...]], ...}`, other keys go to `payload`;
- `.parquet` with columns `id` (integer) and `embeddings` (list of lists of floats), others are payload.

A batch's `vectors` are the flat tokens of its valid documents and `offsets` (n+1) delimit them. Empty
documents, documents of more than codes.MAX_TOKENS tokens and tokens of another width are rejected
with one-line reasons; NaN and infinite values are rejected by the loader, as for single vectors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shrinkvec.codes import MAX_TOKENS
from shrinkvec.load.readers.base import (
    INT64_MAX,
    Batch,
    ReadError,
    Reject,
    arrow_sql_type,
    bad_text,
    check_id,
    parquet_batches,
    parquet_file,
)
from shrinkvec.load.readers.dense import JsonlReader

EMPTY = "empty document: no token vectors"


def too_many(n: int) -> str:
    """The reject reason of a document over the token limit."""
    return f"document has {n} tokens, more than the limit of {MAX_TOKENS}"


def _batch(start: int, count: int, dims: int, ids: list[int], docs: list[np.ndarray], positions: list[int],
           payload: dict[str, list[Any]], rejects: list[Reject]) -> Batch:
    """A Batch of documents: flat tokens plus offsets."""
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(d) for d in docs])
    x = np.concatenate(docs).astype(np.float32) if docs else np.zeros((0, dims), dtype=np.float32)
    return Batch(start, count, np.asarray(ids, dtype=np.int64), x, np.asarray(positions, dtype=np.int64),
                 payload, rejects, offsets=offsets)


def read_npz_docs(path: Path) -> list[npt.NDArray[np.float32]]:
    """Every document (or query) of an .npz of tokens + offsets, as (tokens, dims) float32 arrays."""
    r = NpzDocsReader(path)
    return [np.asarray(r.tokens[a:b], dtype=np.float32) for a, b in pairwise(r.offsets)]


class NpzDocsReader:
    """Documents as flat `embeddings` (T, dims), `offsets` (n+1) and optional `ids` (n)."""

    multi = True

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
                for key in ("embeddings", "offsets"):
                    if key not in keys:
                        raise ReadError(f"{path}: the .npz has no array {key!r} (it has: {', '.join(sorted(keys))})")
                self.tokens = z["embeddings"]
                self.offsets = z["offsets"]
                raw_ids = z["ids"] if "ids" in keys else None
        except (ValueError, OSError, EOFError) as exc:
            raise ReadError(f"{path}: not a readable .npz file ({exc})") from None
        if self.tokens.ndim != 2 or self.tokens.dtype.kind != "f":
            raise ReadError(f"{path}: embeddings must be a 2-D float array (tokens, dims), got "
                            f"{self.tokens.ndim}-D {self.tokens.dtype}")
        o = self.offsets
        if o.ndim != 1 or o.dtype.kind not in "iu" or len(o) < 1 or o[0] != 0 or (np.diff(o) < 0).any() \
                or o[-1] != len(self.tokens):
            raise ReadError(f"{path}: offsets must be a 1-D integer array from 0 to the token count "
                            f"{len(self.tokens)}, never decreasing")
        self.n = len(o) - 1
        if raw_ids is not None and (raw_ids.ndim != 1 or raw_ids.dtype.kind not in "iu" or len(raw_ids) != self.n):
            raise ReadError(f"{path}: ids must be a 1-D integer array of {self.n} ids (one a document)")
        self.ids = raw_ids
        self.total: int | None = self.n
        self.payload_columns: list[tuple[str, str]] = []

    def widths(self, sample: int) -> Counter[int]:
        return Counter({int(self.tokens.shape[1]): min(sample, self.n)}) if self.n else Counter()

    def batches(self, dims: int, skip: int, batch_size: int) -> Iterator[Batch]:
        if self.tokens.shape[1] != dims:
            raise ReadError(f"{self.path}: expected {dims} dimensions, got {self.tokens.shape[1]}")
        for start in range(skip, self.n, batch_size):
            end = min(start + batch_size, self.n)
            ids: list[int] = []
            docs: list[np.ndarray] = []
            positions: list[int] = []
            rejects: list[Reject] = []
            for i in range(start, end):
                rid = i if self.ids is None else int(self.ids[i])
                a, b = int(self.offsets[i]), int(self.offsets[i + 1])
                if rid > INT64_MAX:
                    rejects.append(Reject(i, rid, f"bad id {rid}: out of bigint range"))
                elif b == a:
                    rejects.append(Reject(i, rid, EMPTY))
                elif b - a > MAX_TOKENS:
                    rejects.append(Reject(i, rid, too_many(b - a)))
                else:
                    ids.append(rid)
                    docs.append(np.asarray(self.tokens[a:b], dtype=np.float32))
                    positions.append(i)
            yield _batch(start, end - start, dims, ids, docs, positions, {}, rejects)


def _doc_tokens(emb: Any, dims: int) -> np.ndarray | str:
    """A JSON document's tokens as a (tokens, dims) array, or the reject reason."""
    if not isinstance(emb, list):
        return "missing embeddings" if emb is None else "bad embeddings: not a list of token vectors"
    if not emb:
        return EMPTY
    if len(emb) > MAX_TOKENS:
        return too_many(len(emb))
    for j, t in enumerate(emb):
        if not isinstance(t, list):
            return f"bad embeddings: token {j} is not a list of numbers"
        if len(t) != dims:
            return f"wrong dimension: token {j} has {len(t)} dimensions, expected {dims}"
        if not set(map(type, t)) <= {int, float}:
            return f"bad embeddings: token {j} is not a list of numbers"
    with np.errstate(over="ignore"):  # overflow gives inf, rejected by the loader
        return np.array(emb, dtype=np.float32)


class JsonlDocsReader(JsonlReader):
    """One JSON object a line: {"id": int, "embeddings": [[numbers], ...], ...}; other keys go to `payload`."""

    multi = True

    @staticmethod
    def _width(obj: Any) -> int | None:
        """The width of the first token vector of a parsed line (None or 0 without one)."""
        emb = obj.get("embeddings") if isinstance(obj, dict) else None
        if isinstance(emb, list) and emb and isinstance(emb[0], list) and emb[0]:
            return len(emb[0])
        return None

    @staticmethod
    def _batch(start: int, count: int, dims: int, ids: list[int], docs: list[np.ndarray], positions: list[int],
               payload: list[Any], rejects: list[Reject]) -> Batch:
        return _batch(start, count, dims, ids, docs, positions, {"payload": payload}, rejects)

    @staticmethod
    def _embedding(obj: dict[str, Any], dims: int) -> np.ndarray | str:
        """The document's token vectors (tokens, dims), taken out of `obj`, or why it is rejected."""
        return _doc_tokens(obj.pop("embeddings", None), dims)


def jsonl_is_multi(path: Path) -> bool:
    """Whether a .jsonl file holds multi-vector documents: its first record has "embeddings"."""
    reader = JsonlReader(path)
    with reader._open() as f:
        for _, line in reader._lines(f, 0):
            if line.strip():
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    return False
                return isinstance(obj, dict) and "embeddings" in obj and "embedding" not in obj
    return False


class ParquetDocsReader:
    """Columns `id` (integer) and `embeddings` (list of lists of floats); other columns are payload."""

    multi = True

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        self.path = path
        self.file = parquet_file(path, ("id",))
        schema = self.file.schema_arrow
        et = schema.field("embeddings").type
        lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
        if not (any(f(et) for f in lists) and any(f(et.value_type) for f in lists)
                and (pa.types.is_floating(et.value_type.value_type) or pa.types.is_integer(et.value_type.value_type))):
            raise ReadError(f"{path}: column 'embeddings' must be a list of lists of floats, not {et}")
        self.total: int | None = int(self.file.metadata.num_rows)
        self.payload_columns = [(f.name, arrow_sql_type(f.type)) for f in schema if f.name not in ("id", "embeddings")]

    def widths(self, sample: int) -> Counter[int]:
        counts: Counter[int] = Counter()
        for rb in self.file.iter_batches(batch_size=min(sample, 10_000), columns=["embeddings"]):
            for doc in rb.column(0).to_pylist()[:sample]:
                if doc and doc[0]:
                    counts[len(doc[0])] += 1
            break
        return counts

    def batches(self, dims: int, skip: int, batch_size: int) -> Iterator[Batch]:
        for start, rb in parquet_batches(self.file, skip, batch_size):
            yield self._convert(rb, start, dims)

    def _convert(self, rb: Any, start: int, dims: int) -> Batch:
        ids_in = rb.column(rb.schema.get_field_index("id")).to_pylist()
        embs = rb.column(rb.schema.get_field_index("embeddings")).to_pylist()
        values = {name: rb.column(rb.schema.get_field_index(name)).to_pylist() for name, _ in self.payload_columns}
        ids: list[int] = []
        docs: list[np.ndarray] = []
        positions: list[int] = []
        payload: dict[str, list[Any]] = {name: [] for name in values}
        rejects: list[Reject] = []
        for j, (rid, emb) in enumerate(zip(ids_in, embs, strict=True)):
            pos = start + j
            bad = check_id(rid)
            if bad:
                rejects.append(Reject(pos, rid if bad != "missing id" else None, bad))
                continue
            if isinstance(emb, list) and any(t is not None and None in t for t in emb):
                rejects.append(Reject(pos, rid, "bad embeddings: a token has a null element"))
                continue
            toks = _doc_tokens([[float(x) for x in t] if isinstance(t, list) else t for t in emb]
                               if isinstance(emb, list) else emb, dims)
            if isinstance(toks, str):
                rejects.append(Reject(pos, rid, toks))
                continue
            why = next((f"{w} (column {name})" for name, typ in self.payload_columns if typ in ("text", "jsonb")
                        for w in [bad_text(values[name][j])] if w), None)
            if why:
                rejects.append(Reject(pos, rid, why))
                continue
            ids.append(rid)
            docs.append(toks)
            positions.append(pos)
            for name in values:
                payload[name].append(values[name][j])
        return _batch(start, rb.num_rows, dims, ids, docs, positions, payload, rejects)


def parquet_is_multi(path: Path) -> bool:
    """Whether a parquet file holds multi-vector documents: it has an `embeddings` column and no `embedding`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(path, pre_buffer=False).schema_arrow.names
    except (OSError, pa.ArrowException):
        return False
    return "embeddings" in names and "embedding" not in names
