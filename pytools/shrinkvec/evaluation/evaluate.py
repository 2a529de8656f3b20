"""`shrinkvec eval`: recall, latency and size of search configurations on a table and a query set.

Ground truth: the exact top-k of every query, computed once in numpy (float64) over the table's
vectors, streamed from the database in blocks (no index is involved, and the table's own indexes
cannot change the answer). Ties are broken by id, as the generated SQL does (ORDER BY distance, id).
The ``exact`` configuration runs the exact query in the database (index scans off) on a subset of the
queries: its latency is the baseline, and its recall (1.0 up to float rounding) checks the numpy truth.

Each configuration (configs.py) runs every query one at a time, as a prepared statement, after a
short warm-up; latency is the wall time of execute + fetch seen by the client. Per configuration:
recall@k (mean and 5th percentile over queries), p50/p95 latency, bytes per row of the codes it reads
(the code columns' payload: bits n/8, prefix 4n, int8 n bytes, summed over a funnel's stages; for an
index its size on disk over its entries; for exact the full float32 vector), and for an index its size
and build time. Index configurations build a ``shrinkvec`` index on the vector column (CREATE INDEX
blocks writes to the table while it builds) and drop it afterwards. One evaluation index exists at a
time (the planner would choose among several), so measure configurations grouped by index.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from shrinkvec.errors import ShrinkvecError
from shrinkvec.evaluation import configs, metrics
from shrinkvec.evaluation.configs import Config
from shrinkvec.profile import Profile
from shrinkvec.sql import catalog, connection, profile_check, query, tables
from shrinkvec.sql import names as sqlnames

Progress = Callable[[str, int, int], None]  # (what, done, total)
OPCLASS = {"cosine": "cosine", "l2": "l2", "ip": "ip"}
EXACT_ROW_BUDGET = 20_000_000  # the in-database exact config scans at most ~this many rows in all
FETCH_BLOCK = 20_000


class EvalError(ShrinkvecError, ValueError):
    """Bad input to eval/tune (the message names the value)."""


class IdKeys:
    """Integer keys of a table's ids, so the truth and the answers compare as int64 arrays: an integer id is
    its own key; any other id (uuid, text, varchar) gets the next key at its first sighting."""

    def __init__(self) -> None:
        self._keys: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return self._keys.setdefault(value, len(self._keys))

    @property
    def mapped(self) -> bool:
        """Whether any id was not an integer (qrels, whose documents are integer ids, cannot apply)."""
        return bool(self._keys)


def read_queries(path: Path) -> npt.NDArray[np.float32]:
    """Query vectors from a .npy file (1-D: one query; 2-D: one a row), checked to be finite."""
    if not path.is_file():
        raise EvalError(f"no such query file: {path}")
    try:
        q = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise EvalError(f"{path}: not a readable .npy file ({exc})") from None
    if q.dtype.kind not in "fiu":
        raise EvalError(f"{path}: query vectors must be numbers, not {q.dtype}")
    if q.ndim == 1 and q.size:
        q = q[None, :]
    if q.ndim != 2:
        raise EvalError(f"{path}: expected a 2-D array of query vectors, got shape {q.shape}")
    if q.shape[0] == 0 or q.shape[1] == 0:
        raise EvalError(f"{path} has no queries (shape {q.shape})")
    bad = ~np.isfinite(q).all(axis=1)
    if bad.any():
        raise EvalError(f"{path}: query {int(np.argmax(bad))} has NaN or infinite values "
                        f"({int(bad.sum())} such queries)")
    return np.asarray(q, dtype=np.float32)


def resolve_profile(conn: psycopg.Connection, table: str, schema: str, column: str | None,
                    id_column: str | None = None) -> Profile:
    """The table's profile (its id column replaced by `id_column` when given); for a table without one, a
    profile without codes found from the table itself (tables.table_profile: its key, its vector column)."""
    if not catalog.table_exists(conn, table, schema):
        raise EvalError(f"table {schema}.{table} does not exist")
    p = catalog.find_profile(conn, table, schema, column) if catalog.has_catalog(conn) else None
    if p is not None and p.multi:
        raise EvalError(f"table {schema}.{table} has a multi-vector (maxsim) profile: shrinkvec eval and tune do not "
                        "measure late interaction yet (bench/bench_maxsim.py does)")
    if p is not None:
        return p if id_column is None else replace(p, id_column=id_column)
    return tables.table_profile(conn, table, schema, column, id_column)


@dataclass
class Result:
    """The measurements of one configuration over a set of queries."""

    config: Config
    queries: int
    recall: float
    recall_p5: float
    ms_p50: float
    ms_p95: float
    bytes_per_row: float
    index_mb: float | None = None
    build_s: float | None = None
    ndcg: float | None = None
    mrr: float | None = None
    per_query: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.spec(), "family": self.config.family(), "queries": self.queries,
            "recall": round(self.recall, 6), "recall_p5": round(self.recall_p5, 6),
            "ms_p50": round(self.ms_p50, 4), "ms_p95": round(self.ms_p95, 4),
            "bytes_per_row": round(self.bytes_per_row, 2),
            "index_mb": None if self.index_mb is None else round(self.index_mb, 3),
            "build_s": None if self.build_s is None else round(self.build_s, 3),
            "ndcg": None if self.ndcg is None else round(self.ndcg, 6),
            "mrr": None if self.mrr is None else round(self.mrr, 6),
        }


@dataclass
class _Index:
    name: str
    build_s: float
    size_bytes: int
    entries: int
    leaves: tuple[str, ...] = ()  # the indexes that scans use: the index itself, or a partitioned table's partitions'


class Evaluator:
    """Measures configurations on one table and one query set; use as a context manager (it drops the
    indexes it built on exit)."""

    def __init__(self, conn: psycopg.Connection, profile: Profile, queries: npt.NDArray[np.float32], k: int,
                 qrels: metrics.Qrels | None = None, progress: Progress | None = None) -> None:
        if k < 1:
            raise EvalError(f"k must be at least 1, got {k}")
        if queries.shape[1] != profile.dims:
            raise EvalError(f"the queries have {queries.shape[1]} dimensions, "
                            f"{profile.schema}.{profile.table}.{profile.vector_column} has {profile.dims}")
        self.conn, self.profile, self.queries, self.k, self.qrels = conn, profile, queries, k, qrels
        self.progress = progress
        connection.register_vector(conn)
        self.table = sql.Identifier(profile.schema, profile.table)
        self.vec, self.idc = sql.Identifier(profile.vector_column), sql.Identifier(profile.id_column)
        self.profile = profile = profile_check.check_profile(conn, profile)  # types another role wrote
        self.vtype = profile.vector_type
        self.rows = int(conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} IS NOT NULL").format(
            self.table, self.vec)).fetchone()[0])  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
        if self.rows == 0:
            raise EvalError(f"table {profile.schema}.{profile.table} has no rows with a vector")
        if k > self.rows:
            raise EvalError(f"k = {k} is more than the table's {self.rows} rows")
        self._truth: npt.NDArray[np.int64] | None = None
        self.keys = IdKeys()
        self._indexes: dict[tuple[int, int, int], _Index] = {}

    # -- context -------------------------------------------------------------------------------------
    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the index this evaluator built (an index tune --apply renamed is no longer its)."""
        for ix in self._indexes.values():
            self.conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(self.profile.schema, ix.name)))
        self._indexes.clear()

    # -- ground truth --------------------------------------------------------------------------------
    @property
    def truth(self) -> npt.NDArray[np.int64]:
        """(queries, k) ids of the exact top-k, computed on first use."""
        if self._truth is None:
            self._truth = exact_topk(self.conn, self.profile, self.queries, self.k, self.rows, self.progress, self.keys)
            if self.qrels is not None and self.keys.mapped:
                raise EvalError(f"--qrels names documents by integer id, and {self.profile.schema}.{self.profile.table}."
                                f"{self.profile.id_column} is not an integer column")
        return self._truth

    # -- measuring -----------------------------------------------------------------------------------
    def measure(self, config: Config, rows: Sequence[int] | npt.NDArray[np.int64] | None = None) -> Result:
        """Run `config` for the queries `rows` (default: all) and measure it."""
        configs.check(config, self.profile, self.k, self.rows)
        idx = np.arange(len(self.queries)) if rows is None else np.asarray(rows, dtype=np.int64)
        truth = self.truth
        index: _Index | None = None
        pl = query.plan(self.profile, config, k=self.k)
        statement = query.build(self.profile, pl.stages, dollar=False, k=self.k).statement
        settings = pl.settings
        if config.kind == "exact":
            idx = idx[: max(10, EXACT_ROW_BUDGET // self.rows)]
            bytes_per_row = 4.0 * self.profile.dims
        elif config.kind == "index":
            index = self._index(config)
            bytes_per_row = index.size_bytes / max(1, index.entries)
            self._check_plan(statement, settings, index.leaves or (index.name,), config)
        else:
            bytes_per_row = float(sum(st.code.code_kind.bytes_per_row(st.code.length) for st in pl.stages))

        def values(i: int) -> dict[str, Any]:
            return query.params(self.profile, pl.stages, self.queries[i], self.k)

        found: list[list[int]] = []
        times: list[float] = []
        with self._settings(settings), self.conn.cursor() as cur:
            for i in idx[:3]:  # warm-up: plan, caches
                cur.execute(statement, values(int(i)), prepare=True).fetchall()
            for j, i in enumerate(idx):
                t = time.perf_counter()
                got = cur.execute(statement, values(int(i)), prepare=True).fetchall()
                times.append((time.perf_counter() - t) * 1000)
                found.append([self.keys(r[0]) for r in got])
                if self.progress and (j % 20 == 0 or j == len(idx) - 1):
                    self.progress(config.spec(), j + 1, len(idx))
        per_query = np.array([metrics.recall_at_k(f, truth[i]) for f, i in zip(found, idx, strict=True)])
        res = Result(config, len(idx), float(per_query.mean()), float(np.percentile(per_query, 5)),
                     float(np.percentile(times, 50)), float(np.percentile(times, 95)), bytes_per_row,
                     per_query=per_query)
        if index is not None:
            res.index_mb, res.build_s = index.size_bytes / 2**20, index.build_s
        if self.qrels is not None:
            res.ndcg, res.mrr = self._task_metrics(found, idx)
        return res

    def _task_metrics(self, found: list[list[int]], idx: npt.NDArray[np.int64]) -> tuple[float | None, float | None]:
        assert self.qrels is not None
        judged = set(metrics.judged(self.qrels, idx.tolist()))
        pairs = [(f, self.qrels[int(i)]) for f, i in zip(found, idx, strict=True) if int(i) in judged]
        if not pairs:
            return None, None
        return (float(np.mean([metrics.ndcg_at_k(f, r, self.k) for f, r in pairs])),
                float(np.mean([metrics.mrr_at_k(f, r, self.k) for f, r in pairs])))

    def exact_task_metrics(self, rows: Sequence[int] | npt.NDArray[np.int64] | None = None) -> tuple[float | None, float | None]:
        """nDCG@k / MRR@k of the exact top-k (the ceiling of every configuration)."""
        idx = np.arange(len(self.queries)) if rows is None else np.asarray(rows, dtype=np.int64)
        return self._task_metrics([list(map(int, self.truth[i])) for i in idx], idx)

    class _SettingsCtx:
        def __init__(self, conn: psycopg.Connection, settings: dict[str, str]) -> None:
            self.conn, self.settings = conn, settings

        def __enter__(self) -> None:
            for name, value in self.settings.items():
                self.conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))

        def __exit__(self, *exc: object) -> None:
            for name in self.settings:
                self.conn.execute(sql.SQL("RESET {}").format(sql.SQL(".").join(map(sql.Identifier, name.split(".")))))

    def _settings(self, settings: dict[str, str]) -> Evaluator._SettingsCtx:
        return Evaluator._SettingsCtx(self.conn, settings)

    def _check_plan(self, statement: sql.Composed, settings: dict[str, str], leaves: Sequence[str], config: Config) -> None:
        with self._settings(settings):
            plan = "\n".join(r[0] for r in self.conn.execute(sql.SQL("EXPLAIN ") + statement,
                                                              {"q": self.queries[0]}).fetchall())
        if not all(leaf in plan for leaf in leaves):
            raise EvalError(f"config {config.spec()!r}: the planner does not use the evaluation index "
                            f"(another index on {self.profile.vector_column}?); plan: {plan.splitlines()[0]}")

    def index_name(self, config: Config) -> str:
        key = f"{self.profile.schema}\x00{self.profile.table}\x00{self.profile.vector_column}".encode()
        return f"shrinkvec_eval_{hashlib.sha1(key).hexdigest()[:10]}_l{config.lists}_b{config.bits}_r{config.refine}"

    def _index(self, config: Config) -> _Index:
        """The shrinkvec index of this config's lists/bits/refine. Only one evaluation index exists at a time
        (the planner would pick among them): using another one drops it and builds this one."""
        key = (config.lists, config.bits, config.refine)
        if key in self._indexes:
            return self._indexes[key]
        self.close()
        name = self.index_name(config)
        ident = sql.Identifier(self.profile.schema, name)
        opclass = f"{self.vtype}_{OPCLASS[self.profile.distance]}_ops"
        self.conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(ident))
        if self.progress:
            self.progress(f"building index {config.spec().split('@')[0]}", 0, 1)
        t = time.perf_counter()
        self.conn.execute(sql.SQL(
            "CREATE INDEX {} ON {} USING shrinkvec ({} {}) WITH (lists = {}, bits = {}, refine = {})").format(
            sql.Identifier(name), self.table, self.vec, sqlnames.ext_fn(self.profile, opclass), sql.Literal(config.lists),
            sql.Literal(config.bits), sql.Literal(config.refine)))
        build_s = time.perf_counter() - t
        # a partitioned table's index is one per partition (its leaves): sizes and entries are their sums
        leaves = tables.index_leaves(self.conn, self.profile.schema, name)
        info = [self.conn.execute(
            sql.SQL("SELECT size_bytes, entries FROM {}(%s::pg_catalog.regclass)").format(
                sqlnames.ext_fn(self.profile, "shrinkvec_index_info")),
            (sql.Identifier(*leaf).as_string(self.conn),)).fetchone() for leaf in leaves]
        self._indexes[key] = _Index(name, build_s, sum(int(r[0]) for r in info if r), sum(int(r[1]) for r in info if r),
                                    tuple(n for _, n in leaves))
        return self._indexes[key]


def exact_topk(conn: psycopg.Connection, profile: Profile, queries: npt.NDArray[np.float32], k: int,
               rows: int | None = None, progress: Progress | None = None,
               keys: Callable[[Any], int] = int) -> npt.NDArray[np.int64]:
    """Exact top-k ids of every query in numpy (float64), streaming the table's vectors in blocks;
    ties broken by id (by key: `keys` maps each id to an integer). Distances as the profile's: cosine, l2
    or (negative) inner product."""
    connection.register_vector(conn)
    q = queries.astype(np.float64)
    if profile.distance == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    best_d = np.full((len(q), 0), np.inf)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    stmt = sql.SQL("SELECT {}, {} FROM {} WHERE {} IS NOT NULL").format(
        sql.Identifier(profile.id_column), sql.Identifier(profile.vector_column),
        sql.Identifier(profile.schema, profile.table), sql.Identifier(profile.vector_column))
    done = 0
    with conn.transaction(), conn.cursor(name="shrinkvec_eval_truth") as cur:
        cur.execute(stmt)
        while True:
            block = cur.fetchmany(FETCH_BLOCK)
            if not block:
                break
            ids = np.fromiter((keys(r[0]) for r in block), dtype=np.int64, count=len(block))
            x = np.stack([np.asarray(r[1].to_numpy() if hasattr(r[1], "to_numpy") else r[1], dtype=np.float64)
                          for r in block])
            dot = q @ x.T
            if profile.distance == "cosine":
                d = 1.0 - dot / np.maximum(np.linalg.norm(x, axis=1), 1e-300)[None, :]
            elif profile.distance == "l2":
                d = np.sqrt(np.maximum((x * x).sum(axis=1)[None, :] - 2 * dot + (q * q).sum(axis=1)[:, None], 0))
            else:
                d = -dot
            m = min(k, d.shape[1])
            part = np.argpartition(d, m - 1, axis=1)[:, :m] if m < d.shape[1] else np.tile(np.arange(d.shape[1]), (len(q), 1))
            cand_d = np.concatenate([best_d, np.take_along_axis(d, part, axis=1)], axis=1)
            cand_i = np.concatenate([best_i, ids[part]], axis=1)
            order = np.lexsort((cand_i, cand_d), axis=1)[:, :k]
            best_d, best_i = np.take_along_axis(cand_d, order, axis=1), np.take_along_axis(cand_i, order, axis=1)
            done += len(block)
            if progress:
                progress("exact top-k (numpy)", done, rows or done)
    return best_i


def spread_labels(wanted: Sequence[float], gap: float, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """Label positions as close as possible to `wanted` (in order) but at least `gap` apart: pushed up past
    their lower neighbour, then, if the column runs past `hi`, shifted down as a block (never below `lo`
    unless there are more labels than room)."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    pos = [0.0] * len(wanted)
    prev = -np.inf
    for i in order:
        pos[i] = max(wanted[i], prev + gap)
        prev = pos[i]
    if order and pos[order[-1]] > hi:
        over = pos[order[-1]] - hi
        for i in order:
            pos[i] -= over
        prev = np.inf  # pull the ones now below `lo` back up, keeping the gaps from the top down
        for i in reversed(order):
            pos[i] = min(pos[i], prev - gap)
            prev = pos[i]
        shift = lo - min(pos)
        if shift > 0:
            pos = [y + shift for y in pos]
    return pos


def pareto_plot(results: Sequence[Result], path: Path, title: str) -> None:
    """Write the Pareto figure (pareto_figure) as a PNG; its directory must exist."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(results, title)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def pareto_figure(results: Sequence[Result], title: str) -> Any:
    """Two panels: recall against p50 latency, and recall against bytes per row. The Pareto front of each is
    drawn as a line; its points are labelled beside them, spread vertically so that no two labels overlap,
    each joined to its point by a leader line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fontsize = 10
    families = list(dict.fromkeys(r.config.family() for r in results))
    colors = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    with plt.rc_context({"font.size": fontsize}):
        fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
        fig.subplots_adjust(left=0.06, right=0.86, bottom=0.2, top=0.88, wspace=0.45)
        panels = ((axes[0], "ms_p50", "p50 latency, ms (log)"), (axes[1], "bytes_per_row", "bytes per row (log)"))
        for ax, attr, label in panels:
            for f in families:
                pts = [r for r in results if r.config.family() == f]
                ax.scatter([getattr(r, attr) for r in pts], [r.recall for r in pts], color=colors[f], label=f, s=30,
                           zorder=3)
            front = [results[i] for i in metrics.pareto_front([getattr(r, attr) for r in results],
                                                              [r.recall for r in results])]
            ax.step([getattr(r, attr) for r in front], [r.recall for r in front], where="post", color="black",
                    lw=0.9, alpha=0.6, zorder=2)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("recall (mean)")
            ax.grid(True, alpha=0.3)
            ax.set_title("Pareto front: " + ("faster" if attr == "ms_p50" else "smaller") + " and more accurate",
                         fontsize=fontsize)
            # the labels: beside their points, spread vertically so that no two are closer than a line
            # (the front rises with the cost, so the labels form a staircase next to it), just under the front's
            # line, with leader lines
            fig.canvas.draw()  # fixes the axis limits, so data y maps to axes fraction
            y0, y1 = ax.get_ylim()
            height_pt = ax.get_window_extent().height * 72 / fig.dpi
            gap = 1.5 * fontsize / height_pt
            wanted = [(r.recall - y0) / (y1 - y0) for r in front]
            for r, want, y in zip(front, wanted, spread_labels(wanted, gap, lo=0.02, hi=0.98), strict=True):
                ax.annotate(f"{r.config.spec()} ({r.recall:.3f})", xy=(getattr(r, attr), r.recall), xycoords="data",
                            xytext=(8, (y - want) * height_pt - 3), textcoords="offset points", va="top", ha="left",
                            fontsize=fontsize, annotation_clip=False, zorder=4,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
                            arrowprops={"arrowstyle": "-", "color": "0.35", "lw": 0.7, "shrinkA": 0, "shrinkB": 3})
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(families), 8),
                   frameon=False, title="configuration family (front labels: spec and recall)")
        fig.suptitle(title, fontsize=fontsize + 1)
    return fig
