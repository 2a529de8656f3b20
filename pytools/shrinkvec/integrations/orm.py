"""SQLAlchemy 2 helpers: code column types and mapped columns, and two-stage `Select`s.

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        embedding = mapped_column(VECTOR(384), nullable=False)
        bits = bits_column("embedding", 384)
        prefix = prefix_column("embedding", 64)

    stmt = two_stage(Doc, q, k=10, shortlist=200, stage="bits").where(Doc.lang == "en")
    rows = session.execute(stmt).all()      # (Doc, distance) rows, nearest first

Late interaction: a vector[] column (one vector a token) with a multibit code column; `two_stage` shortlists by
`maxsim(q, code)` and reranks by the exact `maxsim(q, tokens)` (distance = -maxsim), q being (tokens, dims):

    class Passage(Base):
        __tablename__ = "passages"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        tokens = mapped_column(ARRAY(VECTOR(128)), nullable=False)
        multibit = multibit_column("tokens", 128)

    stmt = two_stage(Passage, query_tokens, k=10, shortlist=100, distance="maxsim")

`.where(...)` on the returned statement filters inside the shortlist stage (the statement is rebuilt),
so a filtered search still returns k rows when k rows match. Works with Session and AsyncSession
(postgresql+psycopg). The code columns carry their definition in Column.info["shrinkvec"].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased, mapped_column
from sqlalchemy.sql import ColumnElement, Select

from shrinkvec import kinds
from shrinkvec.kinds.int8 import Int8Vec
from shrinkvec.profile import ProfileError
from shrinkvec.sql import orm_names

__all__ = ["Int8Vec", "TwoStageSelect", "bits_column", "code_column", "int8_column", "multibit_column", "prefix_column",
           "two_stage"]

INFO_KEY = "shrinkvec"


def _info(kind: str, source: str, length: int, **extra: Any) -> dict[str, Any]:
    return {INFO_KEY: {"kind": kind, "source": source, "length": length, **extra}}


def code_column(kind: str, source: str, length: int, **kw: Any) -> Any:
    """A code column of any kind (shrinkvec.kinds) computed from `source` (a vector column name); a
    calibrated kind takes lo= and hi=."""
    k = kinds.get(kind)
    extra: dict[str, Any] = {}
    if k.calibrated:
        extra = {b: [float(x) for x in np.asarray(kw.pop(b), dtype=np.float32)] for b in ("lo", "hi")}
    return mapped_column(k.orm_type(length), info=_info(kind, source, length, **extra), **kw)


def bits_column(source: str, length: int, **kw: Any) -> Any:
    """A bit(length) column of sign bits of `source` (a vector column name)."""
    return code_column("bits", source, length, **kw)


def prefix_column(source: str, dims: int, **kw: Any) -> Any:
    """A vector(dims) column holding the first `dims` dimensions of `source`."""
    return code_column("prefix", source, dims, **kw)


def int8_column(source: str, dims: int, lo: npt.ArrayLike, hi: npt.ArrayLike, **kw: Any) -> Any:
    """An int8vec(dims) column: quantize_int8(source, lo, hi)."""
    return code_column("int8", source, dims, lo=lo, hi=hi, **kw)


def multibit_column(source: str, dims: int, **kw: Any) -> Any:
    """A multibit column: the sign bits of the first `dims` dimensions of every token of `source` (a vector[] column)."""
    return code_column("multibit", source, dims, **kw)


def _codes(model: Any) -> list[Any]:
    return [c for c in model.__table__.columns if INFO_KEY in c.info]


def _stage_column(model: Any, stage: str | None) -> Any:
    codes = _codes(model)
    if not codes:
        raise ProfileError(f"{model.__name__} has no shrinkvec code columns (bits_column, prefix_column, int8_column)")
    if stage is None:
        return codes[0]
    for c in codes:
        i = c.info[INFO_KEY]
        if stage in (c.key, c.name, i["kind"], kinds.get(i["kind"]).spec(i["length"])):
            return c
    raise ProfileError(f"{model.__name__} has no code {stage!r}")


_DISTANCE = {"cosine": "<=>", "l2": "<->", "ip": "<#>"}  # pgvector's operators


class TwoStageSelect(Select[Any]):
    """A Select whose .where() adds the condition to the shortlist stage (the statement is rebuilt)."""

    inherit_cache = True
    _sv_args: dict[str, Any]

    def where(self, *whereclause: Any) -> TwoStageSelect:
        args = dict(self._sv_args)
        args["filters"] = (*args["filters"], *whereclause)
        return _build(**args)


def two_stage(model: Any, query_vector: npt.ArrayLike, *, k: int = 10, shortlist: int = 200,
              stage: str | None = None, distance: str = "cosine", vector: str | None = None,
              transform: str | None = None, bind: Any = None) -> TwoStageSelect:
    """SELECT (model, distance) of the k nearest rows: shortlist `shortlist` rows by a code column,
    rerank them by the full vector with `distance` ('cosine', 'l2', 'ip'; 'maxsim' for a multibit code
    of a vector[] column, the query being a (tokens, dims) array and the distance -maxsim).

    The codes are ranked against the query the table's profile says (`shrinkvec.code_query`: the
    query through the profile's transform when `shrinkvec adapt` gave it one, else the query itself),
    computed once per statement; `transform` names a transform to use instead.

    Every operator, function and cast type of the statement is schema-qualified. `bind` (a Session or
    Connection of postgresql+psycopg; with an AsyncSession, call two_stage inside `run_sync`) finds the
    extensions' schemas and first checks the table's types: the code and vector columns must have the
    extensions' types (profile_check.ColumnTypeError otherwise, naming the column and its type), since a
    cast or operator of another type would run as whoever runs the statement. Without `bind` the
    statement names the extensions in `public` (where CREATE EXTENSION shrinkvec CASCADE puts them by
    default) and the table's types are not checked.
    """
    if not 1 <= k <= shortlist:
        raise ProfileError(f"need 1 <= k <= shortlist, got k = {k} and shortlist = {shortlist}")
    if distance not in (*_DISTANCE, "maxsim"):
        raise ProfileError(f"unknown distance {distance!r}: cosine, l2, ip or maxsim")
    q = np.asarray(query_vector, dtype=np.float32)
    if (distance == "maxsim") != (q.ndim == 2):
        raise ProfileError("distance maxsim takes a (tokens, dims) array of query tokens; the others one vector")
    schemas = orm_names.Schemas() if bind is None else _checked(bind, model, stage, distance, vector)
    return _build(model=model, q=q, k=k, shortlist=shortlist, stage=stage, distance=distance, vector=vector,
                  filters=(), transform=transform, schemas=schemas)


def _driver_connection(bind: Any) -> psycopg.Connection:
    """The psycopg connection under a SQLAlchemy Session or Connection."""
    from sqlalchemy.orm import Session

    c = bind.connection() if isinstance(bind, Session) else bind
    driver = getattr(getattr(c, "connection", None), "driver_connection", None)
    if not isinstance(driver, psycopg.Connection):
        raise ProfileError("two_stage(bind=...) takes a Session or Connection of a postgresql+psycopg engine "
                           "(with an AsyncSession: session.run_sync(lambda s: two_stage(..., bind=s)))")
    return driver


def _checked(bind: Any, model: Any, stage: str | None, distance: str, vector: str | None) -> orm_names.Schemas:
    """The extensions' schemas, once the code and vector columns the statement orders by have the types of
    their kinds, and integer primary key columns are int2, int4 or int8 (profile_check)."""
    from sqlalchemy import Integer

    from shrinkvec.sql import profile_check
    code_col = _stage_column(model, stage)
    info = code_col.info[INFO_KEY]
    vec_name = model.__table__.columns[vector or info["source"]].name
    owner, names = kinds.get(info["kind"]).column_types
    multi = distance == "maxsim"
    expected = [
        profile_check.Expected(vec_name, "vector column", (("vector", "vector"),) if multi else
                               (("vector", "vector"), ("vector", "halfvec")), multi),
        profile_check.Expected(code_col.name, f"{info['kind']} code column", tuple((owner, n) for n in names)),
    ]
    ids = tuple(("pg_catalog", n) for n in profile_check.ID_TYPES)
    expected += [profile_check.Expected(c.name, "id column", ids) for c in model.__table__.primary_key.columns
                 if isinstance(c.type, Integer)]
    checked = profile_check.check_columns(_driver_connection(bind), _regclass_text(model.__table__), expected)
    return orm_names.Schemas(checked.ext_schema, checked.vec_schema)


def _regclass_text(table: Any) -> str:
    """The table's name as regclass input: each part double-quoted."""
    parts = [table.schema, table.name] if table.schema else [table.name]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _order(code_col: Any, q: np.ndarray, distance: str, transform: str | None,
           schemas: orm_names.Schemas) -> ColumnElement[Any]:
    info = code_col.info[INFO_KEY]
    vtype = orm_names.Vector(schemas.vec_schema, len(q))
    qv: Any = cast(literal(q.tolist(), vtype), vtype)
    # computed once per statement (an InitPlan), not per row
    if transform is not None:
        qv = select(func.shrinkvec.transform_vector(qv, cast(literal(transform), Text()),
                                                    type_=VECTOR())).scalar_subquery()
    else:
        qv = select(func.shrinkvec.code_query(cast(literal(_regclass_text(code_col.table)), orm_names.RegClass()), qv,
                                              type_=VECTOR())).scalar_subquery()
    order: ColumnElement[Any] = kinds.get(info["kind"]).orm_order(schemas, code_col, qv, distance, info)
    return order


def _build_multi(*, model: Any, q: np.ndarray, k: int, shortlist: int, stage: str | None, distance: str,
                 vector: str | None, filters: Sequence[Any], transform: str | None,
                 schemas: orm_names.Schemas) -> TwoStageSelect:
    """two_stage() of a multi-vector model: shortlist by -maxsim(q, code), rerank by -maxsim(q, tokens)."""
    from shrinkvec.sql.query import tokens_literal

    code_col = _stage_column(model, stage)
    info = code_col.info[INFO_KEY]
    if not kinds.get(info["kind"]).multi:
        raise ProfileError(f"distance maxsim needs a multibit code column, not {code_col.name} ({info['kind']})")
    if transform is not None:
        raise ProfileError("a multi-vector search takes no transform")
    vec_col = model.__table__.columns[vector or info["source"]]
    dim = getattr(getattr(vec_col.type, "item_type", None), "dim", None)
    if dim is not None and q.shape[1] != dim:
        raise ProfileError(f"expected query tokens of {dim} dimensions, got {q.shape[1]}")
    qv = cast(literal(tokens_literal(q)), ARRAY(orm_names.Vector(schemas.vec_schema, q.shape[1])))
    order = kinds.get(info["kind"]).orm_order(schemas, code_col, qv, distance, info)
    sub = select(model.__table__).where(*filters).order_by(order).limit(shortlist).subquery("shortlist")
    row = aliased(model, sub)
    vec_attr = getattr(row, model.__mapper__.get_property_by_column(vec_col).key)
    dist = orm_names.negate(orm_names.function(schemas.ext_schema, "maxsim", qv, vec_attr)).label("distance")
    stmt = TwoStageSelect(row, dist).order_by(dist).limit(k)
    stmt._sv_args = {"model": model, "q": q, "k": k, "shortlist": shortlist, "stage": stage,
                     "distance": distance, "vector": vector, "filters": tuple(filters), "transform": transform,
                     "schemas": schemas}
    return stmt


def _build(*, model: Any, q: np.ndarray, k: int, shortlist: int, stage: str | None, distance: str,
           vector: str | None, filters: Sequence[Any], transform: str | None,
           schemas: orm_names.Schemas) -> TwoStageSelect:
    if distance == "maxsim":
        return _build_multi(model=model, q=q, k=k, shortlist=shortlist, stage=stage, distance=distance,
                            vector=vector, filters=filters, transform=transform, schemas=schemas)
    code_col = _stage_column(model, stage)
    vec_name = vector or code_col.info[INFO_KEY]["source"]
    vec_col = model.__table__.columns[vec_name]
    if vec_col.type.dim is not None and len(q) != vec_col.type.dim:
        raise ProfileError(f"expected {vec_col.type.dim} dimensions, got {len(q)}")
    inner = select(model.__table__).where(*filters).order_by(
        _order(code_col, q, distance, transform, schemas)).limit(shortlist)
    sub = inner.subquery("shortlist")
    row = aliased(model, sub)
    vec_attr = getattr(row, model.__mapper__.get_property_by_column(vec_col).key)
    # the column's own type for the query (vector or halfvec), pgvector's operator by its schema
    dist = orm_names.binary(vec_attr, schemas.vec_schema, _DISTANCE[distance], literal(q, vec_col.type)).label("distance")
    stmt = TwoStageSelect(row, dist).order_by(dist).limit(k)
    stmt._sv_args = {"model": model, "q": q, "k": k, "shortlist": shortlist, "stage": stage,
                     "distance": distance, "vector": vector, "filters": tuple(filters), "transform": transform,
                     "schemas": schemas}
    return stmt
