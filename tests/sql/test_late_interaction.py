"""Late interaction in SQL (issue 19): maxsim, binarize of token arrays and the multibit type equal the
numpy reference (codes.py) on random inputs with edge lengths and token counts, at every kernel
level; every bad input gets its error and SQLSTATE."""

from __future__ import annotations

import struct

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shrinkvec import codes

EDGE_DIMS = [1, 7, 8, 9, 63, 64, 65, 384]
EDGE_TOKENS = [1, 2, 31, 32, 33, 64, 65]

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def tokens(n: int, dim: int, seed: int, kind: int = 0) -> np.ndarray:
    """n float32 tokens: normal, with exact zeros (kind 1), or float16-exact (kind 2, for halfvec)."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((n, dim)).astype(np.float32)
    if kind == 1:
        t[rng.random((n, dim)) < 0.3] = 0.0
    if kind == 2:
        t = t.astype(np.float16).astype(np.float32)
    return t


def literal(t: np.ndarray) -> str:
    """A vector[] (or halfvec[]) literal of the rows of t."""
    return "{" + ",".join('"[' + ",".join(repr(float(x)) for x in row) + ']"' for row in t) + "}"


def exact_tolerance(q: np.ndarray, d: np.ndarray) -> float:
    """float32 accumulation error bound of the C exact MaxSim, relative to the magnitudes summed."""
    mags = np.abs(q.astype(np.float64)) @ np.abs(d.astype(np.float64)).T
    return float(4e-6 * q.shape[1] ** 0.5 * float(mags.max(axis=1).sum()) + 1e-30)


dims_st = st.one_of(st.sampled_from(EDGE_DIMS), st.integers(1, 200))
ntok_st = st.one_of(st.sampled_from(EDGE_TOKENS), st.integers(1, 40))


@PROPERTY
@given(dim=dims_st, nq=ntok_st, nd=ntok_st, seed=st.integers(0, 2**32 - 1), kind=st.integers(0, 2), data=st.data())
def test_maxsim_equals_reference(level_conn: psycopg.Connection, dim: int, nq: int, nd: int, seed: int, kind: int,
                                 data: st.DataObject) -> None:
    q = tokens(nq, dim, seed, kind)
    d = tokens(nd, dim, seed + 1, kind)
    dims = data.draw(st.integers(1, dim))
    center = tokens(1, dim, seed + 2, kind)[0] * np.float32(0.5)
    row = level_conn.execute(
        """SELECT maxsim(%(q)s::vector[], %(d)s::vector[]), binarize(%(d)s::vector[])::text,
                  binarize(%(d)s::vector[], %(n)s)::text, binarize(%(d)s::vector[], %(n)s, %(c)s::real[])::text,
                  maxsim(%(q)s::vector[], binarize(%(d)s::vector[])),
                  maxsim(%(q)s::vector[], binarize(%(d)s::vector[], %(n)s, %(c)s::real[])),
                  multibit_send(binarize(%(d)s::vector[], %(n)s)), multibit_tokens(binarize(%(d)s::vector[])),
                  vector_dims(binarize(%(d)s::vector[], %(n)s))""",
        {"q": literal(q), "d": literal(d), "n": dims, "c": center.tolist()},
    ).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(codes.maxsim(q, d), abs=exact_tolerance(q, d))
    full = codes.binarize_tokens(d)
    pre = codes.binarize_tokens(d, dims)
    centered = codes.binarize_tokens(d, dims, center)
    assert row[1] == codes.multibit_str(full, dim)
    assert row[2] == codes.multibit_str(pre, dims)
    assert row[3] == codes.multibit_str(centered, dims)
    # the asymmetric score is exact: integer sums, summed in double in the same order
    assert row[4] == codes.maxsim_bits(q, full, dim)
    assert row[5] == codes.maxsim_bits(q, centered, dims)
    assert bytes(row[6]) == codes.multibit_send(pre, dims)
    assert (row[7], row[8]) == (nd, dims)
    # single-token binarize agrees with the single-vector binarize
    assert codes.bits_to_str(full[0], dim) == codes.bits_to_str(codes.binarize(d[0]), dim)


@PROPERTY
@given(dim=dims_st, nq=ntok_st, nd=ntok_st, seed=st.integers(0, 2**32 - 1))
def test_halfvec_and_bit_array_versions_equal_reference(level_conn: psycopg.Connection, dim: int, nq: int, nd: int,
                                                        seed: int) -> None:
    q = tokens(nq, dim, seed, 2)
    d = tokens(nd, dim, seed + 1, 2)
    bits = "{" + ",".join(codes.bits_to_str(c, dim) for c in codes.binarize_tokens(d)) + "}"
    row = level_conn.execute(
        """SELECT maxsim(%(q)s::halfvec[], %(d)s::halfvec[]), binarize(%(d)s::halfvec[])::text,
                  maxsim(%(q)s::halfvec[], binarize(%(d)s::halfvec[])), maxsim(%(q)s::vector[], %(b)s::varbit[]),
                  binarize(%(d)s::halfvec[], 1, ARRAY[0]::real[])::text""",
        {"q": literal(q), "d": literal(d), "b": bits},
    ).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(codes.maxsim(q, d), abs=exact_tolerance(q, d))
    assert row[1] == codes.multibit_str(codes.binarize_tokens(d), dim)
    assert row[2] == row[3] == codes.maxsim_bits(q, codes.binarize_tokens(d), dim)
    assert row[4] == codes.multibit_str(codes.binarize_tokens(d, 1, [0.0]), 1)


@pytest.mark.parametrize("dim", [1, 8, 384])
def test_token_limit_is_accepted_and_one_more_is_not(conn: psycopg.Connection, dim: int) -> None:
    d = tokens(codes.MAX_TOKENS, dim, 7)
    q = tokens(3, dim, 8)
    row = conn.execute("SELECT maxsim(%(q)s::vector[], %(d)s::vector[]), maxsim(%(q)s::vector[], binarize(%(d)s::vector[]))",
                       {"q": literal(q), "d": literal(d)}).fetchone()
    assert row is not None
    assert row[0] == pytest.approx(codes.maxsim(q, d), abs=exact_tolerance(q, d))
    assert row[1] == codes.maxsim_bits(q, codes.binarize_tokens(d), dim)
    over = literal(tokens(codes.MAX_TOKENS + 1, dim, 9))
    with pytest.raises(psycopg.Error, match="document has 1025 tokens, more than the limit of 1024") as exc:
        conn.execute("SELECT maxsim(%s::vector[], %s::vector[])", (literal(q), over))
    assert exc.value.sqlstate == "54000"
    with pytest.raises(psycopg.Error, match="query has 1025 tokens") as exc:
        conn.execute("SELECT maxsim(%s::vector[], binarize(%s::vector[]))", (over, literal(q)))
    assert exc.value.sqlstate == "54000"
    with pytest.raises(psycopg.Error, match="multibit has 1025 tokens") as exc:
        conn.execute("SELECT %s::multibit", ("{" + ",".join(["1"] * 1025) + "}",))
    assert exc.value.sqlstate == "54000"
    with pytest.raises(codes.CodeError, match="document has 1025 tokens, more than the limit of 1024"):
        codes.binarize_tokens(tokens(codes.MAX_TOKENS + 1, dim, 9))


ERRORS = [
    ("SELECT maxsim('{}'::vector[], '{\"[1]\"}'::vector[])", "22000", "query must not be empty"),
    ("SELECT maxsim('{\"[1]\"}'::vector[], '{}'::vector[])", "22000", "document must not be empty"),
    ("SELECT binarize('{}'::vector[])", "22000", "document must not be empty"),
    ("SELECT maxsim('{\"[1]\",NULL}'::vector[], '{\"[1]\"}'::vector[])", "22004", "NULL not allowed in query"),
    ("SELECT binarize('{NULL}'::halfvec[])", "22004", "NULL not allowed in document"),
    ("SELECT maxsim('{{\"[1]\"},{\"[2]\"}}'::vector[], '{\"[1]\"}'::vector[])", "2202E",
     "query must have one dimension, not 2"),
    ("SELECT maxsim('{\"[1,2,3]\"}'::vector[], '{\"[1,2,3]\",\"[1,2,3,4]\"}'::vector[])", "22000",
     "different vector dimensions 3 and 4"),
    ("SELECT maxsim('{\"[1,2,3]\"}'::vector[], '{\"[1,2,3,4]\"}'::vector[])", "22000",
     "different vector dimensions 3 and 4"),
    ("SELECT maxsim('{\"[1,2,3]\"}'::halfvec[], '{\"[1,2]\"}'::halfvec[])", "22000",
     "different vector dimensions 3 and 2"),
    ("SELECT binarize('{\"[1,2]\",\"[1]\"}'::vector[])", "22000", "different vector dimensions 2 and 1"),
    ("SELECT binarize('{\"[1,2]\"}'::vector[], 3)", "22023", "dims must be between 1 and 2, not 3"),
    ("SELECT binarize('{\"[1,2]\"}'::vector[], 0)", "22023", "dims must be between 1 and 2, not 0"),
    ("SELECT binarize('{\"[1,2]\"}'::vector[], 2, '{1,NaN}')", "22000", "NaN not allowed in center"),
    ("SELECT binarize('{\"[1,2]\"}'::vector[], 2, '{1,Infinity}')", "22000", "infinite value not allowed in center"),
    ("SELECT binarize('{\"[1,2]\"}'::vector[], 1, '{1,2,3}')", "22000",
     "center has 3 elements, expected 2 .the input's dimensions. or 1 .dims."),
    ("SELECT maxsim('{\"[1,2]\"}'::vector[], '{101}'::multibit)", "22000",
     "code has 3 dimensions, more than the query's 2 dimensions"),
    ("SELECT maxsim('{\"[1,2,3]\"}'::vector[], '{101,10}'::varbit[])", "22000", "different bit lengths 3 and 2"),
    ("SELECT maxsim('{\"[1,2,3]\"}'::vector[], '{}'::bit[])", "22000", "document must not be empty"),
    ("SELECT '{101,10}'::multibit", "22000", "different bit lengths 3 and 2"),
    ("SELECT '{}'::multibit", "22P02", "invalid input syntax for type multibit"),
    ("SELECT '101'::multibit", "22P02", "invalid input syntax for type multibit"),
    ("SELECT '{102}'::multibit", "22P02", "invalid input syntax for type multibit"),
    ("SELECT '{101} x'::multibit", "22P02", "invalid input syntax for type multibit"),
]


@pytest.mark.parametrize(("query", "sqlstate", "message"), ERRORS)
def test_bad_input_errors(conn: psycopg.Connection, query: str, sqlstate: str, message: str) -> None:
    with pytest.raises(psycopg.Error, match=message) as exc:
        conn.execute(query)
    assert exc.value.sqlstate == sqlstate


def test_reference_raises_the_same_errors() -> None:
    with pytest.raises(codes.CodeError, match="document must not be empty"):
        codes.binarize_tokens(np.zeros((0, 3), dtype=np.float32))
    with pytest.raises(codes.CodeError, match="different vector dimensions 3 and 4"):
        codes.maxsim([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(codes.CodeError, match="different vector dimensions 2 and 1"):
        codes.binarize_tokens([[1.0, 2.0], [1.0]])
    with pytest.raises(codes.CodeError, match="NaN not allowed in document"):
        codes.binarize_tokens([[1.0, float("nan")]])
    with pytest.raises(codes.CodeError, match="code has 3 dimensions, more than the query's 2"):
        codes.maxsim_bits([[1.0, 2.0]], codes.binarize_tokens([[1.0, 2.0, 3.0]]), 3)


def copy_binary(field: bytes) -> bytes:
    """A binary COPY stream of one row with one field."""
    out = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0) + struct.pack("!h", 1)
    return out + struct.pack("!i", len(field)) + field + struct.pack("!h", -1)


def test_multibit_binary_input_round_trips_and_checks(conn: psycopg.Connection) -> None:
    d = tokens(33, 41, 3)
    c = codes.binarize_tokens(d)
    conn.execute("CREATE TABLE wire (c multibit)")
    with conn.cursor().copy("COPY wire FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(copy_binary(codes.multibit_send(c, 41)))
    text, same, size = conn.execute(
        "SELECT c::text, c = binarize(%s::vector[]), pg_column_size(c) FROM wire",
        (literal(d),)).fetchone() or (None, None, None)
    assert text == codes.multibit_str(c, 41)
    assert size == codes.multibit_bytes(c, 41)  # over 126 bytes: a 4-byte varlena header on disk too
    assert same is True
    # = compares tokens, dims and bits
    assert conn.execute("SELECT '{101,011}'::multibit = '{101,011}', '{101,011}'::multibit = '{101,010}', "
                        "'{101}'::multibit = '{1010}', '{10}'::multibit = '{10,10}'").fetchone() == (True, False, False, False)
    bad = bytearray(codes.multibit_send(c, 41))
    bad[-1] |= 0x01  # a padding bit past bit 41
    with pytest.raises(psycopg.Error, match="multibit token 33 has padding bits set past bit 41") as exc:
        with conn.cursor().copy("COPY wire FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.write(copy_binary(bytes(bad)))
    assert exc.value.sqlstate == "22P03"
    with pytest.raises(psycopg.Error, match="multibit must not be empty") as exc:
        with conn.cursor().copy("COPY wire FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.write(copy_binary(struct.pack("!hh", 0, 8)))
    assert exc.value.sqlstate == "22000"


def test_query_tables_follow_the_query_from_row_to_row(conn: psycopg.Connection) -> None:
    """The cached tables of the asymmetric score are rebuilt when the query argument changes between rows."""
    qs = [tokens(3, 16, 100 + i) for i in range(4)]
    d = tokens(5, 16, 200)
    rows = conn.execute(
        "SELECT maxsim(q, binarize(%s::vector[])) FROM unnest(%s::text[]) WITH ORDINALITY AS t(qt, i), "
        "LATERAL (SELECT qt::vector[] AS q) s ORDER BY i",
        (literal(d), [literal(q) for q in qs + qs[:1]])).fetchall()
    assert [r[0] for r in rows] == [codes.maxsim_bits(q, codes.binarize_tokens(d), 16) for q in qs + qs[:1]]
