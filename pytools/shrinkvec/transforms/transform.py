"""Transforms: the maps applied to a vector before its codes are computed, and their catalog records.

A transform is stored once in `shrinkvec.transforms` and never changed (a trigger rejects UPDATE, and
DELETE while a profile uses it). It belongs to the table it was fitted on (`relation`): only that
table's owner stores one and only that table's profiles use it (row-level security), and `save` and
`load` check its values against its checksum, so a transform cannot be swapped under a table's owner.
The server applies it with the C function
``shrinkvec.transform_vector(v, name)``; this module is its numpy reference, bit for bit:

    y = v - center                      (float32, elementwise; skipped without a center)
    z_i = sum_j matrix[i, j] * y_j       (float32, j ascending, each product rounded, no FMA;
                                         z = y without a matrix)
    h_k = max(sum_j w1[k, j] * z_j + b1_k, 0)                   (the adaptor's residual MLP,
    out_i = z_i + (sum_k w2[i, k] * h_k + b2_i)                 skipped without one)

Sums start at 0 and add one product at a time in index order, in float32, exactly as the C loop
does (compiled with -ffp-contract=off), so codes computed by the loader in numpy equal the codes
the table's trigger computes in SQL. `apply_fast` is the BLAS version (float32 rounding may differ
in the last bit) for fitting and measuring, never for stored codes.

Kinds: `center` (center only), `pca` (center + orthogonal rotation), `adaptor` (center + rotation +
residual MLP: the Matryoshka-Adaptor, see adaptor.py). The full vector is never changed: reranking
stays on the raw column.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.rows import dict_row

from shrinkvec.errors import ShrinkvecError

FloatArray = npt.NDArray[np.float32]
TransformKind = Literal["center", "pca", "adaptor"]
KINDS: tuple[TransformKind, ...] = ("center", "pca", "adaptor")
ROWS_PER_CHUNK = 1024  # rows per step of the exact reference (keeps the accumulator in cache)


class TransformError(ShrinkvecError, ValueError):
    """A transform that cannot be built, stored, found or applied (the message names the problem)."""


@dataclass(frozen=True)
class Transform:
    """A stored transform: optional center, optional matrix (dims_out x dims_in), optional residual MLP."""

    name: str
    kind: TransformKind
    dims_in: int
    dims_out: int
    center: FloatArray | None = field(default=None, compare=False)
    matrix: FloatArray | None = field(default=None, compare=False)
    w1: FloatArray | None = field(default=None, compare=False)  # hidden x dims_out
    b1: FloatArray | None = field(default=None, compare=False)  # hidden
    w2: FloatArray | None = field(default=None, compare=False)  # dims_out x hidden
    b2: FloatArray | None = field(default=None, compare=False)  # dims_out
    version: int = 1
    source: str = ""
    fit: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def hidden(self) -> int | None:
        return None if self.w1 is None else int(self.w1.shape[0])

    def check(self) -> None:
        """Shapes consistent and every value finite, or TransformError."""
        why = self._shape_problem()
        if why is None:
            why = next((f"{key} has NaN or infinite values" for key in ("center", "matrix", "w1", "b1", "w2", "b2")
                        if getattr(self, key) is not None and not np.isfinite(getattr(self, key)).all()), None)
        if why is not None:
            raise TransformError(f"transform {self.name!r}: {why}")

    def _shape_problem(self) -> str | None:
        """What is wrong with the arrays' shapes, or None."""
        if self.matrix is None and self.dims_out != self.dims_in:
            return f"without a matrix dims_out must equal dims_in ({self.dims_in}), not {self.dims_out}"
        if self.center is not None and self.center.shape != (self.dims_in,):
            return f"center has shape {self.center.shape}, expected ({self.dims_in},)"
        if self.matrix is not None and self.matrix.shape != (self.dims_out, self.dims_in):
            return f"matrix has shape {self.matrix.shape}, expected ({self.dims_out}, {self.dims_in})"
        mlp = (self.w1, self.b1, self.w2, self.b2)
        if any(a is None for a in mlp) and not all(a is None for a in mlp):
            return "the MLP needs all of w1, b1, w2, b2"
        if self.w1 is None:
            return None
        h = self.w1.shape[0]
        want = {"w1": (h, self.dims_out), "b1": (h,), "w2": (self.dims_out, h), "b2": (self.dims_out,)}
        return next((f"{key} has shape {getattr(self, key).shape}, expected {shape}"
                     for key, shape in want.items() if getattr(self, key).shape != shape), None)

    def checksum(self) -> str:
        """sha256 of the kind, shapes and every float32 value (names a version by its content)."""
        h = hashlib.sha256(f"{self.kind}:{self.dims_in}:{self.dims_out}".encode())
        for key in ("center", "matrix", "w1", "b1", "w2", "b2"):
            a = getattr(self, key)
            h.update(key.encode())
            if a is not None:
                h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
        return h.hexdigest()

    # -----------------------------------------------------------------------------------------
    # Application
    # -----------------------------------------------------------------------------------------

    def apply(self, x: npt.ArrayLike) -> FloatArray:
        """The exact reference (the C function's float32 arithmetic, bit for bit); x is (n, dims_in) or (dims_in,)."""
        a = np.asarray(x, dtype=np.float32)
        one = a.ndim == 1
        a = np.atleast_2d(a)
        if a.shape[1] != self.dims_in:
            raise TransformError(f"transform {self.name!r} expects {self.dims_in} dimensions, not {a.shape[1]}")
        out = np.empty((a.shape[0], self.dims_out), dtype=np.float32)
        mt = None if self.matrix is None else np.ascontiguousarray(self.matrix.T)
        w1t = None if self.w1 is None else np.ascontiguousarray(self.w1.T)
        w2t = None if self.w2 is None else np.ascontiguousarray(self.w2.T)
        for s in range(0, a.shape[0], ROWS_PER_CHUNK):
            y = a[s:s + ROWS_PER_CHUNK]
            if self.center is not None:
                y = y - self.center
            z = y if mt is None else _seq_matmul(y, mt)
            if w1t is not None:
                assert self.b1 is not None and self.b2 is not None and w2t is not None
                pre = _seq_matmul(z, w1t) + self.b1
                h = np.where(pre > 0, pre, np.float32(0.0)).astype(np.float32)
                z = z + (_seq_matmul(h, w2t) + self.b2)
            out[s:s + ROWS_PER_CHUNK] = z
        return out[0] if one else out

    def apply_fast(self, x: npt.ArrayLike) -> FloatArray:
        """The same map with BLAS (float32 results may differ from `apply` in the last bit)."""
        a = np.asarray(x, dtype=np.float32)
        if self.center is not None:
            a = a - self.center
        if self.matrix is not None:
            a = a @ self.matrix.T
        if self.w1 is not None:
            assert self.b1 is not None and self.w2 is not None and self.b2 is not None
            h = np.maximum(a @ self.w1.T + self.b1, 0)
            a = a + (h @ self.w2.T + self.b2)
        return a.astype(np.float32, copy=False)


def _seq_matmul(x: FloatArray, mt: FloatArray) -> FloatArray:
    """x @ mt with float32 sums over j in ascending order, one rounded product at a time (no BLAS)."""
    acc = np.zeros((x.shape[0], mt.shape[1]), dtype=np.float32)
    tmp = np.empty_like(acc)
    for j in range(mt.shape[0]):
        np.multiply(x[:, j:j + 1], mt[j], out=tmp)
        acc += tmp
    return acc


# ---------------------------------------------------------------------------------------------
# Catalog records
# ---------------------------------------------------------------------------------------------

def _arr(a: np.ndarray | None) -> list[float] | None:
    return None if a is None else np.asarray(a, dtype=np.float32).ravel().tolist()


def _np(v: list[float] | None, shape: tuple[int, ...] | None = None) -> FloatArray | None:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float32)
    return a.reshape(shape) if shape is not None else a


def next_version(conn: psycopg.Connection, relation: str) -> int:
    """1 + the highest version of the transforms fitted on table `relation` (a qualified name)."""
    row = conn.execute("SELECT coalesce(max(version), 0) FROM shrinkvec.transforms "
                       "WHERE relation = pg_catalog.to_regclass(%s)", (relation,)).fetchone()
    return int(row[0]) + 1  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)


def make_name(source: str, kind: str, version: int, checksum: str) -> str:
    """Transform names carry their content hash, so a name always means the same numbers."""
    return f"{source}:{kind}:v{version}:{checksum[:12]}"


def save(conn: psycopg.Connection, t: Transform, relation: str | None = None) -> None:
    """Insert the transform (in the caller's transaction), fitted on table `relation` (a qualified name;
    only its owner may store it, and only its profiles may use it). A stored transform of the same name
    is kept only when it is this very transform of this very table: anything else is an error, so a
    transform can never be swapped under a table's owner (see verify)."""
    t.check()
    row = conn.execute(
        """INSERT INTO shrinkvec.transforms (name, relation, kind, dims_in, dims_out, matrix, center, hidden,
               w1, b1, w2, b2, version, source, checksum, fit)
           VALUES (%s, pg_catalog.to_regclass(%s), %s, %s, %s, %s::real[], %s::real[], %s, %s::real[], %s::real[],
                   %s::real[], %s::real[], %s, %s, %s, %s::jsonb)
           ON CONFLICT (name) DO NOTHING RETURNING name""",
        (t.name, relation, t.kind, t.dims_in, t.dims_out, _arr(t.matrix), _arr(t.center), t.hidden, _arr(t.w1),
         _arr(t.b1), _arr(t.w2), _arr(t.b2), t.version, t.source, t.checksum(), json.dumps(t.fit)),
    ).fetchone()
    if row is None:
        verify(conn, t, relation)


def verify(conn: psycopg.Connection, t: Transform, relation: str | None) -> None:
    """Check that the stored transform `t.name` is exactly t (same numbers, same checksum) and belongs to
    `relation`; TransformError naming the difference otherwise."""
    with conn.cursor(row_factory=dict_row) as cur:
        r = cur.execute(
            """SELECT t.checksum, t.relation IS NOT DISTINCT FROM pg_catalog.to_regclass(%s) AS same_table
               FROM shrinkvec.transforms t WHERE t.name = %s""", (relation, t.name)).fetchone()
    if r is None:
        raise TransformError(f"transform {t.name!r} exists but is not visible to this role: "
                             "it was stored for another table (choose another name or version)")
    if not r["same_table"]:
        raise TransformError(f"transform {t.name!r} is stored for another table than {relation}: refusing to use it")
    if r["checksum"] != t.checksum():
        raise TransformError(f"transform {t.name!r} in the catalog differs from the one fitted "
                             f"(checksum {str(r['checksum'])[:12]}, fitted {t.checksum()[:12]}): refusing to use it")
    load(conn, t.name)  # and its stored values match its checksum


def load(conn: psycopg.Connection, name: str) -> Transform:
    """The stored transform `name`, or TransformError."""
    with conn.cursor(row_factory=dict_row) as cur:
        r = cur.execute("SELECT * FROM shrinkvec.transforms WHERE name = %s", (name,)).fetchone()
    if r is None:
        raise TransformError(f"transform {name!r} does not exist")
    di, do, h = r["dims_in"], r["dims_out"], r.get("hidden")
    t = Transform(
        name=r["name"], kind=r["kind"], dims_in=di, dims_out=do,
        center=_np(r.get("center")), matrix=_np(r["matrix"], (do, di)),
        w1=_np(r.get("w1"), (h, do) if h else None), b1=_np(r.get("b1")),
        w2=_np(r.get("w2"), (do, h) if h else None), b2=_np(r.get("b2")),
        version=r.get("version") or 1, source=r.get("source") or "", fit=r.get("fit") or {},
    )
    if r.get("checksum") and r["checksum"] != t.checksum():
        raise TransformError(f"transform {name!r}: its stored values do not match its checksum "
                             f"({t.checksum()[:12]} against {str(r['checksum'])[:12]}): refusing to use it")
    return t
