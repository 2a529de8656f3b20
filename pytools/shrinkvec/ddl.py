"""DDL of a profile's table: code columns, the trigger that keeps them correct, indexes, backfill.

Codes are kept correct by a trigger, not by generated columns:

- The code columns are plain nullable columns. A ``BEFORE INSERT OR UPDATE OF <vector, codes>`` row
  trigger recomputes them from the vector with the extension's SQL functions. Its ``WHEN`` clause
  compares the codes the client wrote with the codes the vector gives, so the plpgsql body only runs
  when they differ (plain SQL that leaves the codes out, a client that writes wrong ones, an UPDATE of
  the vector); the loader sends the numpy codes and pays only for the C-level comparison.
- The trigger is ``ENABLE ALWAYS``, so it fires under ``session_replication_role = replica`` and for
  logical replication too. Only the table owner can disable it (``ALTER TABLE ... DISABLE TRIGGER``).
- Why not ``GENERATED ALWAYS AS (...) STORED``: adding a stored generated column to an existing table
  rewrites the whole table under an ACCESS EXCLUSIVE lock, while a nullable column plus the trigger is
  instant and the old rows are filled in short batches (`backfill`), each its own transaction. And the
  loader can send the codes it computed in numpy instead of making the server compute them.

Values that must be constants in DDL (centers, int8 ranges) are rendered with ``psycopg.sql.Literal``;
every identifier with ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from shrinkvec.profile import Code, Profile

INDEX_DEFAULTS: dict[str, tuple[str, str] | None] = {
    # kind -> (access method, opclass); None: no index for this kind. Prefix opclass depends on distance.
    "bits": ("hnsw", "bit_hamming_ops"),
    "prefix": ("hnsw", ""),
    "int8": None,
}
PREFIX_OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}


def real_array(values: npt.ArrayLike) -> sql.Composable:
    """A real[] constant whose elements are exactly the given float32 values."""
    a = np.asarray(values, dtype=np.float32)
    text = "{" + ",".join(np.format_float_scientific(v, unique=True) for v in a) + "}"
    return sql.SQL("{}::real[]").format(sql.Literal(text))


def table_ident(p: Profile) -> sql.Identifier:
    """The profile's table, schema-qualified."""
    return sql.Identifier(p.schema, p.table)


def code_type(c: Code) -> sql.Composable:
    """SQL type of a code column."""
    name = {"bits": "bit", "prefix": "vector", "int8": "int8vec"}[c.kind]
    return sql.SQL("{}({})").format(sql.SQL(name), sql.Literal(c.length))


def transformed(p: Profile, vector: sql.Composable) -> sql.Composable:
    """The vector expression through the profile's transform (unchanged without one)."""
    if p.transform is None:
        return vector
    return sql.SQL("shrinkvec.transform_vector({}, {})").format(vector, sql.Literal(p.transform))


def code_expr(p: Profile, c: Code, vector: sql.Composable, *, raw: bool = True) -> sql.Composable:
    """SQL expression computing code c from the vector expression (same values as Profile.encode).

    `vector` is the raw vector (the profile's transform is applied here), or with raw=False an
    expression that is already transformed (computed once for several codes).
    """
    if raw:
        vector = transformed(p, vector)
    if c.kind == "bits":
        if p.center is not None:
            return sql.SQL("binarize({}, {}, {})").format(vector, sql.Literal(c.length), real_array(p.center))
        if c.length == p.dims:
            return sql.SQL("binarize({})").format(vector)
        return sql.SQL("binarize({}, {})").format(vector, sql.Literal(c.length))
    if c.kind == "prefix":
        return sql.SQL("subvector({}, 1, {})::vector({})").format(vector, sql.Literal(c.length), sql.Literal(c.length))
    assert c.lo is not None and c.hi is not None, "int8 code without ranges"
    return sql.SQL("quantize_int8({}, {}, {})").format(vector, real_array(c.lo), real_array(c.hi))


def _comparable(c: Code, expr: sql.Composable) -> sql.Composable:
    """An expression with an equality operator (int8vec has none: compare its binary form)."""
    return sql.SQL("int8vec_send({})").format(expr) if c.kind == "int8" else expr


def _suffix(p: Profile) -> str:
    """A short stable hash naming the profile's trigger and function (identifiers stay < 63 bytes)."""
    key = f"{p.schema}\x00{p.table}\x00{p.vector_column}".encode()
    return hashlib.sha1(key).hexdigest()[:12]


def trigger_name(p: Profile) -> str:
    return f"shrinkvec_codes_{_suffix(p)}"


def function_ident(p: Profile) -> sql.Identifier:
    return sql.Identifier(p.schema, f"shrinkvec_codes_{_suffix(p)}")


def index_name(p: Profile, c: Code) -> str:
    return f"shrinkvec_{_suffix(p)}_{c.column}"[:63]


def extension_search_path(conn: psycopg.Connection) -> str:
    """search_path for trigger functions: the schemas of shrinkvec and vector, then pg_catalog."""
    rows = conn.execute(
        """SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
           WHERE e.extname IN ('shrinkvec', 'vector') ORDER BY e.extname DESC"""
    ).fetchall()
    if len(rows) < 2:
        raise psycopg.errors.UndefinedObject("the shrinkvec extension is not installed: run shrinkvec migrate")
    names = list(dict.fromkeys(r[0] for r in rows))
    return ", ".join(sql.Identifier(n).as_string(conn) for n in [*names, "pg_catalog"])


def add_code_columns(conn: psycopg.Connection, p: Profile) -> None:
    """ADD COLUMN for every code (nullable, no default: no table rewrite)."""
    conn.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            table_ident(p),
            sql.SQL(", ").join(
                sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(c.column), code_type(c)) for c in p.codes
            ),
        )
    )


def create_trigger(conn: psycopg.Connection, p: Profile) -> None:
    """The trigger function and the BEFORE INSERT OR UPDATE trigger that keep the codes correct."""
    new_vec = sql.SQL("NEW.{}").format(sql.Identifier(p.vector_column))
    if p.transform is None:
        assigns = sql.SQL(" ").join(
            sql.SQL("NEW.{} := {};").format(sql.Identifier(c.column), code_expr(p, c, new_vec)) for c in p.codes
        )
        body = sql.SQL("BEGIN {} RETURN NEW; END").format(assigns).as_string(conn)
    else:  # transform the vector once for all codes
        tv = sql.Identifier("shrinkvec_tv")
        assigns = sql.SQL(" ").join(
            sql.SQL("NEW.{} := {};").format(sql.Identifier(c.column), code_expr(p, c, tv, raw=False))
            for c in p.codes
        )
        body = sql.SQL("DECLARE {tv} vector; BEGIN IF {v} IS NULL THEN {nulls} RETURN NEW; END IF; "
                       "{tv} := {expr}; {assigns} RETURN NEW; END").format(
            tv=tv, v=new_vec, expr=transformed(p, new_vec), assigns=assigns,
            nulls=sql.SQL(" ").join(sql.SQL("NEW.{} := NULL;").format(sql.Identifier(c.column)) for c in p.codes),
        ).as_string(conn)
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SET search_path = {} AS {}"
        ).format(function_ident(p), sql.SQL(extension_search_path(conn)), sql.Literal(body))
    )
    conn.execute(
        sql.SQL("COMMENT ON FUNCTION {}() IS {}").format(
            function_ident(p),
            sql.Literal(f"shrinkvec: recomputes the codes of {p.schema}.{p.table}.{p.vector_column} (profile {p.name})"),
        )
    )
    if p.transform is None:
        when: sql.Composable = sql.SQL(" OR ").join(
            sql.SQL("{} IS DISTINCT FROM {}").format(
                _comparable(c, sql.SQL("NEW.{}").format(sql.Identifier(c.column))),
                _comparable(c, code_expr(p, c, new_vec)),
            )
            for c in p.codes
        )
    else:  # one function call that transforms the vector once, instead of once per code
        _create_stale_function(conn, p)
        when = sql.SQL("{}({}, {})").format(
            stale_function_ident(p), new_vec,
            sql.SQL(", ").join(sql.SQL("NEW.{}").format(sql.Identifier(c.column)) for c in p.codes))
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in [p.vector_column, *(c.column for c in p.codes)])
    trig = sql.Identifier(trigger_name(p))
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF {} ON {} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {}()"
        ).format(trig, cols, table_ident(p), when, function_ident(p))
    )
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(table_ident(p), trig))


def stale_function_ident(p: Profile) -> sql.Identifier:
    return sql.Identifier(p.schema, f"shrinkvec_stale_{_suffix(p)}")


def _create_stale_function(conn: psycopg.Connection, p: Profile) -> None:
    """stale(v, codes...) -> boolean: whether any code differs from the codes of transform(v) (the WHEN
    clause of a transformed profile's trigger: the transform runs once per row, not once per code)."""
    tv = sql.Identifier("shrinkvec_tv")
    args = [sql.SQL("{} {}").format(sql.Identifier(f"c{i}"), sql.SQL({"bits": "bit", "prefix": "vector",
                                                                       "int8": "int8vec"}[c.kind]))
            for i, c in enumerate(p.codes)]
    differs = sql.SQL(" OR ").join(
        sql.SQL("{} IS DISTINCT FROM {}").format(_comparable(c, sql.Identifier(f"c{i}")),
                                                 _comparable(c, code_expr(p, c, tv, raw=False)))
        for i, c in enumerate(p.codes))
    any_code = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(f"c{i}"))
                                    for i in range(len(p.codes)))
    body = sql.SQL("DECLARE {tv} vector; BEGIN IF v IS NULL THEN RETURN {any}; END IF; "
                   "{tv} := {expr}; RETURN {differs}; END").format(
        tv=tv, any=any_code, expr=transformed(p, sql.Identifier("v")), differs=differs).as_string(conn)
    conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}(v vector, {}) RETURNS boolean LANGUAGE plpgsql STABLE "
                         "SET search_path = {} AS {}").format(
        stale_function_ident(p), sql.SQL(", ").join(args), sql.SQL(extension_search_path(conn)), sql.Literal(body)))
    conn.execute(sql.SQL("COMMENT ON FUNCTION {} IS {}").format(
        stale_function_ident(p),
        sql.Literal(f"shrinkvec: whether the codes of a row of {p.schema}.{p.table} differ from transform "
                    f"{p.transform} of its vector (profile {p.name})")))


def add_codes(conn: psycopg.Connection, p: Profile) -> None:
    """Code columns plus the trigger, on an existing table (instant; old rows stay NULL until backfill)."""
    add_code_columns(conn, p)
    create_trigger(conn, p)


def drop_codes(conn: psycopg.Connection, p: Profile) -> None:
    """Exactly what add_codes added: the trigger, its function, the code columns (and their indexes)."""
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger_name(p)), table_ident(p)))
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(function_ident(p)))
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(stale_function_ident(p)))
    conn.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            table_ident(p),
            sql.SQL(", ").join(sql.SQL("DROP COLUMN {}").format(sql.Identifier(c.column)) for c in p.codes),
        )
    )


def create_table(conn: psycopg.Connection, p: Profile, payload: Iterable[tuple[str, str]] = ()) -> None:
    """CREATE TABLE with a bigint id, the vector, payload columns (name, SQL type), codes and trigger."""
    cols = [
        sql.SQL("{} bigint PRIMARY KEY").format(sql.Identifier(p.id_column)),
        sql.SQL("{} vector({}) NOT NULL").format(sql.Identifier(p.vector_column), sql.Literal(p.dims)),
    ]
    cols += [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ)) for name, typ in payload]
    cols += [sql.SQL("{} {}").format(sql.Identifier(c.column), code_type(c)) for c in p.codes]
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table_ident(p), sql.SQL(", ").join(cols)))
    create_trigger(conn, p)


def index_for(p: Profile, c: Code, methods: dict[str, tuple[str, str] | None] | None = None) -> tuple[str, str] | None:
    """(access method, opclass) of a code's index, or None."""
    spec = (methods or {}).get(c.kind, INDEX_DEFAULTS[c.kind])
    if spec is None:
        return None
    method, opclass = spec
    if c.kind == "prefix" and not opclass:
        opclass = PREFIX_OPCLASS[p.distance]
    return method, opclass


def create_index_sql(p: Profile, c: Code, method: str, opclass: str, concurrently: bool) -> sql.Composed:
    return sql.SQL("CREATE INDEX {}IF NOT EXISTS {} ON {} USING {} ({} {})").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""),
        sql.Identifier(index_name(p, c)),
        table_ident(p),
        sql.Identifier(method),
        sql.Identifier(c.column),
        sql.Identifier(opclass),
    )


def drop_index_sql(p: Profile, c: Code, concurrently: bool) -> sql.Composed:
    return sql.SQL("DROP INDEX {}IF EXISTS {}").format(
        sql.SQL("CONCURRENTLY " if concurrently else ""), sql.Identifier(p.schema, index_name(p, c))
    )


def backfill(conn: psycopg.Connection, p: Profile, batch_size: int = 5000) -> int:
    """Fill the codes of rows where any is NULL, `batch_size` rows per transaction, in id order.

    Each batch locks only its own rows, for one short transaction; rerunning continues where it
    stopped (rows already filled are skipped). Returns the number of rows updated.
    """
    t = table_ident(p)
    idc = sql.Identifier(p.id_column)
    vec = sql.Identifier(p.vector_column)
    missing = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c.column)) for c in p.codes)
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c.column), code_expr(p, c, vec)) for c in p.codes
    )
    update = sql.SQL("UPDATE {t} SET {sets} WHERE {id} = ANY(%(ids)s)").format(t=t, sets=sets, id=idc)
    total = 0
    last: object = None
    while True:
        after = sql.SQL("AND {} > %(last)s").format(idc) if last is not None else sql.SQL("")
        query = sql.SQL(
            "SELECT {id} FROM {t} WHERE ({missing}) AND {vec} IS NOT NULL {after} ORDER BY {id} LIMIT %(n)s"
        ).format(id=idc, t=t, missing=missing, vec=vec, after=after)
        with conn.transaction():
            ids = [r[0] for r in conn.execute(query, {"last": last, "n": batch_size}).fetchall()]
            if not ids:
                return total
            conn.execute(update, {"ids": ids})
        total += len(ids)
        last = ids[-1]
