"""Fuzzing every SQL-callable function of the extension, its type's text and binary input, with hypothesis.

Each example calls one function with values drawn for its argument types: random dimensions (1 to
16,001), zeros, huge and tiny values, NaN and Infinity, NULLs, empty, multi-dimensional and
non-1-based arrays, bit strings of 0 to 100,000 bits, extreme integers, junk text. The function may
answer or raise an error, but:

- the backend must stay up (the next statement on the same connection works);
- an error must carry a user-facing SQLSTATE (data exception, wrong object, limit exceeded, ...),
  never XX000 (internal error, "invalid memory alloc request size", failed assertion) nor a timeout.

The examples are derandomized so CI is deterministic. SHRINKVEC_FUZZ_EXAMPLES=N raises the number
of examples per function and draws new ones on every run (a soak).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from conftest import one_row

# hypothesis fuzzing of every SQL function (~40 s): make test runs it, make test-fast skips it
pytestmark = pytest.mark.slow
SOAK = int(os.environ.get("SHRINKVEC_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=SOAK or 60,
    derandomize=not SOAK,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# SQLSTATE classes a user error may carry: data exception, syntax error or access rule violation,
# feature not supported, program limit exceeded, object not in prerequisite state.
ALLOWED_CLASSES = {"22", "42", "0A", "54", "55"}

# Functions that take `internal` cannot be called from SQL (PostgreSQL refuses the call); they are
# reached through the aggregate, the index and the type's binary input, which are fuzzed below.
INTERNAL = {
    "int8vec_recv(internal,oid,integer)",
    "int8_ranges_accum(internal,vector)",
    "int8_ranges_coverage_accum(internal,vector,double precision)",
    "int8_ranges_final(internal)",
    "shrinkvec_handler(internal)",
    "shrinkvec.on_sql_drop()",  # event triggers: called by the server only
    "shrinkvec.on_ddl_end()",
    "shrinkvec.codes_trigger()",  # the codes trigger: called by the server only (tests/sql/test_codes_trigger.py)
    "shrinkvec_hamming_kind(internal)",
    "shrinkvec_l2_kind(internal)",
    "shrinkvec_ip_kind(internal)",
    "shrinkvec_cosine_kind(internal)",
    "shrinkvec_bit_support(internal)",
    "shrinkvec_vector_support(internal)",
    "shrinkvec_halfvec_support(internal)",
    "multibit_recv(internal)",  # fuzzed through binary COPY below
}

# Every SQL-callable function of the extension; test_every_function_is_fuzzed keeps this list whole.
FUNCTIONS = [
    "shrinkvec_kernels()",
    "binarize(vector)",
    "binarize(vector,integer)",
    "binarize(vector,integer,real[])",
    "binarize(halfvec)",
    "binarize(halfvec,integer)",
    "binarize(halfvec,integer,real[])",
    "binarize(real[])",
    "binarize(real[],integer)",
    "binarize(real[],integer,real[])",
    "hamming(bit,bit)",
    "hamming(bit,bit,integer)",
    "bit_ip(bit,vector)",
    "prefix_cosine_distance(vector,vector)",
    "prefix_cosine_distance(vector,vector,integer)",
    "prefix_cosine_distance(halfvec,halfvec)",
    "prefix_cosine_distance(halfvec,halfvec,integer)",
    "int8vec_in(cstring,oid,integer)",
    "int8vec_out(int8vec)",
    "int8vec_typmod_in(cstring[])",
    "int8vec_send(int8vec)",
    "int8vec(int8vec,integer,boolean)",
    "vector_dims(int8vec)",
    "quantize_int8(vector,real[],real[])",
    "quantize_int8(halfvec,real[],real[])",
    "quantize_int8(real[],real[],real[])",
    "dequantize_int8(int8vec,real[],real[])",
    "int8_ip_distance(int8vec,vector,real[],real[])",
    "int8_cosine_distance(int8vec,vector,real[],real[])",
    "int8_ranges(vector)",
    "int8_ranges(vector,double precision)",
    "shrinkvec_index_info(regclass)",
    "shrinkvec_index_entries(regclass)",
    "shrinkvec_index_check(regclass)",
    "shrinkvec_index_centroids(regclass,boolean)",
    "shrinkvec_index_repartition(regclass)",
    "shrinkvec.search(regclass,vector,integer,integer,text)",
    "shrinkvec.code_query(regclass,vector)",
    "shrinkvec.transform_vector(vector,text)",
    "shrinkvec.transform_vector(halfvec,text)",
    "multibit_in(cstring)",
    "multibit_out(multibit)",
    "multibit_send(multibit)",
    "multibit_tokens(multibit)",
    "vector_dims(multibit)",
    "maxsim(vector[],vector[])",
    "maxsim(halfvec[],halfvec[])",
    "binarize(vector[])",
    "binarize(vector[],integer)",
    "binarize(vector[],integer,real[])",
    "binarize(halfvec[])",
    "binarize(halfvec[],integer)",
    "binarize(halfvec[],integer,real[])",
    "maxsim(vector[],multibit)",
    "maxsim(halfvec[],multibit)",
    "maxsim(vector[],bit[])",
    "multibit_eq(multibit,multibit)",
    "shrinkvec.search_tokens(regclass,vector[],integer,integer,text)",
    # the functions search() calls, in the superuser-owned schema shrinkvec (the C functions above)
    "shrinkvec.shrinkvec_kernels()",
    "shrinkvec.bit_ip(bit,vector)",
    "shrinkvec.prefix_cosine_distance(vector,vector)",
    "shrinkvec.prefix_cosine_distance(halfvec,halfvec)",
    "shrinkvec.int8_ip_distance(int8vec,vector,real[],real[])",
    "shrinkvec.int8_cosine_distance(int8vec,vector,real[],real[])",
    "shrinkvec.maxsim(vector[],vector[])",
    "shrinkvec.maxsim(vector[],multibit)",
    "shrinkvec.check_search_columns(regclass,name,name,boolean,name[],text[])",
]

DIMS = st.one_of(st.integers(1, 40), st.sampled_from([383, 384, 385, 1000, 16000, 16001]))
SPECIALS = ["NaN", "Infinity", "-Infinity", "1e39", "-0", "1e-45"]


@st.composite
def floats_text(draw: st.DrawFn, n: int, special: bool) -> list[str]:
    """n numbers as text: normal, zero, huge or tiny, with NaN/Infinity at random places if special."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 0.0, 1e38, 1e-38, 65504.0, 70000.0]))
    with np.errstate(over="ignore"):
        vals = [repr(float(x)) for x in (rng.standard_normal(n) * scale).astype(np.float32)]
    if special and n and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            vals[int(rng.integers(n))] = draw(st.sampled_from(SPECIALS))
    return vals


@st.composite
def vector_text(draw: st.DrawFn) -> str | None:
    """A pgvector/halfvec literal, or text that is not one."""
    if draw(st.integers(0, 19)) == 0:
        return None
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["[]", "[1,", "[1,2]]", "1,2", "[a,b]", "[" + ",".join(["1"] * 16001) + "]"]))
    return "[" + ",".join(draw(floats_text(draw(DIMS), special=True))) + "]"


@st.composite
def real_array_text(draw: st.DrawFn) -> str | None:
    """A real[] literal: 1-d, empty, 2-d, non-1 lower bound, with NULL elements, or NULL."""
    form = draw(st.sampled_from(["plain", "plain", "plain", "empty", "2d", "bounds", "nulls", "null"]))
    if form == "null":
        return None
    if form == "empty":
        return "{}"
    n = draw(DIMS)
    vals = draw(floats_text(n, special=True))
    if form == "2d":
        half = max(1, n // 2)
        return "{{" + ",".join(vals[:half]) + "},{" + ",".join((vals[half:] + ["0"] * half)[:half]) + "}}"
    if form == "bounds":
        return f"[0:{n - 1}]=" + "{" + ",".join(vals) + "}"
    if form == "nulls":
        vals[draw(st.integers(0, n - 1))] = "NULL"
    return "{" + ",".join(vals) + "}"


@st.composite
def bit_text(draw: st.DrawFn) -> str | None:
    """A bit string of 0 to 100,000 bits, or NULL."""
    if draw(st.integers(0, 19)) == 0:
        return None
    n = draw(st.one_of(st.integers(0, 600), st.sampled_from([16000, 16001, 100_000])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return "".join("1" if b else "0" for b in rng.integers(0, 2, n))


@st.composite
def int8vec_text(draw: st.DrawFn) -> str | None:
    """An int8vec literal with in- and out-of-range values, junk, or NULL."""
    form = draw(st.sampled_from(["ok", "ok", "ok", "range", "junk", "null"]))
    if form == "null":
        return None
    if form == "junk":
        return draw(st.text(max_size=30).filter(lambda s: "\x00" not in s))
    n = draw(DIMS)
    hi = 127 if form == "ok" else 100_000
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return "[" + ",".join(str(int(v)) for v in rng.integers(-hi - 1, hi + 1, n)) + "]"


TOKEN_COUNTS = st.one_of(st.integers(0, 40), st.sampled_from([1024, 1025]))


@st.composite
def vector_array_text(draw: st.DrawFn) -> str | None:
    """A vector[] literal: token counts 0 to 1,025, mixed dimensions, NULL or junk tokens, 2-d, or NULL."""
    form = draw(st.sampled_from(["ok", "ok", "ok", "mixed", "nulls", "junk", "2d", "null"]))
    if form == "null":
        return None
    n = draw(TOKEN_COUNTS)
    dim = draw(st.one_of(st.integers(1, 20), st.sampled_from([384, 16000]))) if n <= 40 else draw(st.integers(1, 8))
    toks = ['"[' + ",".join(draw(floats_text(dim, special=False))) + ']"' for _ in range(min(n, 3))]
    toks = (toks * (n // max(1, len(toks)) + 1))[:n]
    if n and form == "mixed":
        toks[draw(st.integers(0, n - 1))] = '"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21]"'
    if n and form == "nulls":
        toks[draw(st.integers(0, n - 1))] = "NULL"
    if n and form == "junk":
        toks[draw(st.integers(0, n - 1))] = draw(st.sampled_from(['"[]"', '"[NaN]"', '"x"', '"[1e39]"']))
    if form == "2d" and n >= 2:
        return "{{" + toks[0] + "},{" + toks[1] + "}}"
    return "{" + ",".join(toks) + "}"


@st.composite
def multibit_text(draw: st.DrawFn) -> str | None:
    """A multibit (or bit[]) literal: token counts 0 to 1,025, mixed lengths, junk, or NULL."""
    form = draw(st.sampled_from(["ok", "ok", "ok", "mixed", "junk", "null"]))
    if form == "null":
        return None
    if form == "junk":
        return draw(st.sampled_from(["{}", "{,}", "{1,}", "{12}", "101", "{1}}", "{{1}}", "{NULL}", "{ 1 , 0 }"]))
    n = draw(TOKEN_COUNTS)
    dim = draw(st.one_of(st.integers(1, 70), st.sampled_from([384, 16000, 16001]))) if n <= 40 else 8
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    toks = ["".join("1" if b else "0" for b in rng.integers(0, 2, dim)) for _ in range(min(n, 3))]
    toks = (toks * (n // max(1, len(toks)) + 1))[:n]
    if n and form == "mixed":
        toks[draw(st.integers(0, n - 1))] = "1" * (dim + 1)
    return "{" + ",".join(toks) + "}"


INTS = st.one_of(st.integers(-3, 40), st.sampled_from([0, -1, 383, 384, 385, 16000, 16001, 2**31 - 1, -(2**31)]),
                 st.none())
DOUBLES = st.one_of(st.floats(), st.sampled_from([0.0, 1.0, 0.5, -0.5, 1.5]), st.none()).map(
    lambda x: None if x is None else repr(x).replace("nan", "NaN").replace("inf", "Infinity"))
TEXTS = st.one_of(st.none(), st.sampled_from(["bits", "prefix", "int8", "prefix:16", "embedding", "bits_384"]),
                  st.text(max_size=20).filter(lambda s: "\x00" not in s))
RELATIONS = ["fuzz_docs", "fuzz_docs_v", "fuzz_docs_b", "fuzz_docs_pkey", "fuzz_view", "fuzz_seq", "pg_class",
             "0", "1259", "4294967295", "no_such_table"]

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "vector": vector_text(),
    "halfvec": vector_text(),
    "real[]": real_array_text(),
    "bit": bit_text(),
    "integer": INTS,
    "oid": st.one_of(st.integers(0, 2**32 - 1), st.none()),
    "boolean": st.one_of(st.booleans(), st.none()),
    "double precision": DOUBLES,
    "int8vec": int8vec_text(),
    "cstring": st.one_of(int8vec_text(), multibit_text(), st.text(max_size=30).filter(lambda s: "\x00" not in s)),
    "cstring[]": st.lists(st.one_of(st.integers(-5, 20_000).map(str), st.text(max_size=5).filter(
        lambda s: s.isalnum())), max_size=3).map(lambda xs: "{" + ",".join(xs) + "}"),
    "text": TEXTS,
    "regclass": st.one_of(st.sampled_from(RELATIONS), st.integers(0, 2**32 - 1).map(str)),
    "vector[]": vector_array_text(),
    "halfvec[]": vector_array_text(),
    "multibit": multibit_text(),
    "bit[]": multibit_text(),
    "name": TEXTS,
    "name[]": st.lists(st.sampled_from(["id", "embedding", "bits", "x"]), max_size=3).map(
        lambda xs: "{" + ",".join(xs) + "}"),
    "text[]": st.lists(st.sampled_from(["bits", "prefix", "int8", "multibit", "nope"]), max_size=3).map(
        lambda xs: "{" + ",".join(xs) + "}"),
}
# how a drawn value reaches its parameter: real[] and bit go through text, int8vec through its input
CASTS = {"bit": "varbit", "cstring": "text", "bit[]": "varbit[]"}


@dataclass(frozen=True)
class Signature:
    name: str
    schema: str | None
    args: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Signature:
        name, rest = text.split("(", 1)
        schema, _, fname = name.rpartition(".")
        args = tuple(a.strip() for a in rest.rstrip(")").split(",") if a.strip())
        return cls(fname, schema or None, args)

    def call(self) -> sql.Composed:
        """SELECT of the function with one typed placeholder per argument (an aggregate over 3 rows)."""
        fn = sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)
        typed = [sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(CASTS.get(a, a))) for a in self.args]
        if self.name == "int8_ranges":  # the aggregate over three rows, then its other arguments
            rest = [sql.SQL(", {}").format(t) for t in typed[1:]]
            return sql.SQL("SELECT {}(v{}) FROM (VALUES ({}), ({}), ({})) AS t(v)").format(
                fn, sql.Composed(rest), typed[0], typed[0], typed[0])
        if self.name in ("shrinkvec_index_entries", "shrinkvec_index_check", "search"):
            return sql.SQL("SELECT count(*) FROM {}({})").format(fn, sql.SQL(", ").join(typed))
        return sql.SQL("SELECT {}({})").format(fn, sql.SQL(", ").join(typed))

    def strategy(self) -> st.SearchStrategy[list[Any]]:
        args = list(self.args)
        if self.name == "int8_ranges":
            args = [args[0]] * 3 + args[1:]  # three rows to aggregate
        return st.tuples(*(STRATEGIES[a] for a in args)).map(list)


def run_one(conn: psycopg.Connection, query: sql.Composed, values: list[Any]) -> None:
    """Run query; on error, check its SQLSTATE; in every case check the backend is still up."""
    try:
        conn.execute(query, values).fetchall()
    except psycopg.Error as exc:
        check_error(conn, exc, query.as_string(conn), values)
    alive(conn, query.as_string(conn), values)


def check_error(conn: psycopg.Connection, exc: psycopg.Error, what: str, values: list[Any],
                allowed: frozenset[str] = frozenset()) -> None:
    """An error is fine when the backend survived it and its SQLSTATE is a user-facing one."""
    if conn.broken or exc.sqlstate is None:
        pytest.fail(f"the backend died on {what} with {short(values)}: {exc}")
    state = exc.sqlstate
    assert state[:2] in ALLOWED_CLASSES or state in allowed, (state, str(exc)[:300], what, short(values))


def alive(conn: psycopg.Connection, what: str, values: list[Any]) -> None:
    """The next statement on the same connection works."""
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error as exc:
        pytest.fail(f"the backend died on {what} with {short(values)}: {exc}")


def short(values: list[Any]) -> list[Any]:
    """Values cut to a readable length for failure messages."""
    return [v[:80] + "..." if isinstance(v, str) and len(v) > 80 else v for v in values]


@pytest.fixture
def fuzz_conn(conn: psycopg.Connection) -> psycopg.Connection:
    """The test database with relations of every kind for regclass arguments, and a statement timeout."""
    rng = np.random.default_rng(0)
    conn.execute("CREATE TABLE fuzz_docs (id bigint PRIMARY KEY, embedding vector(8), bits bit(8))")
    with conn.cursor().copy("COPY fuzz_docs FROM STDIN") as copy:
        for i in range(50):
            v = rng.standard_normal(8).astype(np.float32)
            copy.write_row((i, "[" + ",".join(map(str, v)) + "]", "".join("1" if x > 0 else "0" for x in v)))
    conn.execute("CREATE INDEX fuzz_docs_v ON fuzz_docs USING shrinkvec (embedding vector_cosine_ops)")
    conn.execute("CREATE INDEX fuzz_docs_b ON fuzz_docs USING shrinkvec (bits)")
    conn.execute("CREATE VIEW fuzz_view AS SELECT * FROM fuzz_docs")
    conn.execute("CREATE SEQUENCE fuzz_seq")
    conn.execute("SET statement_timeout = '20s'")
    return conn


def test_every_function_is_fuzzed(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e' "
        "JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'shrinkvec'").fetchall()
    catalog = {r[0] for r in rows}
    assert catalog == set(FUNCTIONS) | INTERNAL
    for text in FUNCTIONS:
        assert all(a in STRATEGIES for a in Signature.parse(text).args), text


@pytest.mark.parametrize("signature", FUNCTIONS)
def test_function_survives_random_input(fuzz_conn: psycopg.Connection, signature: str) -> None:
    sig = Signature.parse(signature)
    query = sig.call()

    @FUZZ
    @given(sig.strategy())
    def check(values: list[Any]) -> None:
        run_one(fuzz_conn, query, values)

    check()


def copy_binary(field: bytes | None) -> bytes:
    """A binary COPY stream of one row with one field (NULL when field is None)."""
    out = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0) + struct.pack("!h", 1)
    out += struct.pack("!i", -1) if field is None else struct.pack("!i", len(field)) + field
    return out + struct.pack("!h", -1)


@st.composite
def int8vec_wire(draw: st.DrawFn) -> bytes | None:
    """int8vec's binary form (int16 dims, int16 unused, dims bytes) with wrong lengths, or random bytes."""
    form = draw(st.sampled_from(["ok", "ok", "short", "long", "dims", "random", "null"]))
    if form == "null":
        return None
    if form == "random":
        return draw(st.binary(max_size=64))
    n = draw(DIMS)
    body = draw(st.binary(min_size=min(n, 64), max_size=min(n, 64))) * (n // max(1, min(n, 64)) + 1)
    body = body[:n]
    dims = n if form != "dims" else draw(st.sampled_from([0, -1, -32768, 32767, n + 1]))
    unused = draw(st.sampled_from([0, 0, 1, -1]))
    wire = struct.pack("!hh", dims, unused) + body
    if form == "short":
        wire = wire[: draw(st.integers(0, len(wire) - 1))]
    if form == "long":
        wire += draw(st.binary(min_size=1, max_size=8))
    return wire


def test_int8vec_binary_input_survives_random_bytes(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE wire (c int8vec)")
    conn.execute("SET statement_timeout = '20s'")

    @FUZZ
    @given(int8vec_wire())
    def check(field: bytes | None) -> None:
        try:
            with conn.cursor().copy("COPY wire FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.write(copy_binary(field))
            # what was accepted reads back in both forms and round-trips
            text, binary = conn.execute("SELECT c::text, int8vec_send(c) FROM wire").fetchone() or (None, None)
            if field is not None:
                assert binary is not None and one_row(conn.execute("SELECT %s::int8vec::text", (text,)))[0] == text
        except psycopg.Error as exc:
            # 08P01: PostgreSQL's own error for a binary value shorter than its header says
            check_error(conn, exc, "int8vec binary input", [field], allowed=frozenset({"08P01"}))
        alive(conn, "int8vec binary input", [field])
        conn.execute("TRUNCATE wire")

    check()


@st.composite
def multibit_wire(draw: st.DrawFn) -> bytes | None:
    """multibit's binary form (int16 tokens, int16 dims, codes) with wrong counts and lengths, or random bytes."""
    form = draw(st.sampled_from(["ok", "ok", "short", "long", "counts", "random", "null"]))
    if form == "null":
        return None
    if form == "random":
        return draw(st.binary(max_size=64))
    ntok = draw(st.integers(1, 40))
    dims = draw(st.one_of(st.integers(1, 70), st.sampled_from([384, 16000])))
    body = draw(st.binary(min_size=1, max_size=16)) * (ntok * ((dims + 7) // 8))
    body = body[: ntok * ((dims + 7) // 8)]
    if form == "counts":
        ntok, dims = draw(st.sampled_from([(0, dims), (-1, dims), (1025, dims), (ntok, 0), (ntok, -5), (ntok, 16001),
                                           (32767, 32767)]))
    wire = struct.pack("!hh", ntok, dims) + body
    if form == "short":
        wire = wire[: draw(st.integers(0, len(wire) - 1))]
    if form == "long":
        wire += draw(st.binary(min_size=1, max_size=8))
    return wire


def test_multibit_binary_input_survives_random_bytes(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE wire (c multibit)")
    conn.execute("SET statement_timeout = '20s'")

    @FUZZ
    @given(multibit_wire())
    def check(field: bytes | None) -> None:
        try:
            with conn.cursor().copy("COPY wire FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.write(copy_binary(field))
            # what was accepted reads back in both forms and round-trips
            text, binary = conn.execute("SELECT c::text, multibit_send(c) FROM wire").fetchone() or (None, None)
            if field is not None:
                assert bytes(binary) == field
                assert one_row(conn.execute("SELECT %s::multibit::text", (text,)))[0] == text
        except psycopg.Error as exc:
            # 08P01: PostgreSQL's own error for a binary value shorter than its header says
            check_error(conn, exc, "multibit binary input", [field], allowed=frozenset({"08P01"}))
        alive(conn, "multibit binary input", [field])
        conn.execute("TRUNCATE wire")

    check()


def test_search_survives_random_input_with_a_profile(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    """shrinkvec.search() past its catalog check: a profiled table, random queries, stages and sizes."""
    from click.testing import CliRunner

    from shrinkvec import demo
    from shrinkvec.cli import main

    data = demo.load_data()
    path = tmp_path / "d.npy"
    np.save(path, data.docs[:200])
    result = CliRunner().invoke(main, ["load", str(path), "--table", "pdocs", "--dsn", migrated_dsn,
                                       "--profile", "bits,prefix:64,int8", "--quiet"])
    assert result.exit_code == 0, result.output
    conn.execute("SET statement_timeout = '20s'")
    query = Signature.parse("shrinkvec.search(regclass,vector,integer,integer,text)").call()
    stage = st.one_of(TEXTS, st.sampled_from(["bits", "prefix:64", "int8", "prefix", "prefix:7"]))
    vec = st.one_of(vector_text(), st.integers(0, 199).map(lambda i: "[" + ",".join(map(repr, data.docs[i].tolist())) + "]"))

    @FUZZ
    @given(st.sampled_from(["pdocs", "fuzz_nope", "pg_class"]), vec, INTS, INTS, stage)
    def check(tbl: str, q: str | None, k: int | None, shortlist: int | None, stg: str | None) -> None:
        run_one(conn, query, [tbl, q, k, shortlist, stg])

    check()
