"""SQL generation of two-stage and funnel searches for a profile, and running them.

Every identifier goes through psycopg.sql.Identifier, every value (the query vector, k, shortlist
sizes, int8 ranges) is a parameter, and every function, type and operator is schema-qualified
(`OPERATOR(public.<^#>)`), so the statement means the same under any search_path. Two renderings of the same statement:

- `dollar=True`: `$1`-style parameters for any client (psql PREPARE, Go, Java, ...):
  $1 query vector, $2 k, $3.. one shortlist size per stage, then lo/hi arrays of int8 stages;
- `dollar=False`: psycopg named placeholders, run by `search()`.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo

from shrinkvec.evaluation import configs
from shrinkvec.kinds import Code
from shrinkvec.profile import Profile, ProfileError
from shrinkvec.sql import catalog, connection, profile_check
from shrinkvec.sql import names as sqlnames

DISTANCE_OPS = {"cosine": "<=>", "l2": "<->", "ip": "<#>"}


@dataclass(frozen=True)
class Stage:
    """One shortlist stage: order by this code, keep `shortlist` rows."""

    code: Code
    shortlist: int


@dataclass(frozen=True)
class Query:
    """A generated statement and the names of its parameters in $n order."""

    statement: sql.Composed
    params: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """One search, whatever its configuration: the settings for its transaction (SET LOCAL), the code
    stages (none: the plain `ORDER BY vector <op> q LIMIT k` that a shrinkvec index or the exact scan
    answers), and k. `plan()` makes one from any spec that eval and tune print."""

    settings: dict[str, str]
    stages: tuple[Stage, ...]
    k: int


def plan(profile: Profile, config: str | configs.Config | None = None, *, k: int | None = None,
         shortlists: Sequence[int] = ()) -> Plan:
    """The plan of a configuration (a configs.Config or its spec: exact, STAGE@N, a funnel, index...@S);
    without one, the profile's tuned search_config, else its first code. `shortlists` replace the
    configuration's (an index configuration takes the first as shrinkvec.shortlist)."""
    k = profile.k if k is None else k
    spec = config if config is not None else profile.search_config
    if spec is None and not profile.codes:  # a table without codes: the plain query, which its index answers
        return Plan({"shrinkvec.shortlist": str(shortlists[0])} if shortlists else {}, (), k)
    if spec is None:
        return Plan({}, tuple(stages_for(profile, [], shortlists)), k)
    c = configs.parse(spec) if isinstance(spec, str) else spec
    if c.kind == "exact":
        return Plan({"enable_indexscan": "off", "enable_bitmapscan": "off"}, (), k)
    if c.kind == "index":
        settings = {"shrinkvec.shortlist": str(shortlists[0] if shortlists else c.shortlist)}
        if c.lists > 1:
            settings["shrinkvec.probes"] = str(c.probes)
        if c.refine:
            settings["shrinkvec.rerank"] = str(c.rerank)
        return Plan(settings, (), k)
    sizes = list(shortlists) or [n for _, n in c.stages]
    return Plan({}, tuple(stages_for(profile, [st for st, _ in c.stages], sizes)), k)


def stages_for(profile: Profile, specs: Sequence[str], shortlists: Sequence[int]) -> list[Stage]:
    """Stages from specs ('bits', 'prefix:128', 'int8', a column) and shortlist sizes; without specs,
    the profile's first code (plan() reads the tuned configuration). Missing shortlist sizes: the
    profile's default for the first stage, then half of the previous stage's each.
    """
    if not specs and not profile.codes:
        raise ProfileError(f"profile {profile.name!r} has no codes")
    codes = [profile.code(s) for s in specs] if specs else [profile.codes[0]]
    sizes = list(shortlists) or [profile.shortlist]
    while len(sizes) < len(codes):
        sizes.append(max(1, sizes[-1] // 2))
    if len(sizes) > len(codes):
        raise ProfileError(f"{len(sizes)} shortlist sizes for {len(codes)} stages")
    if any(b > a for a, b in pairwise(sizes)):
        raise ProfileError("each stage's shortlist must be at most the previous one's")
    return [Stage(c, n) for c, n in zip(codes, sizes, strict=True)]


def _query_cast(profile: Profile, ph: sql.Composable, vector_type: str | None = None) -> sql.Composable:
    """The query parameter cast to the profile's vector type: vector, halfvec, or vector[] (maxsim)."""
    typ = sqlnames.vec_fn(profile, vector_type or profile.vector_type)
    return sql.SQL("{}::{}[]" if profile.multi else "{}::{}").format(ph, typ)


def distance_expr(profile: Profile, vector: sql.Composable, q: sql.Composable) -> sql.Composable:
    """The full vector's distance to the query (smaller first): `vector <op> q`, or `-maxsim(q, tokens)`
    for a multi-vector profile (the negated score, as pgvector's <#> negates the inner product)."""
    if profile.multi:
        return sql.SQL("{}({}({}, {}))").format(sqlnames.operator("pg_catalog", "-"),
                                                sqlnames.ext_fn(profile, "maxsim"), q, vector)
    return sql.SQL("{} {} {}").format(vector, sqlnames.operator(profile.vec_schema, DISTANCE_OPS[profile.distance]), q)


def _stage_order(profile: Profile, stage: Stage, alias: sql.Identifier, q: sql.Composable,
                 ph: Callable[[str], sql.Composable], i: int) -> sql.Composable:
    col = sql.SQL("{}.{}").format(alias, sql.Identifier(stage.code.column))
    ranges = (ph(f"lo{i}"), ph(f"hi{i}")) if stage.code.code_kind.calibrated else None
    return stage.code.code_kind.order(profile, stage.code, col, q, ranges)


def _build_knn(profile: Profile, *, dollar: bool, where: sql.Composable | None, k: int) -> Query:
    """The unchanged exact query `ORDER BY vector <op> q LIMIT k` that a shrinkvec index answers; k is a
    literal (the planner must see the LIMIT to choose the index)."""
    q = _query_cast(profile, sql.SQL("$1" if dollar else "%(q)s"))
    dist = distance_expr(profile, sql.SQL("s.{}").format(sql.Identifier(profile.vector_column)), q)
    statement = sql.SQL("SELECT s.{id}, {dist} AS distance FROM {t} AS s{where} ORDER BY {dist} LIMIT {k}").format(
        id=sql.Identifier(profile.id_column), dist=dist, t=sql.Identifier(profile.schema, profile.table),
        where=sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""), k=sql.Literal(int(k)))
    return Query(statement, ("q",))


def build(profile: Profile, stages: Sequence[Stage], *, dollar: bool = True,
          where: sql.Composable | None = None, k: int | None = None) -> Query:
    """The search statement: shortlist with each stage in turn, then rerank by the full vector.

    No stages: the index query (`_build_knn`, for the profile's tuned index configuration), whose LIMIT
    is `k` (default the profile's). `where` (a composed condition over the table alias `s`) filters
    inside the first stage, so a filtered search still returns k rows when k rows match.
    """
    k = profile.k if k is None else k
    if not stages:
        return _build_knn(profile, dollar=dollar, where=where, k=k)
    names = ["q", "k"] + [f"n{i}" for i in range(len(stages))]
    names += [f"{b}{i}" for i, st in enumerate(stages) if st.code.code_kind.calibrated for b in ("lo", "hi")]
    if profile.transform is not None:
        names.append("tf")
    index = {n: i + 1 for i, n in enumerate(names)}

    def ph(name: str) -> sql.Composable:
        return sql.SQL(f"${index[name]}") if dollar else sql.Placeholder(name)

    q = _query_cast(profile, ph("q"), "vector")
    # Codes are ranked against the query through the profile's transform, computed once (an InitPlan);
    # the rerank uses the raw query.
    qc = q if profile.transform is None else sql.SQL("(SELECT shrinkvec.transform_vector({}, {}::pg_catalog.text))").format(
        q, ph("tf"))
    idc, vec = sql.Identifier(profile.id_column), sql.Identifier(profile.vector_column)
    aliases = [sql.Identifier("s")] + [sql.Identifier(f"c{i}") for i in range(1, len(stages))]

    # Innermost: the table, ordered by the first stage; it carries the columns later stages need.
    later_cols = [st.code.column for st in stages[1:]]
    inner: sql.Composable = sql.SQL(
        "SELECT {cols} FROM {t} AS s{where} ORDER BY {order} LIMIT {n}"
    ).format(
        cols=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in
                                [profile.id_column, profile.vector_column, *dict.fromkeys(later_cols)]),
        t=sql.Identifier(profile.schema, profile.table),
        where=sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
        order=_stage_order(profile, stages[0], aliases[0], qc, ph, 0),
        n=ph("n0"),
    )
    for i in range(1, len(stages)):
        a = sql.Identifier(f"c{i}")
        keep = list(dict.fromkeys(later_cols[i:]))
        inner = sql.SQL("SELECT {cols} FROM ({inner}) AS {a} ORDER BY {order} LIMIT {n}").format(
            cols=sql.SQL(", ").join(sql.SQL("{}.{}").format(a, sql.Identifier(c)) for c in
                                    [profile.id_column, profile.vector_column, *keep]),
            inner=inner, a=a, order=_stage_order(profile, stages[i], a, qc, ph, i), n=ph(f"n{i}"),
        )
    statement = sql.SQL(
        "SELECT c.{id}, {dist} AS distance FROM ({inner}) AS c ORDER BY distance, c.{id} LIMIT {k}"
    ).format(id=idc, dist=distance_expr(profile, sql.SQL("c.{}").format(vec), q), inner=inner, k=ph("k"))
    return Query(statement, tuple(names))


def tokens_literal(tokens: npt.ArrayLike) -> str:
    """A (tokens, dims) array as the text of a vector[] value: {"[1,2.5]","[3,4]"} (%.9g: float32 exact)."""
    t = np.asarray(tokens, dtype=np.float32)
    return "{" + ",".join('"[' + ",".join(["%.9g" % x for x in row.tolist()]) + ']"' for row in t) + "}"


class TokenArray:
    """Query tokens (tokens, dims) as a query parameter: sent as a binary vector[] (register_tokens)."""

    def __init__(self, tokens: npt.ArrayLike) -> None:
        self.tokens = np.asarray(tokens, dtype=np.float32)


def register_tokens(conn: psycopg.Connection, profile: Profile) -> None:
    """Let `conn` send TokenArray parameters as vector[] in binary (array_recv's form, no text to parse)."""
    info = TypeInfo.fetch(conn, sql.Identifier(profile.vec_schema, "vector").as_string(conn))
    if info is None:
        raise ProfileError(f"pgvector's vector type is not in schema {profile.vec_schema}")
    elem_oid, array_oid = info.oid, info.array_oid

    class TokenArrayDumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: Any) -> bytes:
            t = obj.tokens
            n, d = t.shape
            elems = np.empty(n, dtype=[("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("x", ">f4", (d,))])
            elems["len"], elems["dim"], elems["unused"], elems["x"] = 4 + 4 * d, d, 0, t
            return struct.pack(">iiIii", 1, 0, elem_oid, n, 1) + elems.tobytes()

    conn.adapters.register_dumper(TokenArray, TokenArrayDumper)


def query_value(profile: Profile, query_vector: npt.ArrayLike) -> Any:
    """The query parameter: a float32 vector, or a multi-vector profile's tokens as a TokenArray."""
    if profile.multi:
        t = np.asarray(query_vector, dtype=np.float32)
        if t.ndim != 2 or t.shape[1] != profile.dims:
            raise ProfileError(f"expected query tokens of {profile.dims} dimensions, got an array of shape {t.shape}")
        return TokenArray(t)
    return np.asarray(query_vector, dtype=np.float32)


def params(profile: Profile, stages: Sequence[Stage], query_vector: npt.ArrayLike, k: int) -> dict[str, Any]:
    """Named parameter values for build(..., dollar=False)."""
    values: dict[str, Any] = {"q": query_value(profile, query_vector), "k": k}
    if not stages:
        return {"q": values["q"]}
    if profile.transform is not None:
        values["tf"] = profile.transform
    for i, st in enumerate(stages):
        if st.shortlist < k:
            raise ProfileError(f"shortlist {st.shortlist} is smaller than k = {k}")
        values[f"n{i}"] = st.shortlist
        if st.code.code_kind.calibrated:
            assert st.code.lo is not None and st.code.hi is not None
            values[f"lo{i}"] = [float(x) for x in st.code.lo]
            values[f"hi{i}"] = [float(x) for x in st.code.hi]
    return values


def pretty(conn: psycopg.Connection, query: Query, profile: Profile, stages: Sequence[Stage], k: int,
           settings: dict[str, str] | None = None) -> str:
    """The $n statement with a comment header naming its parameters, laid out one clause a line; the
    settings of an index configuration go first, as SET LOCAL (run both in one transaction)."""
    text = query.statement.as_string(conn)
    for kw in (" FROM (", " ORDER BY ", " LIMIT "):
        text = text.replace(kw, "\n " + kw.strip() + (" " if not kw.endswith("(") else ""))
    def one_line(text: str) -> str:
        return " ".join(text.splitlines())

    lines = [f"-- profile {one_line(profile.name)}: {one_line(f'{profile.schema}.{profile.table}.{profile.vector_column}')} "
             f"({profile.dims} dims, {profile.distance})"]
    if not stages:
        lines.append(f"-- the shrinkvec index ({one_line(profile.search_config or 'index')}), k = {k}; "
                     "run the SET LOCAL lines and the query in one transaction")
    for i, n in enumerate(query.params, 1):
        desc = {"q": f"query vector ({profile.dims} dims)", "k": f"k (default {k})",
                "tf": f"transform {profile.transform} (codes rank shrinkvec.transform_vector($1, this))"}.get(n)
        if desc is None and n.startswith("n"):
            st = stages[int(n[1:])]
            desc = f"shortlist of stage {int(n[1:]) + 1}, {st.code.spec()} ({st.code.column}); suggested {st.shortlist}"
        if desc is None:
            st = stages[int(n[2:])]
            desc = (f"{n[:2]} ranges of {st.code.column}: SELECT {n[:2]} FROM shrinkvec.codes "
                    f"WHERE profile = {sql.Literal(profile.name).as_string(conn)} "
                    f"AND column_name = {sql.Literal(st.code.column).as_string(conn)}")
        if n == "q" and profile.multi:
            desc = f"query tokens, vector[] of {profile.dims}-dim vectors"
        lines.append(f"-- ${i}: {one_line(desc)}")
    # the names are index_settings' own constants (shrinkvec.shortlist, shrinkvec.probes); values are literals
    sets = "".join(sql.SQL("SET LOCAL {} = {};\n").format(sql.SQL(name), sql.Literal(value)).as_string(conn)
                   for name, value in (settings or {}).items())
    return "\n".join(lines) + "\n" + sets + text + ";"


def _queries(profile: Profile, queries: Any) -> Sequence[Any]:
    """The queries of search(): rows of a float array, or for a multi-vector profile a sequence of
    (tokens, dims) arrays (one 2-D array is one query)."""
    if profile.multi:
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            return [queries]
        return list(queries)
    qs = np.asarray(queries, dtype=np.float32)
    if qs.ndim == 1:
        qs = qs[None, :]
    if qs.shape[1] != profile.dims:
        raise ProfileError(f"expected {profile.dims} dimensions, got {qs.shape[1]}")
    return list(qs)


def _id(value: Any) -> int | str:
    """An id as search() returns it: an integer, or the text of any other key (uuid, text, varchar)."""
    return value if isinstance(value, int) else str(value)


def search(conn: psycopg.Connection, profile: Profile, stages: Sequence[Stage] | Plan, queries: Any,
           k: int | None = None) -> list[tuple[list[int | str], list[float]]]:
    """Run the search for each row of `queries`: (ids, distances) per query; an id that is no integer
    (uuid, text) comes back as its text. `stages` is a Plan (its
    settings are set for each query's transaction only) or code stages; k defaults to the plan's.
    Refuses (profile_check.ColumnTypeError) a table whose columns do not have the types of its profile."""
    if isinstance(stages, Plan):
        settings, k = stages.settings, stages.k if k is None else k
        stages = stages.stages
    else:
        settings, k = {}, profile.k if k is None else k
    profile = profile_check.check_profile(conn, profile)  # the table's types are input another role wrote
    connection.register_vector(conn)
    if profile.multi:
        register_tokens(conn, profile)
    qs = _queries(profile, queries)
    statement = build(profile, stages, dollar=False, k=k).statement
    # every setting in one statement: SELECT set_config(name, value, true), ...
    set_local = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("pg_catalog.set_config(%s, %s, true)") for _ in settings))
    out = []
    with catalog.pinned_search_path(conn), conn.cursor() as cur:
        for q in qs:
            # a transaction of its own only when there are settings to scope to it (no extra round trips)
            with conn.transaction() if settings else contextlib.nullcontext():
                if settings:
                    cur.execute(set_local, [v for kv in settings.items() for v in kv])
                rows = cur.execute(statement, params(profile, stages, q, k), prepare=True).fetchall()
            out.append(([_id(r[0]) for r in rows], [float(r[1]) for r in rows]))
    return out
