"""`shrinkvec tune`: the cheapest configuration that reaches a target recall, checked on held-out queries.

How the queries are split: a permutation of the query rows from numpy's default_rng(seed) (seed 0
unless --seed is given); its first ceil(n/2) rows are the selection half, the rest the held-out half
(both kept in their original order). The same file and seed always give the same split.

How the configuration is chosen: every candidate (the default grid of configs.py, or --configs; the
``exact`` baseline is never a candidate) is measured on the selection half. Among those whose mean
recall@k reaches the target, the cheapest wins: lowest p50 latency first, then fewest bytes per row.
Only that configuration is then run on the held-out half, and its held-out recall is what tune
reports: an estimate of the recall on queries it did not choose with. When no candidate reaches the
target, tune says so and names the one with the highest selection recall.

``apply`` stores the choice in the profile (catalog revision 0003): ``search_config`` (the config's
spec, which `shrinkvec search` / `sql` then use by default for stage configs), ``k``, ``shortlist`` (the
first stage's, or the index's shrinkvec.shortlist) and ``tuned`` (the report, as JSON). For an index
configuration it also keeps the index it built and stores the chosen probes, shortlist and rerank in it
(``ALTER INDEX ... SET``), so every connection, poolers and clients that cannot SET included, searches with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from shrinkvec.evaluation.configs import Config
from shrinkvec.evaluation.evaluate import EvalError, Evaluator, Result
from shrinkvec.sql import names as sqlnames
from shrinkvec.sql import tables


def split(n: int, seed: int = 0) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(selection rows, held-out rows) of n queries: a seeded permutation cut in two, each half sorted."""
    if n < 2:
        raise EvalError(f"tune needs at least 2 queries (one to choose with, one held out), got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    half = math.ceil(n / 2)
    return np.sort(perm[:half]), np.sort(perm[half:])


@dataclass
class Choice:
    """The outcome of tune."""

    target: float
    met: bool  # a candidate reached the target on the selection half
    chosen: Result  # on the selection half (the best found when not met)
    held_out: Result  # the same config on the held-out half
    candidates: list[Result]  # every candidate on the selection half
    selection_rows: int
    held_out_rows: int

    def as_json(self) -> dict[str, Any]:
        c = self.chosen.config
        if c.kind == "stages":
            stage = ">".join(s for s, _ in c.stages)
            shortlist: int | list[int] = c.stages[0][1] if len(c.stages) == 1 else [n for _, n in c.stages]
        else:
            stage = c.spec().rsplit("@", 1)[0]
            shortlist = c.shortlist
        out: dict[str, Any] = {
            "stage": stage, "shortlist": shortlist,
            "recall": round(self.held_out.recall, 6), "ms": round(self.held_out.ms_p50, 4),
            "config": c.spec(), "target_recall": self.target, "met": self.met,
            "selection_recall": round(self.chosen.recall, 6), "held_out_recall_p5": round(self.held_out.recall_p5, 6),
            "bytes_per_row": round(self.chosen.bytes_per_row, 2),
            "queries": {"selection": self.selection_rows, "held_out": self.held_out_rows},
        }
        if c.kind == "index":
            out["index"] = {"lists": c.lists, "probes": c.probes or None, "bits": c.bits or None,
                            "refine": c.refine or None, "rerank": c.rerank or None,
                            "settings": index_settings(c)}
        return out


def index_settings(c: Config) -> dict[str, int]:
    s = {"shrinkvec.shortlist": c.shortlist}
    if c.lists > 1:
        s["shrinkvec.probes"] = c.probes
    if c.refine:
        s["shrinkvec.rerank"] = c.rerank
    return s


def choose(results: Sequence[Result], target: float) -> tuple[Result, bool]:
    """The cheapest result reaching `target` (p50 latency, then bytes/row), or the best-recall one."""
    if not results:
        raise EvalError("no candidate configurations to choose from")
    ok = [r for r in results if r.recall >= target]
    if ok:
        return min(ok, key=lambda r: (r.ms_p50, r.bytes_per_row, r.config.spec())), True
    return max(results, key=lambda r: (r.recall, -r.ms_p50)), False


def tune(ev: Evaluator, candidates: Sequence[Config], target: float, seed: int = 0) -> Choice:
    """Measure the candidates on the selection half, choose, and re-measure the choice on the held-out half."""
    if not 0 < target <= 1:
        raise EvalError(f"the target recall must be in (0, 1], got {target}")
    cands = [c for c in candidates if c.kind != "exact"]
    if not cands:
        raise EvalError("no candidate configurations to choose from (exact is the baseline, not a candidate)")
    sel, held = split(len(ev.queries), seed)
    measured = [ev.measure(c, sel) for c in cands]
    best, met = choose(measured, target)
    return Choice(target, met, best, ev.measure(best.config, held), measured, len(sel), len(held))


def _build(conn: psycopg.Connection, ev: Evaluator, schema: str, name: str) -> tuple[int, int, int] | None:
    """(lists, coded dims, refine bits) of a plain (not partitioned) shrinkvec index; None for another."""
    leaves = tables.index_leaves(conn, schema, name)
    if leaves != [(schema, name)]:
        return None
    row = conn.execute(sql.SQL("SELECT lists, code_bits, refine_bits FROM {}(%s::pg_catalog.regclass)").format(
        sqlnames.ext_fn(ev.profile, "shrinkvec_index_info")), (sql.Identifier(schema, name).as_string(conn),)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]))


def apply(conn: psycopg.Connection, ev: Evaluator, choice: Choice) -> str:
    """Store the choice as the profile's default (see module docstring); returns what was done."""
    p = ev.profile
    exists = conn.execute("SELECT 1 FROM shrinkvec.profiles WHERE name = %s", (p.name,)).fetchone() \
        if conn.execute("SELECT to_regclass('shrinkvec.profiles') IS NOT NULL").fetchone()[0] else None  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    if not exists:
        raise EvalError(f"table {p.schema}.{p.table} has no shrinkvec profile to store the choice in "
                        f"(run 'shrinkvec adopt --table {p.table}' first, or load it with 'shrinkvec load')")
    has_cols = conn.execute(
        """SELECT count(*) = 2 FROM information_schema.columns WHERE table_schema = 'shrinkvec'
           AND table_name = 'profiles' AND column_name IN ('search_config', 'tuned')""").fetchone()[0]  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    if not has_cols:
        raise EvalError("the shrinkvec catalog predates tune defaults: run 'shrinkvec migrate'")
    c = choice.chosen.config
    report = choice.as_json() | {"tuned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    cur = conn.execute(
        """UPDATE shrinkvec.profiles SET search_config = %s, k = %s, shortlist = %s, tuned = %s::jsonb
           WHERE name = %s""",
        (c.spec(), ev.k, c.first_shortlist, json.dumps(report), p.name))
    if cur.rowcount != 1:  # e.g. row-level security on the catalog: only the table's owner may change it
        raise EvalError(f"could not store the choice in profile {p.name!r} (are you the owner of "
                        f"{p.schema}.{p.table}?)")
    if c.kind != "index":
        return f"profile {p.name}: default search is now {c.spec()} (k = {ev.k})"
    # the settings live in the index: every connection gets them, poolers and clients that cannot SET too
    options = {k.split(".", 1)[1]: v for k, v in index_settings(c).items()}
    given_sql = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(int(v))) for k, v in options.items())
    given = ", ".join(f"{k} = {v}" for k, v in options.items())
    measured = _build(conn, ev, p.schema, ev.index_name(c))
    same = [n for n in tables.shrinkvec_indexes(conn, p)
            if n != ev.index_name(c) and measured is not None and _build(conn, ev, p.schema, n) == measured]
    if same:
        # an index of the column built as the measured one (lists, coded dims, refine bits): it gets the
        # settings, and the evaluation index goes (no second index for the planner to choose between)
        conn.execute(sql.SQL("ALTER INDEX {} SET ({})").format(sql.Identifier(p.schema, same[0]), given_sql))
        ident = sql.Identifier(p.schema, same[0]).as_string(conn)
        return (f"profile {p.name}: default search is now {c.spec()} (k = {ev.k}); set on the column's index {ident}, "
                f"built as the measured one, WITH ({given}): every connection searches with these (a session SET "
                "still overrides them)")
    # keep the index tune built, under a stable name (a previous tune's index of this column is replaced)
    name = "shrinkvec_tuned_" + ev.index_name(c).split("_")[2]
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(p.schema, name)))
    conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(p.schema, ev.index_name(c)),
                                                               sql.Identifier(name)))
    # a partitioned table's index takes no options itself: each partition's index gets them
    for schema, leaf in tables.index_leaves(conn, p.schema, name):
        conn.execute(sql.SQL("ALTER INDEX {} SET ({})").format(sql.Identifier(schema, leaf), given_sql))
    ident = sql.Identifier(p.schema, name).as_string(conn)
    others = [n for n in tables.shrinkvec_indexes(conn, p) if n != name]
    also = (f"; the column has other shrinkvec indexes ({', '.join(others)}), which the planner may choose "
            "instead: drop them, or give them these settings with ALTER INDEX ... SET") if others else ""
    return (f"profile {p.name}: default search is now {c.spec()} (k = {ev.k}); kept index {ident} "
            f"WITH ({given}): every connection searches with these (a session SET still overrides them){also}")
