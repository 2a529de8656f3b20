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

Safe against planted objects: every function this module creates runs with ``search_path = pg_catalog,
pg_temp``, and every name it generates (functions, types, operators) is qualified with the schema of the
extension that owns it, so a role that can create objects in a schema on anyone's search_path (``public``)
cannot capture a call. The trigger's WHEN clause uses ``OPERATOR(schema.=)`` rather than ``IS DISTINCT
FROM`` (which pg_dump prints without a schema): a dump restores under an empty search_path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

import psycopg
from psycopg import sql

from shrinkvec import kinds
from shrinkvec.profile import Code, Profile
from shrinkvec.sqlnames import vec_fn

PREFIX_OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}
# search_path of every function shrinkvec creates: nothing a user can write is searched
SAFE_SEARCH_PATH = sql.SQL("pg_catalog, pg_temp")


def table_ident(p: Profile) -> sql.Identifier:
    """The profile's table, schema-qualified."""
    return sql.Identifier(p.schema, p.table)


def extension_schemas(conn: psycopg.Connection) -> tuple[str, str]:
    """The schemas of the shrinkvec and vector extensions."""
    rows: dict[str, str] = dict(conn.execute(
        """SELECT e.extname, n.nspname FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
           WHERE e.extname OPERATOR(pg_catalog.=) ANY ('{shrinkvec,vector}'::text[])""").fetchall())
    if len(rows) < 2:
        raise psycopg.errors.UndefinedObject("the shrinkvec extension is not installed: run shrinkvec migrate")
    return str(rows["shrinkvec"]), str(rows["vector"])


def located(conn: psycopg.Connection, p: Profile) -> Profile:
    """The profile with the schemas its generated SQL qualifies names with."""
    ext, vec = extension_schemas(conn)
    return replace(p, ext_schema=ext, vec_schema=vec)


def sql_type(p: Profile, kind: str) -> sql.Composable:
    """The SQL type of a code kind, without a length, schema-qualified."""
    return kinds.get(kind).sql_type(p)


def code_type(p: Profile, c: Code) -> sql.Composable:
    """SQL type of a code column."""
    return c.code_kind.column_type(p, c.length)


def transformed(p: Profile, vector: sql.Composable) -> sql.Composable:
    """The vector expression through the profile's transform (unchanged without one)."""
    if p.transform is None:
        return vector
    return sql.SQL("shrinkvec.transform_vector({}, {}::pg_catalog.text)").format(vector, sql.Literal(p.transform))


def code_expr(p: Profile, c: Code, vector: sql.Composable, *, raw: bool = True) -> sql.Composable:
    """SQL expression computing code c from the vector expression (same values as Profile.encode).

    `vector` is the raw vector (the profile's transform is applied here), or with raw=False an
    expression that is already transformed (computed once for several codes).
    """
    if raw:
        vector = transformed(p, vector)
    return c.code_kind.expr(p, c, vector)


def _differs(p: Profile, c: Code, stored: sql.Composable, computed: sql.Composable) -> sql.Composable:
    """`stored IS DISTINCT FROM computed` with a schema-qualified `=`; `computed` is evaluated once."""
    kind = c.code_kind
    a, b = kind.comparable(p, stored), kind.comparable(p, computed)
    return sql.SQL("(CASE WHEN {a} IS NULL THEN {b} IS NOT NULL ELSE NOT coalesce({a} {eq} {b}, false) END)").format(
        a=a, b=b, eq=kind.equality(p))


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


def add_code_columns(conn: psycopg.Connection, p: Profile) -> None:
    """ADD COLUMN for every code (nullable, no default: no table rewrite)."""
    p = located(conn, p)
    conn.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            table_ident(p),
            sql.SQL(", ").join(
                sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(c.column), code_type(p, c)) for c in p.codes
            ),
        )
    )


def create_trigger(conn: psycopg.Connection, p: Profile) -> None:
    """The trigger function and the BEFORE INSERT OR UPDATE trigger that keep the codes correct."""
    p = located(conn, p)
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
        body = sql.SQL("DECLARE {tv} {vector}; BEGIN IF {v} IS NULL THEN {nulls} RETURN NEW; END IF; "
                       "{tv} := {expr}; {assigns} RETURN NEW; END").format(
            tv=tv, vector=vec_fn(p, "vector"), v=new_vec, expr=transformed(p, new_vec), assigns=assigns,
            nulls=sql.SQL(" ").join(sql.SQL("NEW.{} := NULL;").format(sql.Identifier(c.column)) for c in p.codes),
        ).as_string(conn)
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SET search_path = {} AS {}"
        ).format(function_ident(p), SAFE_SEARCH_PATH, sql.Literal(body))
    )
    conn.execute(
        sql.SQL("COMMENT ON FUNCTION {}() IS {}").format(
            function_ident(p),
            sql.Literal(f"shrinkvec: recomputes the codes of {p.schema}.{p.table}.{p.vector_column} (profile {p.name})"),
        )
    )
    if p.transform is None:
        when: sql.Composable = sql.SQL(" OR ").join(
            _differs(p, c, sql.SQL("NEW.{}").format(sql.Identifier(c.column)), code_expr(p, c, new_vec))
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
    args = [sql.SQL("{} {}").format(sql.Identifier(f"c{i}"), sql_type(p, c.kind)) for i, c in enumerate(p.codes)]
    differs = sql.SQL(" OR ").join(
        _differs(p, c, sql.Identifier(f"c{i}"), code_expr(p, c, tv, raw=False)) for i, c in enumerate(p.codes))
    any_code = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(f"c{i}"))
                                    for i in range(len(p.codes)))
    body = sql.SQL("DECLARE {tv} {vector}; BEGIN IF v IS NULL THEN RETURN {any}; END IF; "
                   "{tv} := {expr}; RETURN {differs}; END").format(
        tv=tv, vector=vec_fn(p, "vector"), any=any_code, expr=transformed(p, sql.Identifier("v")),
        differs=differs).as_string(conn)
    conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}(v {}, {}) RETURNS boolean LANGUAGE plpgsql STABLE "
                         "SET search_path = {} AS {}").format(
        stale_function_ident(p), vec_fn(p, "vector"), sql.SQL(", ").join(args), SAFE_SEARCH_PATH, sql.Literal(body)))
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
    p = located(conn, p)
    cols = [
        sql.SQL("{} bigint PRIMARY KEY").format(sql.Identifier(p.id_column)),
        sql.SQL("{} {}({}){} NOT NULL").format(sql.Identifier(p.vector_column), vec_fn(p, "vector"),
                                                sql.Literal(p.dims), sql.SQL("[]" if p.multi else "")),
    ]
    cols += [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ)) for name, typ in payload]
    cols += [sql.SQL("{} {}").format(sql.Identifier(c.column), code_type(p, c)) for c in p.codes]
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table_ident(p), sql.SQL(", ").join(cols)))
    create_trigger(conn, p)


def index_for(p: Profile, c: Code, methods: dict[str, tuple[str, str] | None] | None = None) -> tuple[str, str] | None:
    """(access method, opclass) of a code's index, or None."""
    spec = (methods or {}).get(c.kind, c.code_kind.index)
    if spec is None:
        return None
    method, opclass = spec
    if not opclass:  # a vector code: the opclass of the profile's distance
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
    p = located(conn, p)
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
