"""Binary COPY rows of a multi-vector (maxsim) table: the id, the document's tokens as vector[] (array
binary format, element type pgvector's vector) and every code (multibit binary form), computed in numpy
(Profile.encode_docs), plus the payload fields."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from shrinkvec import codes
from shrinkvec.load.copy_rows import COPY_SIGNATURE, COPY_TRAILER, _field
from shrinkvec.load.readers import Batch
from shrinkvec.profile import Profile


def _tokens_field(tokens: np.ndarray, vector_oid: int) -> bytes:
    """A (tokens, dims) array as a vector[] field: the length word, then array_send's form."""
    n, d = tokens.shape
    elems = np.empty(n, dtype=[("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("x", ">f4", (d,))])
    elems["len"] = 4 + 4 * d
    elems["dim"] = d
    elems["unused"] = 0
    elems["x"] = tokens
    body = struct.pack(">iiIii", 1, 0, vector_oid, n, 1) + elems.tobytes()
    return struct.pack(">i", len(body)) + body


def copy_docs(p: Profile, batch: Batch, keep: np.ndarray, payload_cols: list[tuple[str, str]],
              vector_oid: int) -> list[Any]:
    """A whole COPY BINARY stream (signature, tuples, trailer) of the kept documents of a batch."""
    assert batch.offsets is not None
    idx = np.nonzero(keep)[0]
    sel = [np.arange(batch.offsets[i], batch.offsets[i + 1]) for i in idx]
    flat = batch.vectors[np.concatenate(sel)] if sel else batch.vectors[:0]
    offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in sel])
    encoded = p.encode_docs(flat, offsets)
    nfields = struct.pack(">h", 2 + len(p.codes) + len(payload_cols))
    columns = [(batch.payload[name], typ) for name, typ in payload_cols]
    parts = [COPY_SIGNATURE]
    for j, i in enumerate(idx):
        parts += [nfields, struct.pack(">iq", 8, int(batch.ids[i])),
                  _tokens_field(flat[offsets[j]:offsets[j + 1]], vector_oid)]
        for c in p.codes:
            data = codes.multibit_send(encoded[c.column][j], c.length)
            parts += [struct.pack(">i", len(data)), data]
        parts.extend(_field(values[i], typ) for values, typ in columns)
    parts.append(COPY_TRAILER)
    return [b"".join(parts)]
