"""DDL of a profile's table: code columns, the trigger that keeps them correct, indexes, backfill.

Codes are kept correct by a trigger, not by generated columns:

- The code columns are plain nullable columns. A ``BEFORE INSERT OR UPDATE OF <vector, codes>`` row
  trigger executes the extension's C function ``shrinkvec.codes_trigger(<arguments>)``, which sets every
  code column from the vector (NULL codes for a NULL vector) with the extension's C code, whatever the
  client wrote: plain SQL that leaves the codes out, a client that writes wrong ones, an UPDATE of the
  vector. The loader sends the codes it computed in numpy; the trigger computes them again in C, which
  costs about what comparing them did.
- The trigger's arguments describe the codes completely (`trigger_args`): the vector column, the
  transform, the center, and per code its column, kind, length and int8 ranges. The trigger reads no
  catalog table (a role with INSERT but no SELECT gets its codes), and pg_dump writes the arguments with
  the table, so a one-table dump restores wherever the extension is installed.
- No function is created per table, and the trigger calls nothing by name: a role that owns the schema
  the extension was installed into (or ``public``) can rename it and plant functions of the same names
  without any effect on the trigger (issues 26 and 32).
- The trigger is ``ENABLE ALWAYS``, so it fires under ``session_replication_role = replica`` and for
  logical replication too. Only the table owner can disable it (``ALTER TABLE ... DISABLE TRIGGER``).
- Why not ``GENERATED ALWAYS AS (...) STORED``: adding a stored generated column to an existing table
  rewrites the whole table under an ACCESS EXCLUSIVE lock, while a nullable column plus the trigger is
  instant and the old rows are filled in short batches (`backfill`), each its own transaction. And the
  loader can send the codes it computed in numpy instead of making the server compute them.

Tables made by shrinkvec before 0.3.0 have a PL/pgSQL function per table (``shrinkvec_codes_<hash>``, and
``shrinkvec_stale_<hash>`` for transformed profiles); `upgrade_triggers` (catalog migration 0007, run by
``shrinkvec migrate``) replaces them by the extension's trigger.

Every identifier is rendered with ``psycopg.sql.Identifier``, values with ``psycopg.sql.Literal``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from shrinkvec import kinds
from shrinkvec.kinds import Code
from shrinkvec.profile import Profile
from shrinkvec.sql import profiles
from shrinkvec.sql.connection import extension_schemas as extension_schemas  # its old home
from shrinkvec.sql.names import vec_fn

PREFIX_OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}


def table_ident(p: Profile) -> sql.Identifier:
    """The profile's table, schema-qualified."""
    return sql.Identifier(p.schema, p.table)


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
    """SQL expression computing code c from the vector expression (same values as Profile.encode and the
    trigger); for ad-hoc SQL by the tools, not for stored objects (it names the extension's schema).

    `vector` is the raw vector (the profile's transform is applied here), or with raw=False an
    expression that is already transformed (computed once for several codes).
    """
    if raw:
        vector = transformed(p, vector)
    return c.code_kind.expr(p, c, vector)


def _suffix(p: Profile) -> str:
    """A short stable hash naming the profile's trigger (identifiers stay < 63 bytes)."""
    key = f"{p.schema}\x00{p.table}\x00{p.vector_column}".encode()
    return hashlib.sha1(key).hexdigest()[:12]


def trigger_name(p: Profile) -> str:
    return f"shrinkvec_codes_{_suffix(p)}"


def legacy_function_idents(p: Profile) -> list[sql.Composable]:
    """The per-table trigger functions of shrinkvec before 0.3.0 (dropped with their trigger when found)."""
    return [sql.SQL("{}()").format(sql.Identifier(p.schema, f"shrinkvec_codes_{_suffix(p)}")),
            sql.SQL("{}").format(sql.Identifier(p.schema, f"shrinkvec_stale_{_suffix(p)}"))]


def index_name(p: Profile, c: Code) -> str:
    return f"shrinkvec_{_suffix(p)}_{c.column}"[:63]


# the extension's trigger function (its schema is made by the extension script and owned by a superuser)
CODES_TRIGGER = sql.Identifier("shrinkvec", "codes_trigger")
TRIGGER_FORMAT = "v1"  # the first argument: the layout of the rest (extension/src/functions/codes_trigger.c)


def float_array_text(values: npt.ArrayLike) -> str:
    """A real[] literal whose elements parse back to exactly the given float32 values."""
    a = np.asarray(values, dtype=np.float32)
    return "{" + ",".join(np.format_float_scientific(v, unique=True) for v in a) + "}"


def trigger_args(p: Profile) -> list[str]:
    """The arguments of shrinkvec.codes_trigger() for a profile: 'v1', vector column, id column, distance,
    transform name (or ''), center (a real[] literal, or ''), then per code: column, kind, length, lo, hi
    (int8 ranges as real[] literals, '' for the other kinds). The id column and distance do not change the
    codes; with them the arguments describe the whole profile (`profile_from_trigger`)."""
    args = [TRIGGER_FORMAT, p.vector_column, p.id_column, p.distance, p.transform or "",
            "" if p.center is None else float_array_text(p.center)]
    for c in p.codes:
        if c.code_kind.calibrated:
            if c.lo is None or c.hi is None:
                raise ValueError(f"code {c.column!r} of profile {p.name!r} has no int8 ranges")
            lo, hi = float_array_text(c.lo), float_array_text(c.hi)
        else:
            lo = hi = ""
        args += [c.column, c.kind, str(c.length), lo, hi]
    return args


def trigger_sql(p: Profile, name: str, columns: Iterable[str]) -> sql.Composed:
    """CREATE TRIGGER `name` on p's table, BEFORE INSERT OR UPDATE OF `columns`, executing the extension's
    codes_trigger with p's arguments."""
    return sql.SQL(
        "CREATE TRIGGER {} BEFORE INSERT OR UPDATE OF {} ON {} FOR EACH ROW EXECUTE FUNCTION {}({})"
    ).format(sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c) for c in columns), table_ident(p),
             CODES_TRIGGER, sql.SQL(", ").join(sql.Literal(a) for a in trigger_args(p)))


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
    """The BEFORE INSERT OR UPDATE trigger that keeps the codes correct (the extension's codes_trigger)."""
    trig = sql.Identifier(trigger_name(p))
    conn.execute(trigger_sql(p, trigger_name(p), [p.vector_column, *(c.column for c in p.codes)]))
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(table_ident(p), trig))


def drop_trigger(conn: psycopg.Connection, p: Profile) -> None:
    """The profile's trigger (also under the name it got before a RENAME of its table), and the per-table
    functions of an older trigger if it had them."""
    for trig in table_triggers(conn, p):
        if trig.current and len(trig.args) > 1 and trig.args[1] == p.vector_column and trig.name != trigger_name(p):
            conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(trig.name), table_ident(p)))
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger_name(p)), table_ident(p)))
    for fn in legacy_function_idents(p):
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(fn))


def add_codes(conn: psycopg.Connection, p: Profile) -> None:
    """Code columns plus the trigger, on an existing table (instant; old rows stay NULL until backfill)."""
    add_code_columns(conn, p)
    create_trigger(conn, p)


def drop_codes(conn: psycopg.Connection, p: Profile) -> None:
    """Exactly what add_codes added: the trigger (and an older trigger's functions), the code columns (and
    their indexes)."""
    drop_trigger(conn, p)
    conn.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            table_ident(p),
            sql.SQL(", ").join(sql.SQL("DROP COLUMN {}").format(sql.Identifier(c.column)) for c in p.codes),
        )
    )


# vector(d) values of 4 d + 8 bytes leave the row (TOAST) past ~2 kB; a row must fit a page (8 kB) with room
# for the codes and payload: the tables the tools create keep vectors of these dims in the row
INLINE_MIN_DIMS = 507
INLINE_MAX_DIMS = 1600


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
    if not p.multi and INLINE_MIN_DIMS <= p.dims <= INLINE_MAX_DIMS:
        # keep the vector in the row: an index scan's rerank reads each candidate's row, and a TOASTed
        # value costs a TOAST lookup on top (issue 29: 9.8 us a row at 768 dims, 2.4 us in the row)
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STORAGE PLAIN").format(
            table_ident(p), sql.Identifier(p.vector_column)))
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

    The trigger computes them: each batch sets one code column to NULL (the trigger fires on an UPDATE
    of any code column and writes every code). Each batch locks only its own rows, for one short
    transaction; rerunning continues where it stopped (rows already filled are skipped). Returns the
    number of rows updated.
    """
    t = table_ident(p)
    idc = sql.Identifier(p.id_column)
    vec = sql.Identifier(p.vector_column)
    missing = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c.column)) for c in p.codes)
    update = sql.SQL("UPDATE {t} SET {code} = NULL WHERE {id} OPERATOR(pg_catalog.=) ANY(%(ids)s)").format(
        t=t, code=sql.Identifier(p.codes[0].column), id=idc)
    total = 0
    last: object = None
    while True:
        after = sql.SQL("AND {} OPERATOR(pg_catalog.>) %(last)s").format(idc) if last is not None else sql.SQL("")
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


# ---- triggers of older versions, and profiles of restored tables ------------------------------------


@dataclass(frozen=True)
class TableTrigger:
    """A `shrinkvec_codes_<hash>` trigger found on a table."""

    schema: str
    table: str
    name: str
    args: list[str]
    current: bool  # it executes the extension's codes_trigger (else: a per-table function of shrinkvec < 0.3.0)
    may_alter: bool  # the role running this owns the table (or is a superuser)
    function: tuple[str, str]  # (schema, name) of the function it executes
    owner: int = 0  # OID of the table's owner: only functions of that role are dropped with a legacy trigger


def table_triggers(conn: psycopg.Connection, p: Profile | None = None, prefix: str = "shrinkvec_codes_"
                   ) -> list[TableTrigger]:
    """Every shrinkvec codes trigger in the database (tables of other roles included), or on p's table;
    prefix "shrinkvec_next_" finds the shadow triggers of re-encodes instead."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname, t.tgname, t.tgargs,
                  t.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure('shrinkvec.codes_trigger()'),
                  pg_catalog.pg_has_role(c.relowner, 'USAGE'), fn.nspname, f.proname, c.relowner
           FROM pg_catalog.pg_trigger t
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.tgrelid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
           JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) t.tgfoid
           JOIN pg_catalog.pg_namespace fn ON fn.oid OPERATOR(pg_catalog.=) f.pronamespace
           WHERE NOT t.tgisinternal AND t.tgname OPERATOR(pg_catalog.~) (%(prefix)s || '[0-9a-f]{12}$')
             AND (%(rel)s::pg_catalog.text IS NULL
                  OR t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%(rel)s::pg_catalog.text))
           ORDER BY 1, 2, 3""",
        {"rel": None if p is None else table_ident(p).as_string(conn), "prefix": "^" + prefix}).fetchall()
    out = []
    for schema, table, name, raw, current, may_alter, fn_schema, fn_name, owner in rows:
        parts = bytes(raw).split(b"\x00")[:-1] if raw else []
        out.append(TableTrigger(schema, table, name, [a.decode() for a in parts], bool(current), bool(may_alter),
                                (fn_schema, fn_name), int(owner)))
    return out


def profile_from_trigger(conn: psycopg.Connection, trig: TableTrigger) -> Profile:
    """The profile that an extension trigger's arguments describe (see trigger_args); k, shortlist and the
    tuned search configuration are not in them and take their defaults."""
    a = trig.args
    if len(a) < 6 or a[0] != TRIGGER_FORMAT or (len(a) - 6) % 5:
        raise ValueError(f"trigger {trig.name} on {trig.schema}.{trig.table} has arguments of an unknown format")
    vector_column, id_column, distance, transform, center = a[1], a[2], a[3], a[4] or None, a[5]
    dims = profiles.vector_dims(conn, trig.table, vector_column, trig.schema)
    if dims is None:
        raise ValueError(f"{trig.schema}.{trig.table}.{vector_column} has no declared dimensions")

    def floats(text: str) -> npt.NDArray[np.float32] | None:
        return None if not text else np.asarray([float(v) for v in text.strip("{}").split(",")], dtype=np.float32)

    cs = tuple(Code(a[i + 1], int(a[i + 2]), a[i], lo=floats(a[i + 3]), hi=floats(a[i + 4]))
               for i in range(6, len(a), 5))
    return located(conn, Profile(
        name=f"{trig.schema}.{trig.table}.{vector_column}", schema=trig.schema, table=trig.table,
        vector_column=vector_column, dims=dims, codes=cs, id_column=id_column,
        distance=distance,  # type: ignore[arg-type]  # checked by the trigger and the catalog's constraint
        center=floats(center), transform=transform))


@dataclass
class SyncReport:
    """What sync_triggers did, and what it left for a table's owner."""

    recreated: list[str] = field(default_factory=list)  # schema.table whose old trigger became the extension's
    registered: list[str] = field(default_factory=list)  # restored tables whose profile came from the trigger
    skipped: list[str] = field(default_factory=list)  # why a table was left alone


def drop_legacy_trigger(conn: psycopg.Connection, trig: TableTrigger) -> None:
    """A pre-0.3.0 trigger found on a table, with its function and its stale function (found by the names
    they were created with: the table may have been renamed since)."""
    t = sql.Identifier(trig.schema, trig.table)
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trig.name), t))
    fn_schema, fn_name = trig.function
    if not fn_name.startswith("shrinkvec_codes_"):
        return
    stale = "shrinkvec_stale_" + fn_name.removeprefix("shrinkvec_codes_")
    # only the table owner's own functions: a trigger named like ours may point at anyone's function
    for (fn,) in conn.execute(
            """SELECT f.oid::pg_catalog.regprocedure::pg_catalog.text FROM pg_catalog.pg_proc f
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) f.pronamespace
               WHERE n.nspname OPERATOR(pg_catalog.=) %s AND f.proname OPERATOR(pg_catalog.=) ANY (%s)
                 AND f.proowner OPERATOR(pg_catalog.=) %s""",
            (fn_schema, [fn_name, stale], trig.owner)).fetchall():
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(sql.SQL(fn)))


def sync_triggers(conn: psycopg.Connection) -> SyncReport:
    """Bring every profiled table to the extension's trigger, and the catalog to every extension trigger:

    - a profile whose table has no trigger of the extension for its vector column gets one, and the per-table
      PL/pgSQL triggers of shrinkvec < 0.3.0 on the table go, with their functions;
    - a table with the extension's trigger but no profile (restored from a one-table dump, `pg_dump -t`) gets
      its profile from the trigger's arguments (a transformed one once its transform is in the catalog).

    Tables of other roles are left alone unless the caller is a superuser (or a member of the owner); the
    report says which. Safe to run again.
    """
    report = SyncReport()
    if not profiles.has_catalog(conn):
        return report
    by_table: dict[tuple[str, str], list[TableTrigger]] = {}
    for trig in table_triggers(conn):
        by_table.setdefault((trig.schema, trig.table), []).append(trig)
    profiled, may = _profiled_tables(conn)
    for key, columns in profiled.items():
        _sync_profiled(conn, key, columns, by_table.get(key, []), may[key], report)
    for key, trigs in by_table.items():
        if key not in profiled:
            for trig in trigs:
                if trig.current:
                    _register_from_trigger(conn, trig, report)
    return report


def _profiled_tables(conn: psycopg.Connection) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], bool]]:
    """(schema, table) -> its profiled vector columns, and -> whether the caller may alter it."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname, p.vector_column, pg_catalog.pg_has_role(c.relowner, 'USAGE')
           FROM shrinkvec.profiles p
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relation
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace ORDER BY 1, 2, 3"""
    ).fetchall()
    profiled: dict[tuple[str, str], list[str]] = {}
    may: dict[tuple[str, str], bool] = {}
    for schema, table, column, may_alter in rows:
        profiled.setdefault((schema, table), []).append(column)
        may[(schema, table)] = bool(may_alter)
    return profiled, may


def _sync_profiled(conn: psycopg.Connection, key: tuple[str, str], columns: list[str], trigs: list[TableTrigger],
                   may_alter: bool, report: SyncReport) -> None:
    """A profiled table: the extension's trigger for every profiled column, no legacy trigger left."""
    covered = {t.args[1] for t in trigs if t.current and len(t.args) > 1}
    legacy = [t for t in trigs if not t.current]
    if not legacy and covered.issuperset(columns):
        return
    where = f"{key[0]}.{key[1]}"
    if not may_alter:
        report.skipped.append(f"{where}: its trigger is not the extension's, and only its owner or a superuser "
                              "may re-create it (run shrinkvec migrate as one)")
        return
    with conn.transaction():
        for t in legacy:  # first: the new trigger may take the same name
            drop_legacy_trigger(conn, t)
        for column in columns:
            if column in covered:
                continue
            p = profiles.find_profile(conn, key[1], key[0], column)
            if p is not None:
                drop_trigger(conn, p)
                create_trigger(conn, p)
    report.recreated.append(where)


def _register_from_trigger(conn: psycopg.Connection, trig: TableTrigger, report: SyncReport) -> None:
    """A table with the extension's trigger but no profile (restored from a one-table dump): its profile from
    the trigger's arguments, when the caller may alter it and its transform is in the catalog."""
    where = f"{trig.schema}.{trig.table}"
    if not trig.may_alter:
        report.skipped.append(f"{where}: has no profile, and only its owner or a superuser may register it")
        return
    try:
        p = profile_from_trigger(conn, trig)
    except ValueError as exc:
        report.skipped.append(f"{where}: {exc}")
        return
    if p.transform is not None and conn.execute(
            "SELECT 1 FROM shrinkvec.transforms WHERE name OPERATOR(pg_catalog.=) %s", (p.transform,)
    ).fetchone() is None:
        report.skipped.append(f"{where}: its transform {p.transform} is not in this database's catalog")
        return
    with conn.transaction():
        profiles.save_profile(conn, p)
    report.registered.append(where)
