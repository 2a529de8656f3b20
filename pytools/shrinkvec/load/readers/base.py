"""What every reader shares: the batches and rejects they yield, the Reader protocol, and the checks of
ids, payload text and widths that the single- and multi-vector readers both apply."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from shrinkvec.errors import ShrinkvecError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ReadError(ShrinkvecError, ValueError):
    """The file cannot be read at all (wrong path, unknown format, wrong layout): one-line message."""


@dataclass
class Reject:
    """An input record that is not loaded, and why."""

    position: int
    id: Any
    reason: str


@dataclass
class Batch:
    """Valid rows of a run of input records [start, start + count), and the rejected ones."""

    start: int
    count: int
    ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    positions: npt.NDArray[np.int64]
    payload: dict[str, list[Any]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    # multi-vector documents (readers.multi): `vectors` are the flat tokens, document i rows offsets[i]:offsets[i+1]
    offsets: npt.NDArray[np.int64] | None = None


class Reader(Protocol):
    path: Path
    total: int | None
    payload_columns: list[tuple[str, str]]

    def widths(self, sample: int) -> Counter[int]:
        """How many of the first `sample` records have each embedding width (non-empty embeddings)."""
        ...

    def batches(self, dims: int, skip: int, batch_size: int) -> Iterator[Batch]: ...


def wrong_dims(expected: int, got: int) -> str:
    return f"wrong dimension: expected {expected} dimensions, got {got}"


def check_id(value: Any) -> str | None:
    """None when value is a usable bigint id, else the reject reason."""
    if value is None:
        return "missing id"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"bad id {value!r}: ids must be integers"
    if not INT64_MIN <= value <= INT64_MAX:
        return f"bad id {value}: out of bigint range"
    return None


def parse_record(pos: int, line: str, rejects: list[Reject]) -> tuple[int, dict[str, Any]] | None:
    """A .jsonl line's id and the rest of its object; None for a blank line, or for a line that is no JSON
    object or has no usable id (its reject is appended)."""
    if not line.strip():
        return None  # a blank line is no record
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        rejects.append(Reject(pos, None, f"unparsable line: {exc}"))
        return None
    if not isinstance(obj, dict):
        rejects.append(Reject(pos, None, "unparsable line: not a JSON object"))
        return None
    rid = obj.pop("id", None)
    bad = check_id(rid)
    if bad:
        rejects.append(Reject(pos, rid if bad != "missing id" else None, bad))
        return None
    return rid, obj


def bad_text(value: Any) -> str | None:
    """Why PostgreSQL cannot store a payload value (a string, or a JSON document's keys and strings),
    or None: text cannot hold NUL, and a lone surrogate is not Unicode (it cannot be encoded as UTF-8)."""
    if isinstance(value, str):
        return _bad_string(value)
    if isinstance(value, dict):
        return next(filter(None, (bad_text(k) or bad_text(v) for k, v in value.items())), None)
    if isinstance(value, list):
        return next(filter(None, map(bad_text, value)), None)
    if isinstance(value, float) and not np.isfinite(value):
        return f"bad payload: {value} is not a JSON number"
    return None


def _bad_string(value: str) -> str | None:
    if "\x00" in value:
        return "bad payload: a string contains \\u0000, which PostgreSQL text and jsonb cannot store"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"bad payload: a string contains the lone surrogate \\u{ord(value[exc.start]):04x}, which is not valid Unicode"
    return None


def decide_dims(widths: Counter[int], sample: int) -> tuple[int, str]:
    """The width of a new table's vectors: the most common width among the first records (ties: the
    first seen), and a sentence saying so."""
    if not widths:
        raise ReadError("no record among the first ones has an embedding")
    (dims, n), *others = widths.most_common()
    if others and others[0][1] == n:
        raise ReadError(f"the first {sample} records have as many embeddings of width {dims} as of width "
                        f"{others[0][0]}: pass --dims")
    if not others:
        return dims, f"{dims} dimensions"
    total = sum(widths.values())
    rest = ", ".join(f"{c} of width {w}" for w, c in others[:3]) + (", ..." if len(others) > 3 else "")
    return dims, (f"{dims} dimensions, the most common width among the first {total} embeddings "
                  f"({n}; {rest}: rows of other widths are rejected; --dims decides it)")


def arrow_sql_type(t: Any) -> str:
    """The column type of a parquet payload column of arrow type `t`."""
    import pyarrow as pa

    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    return "jsonb"


def parquet_file(path: Path, required: tuple[str, ...]) -> Any:
    """A pyarrow ParquetFile that has the columns `required` and an integer `id`; ReadError otherwise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer=False: with pre-buffering, iter_batches keeps every row group it has read
        # cached until the file is closed (memory grows with the file).
        file = pq.ParquetFile(path, pre_buffer=False)
    except (OSError, pa.ArrowException) as exc:
        raise ReadError(f"{path}: not a readable parquet file ({exc})") from None
    schema = file.schema_arrow
    for col in required:
        if col not in schema.names:
            raise ReadError(f"{path}: parquet file has no column {col!r} (columns: {', '.join(schema.names)})")
    if not pa.types.is_integer(schema.field("id").type):
        raise ReadError(f"{path}: column 'id' must be integers, not {schema.field('id').type}")
    return file


def parquet_batches(file: Any, skip: int, batch_size: int) -> Iterator[tuple[int, Any]]:
    """(position of its first record, record batch) of a parquet file in batches of `batch_size` records,
    from record `skip` on."""
    seen, start = 0, skip
    for rb in file.iter_batches(batch_size=batch_size):
        n = rb.num_rows
        if seen + n <= skip:
            seen += n
            continue
        if seen < skip:
            rb = rb.slice(skip - seen)
        seen += n
        yield start, rb
        start += rb.num_rows
