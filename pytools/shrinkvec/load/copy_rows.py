"""Binary COPY rows of a profiled table, built in numpy: the id, the vector and every code of a batch
(Profile.encode, each kind's COPY fields) as one record array, plus the payload fields."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from shrinkvec.load.readers import Batch
from shrinkvec.profile import Profile

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = b"\xff\xff"


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
    for i, (c, code) in enumerate(zip(p.codes, p.encode(x).values(), strict=True)):
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
        return [COPY_SIGNATURE, memoryview(rows.view(np.uint8).data), COPY_TRAILER]
    fixed = memoryview(rows.view(np.uint8).data)
    size = rows.dtype.itemsize
    idx = np.nonzero(keep)[0]
    parts = [COPY_SIGNATURE]
    columns = [(batch.payload[name], typ) for name, typ in payload_cols]
    for j, i in enumerate(idx):
        parts.append(bytes(fixed[j * size:(j + 1) * size]))
        parts.extend(_field(values[i], typ) for values, typ in columns)
    parts.append(COPY_TRAILER)
    return [b"".join(parts)]


