"""Alembic `op` helpers for a user's own migrations (import this module in env.py or the migration).

    import shrinkvec.alembic_ops  # registers the operations

    def upgrade():
        op.add_shrinkvec_codes("docs", "embedding", "bits,prefix:64")     # columns + trigger (+ profile)
        op.backfill_shrinkvec_codes("docs", "embedding")                  # old rows, in short batches
        op.create_shrinkvec_indexes("docs", "embedding", concurrently=True)

    def downgrade():
        op.drop_shrinkvec_indexes("docs", "embedding", concurrently=True)
        op.drop_shrinkvec_codes("docs", "embedding", "bits,prefix:64")

- add_shrinkvec_codes: nullable code columns (no table rewrite) and the trigger that computes them
  (the extension's shrinkvec.codes_trigger with the codes as its arguments, see ddl.py); registers the
  profile in the shrinkvec catalog when the catalog exists. int8 ranges come from `lo`/`hi` or from
  int8_ranges() over the rows already in the table.
- backfill_shrinkvec_codes: commits the migration's transaction so far and fills rows in batches of
  `batch_size`, each its own short transaction (alembic's autocommit_block); rerunnable.
- create/drop_shrinkvec_indexes: shrinkvec indexes (the extension's access method): one on the vector
  column (vector_cosine_ops / _l2_ops / _ip_ops by the profile's distance; `options={"lists": 1000}` for
  IVF) that the unchanged `ORDER BY embedding <=> q LIMIT k` uses, and bit_hamming_ops on each bits code
  column; `methods` changes or adds them (e.g. pgvector HNSW on prefixes). CONCURRENTLY runs in an
  autocommit block.
- drop_shrinkvec_codes (the reverse of add): exactly the trigger (and an older per-table trigger
  function, if the table still had one), the code columns (their indexes go with them) and the profile.

Autogenerate: set `render_item=shrinkvec.alembic_ops.render_item` in context.configure so code column
types render with their imports; `process_revision_directives=shrinkvec.alembic_ops.rewriter` turns the
add_column ops of code columns made with shrinkvec.orm helpers into one add_shrinkvec_codes op.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import psycopg
from alembic.autogenerate import renderers
from alembic.autogenerate import rewriter as _rewriter_mod
from alembic.operations import MigrateOperation, Operations, ops
from psycopg import sql

from shrinkvec import kinds
from shrinkvec.profile import Profile, ProfileError, parse_codes
from shrinkvec.sql import catalog, ddl
from shrinkvec.sql import names as sqlnames


def _raw(operations: Operations) -> psycopg.Connection:
    bind = operations.get_bind()
    raw = bind.connection.dbapi_connection
    if not isinstance(raw, psycopg.Connection):
        raise RuntimeError("shrinkvec alembic helpers need the psycopg 3 driver (postgresql+psycopg://)")
    return raw


def _profile(conn: psycopg.Connection, table: str, vector_column: str, codes: str, schema: str | None,
             id_column: str, distance: str, lo: Any = None, hi: Any = None, name: str | None = None) -> Profile:
    schema = schema or conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    dims = catalog.vector_dims(conn, table, vector_column, schema)
    if dims is None:
        raise ProfileError(f"{table}.{vector_column} must be declared with dimensions, e.g. vector(384)")
    parsed = parse_codes(codes, dims)
    p = ddl.located(conn, Profile(
        name=name or f"{schema}.{table}.{vector_column}", schema=schema, table=table, vector_column=vector_column,
        dims=dims, codes=parsed, id_column=id_column, distance=distance))  # type: ignore[arg-type]  # distance: one of DISTANCES (checked by the caller)
    if any(c.code_kind.calibrated for c in parsed):
        if lo is None or hi is None:
            row = conn.execute(sql.SQL("SELECT (r).lo, (r).hi FROM (SELECT {}({}) AS r FROM {}) s").format(
                sqlnames.ext_fn(p, "int8_ranges"), sql.Identifier(vector_column), ddl.table_ident(p))).fetchone()
            if row is None or row[0] is None:
                raise ProfileError("int8 codes need ranges: pass lo= and hi=, or add them once the table has rows")
            lo, hi = row

        p = replace(p, codes=tuple(
            replace(c, lo=np.asarray(lo, dtype=np.float32), hi=np.asarray(hi, dtype=np.float32))
            if c.code_kind.calibrated else c for c in parsed))
    return p


class _CodesOp(MigrateOperation):
    def __init__(self, table_name: str, vector_column: str, codes: str = "bits", *, schema: str | None = None,
                 id_column: str = "id", distance: str = "cosine", lo: Any = None, hi: Any = None,
                 profile_name: str | None = None) -> None:
        self.table_name = table_name
        self.vector_column = vector_column
        self.codes = codes
        self.schema = schema
        self.id_column = id_column
        self.distance = distance
        self.lo = lo
        self.hi = hi
        # kept for migrations written before catalog revision 0005; the catalog now derives a profile's
        # name from its table (schema.table.column), so this value is not stored
        self.profile_name = profile_name

    def _kw(self) -> dict[str, Any]:
        return {"schema": self.schema, "id_column": self.id_column, "distance": self.distance, "lo": self.lo,
                "hi": self.hi, "profile_name": self.profile_name}

    def to_profile(self, conn: psycopg.Connection) -> Profile:
        return _profile(conn, self.table_name, self.vector_column, self.codes, self.schema, self.id_column,
                        self.distance, self.lo, self.hi, self.profile_name)


@Operations.register_operation("add_shrinkvec_codes")
class AddCodesOp(_CodesOp):
    """Add a profile's code columns and trigger to an existing table."""

    @classmethod
    def add_shrinkvec_codes(cls, operations: Operations, table_name: str, vector_column: str, codes: str = "bits",
                            **kw: Any) -> None:
        operations.invoke(cls(table_name, vector_column, codes, **kw))

    def reverse(self) -> DropCodesOp:
        return DropCodesOp(self.table_name, self.vector_column, self.codes, **self._kw())


@Operations.register_operation("drop_shrinkvec_codes")
class DropCodesOp(_CodesOp):
    """Remove what add_shrinkvec_codes added."""

    @classmethod
    def drop_shrinkvec_codes(cls, operations: Operations, table_name: str, vector_column: str, codes: str = "bits",
                             **kw: Any) -> None:
        operations.invoke(cls(table_name, vector_column, codes, **kw))

    def reverse(self) -> AddCodesOp:
        return AddCodesOp(self.table_name, self.vector_column, self.codes, **self._kw())


@Operations.implementation_for(AddCodesOp)
def _add_codes(operations: Operations, operation: AddCodesOp) -> None:
    conn = _raw(operations)
    p = operation.to_profile(conn)
    ddl.add_codes(conn, p)
    if catalog.has_catalog(conn):
        catalog.save_profile(conn, p)


@Operations.implementation_for(DropCodesOp)
def _drop_codes(operations: Operations, operation: DropCodesOp) -> None:
    conn = _raw(operations)
    # the codes' definitions do not matter for dropping: use placeholder ranges for int8
    p = _profile(conn, operation.table_name, operation.vector_column, operation.codes, operation.schema,
                 operation.id_column, operation.distance, lo=operation.lo if operation.lo is not None else [0.0],
                 hi=operation.hi if operation.hi is not None else [0.0], name=operation.profile_name)
    ddl.drop_codes(conn, p)
    if catalog.has_catalog(conn):
        catalog.delete_profile(conn, p)


@Operations.register_operation("backfill_shrinkvec_codes")
class BackfillOp(MigrateOperation):
    """Fill the codes of existing rows in short batches (outside the migration's transaction)."""

    def __init__(self, table_name: str, vector_column: str, *, schema: str | None = None,
                 batch_size: int = 5000) -> None:
        self.table_name, self.vector_column, self.schema, self.batch_size = table_name, vector_column, schema, batch_size

    @classmethod
    def backfill_shrinkvec_codes(cls, operations: Operations, table_name: str, vector_column: str, **kw: Any) -> int:
        return int(operations.invoke(cls(table_name, vector_column, **kw)))

    def reverse(self) -> MigrateOperation:
        return ops.ExecuteSQLOp("SELECT 1")  # nothing to undo: dropping the columns drops the values


def _catalog_or_table_profile(conn: psycopg.Connection, table: str, vector_column: str, schema: str | None) -> Profile:
    schema = schema or conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    p = catalog.find_profile(conn, table, schema, vector_column) if catalog.has_catalog(conn) else None
    if p is None:
        raise ProfileError(f"{schema}.{table}.{vector_column} has no profile: run op.add_shrinkvec_codes first "
                           "(and shrinkvec migrate for the catalog)")
    return p


@Operations.implementation_for(BackfillOp)
def _backfill(operations: Operations, operation: BackfillOp) -> int:
    with operations.get_context().autocommit_block():
        conn = _raw(operations)
        p = _catalog_or_table_profile(conn, operation.table_name, operation.vector_column, operation.schema)
        return ddl.backfill(conn, p, operation.batch_size)


# What create_shrinkvec_indexes makes by default: the shrinkvec access method on the vector column itself
# (the unchanged `ORDER BY embedding <=> q LIMIT k` uses it), and on each code column the index its kind
# names (shrinkvec.kinds: exact Hamming order on sign bits, `ORDER BY bits <~> q`; none for prefix and
# int8 codes unless `methods` asks for one).
INDEX_DEFAULTS: dict[str, tuple[str, str] | None] = {
    "vector": ("shrinkvec", ""),  # opclass from the profile's distance and the column's type
}
VECTOR_OPCLASS = {"cosine": "cosine_ops", "l2": "l2_ops", "ip": "ip_ops"}  # after vector_ / halfvec_
INDEX_OPTIONS = ("lists", "bits")  # the shrinkvec index's storage parameters


class _IndexesOp(MigrateOperation):
    def __init__(self, table_name: str, vector_column: str, *, schema: str | None = None, concurrently: bool = False,
                 methods: dict[str, tuple[str, str] | None] | None = None,
                 options: dict[str, int] | None = None) -> None:
        self.table_name, self.vector_column, self.schema = table_name, vector_column, schema
        self.concurrently, self.methods, self.options = concurrently, methods, options
        unknown = set(options or {}) - set(INDEX_OPTIONS)
        if unknown:
            raise ValueError(f"unknown shrinkvec index option {sorted(unknown)[0]!r}: expected one of {INDEX_OPTIONS}")

    def _args(self) -> tuple[tuple[str, str], dict[str, Any]]:
        return (self.table_name, self.vector_column), {"schema": self.schema, "concurrently": self.concurrently,
                                                       "methods": self.methods, "options": self.options}


@Operations.register_operation("create_shrinkvec_indexes")
class CreateIndexesOp(_IndexesOp):
    """shrinkvec indexes: on the vector column (opclass from the profile's distance; `options` such as
    {"lists": 1000} for IVF or {"bits": 192}) and bit_hamming_ops on each bits code column. `methods` maps
    "vector", "bits", "prefix" or "int8" to (access method, opclass) or None (no index), e.g.
    {"prefix": ("hnsw", "")} for pgvector HNSW on the prefixes."""

    @classmethod
    def create_shrinkvec_indexes(cls, operations: Operations, table_name: str, vector_column: str, **kw: Any) -> None:
        operations.invoke(cls(table_name, vector_column, **kw))

    def reverse(self) -> DropIndexesOp:
        a, kw = self._args()
        return DropIndexesOp(*a, **kw)


@Operations.register_operation("drop_shrinkvec_indexes")
class DropIndexesOp(_IndexesOp):
    @classmethod
    def drop_shrinkvec_indexes(cls, operations: Operations, table_name: str, vector_column: str, **kw: Any) -> None:
        operations.invoke(cls(table_name, vector_column, **kw))

    def reverse(self) -> CreateIndexesOp:
        a, kw = self._args()
        return CreateIndexesOp(*a, **kw)


def _vector_index_sql(conn: psycopg.Connection, p: Profile, method: str, opclass: str, options: dict[str, int] | None,
                      concurrently: bool, create: bool) -> sql.Composed:
    """CREATE / DROP INDEX of the index on the vector column itself."""
    name = ddl.index_name(p, replace(p.codes[0], column=p.vector_column))
    if not create:
        return sql.SQL("DROP INDEX {}IF EXISTS {}").format(sql.SQL("CONCURRENTLY " if concurrently else ""),
                                                           sql.Identifier(p.schema, name))
    if not opclass:
        typ = conn.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass "
                           "AND attname = %s", (ddl.table_ident(p).as_string(conn), p.vector_column)).fetchone()
        prefix = "halfvec_" if typ is not None and typ[0].endswith("halfvec") else "vector_"
        opclass = prefix + VECTOR_OPCLASS[p.distance]
    with_: sql.Composable = sql.SQL("")
    if options:
        with_ = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(int(v))) for k, v in options.items()))
    return sql.SQL("CREATE INDEX {}IF NOT EXISTS {} ON {} USING {} ({} {}){}").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""), sql.Identifier(name), ddl.table_ident(p),
        sql.Identifier(method), sql.Identifier(p.vector_column), sql.Identifier(opclass), with_)


def _run_indexes(operations: Operations, operation: _IndexesOp, create: bool) -> None:
    methods = {**INDEX_DEFAULTS, **(operation.methods or {})}

    def run() -> None:
        conn = _raw(operations)
        p = _catalog_or_table_profile(conn, operation.table_name, operation.vector_column, operation.schema)
        if methods["vector"] is not None:
            conn.execute(_vector_index_sql(conn, p, *methods["vector"], operation.options, operation.concurrently,
                                           create))
        for c in p.codes:
            spec = ddl.index_for(p, c, methods)
            if spec is None:
                continue
            if create:
                conn.execute(ddl.create_index_sql(p, c, *spec, operation.concurrently))
            else:
                conn.execute(ddl.drop_index_sql(p, c, operation.concurrently))

    if operation.concurrently:
        with operations.get_context().autocommit_block():
            run()
    else:
        run()


@Operations.implementation_for(CreateIndexesOp)
def _create_indexes(operations: Operations, operation: CreateIndexesOp) -> None:
    _run_indexes(operations, operation, True)


@Operations.implementation_for(DropIndexesOp)
def _drop_indexes(operations: Operations, operation: DropIndexesOp) -> None:
    _run_indexes(operations, operation, False)


# ---------------------------------------------------------------------------------------------
# Autogenerate
# ---------------------------------------------------------------------------------------------


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """render_item hook: our column types (and pgvector's) with their imports."""
    from pgvector.sqlalchemy import BIT, HALFVEC, VECTOR

    from shrinkvec.integrations.orm import Int8Vec

    if type_ != "type":
        return False
    if isinstance(obj, Int8Vec):
        autogen_context.imports.add("import shrinkvec.orm")
        return f"shrinkvec.orm.Int8Vec({obj.dim!r})"
    if isinstance(obj, (VECTOR, HALFVEC)):
        autogen_context.imports.add("import pgvector.sqlalchemy")
        return f"pgvector.sqlalchemy.{type(obj).__name__}(dim={obj.dim!r})"
    if isinstance(obj, BIT):
        autogen_context.imports.add("import pgvector.sqlalchemy")
        return f"pgvector.sqlalchemy.BIT(length={obj.length!r})"
    return False


@renderers.dispatch_for(AddCodesOp)
def _render_add(autogen_context: Any, op: AddCodesOp) -> str:
    autogen_context.imports.add("import shrinkvec.alembic_ops  # noqa: F401  (registers op.add_shrinkvec_codes)")
    extra = "".join(f", {k}={v!r}" for k, v in op._kw().items() if v not in (None, "id", "cosine"))
    return f"op.add_shrinkvec_codes({op.table_name!r}, {op.vector_column!r}, {op.codes!r}{extra})"


@renderers.dispatch_for(DropCodesOp)
def _render_drop(autogen_context: Any, op: DropCodesOp) -> str:
    autogen_context.imports.add("import shrinkvec.alembic_ops  # noqa: F401  (registers op.drop_shrinkvec_codes)")
    extra = "".join(f", {k}={v!r}" for k, v in op._kw().items() if v not in (None, "id", "cosine"))
    return f"op.drop_shrinkvec_codes({op.table_name!r}, {op.vector_column!r}, {op.codes!r}{extra})"


rewriter = _rewriter_mod.Rewriter()


def _code_column(sub: Any) -> Any:
    """The column of an add_column / drop_column op when it is a shrinkvec code column, else None."""
    if isinstance(sub, ops.AddColumnOp):
        column = sub.column
    elif isinstance(sub, ops.DropColumnOp) and sub._reverse is not None:
        column = sub._reverse.column
    else:
        return None
    return column if "shrinkvec" in column.info else None


@rewriter.rewrites(ops.ModifyTableOps)
def _codes_as_one_op(context: Any, revision: Any, op: ops.ModifyTableOps) -> ops.ModifyTableOps:
    """add_column (drop_column) ops of shrinkvec code columns made with the shrinkvec.orm helpers ->
    one add_shrinkvec_codes (drop_shrinkvec_codes) per vector column, so the trigger comes and goes too."""
    groups: dict[tuple[bool, str], dict[str, Any]] = {}
    keep: list[Any] = []
    for sub in op.ops:
        column = _code_column(sub)
        if column is None:
            keep.append(sub)
            continue
        info = column.info["shrinkvec"]
        kind = kinds.get(info["kind"])
        g = groups.setdefault((isinstance(sub, ops.AddColumnOp), info["source"]), {"specs": []})
        g["specs"].append(f"{kind.spec(info['length'])}={column.name}")
        if kind.calibrated:
            g["lo"], g["hi"] = info["lo"], info["hi"]
    for (add, source), g in groups.items():
        cls = AddCodesOp if add else DropCodesOp
        specs = g["specs"] if add else g["specs"][::-1]  # a downgrade lists the columns in reverse
        keep.append(cls(op.table_name, source, ",".join(specs), schema=op.schema, lo=g.get("lo"), hi=g.get("hi")))
    op.ops = keep
    return op
