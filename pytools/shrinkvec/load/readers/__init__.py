"""Streaming readers of embedding files for the loader: .npy, .parquet, .jsonl / .jsonl.gz (one vector a
record, `dense`) and .npz / .parquet / .jsonl of token vectors (multi-vector documents, `multi`); `base` has
what they share. `open_reader` picks the reader for a file by its name (and, for parquet and jsonl, by
whether its records carry one embedding or a list of them)."""

from __future__ import annotations

from pathlib import Path

from shrinkvec.load.readers import multi as rm
from shrinkvec.load.readers.base import (
    INT64_MAX,
    INT64_MIN,
    Batch,
    Reader,
    ReadError,
    Reject,
    bad_text,
    decide_dims,
    parse_record,
    wrong_dims,
)
from shrinkvec.load.readers.dense import JsonlReader, NpyReader, ParquetReader
from shrinkvec.load.readers.multi import JsonlDocsReader, NpzDocsReader, ParquetDocsReader, read_npz_docs

__all__ = [
    "INT64_MAX", "INT64_MIN", "Batch", "JsonlDocsReader", "JsonlReader", "NpyReader", "NpzDocsReader",
    "ParquetDocsReader", "ParquetReader", "ReadError", "Reader", "Reject", "bad_text", "decide_dims",
    "open_reader", "parse_record", "read_npz_docs", "wrong_dims",
]


def open_reader(path: Path, ids_path: Path | None = None) -> Reader:
    """The reader for a file, by its name: .npy, .parquet/.pq, .jsonl/.ndjson (optionally .gz)."""
    if not path.exists():
        raise ReadError(f"no such file: {path}")
    if not path.is_file():
        raise ReadError(f"not a file: {path}")
    name = path.name.lower()
    if ids_path is not None and not name.endswith(".npy"):
        raise ReadError("--ids applies to .npy input only (parquet, jsonl and npz carry their ids)")
    if name.endswith(".npy"):
        return NpyReader(path, ids_path)
    if name.endswith(".npz"):
        return rm.NpzDocsReader(path)
    if name.endswith((".parquet", ".pq")):
        return rm.ParquetDocsReader(path) if rm.parquet_is_multi(path) else ParquetReader(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        return rm.JsonlDocsReader(path) if rm.jsonl_is_multi(path) else JsonlReader(path)
    raise ReadError(f"unknown format of {path}: expected .npy, .parquet, .jsonl, .jsonl.gz or .npz (multi-vector)")
