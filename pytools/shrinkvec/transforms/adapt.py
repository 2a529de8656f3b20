"""`shrinkvec adapt`: fit a transform on a sample of a profiled table, store it, re-encode, switch.

1. Sample up to `sample` vectors of the table (TABLESAMPLE ... REPEATABLE(seed): deterministic).
2. Fit: `center` (per-dim mean or median), `pca` (centre + rotation by variance), `adaptor`
   (PCA + the Matryoshka-Adaptor's residual MLP; with `labels`, a ranking loss on labelled pairs).
3. Store the transform in shrinkvec.transforms: versioned per column, named with its content hash,
   immutable from then on.
4. Re-encode the code columns beside the old ones and switch the profile atomically (reencode.py);
   an interrupted run is resumed by running the command again.

One adapt runs per profile at a time (a session advisory lock).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import psycopg
from psycopg import sql

from shrinkvec import codes
from shrinkvec.errors import ShrinkvecError
from shrinkvec.profile import Profile
from shrinkvec.sql import catalog, connection, ddl, profile_check
from shrinkvec.transforms import fitting, reencode
from shrinkvec.transforms import transform as transforms
from shrinkvec.transforms.adaptor import AdaptorConfig, AdaptorError
from shrinkvec.transforms.transform import Transform, TransformError

Method = Literal["center", "pca", "adaptor"]
METHODS: tuple[Method, ...] = ("center", "pca", "adaptor")


class AdaptError(ShrinkvecError, RuntimeError):
    """adapt cannot start or continue (the message is one line naming the problem)."""


@dataclass
class AdaptOptions:
    table: str
    method: Method
    schema: str = "public"
    column: str | None = None
    sample: int = 100_000
    labels: Path | None = None
    queries: Path | None = None
    statistic: Literal["mean", "median"] = "mean"
    batch_size: int = 2000
    restart: bool = False
    seed: int = 0
    vacuum: Literal["analyze", "full", "none"] = "analyze"
    adaptor: AdaptorConfig = field(default_factory=AdaptorConfig)


@dataclass
class AdaptResult:
    transform: str
    resumed: bool
    sample: int
    rows: int
    fit: dict[str, object]

    def summary(self) -> str:
        how = "resumed the re-encode to" if self.resumed else f"fitted on {self.sample} vectors:"
        return f"{how} transform {self.transform}; re-encoded {self.rows} rows; the profile uses it now"


@dataclass
class Hooks:
    """Progress callbacks (the CLI draws bars with them)."""

    stage: Callable[[str], None] = lambda msg: None
    train: Callable[[int, int, float], None] | None = None
    rows: Callable[[int, int], None] = lambda done, total: None  # (rows done, total)


def _profile(conn: psycopg.Connection, opts: AdaptOptions) -> Profile:
    if not catalog.table_exists(conn, opts.table, opts.schema):
        raise AdaptError(f"table {opts.schema}.{opts.table} does not exist")
    p = catalog.find_profile(conn, opts.table, opts.schema, opts.column)
    if p is None:
        raise AdaptError(f"table {opts.schema}.{opts.table} has no shrinkvec profile: load it with shrinkvec load "
                         "or add codes first")
    profile_check.check_profile(conn, p)  # adapt reads and rewrites the table by its profile's columns
    return p


def _vec(o: object) -> np.ndarray:
    """A pgvector value as float32 numpy (the adapter returns ndarray or Vector, by version and format)."""
    to_numpy = getattr(o, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy is not None else o, dtype=np.float32)


def sample_vectors(conn: psycopg.Connection, p: Profile, n: int, seed: int) -> np.ndarray:
    """Up to n vectors of the table, a deterministic sample for a given seed and table."""
    connection.register_vector(conn)
    t, vec = ddl.table_ident(p), sql.Identifier(p.vector_column)
    total = int(conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(t, vec)).fetchone()[0])  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    if total <= n:
        q = sql.SQL("SELECT {v} FROM {t} WHERE {v} IS NOT NULL ORDER BY {id}").format(
            v=vec, t=t, id=sql.Identifier(p.id_column))
        rows = conn.cursor(binary=True).execute(q).fetchall()
    else:
        pct = min(100.0, 100.0 * n / total * 1.2)
        q = sql.SQL("SELECT {v} FROM {t} TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s) WHERE {v} IS NOT NULL LIMIT %s").format(
            v=vec, t=t)
        rows = conn.cursor(binary=True).execute(q, (pct, seed, n)).fetchall()
    if not rows:
        return np.zeros((0, p.dims), dtype=np.float32)
    return np.stack([_vec(r[0]) for r in rows])


def read_labels(conn: psycopg.Connection, p: Profile, labels: Path,
                queries: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Labelled (query vectors, document vectors) pairs from a qrels file.

    Lines `query_id doc_id [relevance]` (whitespace, comma or tab separated; TREC's
    `qid 0 docid rel` too; a header line is skipped), or JSON lines {"query": .., "doc": .., "relevance": ..}.
    Pairs with relevance <= 0 are dropped. Query ids index the rows of `queries` (.npy) when given,
    else they are ids of the table, like the doc ids.
    """
    triples = [t for t in _read_triples(labels) if t[2] > 0]
    if not triples:
        raise AdaptError(f"{labels}: no labelled pair with relevance > 0")
    connection.register_vector(conn)
    ids = sorted({t[1] for t in triples} | ({t[0] for t in triples} if queries is None else set()))
    q = sql.SQL("SELECT {id}, {v} FROM {t} WHERE {id} OPERATOR(pg_catalog.=) ANY(%s)").format(
        id=sql.Identifier(p.id_column), v=sql.Identifier(p.vector_column), t=ddl.table_ident(p))
    vecs = {int(r[0]): _vec(r[1]) for r in conn.cursor(binary=True).execute(q, (ids,)).fetchall()}
    qmat = None if queries is None else _read_queries(queries, p.dims)
    qs, ds = [], []
    for qi, di, _ in triples:
        if di not in vecs:
            continue
        if qmat is not None:
            if 0 <= qi < len(qmat):
                qs.append(qmat[qi])
                ds.append(vecs[di])
        elif qi in vecs:
            qs.append(vecs[qi])
            ds.append(vecs[di])
    if not qs:
        raise AdaptError(f"{labels}: none of the labelled ids is in table {p.table}")
    return np.stack(qs), np.stack(ds)


def _read_triples(labels: Path) -> list[tuple[int, int, float]]:
    """Every (query id, doc id, relevance) of a labels file, in file order."""
    if not labels.is_file():
        raise AdaptError(f"no such file: {labels}")
    triples: list[tuple[int, int, float]] = []
    with labels.open() as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                triples.append(_label(line))
            except (ValueError, KeyError) as exc:
                if lineno == 1 and not line.startswith("{"):
                    continue  # a header line
                raise AdaptError(f"{labels}:{lineno}: cannot read a (query, doc, relevance) label: {exc}") from None
    return triples


def _label(line: str) -> tuple[int, int, float]:
    """One label line: a JSON object, or 2 to 4 fields (TREC's `qid 0 docid rel`); ValueError or KeyError."""
    if line.startswith("{"):
        o = json.loads(line)
        return int(o["query"]), int(o["doc"]), float(o.get("relevance", 1))
    parts = next(csv.reader([line.replace("\t", " ").replace(",", " ")], delimiter=" ", skipinitialspace=True))
    parts = [x for x in parts if x]
    if len(parts) == 4:
        parts = [parts[0], parts[2], parts[3]]
    if len(parts) not in (2, 3):
        raise ValueError(f"expected 2 to 4 fields, got {len(parts)}")
    return int(parts[0]), int(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0


def _read_queries(queries: Path, dims: int) -> np.ndarray:
    """The query vectors of a labels file's query rows: a 2-D .npy of `dims` columns."""
    try:
        qmat: np.ndarray = np.load(queries, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise AdaptError(f"{queries}: not a readable .npy file ({exc})") from None
    if qmat.ndim != 2 or qmat.shape[1] != dims:
        raise AdaptError(f"{queries}: expected a 2-D array of {dims}-dimensional queries, got shape {qmat.shape}")
    return qmat


def fit(opts: AdaptOptions, x: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None,
        on_train: Callable[[int, int, float], None] | None = None) -> Transform:
    """The unnamed transform of a method fitted on a sample."""
    if opts.method == "center":
        return fitting.fit_center(x, opts.statistic)
    if opts.method == "pca":
        return fitting.fit_pca(x)
    if opts.method == "adaptor":
        cfg = replace(opts.adaptor, seed=opts.seed)
        try:
            return fitting.fit_adaptor(x, cfg, pairs=pairs, progress=on_train)
        except AdaptorError as exc:
            raise AdaptError(str(exc)) from None
    raise AdaptError(f"unknown method {opts.method!r}: use one of {', '.join(METHODS)}")


def _calibrated(p: Profile, t: Transform, x: np.ndarray) -> Profile:
    """The profile using transform t: no center of its own, int8 ranges fitted on the transformed sample."""
    new = replace(p, transform=t.name, transform_data=t, center=None, codes=reencode.new_codes(p))
    if any(c.code_kind.calibrated for c in new.codes):
        r = codes.int8_ranges(t.apply_fast(x))
        new = replace(new, codes=tuple(replace(c, lo=r.lo, hi=r.hi) if c.code_kind.calibrated else c
                                       for c in new.codes))
    return new


def adapt(dsn: str, opts: AdaptOptions, hooks: Hooks | None = None) -> AdaptResult:
    """Fit, store, re-encode and switch (or resume an interrupted run). See the module docstring."""
    hooks = hooks or Hooks()
    _check_options(opts)
    with connection.connect(dsn, autocommit=True) as conn:
        p = _profile(conn, opts)
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext('shrinkvec adapt'), hashtext(%s))", (p.name,)).fetchone()
        if not got or not got[0]:
            raise AdaptError(f"another shrinkvec adapt is running on profile {p.name}")
        new = _pending(conn, p, opts, hooks)
        resumed = new is not None
        n_sample = 0
        if new is None:
            new, n_sample = _fit_and_start(conn, p, opts, hooks)
        written = _reencode(conn, p, new, opts, hooks)
        conn.execute("SELECT pg_advisory_unlock(hashtext('shrinkvec adapt'), hashtext(%s))", (p.name,))
        if opts.vacuum != "none":
            # The fill wrote a new version of every row: VACUUM (ANALYZE) frees the dead ones for reuse.
            # The old codes stay inside the live rows (dropped columns) until the table is rewritten:
            # VACUUM FULL does that, under an ACCESS EXCLUSIVE lock for the whole rewrite.
            hooks.stage("vacuuming" + (" (full: rewriting the table)" if opts.vacuum == "full" else ""))
            conn.execute(sql.SQL("VACUUM ({}ANALYZE) {}").format(
                sql.SQL("FULL, " if opts.vacuum == "full" else ""), ddl.table_ident(p)))
        assert new.transform is not None and new.transform_data is not None
        return AdaptResult(new.transform, resumed, n_sample, written, new.transform_data.fit)


def _check_options(opts: AdaptOptions) -> None:
    if opts.method not in METHODS:
        raise AdaptError(f"unknown method {opts.method!r}: use one of {', '.join(METHODS)}")
    if opts.batch_size < 1:
        raise AdaptError("--batch-size must be at least 1")
    if opts.labels is not None and opts.method != "adaptor":
        raise AdaptError("--labels is used by the adaptor only: add --method adaptor")


def _pending(conn: psycopg.Connection, p: Profile, opts: AdaptOptions, hooks: Hooks) -> Profile | None:
    """The new profile of an unfinished re-encode to resume, or None: none, or discarded by --restart."""
    state = reencode.pending(conn, p)
    if state is None:
        return None
    name, ranges, _ = state
    t = transforms.load(conn, name)
    new = reencode.with_ranges(replace(p, transform=name, transform_data=t, center=None,
                                       codes=reencode.new_codes(p)), ranges)
    if opts.restart:
        hooks.stage(f"discarding the unfinished re-encode to {name}")
        reencode.abort(conn, p, new)
        return None
    if t.kind != opts.method:
        raise AdaptError(f"a re-encode of {p.name} to transform {name} ({t.kind}) is unfinished: rerun with "
                         f"--method {t.kind} to finish it, or add --restart to discard it")
    hooks.stage(f"resuming the re-encode to {name}")
    return new


def _fit_and_start(conn: psycopg.Connection, p: Profile, opts: AdaptOptions, hooks: Hooks) -> tuple[Profile, int]:
    """Sample, fit, store the transform and start the re-encode: (the new profile, the sample's size)."""
    hooks.stage(f"sampling up to {opts.sample} vectors of {p.schema}.{p.table}")
    x = sample_vectors(conn, p, opts.sample, opts.seed)
    n_sample = len(x)
    minimum = {"center": 2, "pca": p.dims + 1, "adaptor": max(p.dims + 1, 1000)}[opts.method]
    if n_sample < minimum:
        raise AdaptError(f"sample too small for {opts.method}: {n_sample} vectors, need at least {minimum} "
                         f"(table {p.schema}.{p.table} has {n_sample if n_sample < opts.sample else 'more'} "
                         f"rows; raise --sample or load more rows)")
    pairs = None
    if opts.labels is not None:
        pairs = read_labels(conn, p, opts.labels, opts.queries)
    hooks.stage(f"fitting {opts.method}")
    try:
        t = fit(opts, x, pairs, hooks.train)
    except TransformError as exc:
        raise AdaptError(str(exc)) from None
    source = f"{p.schema}.{p.table}.{p.vector_column}"
    relation = ddl.table_ident(p).as_string(conn)
    version = transforms.next_version(conn, relation)
    t = replace(t, version=version, source=source,
                fit={**t.fit, "seed": opts.seed, "sample_requested": opts.sample})
    t = replace(t, name=transforms.make_name(source, t.kind, version, t.checksum()))
    new = _calibrated(p, t, x)
    try:
        with conn.transaction():
            transforms.save(conn, t, relation)
    except TransformError as exc:
        raise AdaptError(str(exc)) from None
    reencode.start(conn, p, new)
    return new, n_sample


def _reencode(conn: psycopg.Connection, p: Profile, new: Profile, opts: AdaptOptions, hooks: Hooks) -> int:
    """Fill the new codes, build their indexes and switch the profile; returns the rows written."""
    total = reencode.remaining(conn, p, new)
    hooks.stage(f"re-encoding {total} rows")
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        hooks.rows(done, total)

    hooks.rows(0, total)
    written = reencode.fill(conn, p, new, opts.batch_size, step)
    hooks.stage("building indexes on the new codes")
    indexes = reencode.build_shadow_indexes(conn, p, new)
    hooks.stage("switching the profile")
    reencode.switch(conn, p, new, indexes)
    return written
