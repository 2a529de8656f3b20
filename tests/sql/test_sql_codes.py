"""Property tests: every SQL function equals the numpy reference (codes.py) on random inputs and
edge lengths, for each kernel level (scalar, AVX2, AVX-512) the CPU has."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgvector import HalfVector

from conftest import one_row
from shrinkvec import codes

EDGE_DIMS = [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 511, 512, 513, 2000, 16000]

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

dims_st = st.one_of(st.sampled_from(EDGE_DIMS), st.integers(1, 700))
seed_st = st.integers(0, 2**32 - 1)


def random_vector(dim: int, seed: int, kind: int) -> np.ndarray:
    """A float32 vector with the awkward values codes must handle: zeros, -0.0, ties, tiny and large values."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim).astype(np.float32)
    if kind == 1:  # many exact zeros and negative zeros
        v[rng.random(dim) < 0.3] = 0.0
        v[rng.random(dim) < 0.2] = -0.0
    elif kind == 2:  # values exactly representable in float16 (so halfvec and vector agree)
        v = v.astype(np.float16).astype(np.float32)
    elif kind == 3:  # tiny and large magnitudes
        v = v * np.float32(10.0) ** rng.integers(-30, 30, dim).astype(np.float32)
    return v


def as_bits(text: str) -> np.ndarray:
    """A bit string returned by the server, packed like codes.binarize."""
    return codes.str_to_bits(text) if text else np.zeros(0, dtype=np.uint8)


@PROPERTY
@given(dim=dims_st, seed=seed_st, kind=st.integers(0, 3), data=st.data())
def test_binarize_equals_reference(level_conn: psycopg.Connection, dim: int, seed: int, kind: int, data: st.DataObject) -> None:
    v = random_vector(dim, seed, kind)
    dims = data.draw(st.integers(1, dim))
    center = random_vector(dim, seed + 1, kind) * np.float32(0.5)
    row = one_row(level_conn.execute(
        """SELECT binarize(%(v)s), binarize(%(v)s, %(d)s), binarize(%(v)s, %(d)s, %(c)s::real[]),
                  binarize(%(a)s::real[], %(d)s, %(c)s::real[]), binary_quantize(%(v)s)::text""",
        {"v": v, "d": dims, "c": center.tolist(), "a": v.tolist()},
    ))
    assert row[0] == codes.bits_to_str(codes.binarize(v), dim) == row[4]
    assert row[1] == codes.bits_to_str(codes.binarize(v, dims), dims)
    assert row[2] == codes.bits_to_str(codes.binarize(v, dims, center), dims)
    assert row[3] == row[2]


@PROPERTY
@given(dim=dims_st, seed=seed_st, data=st.data())
def test_binarize_halfvec_equals_reference(level_conn: psycopg.Connection, dim: int, seed: int, data: st.DataObject) -> None:
    v = random_vector(dim, seed, 2).astype(np.float16)
    dims = data.draw(st.integers(1, dim))
    center = random_vector(dims, seed + 1, 0)
    row = one_row(level_conn.execute(
        "SELECT binarize(%(v)s), binarize(%(v)s, %(d)s, %(c)s::real[])",
        {"v": HalfVector(v), "d": dims, "c": center.tolist()},
    ))
    assert row[0] == codes.bits_to_str(codes.binarize(v), dim)
    assert row[1] == codes.bits_to_str(codes.binarize(v, dims, center), dims)


@PROPERTY
@given(la=dims_st, lb=dims_st, seed=seed_st, data=st.data())
def test_hamming_equals_reference(level_conn: psycopg.Connection, la: int, lb: int, seed: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    a = "".join(rng.choice(["0", "1"], la))
    # b shares a random-length prefix with a, so distances are not all ~n/2
    shared = data.draw(st.integers(0, min(la, lb)))
    b = a[:shared] + "".join(rng.choice(["0", "1"], lb - shared))
    n = data.draw(st.integers(0, min(la, lb)))
    row = one_row(level_conn.execute(
        "SELECT hamming(%(a)s::bit varying, %(b)s::bit varying), hamming(%(a)s::bit varying, %(b)s::bit varying, %(n)s),"
        " %(a)s::bit varying <^> %(b)s::bit varying",
        {"a": a, "b": b, "n": n},
    ))
    pa, pb = as_bits(a), as_bits(b)
    assert row[0] == codes.hamming(pa, pb, la, lb) == row[2]
    assert row[1] == codes.hamming(pa, pb, la, lb, n)


@PROPERTY
@given(dim=dims_st, seed=seed_st, kind=st.integers(0, 3), data=st.data())
def test_bit_ip_equals_reference(level_conn: psycopg.Connection, dim: int, seed: int, kind: int, data: st.DataObject) -> None:
    doc = random_vector(dim, seed, kind)
    q = random_vector(dim, seed + 7, kind)
    nbits = data.draw(st.integers(1, dim))
    code = codes.binarize(doc, nbits)
    got = one_row(level_conn.execute(
        "SELECT bit_ip(%(c)s::bit varying, %(q)s), %(c)s::bit varying <^#> %(q)s",
        {"c": codes.bits_to_str(code, nbits), "q": q},
    ))
    expected = codes.bit_ip(code, nbits, q)
    tol = 1e-5 * float(np.abs(q[:nbits]).astype(np.float64).sum()) + 1e-30
    assert abs(got[0] - expected) <= tol
    assert got[1] == got[0]


@PROPERTY
@given(la=dims_st, lb=dims_st, seed=seed_st, kind=st.integers(0, 2), data=st.data())
def test_prefix_cosine_equals_reference(level_conn: psycopg.Connection, la: int, lb: int, seed: int, kind: int,
                                        data: st.DataObject) -> None:
    a = random_vector(la, seed, kind)
    b = random_vector(lb, seed + 3, kind)
    dims = data.draw(st.integers(1, min(la, lb)))
    row = one_row(level_conn.execute(
        "SELECT prefix_cosine_distance(%(a)s, %(b)s), prefix_cosine_distance(%(a)s, %(b)s, %(d)s), %(a)s <^=> %(b)s,"
        " prefix_cosine_distance(%(ha)s, %(hb)s, %(d)s)",
        {"a": a, "b": b, "d": dims, "ha": HalfVector(a.astype(np.float16)), "hb": HalfVector(b.astype(np.float16))},
    ))
    for got, expected in [
        (row[0], codes.prefix_cosine_distance(a, b)),
        (row[1], codes.prefix_cosine_distance(a, b, dims)),
        (row[3], codes.prefix_cosine_distance(a.astype(np.float16), b.astype(np.float16), dims)),
    ]:
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=2e-5)
    assert row[2] == row[0] or (math.isnan(row[2]) and math.isnan(row[0]))


@PROPERTY
@given(dim=dims_st, seed=seed_st, kind=st.integers(0, 2), spread=st.one_of(st.just(0.0), st.floats(1e-3, 3.0)))
def test_int8_quantize_equals_reference(level_conn: psycopg.Connection, dim: int, seed: int, kind: int, spread: float) -> None:
    v = random_vector(dim, seed, kind)
    rng = np.random.default_rng(seed + 11)
    lo = (-spread * rng.random(dim)).astype(np.float32)
    hi = (lo + spread * rng.random(dim)).astype(np.float32)
    hi[::17] = lo[::17]  # some zero-width ranges
    q = random_vector(dim, seed + 5, 0)
    row = one_row(level_conn.execute(
        """SELECT quantize_int8(%(v)s, %(lo)s::real[], %(hi)s::real[])::text,
                  quantize_int8(%(a)s::real[], %(lo)s::real[], %(hi)s::real[])::text,
                  quantize_int8(%(h)s, %(lo)s::real[], %(hi)s::real[])::text,
                  dequantize_int8(quantize_int8(%(v)s, %(lo)s::real[], %(hi)s::real[]), %(lo)s::real[], %(hi)s::real[]),
                  int8_ip_distance(quantize_int8(%(v)s, %(lo)s::real[], %(hi)s::real[]), %(q)s, %(lo)s::real[], %(hi)s::real[]),
                  int8_cosine_distance(quantize_int8(%(v)s, %(lo)s::real[], %(hi)s::real[]), %(q)s,
                                       %(lo)s::real[], %(hi)s::real[])""",
        {"v": v, "a": v.tolist(), "h": HalfVector(v.astype(np.float16)), "lo": lo.tolist(), "hi": hi.tolist(), "q": q},
    ))
    code = codes.quantize_int8(v, lo, hi)
    text = "[" + ",".join(str(int(x)) for x in code) + "]"
    assert row[0] == text
    assert row[1] == text
    half_code = codes.quantize_int8(v.astype(np.float16), lo, hi)
    assert row[2] == "[" + ",".join(str(int(x)) for x in half_code) + "]"
    back = codes.dequantize_int8(code, lo, hi)
    assert np.array_equal(row[3].to_numpy(), back)
    ip = codes.int8_ip_distance(code, q, lo, hi)
    assert row[4] == pytest.approx(ip, abs=1e-5 * float(np.abs(back * q).sum()) + 1e-6)
    cos = codes.int8_cosine_distance(code, q, lo, hi)
    if math.isnan(cos):
        assert math.isnan(row[5])
    else:
        assert row[5] == pytest.approx(cos, abs=2e-5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 300), dim=st.sampled_from([1, 3, 64, 385]), seed=seed_st, coverage=st.floats(0.01, 1.0))
def test_int8_ranges_aggregate_equals_reference(conn: psycopg.Connection, n: int, dim: int, seed: int, coverage: float) -> None:
    m = np.stack([random_vector(dim, seed + i, 1) for i in range(n)])
    conn.execute("DROP TABLE IF EXISTS r; CREATE TEMP TABLE r (v vector)")
    with conn.cursor().copy("COPY r (v) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["vector"])
        for row in m:
            copy.write_row((row,))
    lo, hi = one_row(conn.execute("SELECT (int8_ranges(v)).* FROM r"))
    ref = codes.int8_ranges(m)
    assert np.array_equal(np.array(lo, dtype=np.float32), ref.lo)
    assert np.array_equal(np.array(hi, dtype=np.float32), ref.hi)
    lo, hi = one_row(conn.execute("SELECT (int8_ranges(v, %s)).* FROM r", (coverage,)))
    ref = codes.int8_ranges(m, coverage)
    assert np.array_equal(np.array(lo, dtype=np.float32), ref.lo)
    assert np.array_equal(np.array(hi, dtype=np.float32), ref.hi)


@pytest.mark.parametrize(
    ("query", "sqlstate", "message"),
    [
        ("SELECT binarize('[1,2]'::vector, 3)", "22023", "dims must be between 1 and 2, not 3"),
        ("SELECT binarize('[1,2]'::vector, -2147483648)", "22023", "dims must be between 1 and 2, not -2147483648"),
        ("SELECT binarize('{1,NaN}'::real[])", "22000", "NaN not allowed in array"),
        ("SELECT binarize('{1,NULL}'::real[])", "22004", "NULL not allowed in array"),
        ("SELECT binarize('{}'::real[])", "22000", "array must not be empty"),
        ("SELECT binarize(array_fill(1::real, ARRAY[16001]))", "54000", "array has 16001 elements, more than the limit of 16000"),
        ("SELECT hamming(B'1', B'11', 2)", "22023", "bit count 2 is out of range: the codes have 1 and 2 bits"),
        ("SELECT bit_ip(B'111', '[1,2]')", "22000", "code has 3 bits, more than the query's 2 dimensions"),
        ("SELECT prefix_cosine_distance('[1,2]'::vector, '[1]'::vector, 2)", "22023", "dims must be between 1 and 1, not 2"),
        ("SELECT quantize_int8('[1]'::vector, '{1}', '{0}')", "22000", "lo[1] = 1 is greater than hi[1] = 0"),
        ("SELECT dequantize_int8('[-128,127]', '{-3e38,-3e38}', '{3e38,3e38}')", "22003",
         "range [-3e+38, 3e+38] of dimension 1 is too wide: hi - lo overflows real"),
        ("SELECT '[200]'::int8vec", "22003", 'value "200" is out of range for type int8vec (-128 to 127)'),
        ("SELECT '[1,2]'::int8vec(3)", "22000", "expected 3 dimensions, not 2"),
    ],
)
def test_errors_name_the_problem(conn: psycopg.Connection, query: str, sqlstate: str, message: str) -> None:
    with pytest.raises(psycopg.Error) as err:
        conn.execute(query)
    assert err.value.sqlstate == sqlstate
    assert err.value.diag.message_primary == message
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the backend survived


def test_int8vec_binary_round_trip(conn: psycopg.Connection) -> None:
    values = [-128, -1, 0, 1, 127]
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT %s::int8vec", (str(values).replace(" ", ""),))
        raw = one_row(cur)[0]
    # binary send: int16 dim, int16 unused, then one byte per dimension
    assert bytes(raw) == (5).to_bytes(2, "big") + b"\0\0" + bytes(x & 0xFF for x in values)
    conn.execute("CREATE TEMP TABLE b (c int8vec(5))")
    with conn.cursor().copy("COPY b FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write_row((bytes(raw),))
    assert one_row(conn.execute("SELECT c::text FROM b"))[0] == "[-128,-1,0,1,127]"


def test_all_functions_are_commented_and_marked(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """SELECT p.oid::regprocedure::text, p.provolatile, p.proparallel, p.proisstrict, p.prokind,
                  obj_description(p.oid, 'pg_proc') AS comment
           FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
           JOIN pg_extension e ON e.oid = d.refobjid WHERE e.extname = 'shrinkvec'"""
    ).fetchall()
    assert len(rows) > 30
    # (volatility, parallel, strict) where a function is not IMMUTABLE PARALLEL SAFE STRICT, and why
    exceptions = {
        "shrinkvec_kernels()": ("s", "s", True),  # follows SET shrinkvec.kernels
        "shrinkvec.shrinkvec_kernels()": ("s", "s", True),
        # reads the catalogs (pg_attribute, pg_type); a profile without codes passes NULL arrays
        "shrinkvec.check_search_columns(regclass,name,name,boolean,name[],text[])": ("s", "s", False),
        "shrinkvec_handler(internal)": ("v", "u", False),  # an index AM handler, called by the server only
        "shrinkvec_index_info(regclass)": ("v", "s", True),  # reads the index as it is now
        "shrinkvec_index_entries(regclass)": ("v", "s", True),
        "shrinkvec_index_centroids(regclass,boolean)": ("v", "s", True),
        "shrinkvec_index_check(regclass)": ("v", "u", True),  # scans the table as its owner (sets search_path)
        "shrinkvec_index_repartition(regclass)": ("v", "u", True),  # rewrites the index as the table's owner
        "shrinkvec.on_sql_drop()": ("v", "u", False),  # event triggers: change the catalog
        "shrinkvec.on_ddl_end()": ("v", "u", False),
        "shrinkvec.codes_trigger()": ("v", "u", False),  # the codes trigger: writes the row, may read a transform
        # sets shrinkvec.shortlist/probes for a tuned index configuration (put back after); NULL = default
        "shrinkvec.search(regclass,vector,integer,integer,text)": ("v", "u", False),
        "shrinkvec.code_query(regclass,vector)": ("s", "s", True),  # reads the table's profile
        # reads the catalog and the table; NULL k/shortlist/stage = the profile's
        "shrinkvec.search_tokens(regclass,vector[],integer,integer,text)": ("s", "s", False),
        "shrinkvec.transform_vector(vector,text)": ("s", "s", True),  # reads shrinkvec.transforms (once per backend)
        "shrinkvec.transform_vector(halfvec,text)": ("s", "s", True),
    }
    for name, volatile, parallel, strict, kind, comment in rows:
        assert comment, f"{name} has no COMMENT ON"
        if name in exceptions:
            assert (volatile, parallel, strict) == exceptions[name], name
            continue
        assert parallel == "s", f"{name} is not PARALLEL SAFE"
        if name.startswith("int8_ranges_") or kind == "a":
            continue
        assert volatile == "i", f"{name} is not IMMUTABLE"
        assert strict, f"{name} is not STRICT"


def test_int8_ranges_changing_between_rows(conn: psycopg.Connection) -> None:
    """Ranges that differ from row to row (not query constants) are re-read and re-checked per row."""
    rng = np.random.default_rng(5)
    dim = 33
    conn.execute("CREATE TEMP TABLE q8 (id int, v vector, lo real[], hi real[])")
    rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    for i in range(40):
        v = rng.standard_normal(dim).astype(np.float32)
        lo = (-rng.random(dim) * (1 + i % 3)).astype(np.float32)
        hi = (lo + rng.random(dim) * (1 + i % 5)).astype(np.float32)
        if i % 4 == 0 and rows:  # repeat the previous row's ranges, then change them again
            lo, hi = rows[-1][2], rows[-1][3]
        rows.append((i, v, lo, hi))
        conn.execute("INSERT INTO q8 VALUES (%s, %s, %s::real[], %s::real[])", (i, v, lo.tolist(), hi.tolist()))
    got = conn.execute(
        "SELECT id, quantize_int8(v, lo, hi)::text, dequantize_int8(quantize_int8(v, lo, hi), lo, hi) FROM q8 ORDER BY id"
    ).fetchall()
    for (i, v, lo, hi), (gid, text, back) in zip(rows, got):
        code = codes.quantize_int8(v, lo, hi)
        assert gid == i and text == "[" + ",".join(str(int(x)) for x in code) + "]"
        assert np.array_equal(back.to_numpy(), codes.dequantize_int8(code, lo, hi))
    conn.execute("UPDATE q8 SET hi = lo WHERE id = 7")
    conn.execute("UPDATE q8 SET lo = array_fill(5::real, ARRAY[33]) WHERE id = 20")
    with pytest.raises(psycopg.Error) as err:
        conn.execute("SELECT quantize_int8(v, lo, hi) FROM q8 ORDER BY id")
    message = err.value.diag.message_primary or ""
    assert message.startswith("lo[") and "is greater than hi[" in message
