"""Seeded fuzzing of the index over extreme values (issue 33): random tables of values from the whole float
range (normal ones, +-1e19 ... 3.4e38 whose squares overflow, subnormals, zeros, mixed signs and mixed rows),
indexed with random options (opclass, lists, refine, bits), built before or after the rows, with inserts,
deletes and VACUUM, then random queries (also extreme) through the index, each checked against the exact
sequential plan: as many rows, no row twice, and with every candidate read (a shortlist and rerank as large
as the table, every list probed) the same distances row by row and the same rows before the last distance.

Deterministic: round r uses seed r; SHRINKVEC_INDEX_FUZZ_ROUNDS (default 80, under a minute) sets how many.
Runs on a throwaway server of its own (a crash must not take the shared test server down).
"""

from __future__ import annotations

import math
import os

import numpy as np
import psycopg
import pytest

from conftest import one_row, own_cluster_only

# every test here is slow (80 seeded rounds on a throwaway server): make test-fast skips them
pytestmark = pytest.mark.slow
ROUNDS = int(os.environ.get("SHRINKVEC_INDEX_FUZZ_ROUNDS", "80"))
OPS = {"l2": ("<->", "vector_l2_ops"), "ip": ("<#>", "vector_ip_ops"), "cosine": ("<=>", "vector_cosine_ops")}
F32_MAX = float(np.finfo(np.float32).max)


def value(rng: np.random.Generator, kind: str) -> float:
    """One float32 value of a kind: normal, extreme (|v| from 1e19 to FLT_MAX), subnormal, zero."""
    sign = -1.0 if rng.random() < 0.5 else 1.0
    if kind == "normal":
        return sign * float(10 ** rng.uniform(-3, 3))
    if kind == "extreme":
        return sign * min(F32_MAX, float(10 ** rng.uniform(19, math.log10(F32_MAX))))
    if kind == "subnormal":
        return sign * float(np.float32(10 ** rng.uniform(-45, -38)))
    return 0.0


def row(rng: np.random.Generator, dims: int, extreme_share: float) -> list[float]:
    """A row: mostly normal, or all extreme, all subnormal, all zero, or every value of a random kind."""
    r = rng.random()
    if r < 1 - extreme_share:
        return [float(v) for v in rng.standard_normal(dims)]
    kind = str(rng.choice(["extreme", "subnormal", "zero", "mixed", "extreme", "mixed"]))
    if kind == "mixed":
        return [value(rng, str(rng.choice(["normal", "extreme", "subnormal", "zero"]))) for _ in range(dims)]
    return [value(rng, kind) for _ in range(dims)]


def vec(x: list[float]) -> str:
    return "[" + ",".join(repr(float(np.float32(v))) for v in x) + "]"


def fill(conn: psycopg.Connection, rows: list[list[float]], start: int) -> None:
    with conn.cursor().copy("COPY t (id, v) FROM STDIN") as copy:
        for i, r in enumerate(rows):
            copy.write_row((start + i, vec(r)))


def fetch(conn: psycopg.Connection, text: str, params: tuple[object, ...], *, index: bool) -> list[tuple[int, float]]:
    """(id, distance) rows with the index forced (its plan checked) or with index scans off; never prepared."""
    conn.execute("SET enable_seqscan = " + ("off" if index else "on"))
    conn.execute("SET enable_indexscan = " + ("on" if index else "off"))
    conn.execute("SET enable_sort = " + ("off" if index else "on"))
    if index:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + text, params, prepare=False).fetchall())
        assert "t_v" in plan, plan
    return [(int(r[0]), float(r[1])) for r in conn.execute(text, params, prepare=False).fetchall()]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def compare(got: list[tuple[int, float]], want: list[tuple[int, float]], *, order: bool, what: object) -> None:
    assert len(got) == len(want), (what, len(got), len(want))
    assert len({i for i, _ in got}) == len(got), (what, "a row came twice")
    if not order or not want:
        return
    assert all(same(g[1], w[1]) for g, w in zip(got, want)), (what, got, want)
    last = want[-1][1]
    assert {i for i, d in got if not same(d, last)} == {i for i, d in want if not same(d, last)}, (what, got, want)


@own_cluster_only
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_fuzz_index_over_extreme_values(xconn: psycopg.Connection, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dims = int(rng.choice([1, 2, 3, 4, 8, 16, 33]))
    metric = str(rng.choice(sorted(OPS)))
    op, opclass = OPS[metric]
    n = int(rng.integers(20, 300))
    extreme_share = float(rng.choice([0.02, 0.1, 0.5, 1.0]))
    rows = [row(rng, dims, extreme_share) for _ in range(n)]
    options = [f"lists = {int(rng.choice([1, 1, 2, 3, 8, 64] if n >= 64 else [1, 2, 3, 8]))}"]
    if rng.random() < 0.5:
        options.append(f"refine = {int(rng.choice([2, 4, 8]))}")
    if rng.random() < 0.3:
        options.append(f"bits = {int(rng.integers(1, dims + 1))}")
    what: list[object] = [seed, metric, dims, n, extreme_share, options]

    xconn.execute(f"CREATE TABLE t (id int PRIMARY KEY, v vector({dims}))")
    xconn.execute("ALTER TABLE t SET (autovacuum_enabled = off)")
    before = n if rng.random() < 0.5 else n // 2  # the rest goes in through aminsert
    fill(xconn, rows[:before], 0)
    xconn.execute(f"CREATE INDEX t_v ON t USING shrinkvec (v {opclass}) WITH ({', '.join(options)})")
    fill(xconn, rows[before:], before)
    if rng.random() < 0.5:
        xconn.execute("DELETE FROM t WHERE id %% %s = 0", (int(rng.integers(2, 6)),))
        xconn.execute("VACUUM (INDEX_CLEANUP ON) t")
        fill(xconn, [row(rng, dims, extreme_share) for _ in range(int(rng.integers(1, 30)))], 100000)
    check = xconn.execute("SELECT missing, duplicated, dangling, ok FROM shrinkvec_index_check('t_v')").fetchone()
    assert check == (0, 0, 0, True), (what, check)
    lists = int(one_row(xconn.execute("SELECT lists FROM shrinkvec_index_info('t_v')"))[0])

    queries = [rows[int(rng.integers(0, n))], row(rng, dims, 1.0), row(rng, dims, 1.0), row(rng, dims, 0.0)]
    for q in queries:
        lit = vec(q)
        k = int(rng.integers(1, 25))
        m = int(rng.integers(2, 5))
        texts = [
            (f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector LIMIT %s", (lit, lit, k)),
            (f"SELECT id, v {op} %s::vector FROM t WHERE id %% %s = 1 ORDER BY v {op} %s::vector LIMIT %s",
             (lit, m, lit, k)),
            (f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector", (lit, lit)),
        ]
        for text, params in texts:
            want = fetch(xconn, text, params, index=False)
            # every candidate read (rerank = 0: no refine stage): the exact order
            xconn.execute("SET shrinkvec.shortlist = 100000")
            xconn.execute("SET shrinkvec.rerank = 0")
            xconn.execute(f"SET shrinkvec.probes = {lists}")
            compare(fetch(xconn, text, params, index=True), want, order=True, what=(*what, q, text, "exact"))
            # small batches, few probes, refine deferrals, the pool: as many rows
            shortlist = int(rng.integers(1, 60))
            xconn.execute(f"SET shrinkvec.shortlist = {shortlist}")
            xconn.execute(f"SET shrinkvec.rerank = {int(rng.integers(0, shortlist + 1))}")
            xconn.execute(f"SET shrinkvec.probes = {int(rng.integers(1, lists + 1))}")
            xconn.execute(f"SET shrinkvec.order_margin = {float(rng.choice([0.0, 1.0, 3.0]))}")
            compare(fetch(xconn, text, params, index=True), want, order=False, what=(*what, q, text, "batches"))
            for setting in ("shortlist", "rerank", "probes", "order_margin"):
                xconn.execute(f"RESET shrinkvec.{setting}")
