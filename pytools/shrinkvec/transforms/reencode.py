"""Re-encoding a profile's code columns for a new transform, resumable and switched atomically.

The profile's code columns always hold the codes of the profile's current transform; they are never
half-rewritten. A re-encode writes the new codes *beside* them and switches at the end:

1. start (one transaction): record the re-encode in `shrinkvec.reencodes`, add a nullable shadow
   column `<code>__next` per code column (no table rewrite), and a shadow trigger that fills the
   shadow columns of rows inserted or updated meanwhile: the extension's `shrinkvec.codes_trigger`
   with the new profile's arguments (new transform, center and int8 ranges) on the shadow columns;
2. fill: batches of rows whose shadow codes are NULL get them (an UPDATE of a shadow column fires the
   shadow trigger, which computes them from the vector through the new transform), one transaction per
   batch that also advances `rows_done`. A killed run leaves whole batches; a rerun continues with the
   rows still NULL;
3. switch (one transaction, ACCESS EXCLUSIVE on the table, held briefly): fill any row left, drop the
   old code columns, triggers and indexes, rename the shadow columns (and the indexes built on them
   before the switch) to the old names, create the new trigger, point the profile at the new
   transform and int8 ranges, forget the re-encode. Readers see either the old or the new profile.

Costs: the fill updates every row once (dead tuples until VACUUM), and dropped columns keep their
space in old rows until the rows are rewritten (as any ALTER TABLE ... DROP COLUMN).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import psycopg
from psycopg import sql

from shrinkvec.errors import ShrinkvecError
from shrinkvec.kinds import Code
from shrinkvec.profile import Profile
from shrinkvec.sql import ddl, profiles

SUFFIX = "__next"


class ReencodeError(ShrinkvecError, RuntimeError):
    """A re-encode cannot start or continue (the message names the problem)."""


def shadow(column: str) -> str:
    """The shadow column of a code column."""
    name = column + SUFFIX
    if len(name.encode()) > 63:
        raise ReencodeError(f"code column {column!r} is too long to get a shadow column {name!r}")
    return name


def shadow_trigger_name(p: Profile) -> str:
    return f"shrinkvec_next_{ddl._suffix(p)}"


def legacy_shadow_function_ident(p: Profile) -> sql.Identifier:
    """The shadow trigger's own function in shrinkvec before 0.3.0 (dropped with the trigger when found)."""
    return sql.Identifier(p.schema, f"shrinkvec_next_{ddl._suffix(p)}")


@dataclass(frozen=True)
class Pending:
    """A re-encode in progress: the profile as it will be after the switch, and rows done so far."""

    new: Profile
    rows_done: int


def pending(conn: psycopg.Connection, old: Profile) -> tuple[str, dict[str, list[list[float]]], int] | None:
    """(transform name, int8 ranges, rows done) of the profile's re-encode in progress, or None."""
    row = conn.execute("SELECT transform, int8_ranges, rows_done FROM shrinkvec.reencodes WHERE profile = %s",
                       (old.name,)).fetchone()
    return None if row is None else (row[0], row[1] or {}, int(row[2]))


def _ranges_json(p: Profile) -> str:
    return json.dumps({c.column: [np.asarray(c.lo).tolist(), np.asarray(c.hi).tolist()]
                       for c in p.codes if c.code_kind.calibrated})


def with_ranges(p: Profile, ranges: dict[str, list[list[float]]]) -> Profile:
    """The profile with int8 ranges as stored in a re-encode record."""
    codes = []
    for c in p.codes:
        if c.code_kind.calibrated and c.column in ranges:
            lo, hi = ranges[c.column]
            c = replace(c, lo=np.asarray(lo, dtype=np.float32), hi=np.asarray(hi, dtype=np.float32))
        codes.append(c)
    return replace(p, codes=tuple(codes))


def _shadow_profile(new: Profile) -> Profile:
    """The new profile with its codes on the shadow columns (for SQL expressions only)."""
    return replace(new, codes=tuple(replace(c, column=shadow(c.column)) for c in new.codes))


def start(conn: psycopg.Connection, old: Profile, new: Profile) -> None:
    """Record the re-encode, add the shadow columns and the shadow trigger (one transaction)."""
    assert new.transform is not None
    sh = _shadow_profile(new)
    existing = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (ddl.table_ident(old).as_string(conn),)).fetchall()}
    clash = sorted({c.column for c in sh.codes} & existing)
    if clash:
        raise ReencodeError(f"table {old.schema}.{old.table} already has a column {clash[0]!r}: rename it first")
    with conn.transaction():
        conn.execute("INSERT INTO shrinkvec.reencodes (profile, transform, int8_ranges) VALUES (%s, %s, %s::jsonb)",
                     (old.name, new.transform, _ranges_json(new)))
        ddl.add_code_columns(conn, sh)
        _create_shadow_trigger(conn, old, sh)


def _create_shadow_trigger(conn: psycopg.Connection, old: Profile, sh: Profile) -> None:
    """BEFORE INSERT OR UPDATE OF the vector or a shadow column: the shadow codes (the new transform's), by
    the extension's codes_trigger with the shadow profile's arguments."""
    trig = shadow_trigger_name(old)
    conn.execute(ddl.trigger_sql(sh, trig, [old.vector_column, *(c.column for c in sh.codes)]))
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(ddl.table_ident(old), sql.Identifier(trig)))


def _shadow_trigger_is_current(conn: psycopg.Connection, old: Profile) -> bool:
    """Whether the shadow trigger executes the extension's codes_trigger (a re-encode started before 0.3.0
    has a PL/pgSQL one that an UPDATE of a shadow column does not fire)."""
    row = conn.execute(
        """SELECT t.tgfoid OPERATOR(pg_catalog.=) 'shrinkvec.codes_trigger()'::pg_catalog.regprocedure
           FROM pg_catalog.pg_trigger t
           WHERE t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s)
             AND t.tgname OPERATOR(pg_catalog.=) %s""",
        (ddl.table_ident(old).as_string(conn), shadow_trigger_name(old))).fetchone()
    return bool(row and row[0])


def _drop_shadow(conn: psycopg.Connection, old: Profile, new: Profile, columns: bool) -> None:
    for trig in ddl.table_triggers(conn, old, prefix="shrinkvec_next_"):  # also under a name from before a RENAME
        if trig.current and len(trig.args) > 1 and trig.args[1] == old.vector_column:
            conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(trig.name), ddl.table_ident(old)))
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
        sql.Identifier(shadow_trigger_name(old)), ddl.table_ident(old)))
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(legacy_shadow_function_ident(old)))
    if columns:
        conn.execute(sql.SQL("ALTER TABLE {} {}").format(ddl.table_ident(old), sql.SQL(", ").join(
            sql.SQL("DROP COLUMN IF EXISTS {}").format(sql.Identifier(shadow(c.column))) for c in new.codes)))


def abort(conn: psycopg.Connection, old: Profile, new: Profile) -> None:
    """Forget a re-encode in progress: drop the shadow trigger and columns, delete its record."""
    with conn.transaction():
        _drop_shadow(conn, old, new, columns=True)
        conn.execute("DELETE FROM shrinkvec.reencodes WHERE profile = %s", (old.name,))


def _fill_statement(old: Profile, sh: Profile) -> sql.Composed:
    """Set a shadow column to NULL: the shadow trigger fires and writes every shadow code."""
    return sql.SQL("UPDATE {t} SET {code} = NULL WHERE {id} OPERATOR(pg_catalog.=) ANY(%(ids)s)").format(
        t=ddl.table_ident(old), code=sql.Identifier(sh.codes[0].column), id=sql.Identifier(old.id_column))


def _todo_query(old: Profile, sh: Profile, after: bool) -> sql.Composed:
    idc = sql.Identifier(old.id_column)
    missing = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c.column)) for c in sh.codes)
    return sql.SQL("SELECT {id} FROM {t} WHERE ({missing}) AND {vec} IS NOT NULL {after} ORDER BY {id} LIMIT %(n)s").format(
        id=idc, t=ddl.table_ident(old), missing=missing, vec=sql.Identifier(old.vector_column),
        after=sql.SQL("AND {} OPERATOR(pg_catalog.>) %(last)s").format(idc) if after else sql.SQL(""))


def remaining(conn: psycopg.Connection, old: Profile, new: Profile) -> int:
    """Rows whose new codes are not written yet."""
    sh = _shadow_profile(new)
    missing = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c.column)) for c in sh.codes)
    q = sql.SQL("SELECT count(*) FROM {t} WHERE ({missing}) AND {vec} IS NOT NULL").format(
        t=ddl.table_ident(old), missing=missing, vec=sql.Identifier(old.vector_column))
    return int(conn.execute(q).fetchone()[0])  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)


def fill(conn: psycopg.Connection, old: Profile, new: Profile, batch_size: int = 2000,
         progress: Callable[[int], None] | None = None) -> int:
    """Write the new codes of every row that lacks them, `batch_size` rows per transaction.

    Each batch commits together with `rows_done` in shrinkvec.reencodes. `progress(rows)` is called
    after each committed batch. Returns the rows written by this call.
    """
    sh = _shadow_profile(new)
    if not _shadow_trigger_is_current(conn, old):  # started before 0.3.0: the extension's trigger from now on
        with conn.transaction():
            _drop_shadow(conn, old, new, columns=False)
            _create_shadow_trigger(conn, old, sh)
    update = _fill_statement(old, sh)
    total = 0
    last: object = None
    while True:
        with conn.transaction():
            ids = [r[0] for r in conn.execute(_todo_query(old, sh, last is not None),
                                              {"last": last, "n": batch_size}).fetchall()]
            if not ids:
                return total
            conn.execute(update, {"ids": ids})
            conn.execute("UPDATE shrinkvec.reencodes SET rows_done = rows_done + %s, updated_at = now() "
                         "WHERE profile = %s", (len(ids), old.name))
        total += len(ids)
        last = ids[-1]
        if progress is not None:
            progress(len(ids))


@dataclass(frozen=True)
class _Index:
    name: str
    column: str
    method: str
    opclass: str
    options: list[str]
    opclass_schema: str  # named schema-qualified: the tools search pg_catalog only


def code_indexes(conn: psycopg.Connection, p: Profile, columns: list[str]) -> list[_Index]:
    """Single-column indexes on the given columns of the profile's table."""
    rows = conn.execute(
        """SELECT ic.relname, a.attname, am.amname, oc.opcname, coalesce(ic.reloptions, '{}'), ocn.nspname
           FROM pg_index i
           JOIN pg_class ic ON ic.oid = i.indexrelid
           JOIN pg_am am ON am.oid = ic.relam
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           JOIN pg_opclass oc ON oc.oid = i.indclass[0]
           JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
           WHERE i.indrelid = to_regclass(%s) AND i.indnatts = 1 AND i.indexprs IS NULL AND i.indpred IS NULL
             AND a.attname = ANY(%s)
           ORDER BY ic.relname""",
        (ddl.table_ident(p).as_string(conn), columns)).fetchall()
    return [_Index(r[0], r[1], r[2], r[3], list(r[4]), r[5]) for r in rows]


def _index_sql(p: Profile, ix: _Index, name: str, column: str) -> sql.Composed:
    opts: sql.Composable = sql.SQL("")
    if ix.options:
        opts = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(o.split("=", 1)[0]), sql.Literal(o.split("=", 1)[1]))
            for o in ix.options))
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} ({} {}){}").format(
        sql.Identifier(name), ddl.table_ident(p), sql.Identifier(ix.method), sql.Identifier(column),
        sql.Identifier(ix.opclass_schema, ix.opclass), opts)


def _shadow_index_name(name: str) -> str:
    return (name[: 63 - len(SUFFIX)] + SUFFIX)


def build_shadow_indexes(conn: psycopg.Connection, old: Profile, new: Profile) -> list[_Index]:
    """For each index on an old code column, the same index on its shadow column (built before the switch)."""
    olds = code_indexes(conn, old, [c.column for c in old.codes if c.column in {n.column for n in new.codes}])
    for ix in olds:
        conn.execute(_index_sql(old, ix, _shadow_index_name(ix.name), shadow(ix.column)))
    return olds


def switch(conn: psycopg.Connection, old: Profile, new: Profile, indexes: list[_Index]) -> None:
    """The atomic switch (see the module docstring). The caller built the shadow indexes."""
    t = ddl.table_ident(old)
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(t))  # the ALTERs need it anyway
        sh = _shadow_profile(new)
        # rows the fill has not reached yet (none unless writes raced the last batch)
        idc = sql.Identifier(old.id_column)
        rest = [r[0] for r in conn.execute(
            sql.SQL("SELECT {} FROM ({}) AS x").format(idc, _todo_query(old, sh, False)), {"n": 2**62}).fetchall()]
        if rest:
            if not _shadow_trigger_is_current(conn, old):
                _drop_shadow(conn, old, new, columns=False)
                _create_shadow_trigger(conn, old, sh)
            conn.execute(_fill_statement(old, sh), {"ids": rest})
        if remaining(conn, old, new):
            raise ReencodeError("rows without new codes remain after the fill")
        _drop_shadow(conn, old, new, columns=False)
        ddl.drop_codes(conn, old)  # old trigger (and an older trigger's functions), code columns and their indexes
        for c in new.codes:
            conn.execute(sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
                t, sql.Identifier(shadow(c.column)), sql.Identifier(c.column)))
        for ix in indexes:
            conn.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(old.schema, _shadow_index_name(ix.name)), sql.Identifier(ix.name)))
        ddl.create_trigger(conn, new)
        conn.execute("UPDATE shrinkvec.profiles SET transform = %s, center = %s::real[] WHERE name = %s",
                     (new.transform, None if new.center is None else new.center.tolist(), old.name))
        for c in new.codes:
            if c.code_kind.calibrated:
                conn.execute("UPDATE shrinkvec.codes SET lo = %s::real[], hi = %s::real[] "
                             "WHERE profile = %s AND column_name = %s",
                             (np.asarray(c.lo).tolist(), np.asarray(c.hi).tolist(), old.name, c.column))
        conn.execute("DELETE FROM shrinkvec.reencodes WHERE profile = %s", (old.name,))


def new_codes(old: Profile) -> tuple[Code, ...]:
    """The codes of the profile after the switch: same columns, int8 ranges to be recalibrated."""
    return tuple(replace(c, lo=None, hi=None) if c.code_kind.calibrated else c for c in old.codes)


def sync_shadow_triggers(conn: psycopg.Connection) -> list[str]:
    """Replace the shadow trigger of every re-encode in progress that still has the PL/pgSQL one of shrinkvec
    < 0.3.0 by the extension's codes_trigger (tables the caller may alter); returns "schema.table" of each.
    A pending re-encode is otherwise upgraded by its next fill."""
    if not profiles.has_catalog(conn):
        return []
    rows = conn.execute(
        """SELECT p.table_schema, p.table_name, p.vector_column, r.transform, r.int8_ranges
           FROM shrinkvec.reencodes r JOIN shrinkvec.profiles p ON p.name OPERATOR(pg_catalog.=) r.profile
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relation
           WHERE pg_catalog.pg_has_role(c.relowner, 'USAGE') ORDER BY 1, 2""").fetchall()
    done = []
    for schema, table, column, transform, ranges in rows:
        old = profiles.find_profile(conn, table, schema, column)
        if old is None or _shadow_trigger_is_current(conn, old):
            continue
        new = with_ranges(replace(old, transform=transform, transform_data=None, center=None,
                                  codes=new_codes(old)), ranges or {})
        with conn.transaction():
            _drop_shadow(conn, old, new, columns=False)
            _create_shadow_trigger(conn, old, _shadow_profile(new))
        done.append(f"{schema}.{table}")
    return done
