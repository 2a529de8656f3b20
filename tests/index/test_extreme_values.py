"""Extreme values and unusual queries (issues 33 and 26 item 2): no crash, no poisoned index, no stale or
silently wrong answer.

- Values above ~1.8e19 are finite (pgvector accepts them) but their squares overflow float. Index builds
  (flat, IVF with 2 and 64+ lists, refine codes), inserts after the build and VACUUM survive them, and index
  scans over such data (and queries near the float limit) return as many rows as the exact plan, in the
  same order where distances are finite.
- maxsim's query cache inside PL/pgSQL, dequantize_int8 at the float limit, a second ORDER BY key,
  shrinkvec_index_check after an aborted INSERT, and C entry points bound to a datum of another type.

The tests that could crash a backend, and the one that binds C symbols as superuser, run on a throwaway
embedded server of their own (tests/conftest.py: throwaway_cluster), never on the shared test server.
"""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest
from psycopg import errors

from conftest import one_row, own_cluster_only
from shrinkvec import codes

OPS = {"l2": ("<->", "vector_l2_ops"), "ip": ("<#>", "vector_ip_ops"), "cosine": ("<=>", "vector_cosine_ops")}
DIMS = 8
POISON = [3e38, 3e38, -3e38, 3e38]


def vec(x: list[float] | np.ndarray) -> str:
    """A vector literal with every value written exactly (repr of the float32)."""
    return "[" + ",".join(repr(float(np.float32(v))) for v in x) + "]"


def run(conn: psycopg.Connection, text: str, params: tuple[object, ...], *, index: bool,
        index_name: str = "t_v") -> list[tuple[int, float | None]]:
    """(id, distance) rows of the query with the index forced (its plan checked) or with index scans off."""
    conn.execute("SET enable_seqscan = " + ("off" if index else "on"))
    conn.execute("SET enable_indexscan = " + ("on" if index else "off"))
    conn.execute("SET enable_bitmapscan = off")
    conn.execute("SET enable_sort = " + ("off" if index else "on"))
    if index:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + text, params).fetchall())
        assert index_name in plan, plan
    # never a prepared statement: its cached plan would not follow the settings above
    return [(int(r[0]), r[1]) for r in conn.execute(text, params, prepare=False).fetchall()]


def same_key(a: float | None, b: float | None) -> bool:
    """Equal distances (NaN equals NaN, as in a sort)."""
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b


def assert_same_answer(got: list[tuple[int, float | None]], want: list[tuple[int, float | None]],
                       what: object, *, order: bool = True) -> None:
    """As many rows as the exact plan; with order, the same distances row by row (the executor's sort puts
    NaN last, Infinity before it) and the same rows strictly before the last distance (ties there may be
    any of the tied rows)."""
    assert len(got) == len(want), (what, len(got), len(want), got[:5], want[:5])
    assert len({i for i, _ in got}) == len(got), (what, "a row came twice")
    if not order:
        return
    for k, (g, w) in enumerate(zip(got, want)):
        assert same_key(g[1], w[1]), (what, k, got, want)
    if want:
        last = want[-1][1]
        before_g = {i for i, d in got if not same_key(d, last)}
        before_w = {i for i, d in want if not same_key(d, last)}
        assert before_g == before_w, (what, got, want)


def extreme_rows(rng: np.random.Generator, dims: int) -> list[list[float]]:
    """Rows whose values are finite but whose squares (or sums of squares) overflow float."""
    rows: list[list[float]] = []
    for v in (2e19, -2e19, 1e19, 3e38, -3.4e38):
        rows.append([v] * dims)
    rows.append((POISON * dims)[:dims])
    rows.append([2e19 if i % 2 else -2e19 for i in range(dims)])
    one = rng.standard_normal(dims).tolist()
    one[0] = 3e38
    rows.append(one)
    rows.append([1e-45] * dims)          # subnormal
    rows.append([0.0] * dims)            # zero (NaN cosine distance)
    rows.append([2e19] * dims)           # a duplicate: ties at a finite distance
    return rows


def fill(conn: psycopg.Connection, rows: list[list[float]], start: int = 0) -> None:
    with conn.cursor().copy("COPY t (id, v) FROM STDIN") as copy:
        for i, r in enumerate(rows):
            copy.write_row((start + i, vec(r)))


def queries(rng: np.random.Generator, dims: int, rows: list[list[float]]) -> list[list[float]]:
    return [
        rng.standard_normal(dims).tolist(),
        rows[0],                                   # a normal row of the table
        [2e19] * dims,
        (POISON * dims)[:dims],
        [-3.4e38] * dims,
        [1e20] + [0.5] * (dims - 1),
        [1e-45] * dims,
    ]


def check_scans(conn: psycopg.Connection, metric: str, qs: list[list[float]], what: object) -> None:
    """Every query through the index: LIMIT, a filter, and the whole table; strict order with a shortlist
    (and rerank) as large as the table, and the row count with small ones (batches, the pool, deferred
    refine candidates, unknown estimates): the order of an approximate first batch is a matter of recall."""
    op = OPS[metric][0]
    texts = [
        f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector LIMIT 3",
        f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector LIMIT 10",
        f"SELECT id, v {op} %s::vector FROM t WHERE id %% 3 = 0 ORDER BY v {op} %s::vector LIMIT 10",
        f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector",
    ]
    for q in qs:
        lit = vec(q)
        for text in texts:
            want = run(conn, text, (lit, lit), index=False)
            for shortlist, order in ((100000, True), (10, False), (100, False)):
                conn.execute(f"SET shrinkvec.shortlist = {shortlist}")
                conn.execute(f"SET shrinkvec.rerank = {min(shortlist, 40) if shortlist < 100000 else shortlist}")
                got = run(conn, text, (lit, lit), index=True)
                assert_same_answer(got, want, (what, q, text, shortlist), order=order)
    conn.execute("RESET shrinkvec.shortlist")
    conn.execute("RESET shrinkvec.rerank")


LAYOUTS = {
    "flat": "lists = 1",
    "ivf2": "lists = 2",
    "ivf64": "lists = 64",
    "flat_refine4": "lists = 1, refine = 4",
    "ivf2_refine8": "lists = 2, refine = 8",
    "ivf64_refine2": "lists = 64, refine = 2",
    "bits3": "lists = 2, bits = 3",
}


@own_cluster_only
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("metric", sorted(OPS))
def test_extreme_rows_build_insert_vacuum_and_scan(xconn: psycopg.Connection, metric: str, layout: str) -> None:
    """2e19 and 3e38 rows in the table at build, inserted after it, and some deleted and vacuumed away:
    the backend survives, and every scan (also with extreme queries) answers as the exact plan."""
    rng = np.random.default_rng(33)
    normal = rng.standard_normal((300, DIMS)).tolist()
    xconn.execute(f"CREATE TABLE t (id int PRIMARY KEY, v vector({DIMS}))")
    xconn.execute("ALTER TABLE t SET (autovacuum_enabled = off)")
    fill(xconn, normal + extreme_rows(rng, DIMS))
    xconn.execute(f"CREATE INDEX t_v ON t USING shrinkvec (v {OPS[metric][1]}) WITH ({LAYOUTS[layout]})")
    lists = int(one_row(xconn.execute("SELECT lists FROM shrinkvec_index_info('t_v')"))[0])
    xconn.execute(f"SET shrinkvec.probes = {lists}")
    # inserts after the build: the nearest list of an extreme row (coarse level at 64 lists)
    fill(xconn, extreme_rows(rng, DIMS) + rng.standard_normal((40, DIMS)).tolist(), start=10000)
    xconn.execute("DELETE FROM t WHERE id % 7 = 0")
    xconn.execute("VACUUM (INDEX_CLEANUP ON) t")
    fill(xconn, extreme_rows(rng, DIMS), start=20000)  # into the space VACUUM freed
    row = xconn.execute("SELECT live_rows, index_entries, missing, duplicated, dangling, ok "
                        "FROM shrinkvec_index_check('t_v')").fetchone()
    assert row is not None and row[2:] == (0, 0, 0, True), row
    check_scans(xconn, metric, queries(rng, DIMS, normal), (metric, layout))


@own_cluster_only
@pytest.mark.parametrize("options", ["lists = 2", "lists = 3", "lists = 100", "lists = 2, refine = 4"])
@pytest.mark.parametrize("metric", sorted(OPS))
def test_index_build_on_values_whose_squares_overflow(xconn: psycopg.Connection, metric: str, options: str) -> None:
    """Issue 33 item 1 as filed: ten rows of [2e19] and CREATE INDEX WITH (lists = 2) crashed the backend
    (every centroid distance +Inf or NaN, so k-means indexed its sums with an unset list number)."""
    xconn.execute("CREATE TABLE t (id serial PRIMARY KEY, v vector(1))")
    xconn.execute("INSERT INTO t (v) SELECT '[2e19]' FROM generate_series(1, 120)")
    xconn.execute("INSERT INTO t (v) SELECT '[-3e38]' FROM generate_series(1, 5)")
    xconn.execute(f"CREATE INDEX t_v ON t USING shrinkvec (v {OPS[metric][1]}) WITH ({options})")
    xconn.execute("INSERT INTO t (v) VALUES ('[2e19]'), ('[3e38]'), ('[1]')")
    xconn.execute("SET shrinkvec.probes = 100")
    check_scans(xconn, metric, [[2e19], [3e38], [1.0]], options)


@own_cluster_only
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_default_options_on_25000_extreme_rows(xconn: psycopg.Connection, metric: str) -> None:
    """Lists from the row count (158 lists, with the coarse level of 64+ lists) over 2e19 rows."""
    xconn.execute("CREATE TABLE t (id serial PRIMARY KEY, v vector(2))")
    xconn.execute("INSERT INTO t (v) SELECT CASE WHEN i % 2 = 0 THEN '[2e19,1]' ELSE '[-2e19,3e38]' END::vector "
                  "FROM generate_series(1, 25000) i")
    xconn.execute(f"CREATE INDEX t_v ON t USING shrinkvec (v {OPS[metric][1]})")
    xconn.execute("INSERT INTO t (v) SELECT '[2e19,2e19]' FROM generate_series(1, 50)")
    op = OPS[metric][0]
    text = f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector LIMIT 5"
    for q in ("[2e19,1]", "[1,1]"):
        got = run(xconn, text, (q, q), index=True)
        assert len(got) == 5


@own_cluster_only
@pytest.mark.parametrize("options", ["lists = 1", "lists = 1, refine = 4", "lists = 4"])
def test_one_row_does_not_poison_a_flat_index(xconn: psycopg.Connection, options: str) -> None:
    """Issue 33 item 2: with [3e38,3e38,-3e38,3e38] in the table at build, every scan returned that row only."""
    rng = np.random.default_rng(2)
    xconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(4))")
    fill(xconn, [POISON, *rng.standard_normal((3000, 4)).tolist()])
    xconn.execute(f"CREATE INDEX t_v ON t USING shrinkvec (v vector_l2_ops) WITH ({options})")
    xconn.execute("SET shrinkvec.probes = 4")
    text = "SELECT id, v <-> %s::vector FROM t ORDER BY v <-> %s::vector LIMIT 10"
    for _ in range(5):
        q = vec(rng.standard_normal(4))
        want = run(xconn, text, (q, q), index=False)
        xconn.execute("SET shrinkvec.shortlist = 100000")
        assert_same_answer(run(xconn, text, (q, q), index=True), want, options)
        xconn.execute("RESET shrinkvec.shortlist")
        got = run(xconn, text, (q, q), index=True)
        assert len(got) == 10 and 0 not in {i for i, _ in got}, got


@own_cluster_only
@pytest.mark.parametrize("options", ["lists = 1", "lists = 4", "lists = 1, refine = 4", "lists = 4, refine = 8",
                                     "lists = 1, bits = 3", "lists = 4, refine = 4, bits = 3"])
@pytest.mark.parametrize("metric", sorted(OPS))
def test_query_near_the_float_limit(xconn: psycopg.Connection, metric: str, options: str) -> None:
    """Issue 26 item 2: ORDER BY v <-> '[3e38,3e38,-3e38,3e38]' LIMIT 3 returned 0 rows through every
    shrinkvec vector index; a sequential scan returns 3 rows (at distance Infinity)."""
    rng = np.random.default_rng(26)
    xconn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(4))")
    fill(xconn, rng.standard_normal((3000, 4)).tolist())
    xconn.execute(f"CREATE INDEX t_v ON t USING shrinkvec (v {OPS[metric][1]}) WITH ({options})")
    op = OPS[metric][0]
    text = f"SELECT id, v {op} %s::vector FROM t ORDER BY v {op} %s::vector LIMIT 3"
    for q in (POISON, [1e20, 1, 1, 1], [-3.4e38] * 4):
        want = run(xconn, text, (vec(q), vec(q)), index=False)
        got = run(xconn, text, (vec(q), vec(q)), index=True)
        assert len(want) == 3 and len(got) == 3, (q, got, want)
        # the order, with every candidate of every list read exactly (1-bit codes of 4 dims rank
        # [1e20, 1, 1, 1] poorly, and the first batch of IVF comes from the probed lists)
        xconn.execute("SET shrinkvec.shortlist = 100000")
        xconn.execute("SET shrinkvec.rerank = 0")  # no refine stage: every candidate read
        xconn.execute("SET shrinkvec.probes = 4")
        assert_same_answer(run(xconn, text, (vec(q), vec(q)), index=True), want, (q, options))
        xconn.execute("RESET shrinkvec.shortlist")
        xconn.execute("RESET shrinkvec.rerank")
        xconn.execute("RESET shrinkvec.probes")


# ---- maxsim's query cache in PL/pgSQL -------------------------------------------------------------------


def test_maxsim_is_not_stale_inside_plpgsql(conn: psycopg.Connection) -> None:
    """Issue 33 item 3: a PL/pgSQL simple expression keeps one expression state per transaction and passes
    its variables as Params; the cache took them for constants and returned the first query's score."""
    rng = np.random.default_rng(3)
    doc = rng.standard_normal((5, 16)).astype(np.float32)
    qs = [rng.standard_normal((2, 16)).astype(np.float32) for _ in range(3)]
    mb = codes.multibit_str(codes.binarize_tokens(doc), 16)
    bits = "{" + ",".join(codes.bits_to_str(c, 16) for c in codes.binarize_tokens(doc)) + "}"
    conn.execute("CREATE FUNCTION w(q vector[], m multibit) RETURNS float8 LANGUAGE plpgsql "
                 "AS $$ BEGIN RETURN maxsim(q, m); END $$")
    conn.execute("CREATE FUNCTION wb(q vector[], b bit[]) RETURNS float8 LANGUAGE plpgsql "
                 "AS $$ BEGIN RETURN maxsim(q, b); END $$")
    lits = ["{" + ",".join('"' + vec(t) + '"' for t in q) + "}" for q in qs]
    want = [codes.maxsim_bits(q, codes.binarize_tokens(doc), 16) for q in qs]
    assert len(set(want)) == 3
    for fn, arg in (("w", mb), ("wb", bits)):
        with conn.transaction():
            got = [one_row(conn.execute(f"SELECT {fn}(%s::vector[], %s)", (lit, arg)))[0]
                   for lit in lits]
        assert got == pytest.approx(want, rel=1e-6), fn
        one = conn.execute(f"SELECT {fn}(q::vector[], %s) FROM unnest(%s::text[]) WITH ORDINALITY AS u(q, k) "
                           "ORDER BY k", (arg, lits)).fetchall()
        assert [r[0] for r in one] == pytest.approx(want, rel=1e-6), fn


# ---- dequantize_int8 at the float limit -------------------------------------------------------------------


def test_dequantize_int8_does_not_make_infinity(conn: psycopg.Connection) -> None:
    """Issue 33 item 4: lo + 255 steps rounded past the largest real and stored [Infinity] in a vector."""
    args = ("[127]", [8.0296683e34], [3.4028235e38])
    with pytest.raises(errors.NumericValueOutOfRange, match="dimension 1"):
        conn.execute("SELECT dequantize_int8(%s::int8vec, %s::real[], %s::real[])", args)
    with pytest.raises(errors.NumericValueOutOfRange):
        conn.execute("SELECT int8_ip_distance(%s::int8vec, '[1]', %s::real[], %s::real[])", args)
    with pytest.raises(codes.CodeError, match="dimension 1"):
        codes.dequantize_int8([127], [8.0296683e34], [3.4028235e38])
    # the largest real itself is fine
    row = conn.execute("SELECT dequantize_int8('[127]', '{0}', '{3.4028235e38}')::text").fetchone()
    assert row is not None and "Infinity" not in row[0]


# ---- a second ORDER BY key -------------------------------------------------------------------------------


def test_second_order_by_key_is_not_ignored(conn: psycopg.Connection) -> None:
    """Issue 33 item 5: for ORDER BY b <~> q1, b <^> q2 the planner hands both keys to the index scan, which
    ordered by the first only; ties of the first key must come in the order of the second."""
    rng = np.random.default_rng(5)
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, b bit(16), v vector(4))")
    with conn.cursor().copy("COPY t (id, b, v) FROM STDIN") as copy:
        for i in range(3000):
            copy.write_row((i, "".join(rng.choice(["0", "1"], 16)), vec(np.round(rng.standard_normal(4)))))
    conn.execute("CREATE INDEX t_b ON t USING shrinkvec (b bit_hamming_ops)")
    conn.execute("CREATE INDEX t_v ON t USING shrinkvec (v vector_l2_ops) WITH (lists = 1)")
    conn.execute("ANALYZE t")
    for k in range(5):
        q1 = "".join(rng.choice(["0", "1"], 16))
        q2 = "".join(rng.choice(["0", "1"], 5))
        text = ("SELECT id, b <~> %s::bit(16), b <^> %s::bit(5) FROM t "
                "ORDER BY b <~> %s::bit(16), b <^> %s::bit(5) LIMIT 20")
        params = (q1, q2, q1, q2)
        want = run_keys(conn, text, params, index=False)
        got = run_keys(conn, text, params, index=True, index_name="t_b")
        assert [r[1:] for r in got] == [r[1:] for r in want], k
        last = want[-1][1:]
        assert {r[0] for r in got if r[1:] != last} == {r[0] for r in want if r[1:] != last}
        qv1, qv2 = vec(np.round(rng.standard_normal(4))), vec(rng.standard_normal(4))
        text = ("SELECT id, v <-> %s::vector, v <-> %s::vector FROM t "
                "ORDER BY v <-> %s::vector, v <-> %s::vector LIMIT 20")
        params = (qv1, qv2, qv1, qv2)
        want = run_keys(conn, text, params, index=False)
        conn.execute("SET shrinkvec.shortlist = 100000")  # the first key in exact order (not a matter of recall)
        got = run_keys(conn, text, params, index=True, index_name="t_v")
        conn.execute("RESET shrinkvec.shortlist")
        assert [r[1:] for r in got] == [r[1:] for r in want], k


def run_keys(conn: psycopg.Connection, text: str, params: tuple[object, ...], *, index: bool,
             index_name: str = "") -> list[tuple[object, ...]]:
    """Rows of a query with two ORDER BY keys, with the index forced (its plan checked) or not used."""
    conn.execute("SET enable_seqscan = " + ("off" if index else "on"))
    conn.execute("SET enable_indexscan = " + ("on" if index else "off"))
    conn.execute("SET enable_bitmapscan = off")
    conn.execute("SET enable_sort = " + ("off" if index else "on"))
    conn.execute("SET enable_incremental_sort = " + ("off" if index else "on"))
    if index:
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + text, params).fetchall())
        assert index_name in plan, plan
    return [tuple(r) for r in conn.execute(text, params, prepare=False).fetchall()]


# ---- shrinkvec_index_check after an aborted INSERT ----------------------------------------------------------


@pytest.mark.parametrize("opclass", ["vector_l2_ops", "bit_hamming_ops"])
def test_index_check_after_an_aborted_insert(conn: psycopg.Connection, opclass: str) -> None:
    """Issue 33 "Also": an aborted INSERT left a 'dangling' entry (ok = false) until VACUUM: a false alarm.
    Entries of dead, aborted or in-progress tuples are not corruption; an entry without a tuple is."""
    col = "v" if opclass == "vector_l2_ops" else "b"
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, v vector(3), b bit(3))")
    conn.execute("ALTER TABLE t SET (autovacuum_enabled = off)")
    conn.execute("INSERT INTO t SELECT i, '[1,2,3]', B'101' FROM generate_series(1, 100) i")
    conn.execute(f"CREATE INDEX t_i ON t USING shrinkvec ({col} {opclass})")
    check = "SELECT live_rows, index_entries, missing, duplicated, dangling, ok FROM shrinkvec_index_check('t_i')"
    with pytest.raises(errors.DivisionByZero):
        with conn.transaction():
            conn.execute("INSERT INTO t SELECT i, '[3,2,1]', B'010' FROM generate_series(101, 150) i")
            conn.execute("SELECT 1 / 0")
    assert conn.execute(check).fetchone() == (100, 150, 0, 0, 0, True)
    conn.execute("DELETE FROM t WHERE id <= 10")                  # dead rows, not yet vacuumed
    conn.execute("UPDATE t SET id = id + 1000 WHERE id > 90")    # non-HOT (the primary key changes)
    assert conn.execute(check).fetchone() == (90, 160, 0, 0, 0, True)
    conn.execute("VACUUM (INDEX_CLEANUP ON) t")
    assert conn.execute(check).fetchone() == (90, 90, 0, 0, 0, True)


# ---- C entry points bound to a datum of another type (issue 32) -----------------------------------------


CONFUSED = [
    # (symbol, SQL argument types, arguments): the first argument is a short bytea read as the type
    ("binarize_vector", "bytea", "'\\x00040000'::bytea"),
    ("binarize_halfvec", "bytea", "'\\x00040000'::bytea"),
    ("hamming", "bytea, bytea", "'\\x00040000'::bytea, '\\x00040000'::bytea"),
    ("bit_ip", "bytea, bytea", "'\\x00100000'::bytea, '\\x00040000'::bytea"),
    ("prefix_cosine_distance", "bytea, bytea", "'\\x00040000'::bytea, '\\x00040000'::bytea"),
    ("halfvec_prefix_cosine_distance", "bytea, bytea", "'\\x00040000'::bytea, '\\x00040000'::bytea"),
    ("int8vec_dims", "bytea", "'\\x00400000'::bytea"),
    ("dequantize_int8", "bytea, real[], real[]", "'\\x00400000'::bytea, '{0}', '{1}'"),
    ("quantize_int8_vector", "bytea, real[], real[]", "'\\x00400000'::bytea, '{0}', '{1}'"),
    ("multibit_dims", "bytea", "'\\x0004000400'::bytea"),
    ("maxsim_vector_multibit", "vector[], bytea", "'{\"[1,2]\"}', '\\x0004000400'::bytea"),
    ("maxsim_vector", "bytea[], vector[]", "ARRAY['\\x00040000'::bytea], '{\"[1,2]\"}'"),
    ("maxsim_vector_bits", "vector[], bytea[]", "'{\"[1,2]\"}', ARRAY['\\x00040000'::bytea]"),
    ("transform_vector", "bytea, text", "'\\x00040000'::bytea, 'x'"),
]


@own_cluster_only
@pytest.mark.parametrize(("symbol", "types", "args"), CONFUSED, ids=[c[0] for c in CONFUSED])
def test_c_functions_reject_a_datum_of_the_wrong_size(xconn: psycopg.Connection, symbol: str, types: str,
                                                      args: str) -> None:
    """Issue 32: a bytea domain named vector once got bound to binarize, which read 1,024 bits out of a
    4-byte value. A C function bound (as superuser) to a bytea must error, never read out of bounds."""
    so = "$libdir/shrinkvec"
    rettype = "float8" if "distance" in symbol or "maxsim" in symbol or symbol == "bit_ip" else "text"
    if symbol.startswith("binarize"):
        rettype = "bit"
    if symbol.endswith("_dims") or symbol == "hamming":
        rettype = "int4"
    xconn.execute(f"CREATE FUNCTION evil({types}) RETURNS {rettype} AS '{so}', '{symbol}' LANGUAGE C STRICT")
    with pytest.raises((errors.DataCorrupted, errors.InvalidParameterValue, errors.DatatypeMismatch)) as e:
        xconn.execute(f"SELECT evil({args})")
    assert "bytes" in str(e.value) or "must be" in str(e.value), str(e.value)
    # the server is still up
    assert xconn.execute("SELECT 1").fetchone() == (1,)
