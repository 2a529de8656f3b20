"""The table a load writes to: its profile, created with the table when the table does not exist, or
added to an existing pgvector table (code columns, trigger, backfill); the options of a load and its
error. `loader.py` streams the rows into it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from shrinkvec.errors import ShrinkvecError
from shrinkvec.kinds import Code
from shrinkvec.load.readers import Reader, ReadError, decide_dims, wrong_dims
from shrinkvec.profile import Profile, ProfileError, calibrate, parse_codes
from shrinkvec.sql import catalog, ddl, profile_check

WIDTH_SAMPLE = 1000  # records whose most common embedding width a new table takes (unless --dims)


class LoadError(ShrinkvecError, RuntimeError):
    """The load cannot start or continue (message is one line)."""


@dataclass
class LoadOptions:
    table: str
    schema: str = "public"
    column: str = "embedding"
    profile: str | None = None  # code spec such as "bits,prefix:128,int8"; default "bits" for new tables
    distance: str = "cosine"
    center: bool = False
    ids_path: Path | None = None
    batch_size: int = 10_000
    reject_file: Path | None = None
    restart: bool = False
    dims: int | None = None  # width of a new table's vectors (default: the most common in the first records)


@dataclass
class Target:
    profile: Profile
    payload_cols: list[tuple[str, str]]  # payload columns of the input that the table has
    created: bool
    dims_note: str = ""  # how a new table's width was decided
    vector_oid: int = 0  # pgvector's vector type (the element type of a multi-vector table's vector[] column)


def _file_dims(reader: Reader, opts: LoadOptions) -> tuple[int, str]:
    """The width of the file's embeddings: --dims, or the most common width among its first records
    (one wrong first line does not decide it), and a note saying which."""
    if opts.dims is not None:
        if opts.dims < 1:
            raise LoadError("--dims must be at least 1")
        return opts.dims, f"{opts.dims} dimensions (--dims)"
    try:
        return decide_dims(reader.widths(WIDTH_SAMPLE), WIDTH_SAMPLE)
    except ReadError as exc:
        msg = str(exc)
        raise LoadError(msg if msg.startswith(str(reader.path)) else f"{reader.path}: {msg}") from None


def _sample(reader: Reader, dims: int, n: int) -> np.ndarray:
    """Up to n finite vectors from the start of the file (calibrates int8 ranges and the center)."""
    for b in reader.batches(dims, 0, n):
        x = b.vectors[np.isfinite(b.vectors).all(axis=1)]
        if len(x):
            return x
    raise LoadError("the file has no valid vector to calibrate the codes on")


def prepare_target(conn: psycopg.Connection, reader: Reader, opts: LoadOptions) -> Target:
    """The table's profile, creating table and profile when the table does not exist. Multi-vector
    input (readers.multi) makes a maxsim profile with a multibit code by default."""
    multi = bool(getattr(reader, "multi", False))
    if multi:
        if opts.distance not in ("cosine", "maxsim"):  # cosine: the option's default
            raise LoadError(f"{reader.path} holds multi-vector documents: their distance is maxsim, not {opts.distance}")
        opts = replace(opts, distance="maxsim", profile=opts.profile or "multibit")
    elif opts.distance == "maxsim":
        raise LoadError(f"distance maxsim needs multi-vector documents (an \"embeddings\" list of token vectors), "
                        f"and {reader.path} holds single vectors")
    t = _prepare_target(conn, reader, opts)
    if t.profile.multi != multi:
        raise LoadError(f"table {opts.table} has a {'multi' if t.profile.multi else 'single'}-vector profile and "
                        f"{reader.path} holds {'multi-vector documents' if multi else 'single vectors'}")
    if multi:
        vec = sql.Identifier(ddl.located(conn, t.profile).vec_schema, "vector").as_string(conn)
        t.vector_oid = int(conn.execute("SELECT %s::regtype::oid", (vec,)).fetchone()[0])  # type: ignore[index]  # an expression: always one row
    return t


def _prepare_target(conn: psycopg.Connection, reader: Reader, opts: LoadOptions) -> Target:
    """prepare_target() once the options suit the input."""
    existing = catalog.find_profile(conn, opts.table, opts.schema)
    file_dims, note = _file_dims(reader, opts)
    if existing is not None:
        profile_check.check_profile(conn, existing)  # the loader writes and reads rows by the profile's columns
        id_type = profile_check.check_columns(conn, sql.Identifier(opts.schema, opts.table).as_string(conn), [
            profile_check.Expected(existing.id_column, "id column",
                                   tuple(("pg_catalog", n) for n in profile_check.ID_TYPES))]).type_names[existing.id_column]
        if id_type not in ("smallint", "integer", "bigint"):
            raise LoadError(f"table {opts.schema}.{opts.table}'s id column {existing.id_column} is {id_type}: shrinkvec load "
                            "writes the integer ids of its files (load such a table through its own application)")
        if existing.vector_column != opts.column and opts.column != "embedding":
            raise LoadError(f"table {opts.table} is profiled on column {existing.vector_column!r}, not {opts.column!r}")
        if file_dims != existing.dims:
            raise LoadError(f"{reader.path}: {wrong_dims(existing.dims, file_dims)} (table {opts.table}; {note})")
        if opts.profile is not None:
            wanted = [c.spec() for c in parse_codes(opts.profile, existing.dims)]
            have = [c.spec() for c in existing.codes]
            if wanted != have:
                raise LoadError(f"table {opts.table} has codes {','.join(have)}, not {','.join(wanted)}")
        cols = {r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (sql.Identifier(opts.schema, opts.table).as_string(conn),)).fetchall()}
        return Target(existing, [(n, t) for n, t in reader.payload_columns if n in cols], False)

    if catalog.table_exists(conn, opts.table, opts.schema):
        return _profile_existing_table(conn, reader, opts, file_dims, note)
    try:
        codes = parse_codes(opts.profile or "bits", file_dims)
    except ProfileError as exc:
        raise LoadError(str(exc)) from None
    clash = {c.column for c in codes} & ({"id", opts.column} | {n for n, _ in reader.payload_columns})
    if clash:
        raise LoadError(f"code column {sorted(clash)[0]!r} clashes with a column of the input")
    profile = _new_profile(reader, opts, file_dims, codes)
    with conn.transaction():
        ddl.create_table(conn, profile, reader.payload_columns)
        catalog.save_profile(conn, profile)
    return Target(profile, list(reader.payload_columns), True, note)


def _new_profile(reader: Reader, opts: LoadOptions, dims: int, codes: tuple[Code, ...]) -> Profile:
    """The profile of a table about to get codes: centre and int8 ranges fitted on the first 10k vectors."""
    profile = Profile(name=f"{opts.schema}.{opts.table}.{opts.column}", schema=opts.schema, table=opts.table,
                      vector_column=opts.column, dims=dims, codes=codes, distance=opts.distance)  # type: ignore[arg-type]  # distance: one of DISTANCES (checked by the caller)
    try:
        profile.check_codes()
    except ProfileError as exc:
        raise LoadError(str(exc)) from None
    if opts.center or any(c.code_kind.calibrated for c in codes):
        sample = _sample(reader, dims, 10_000)
        if opts.center:
            profile = replace(profile, center=sample.mean(axis=0).astype(np.float32))
        profile = calibrate(profile, sample)
    return profile


def _profile_existing_table(conn: psycopg.Connection, reader: Reader, opts: LoadOptions, file_dims: int,
                            note: str) -> Target:
    """A pgvector table without a profile: add the code columns and trigger (no rewrite), fill the codes
    of its rows in batches, and record the profile. Needs a bigint id column with a unique index."""
    name = sql.Identifier(opts.schema, opts.table).as_string(conn)
    dims = catalog.vector_dims(conn, opts.table, opts.column, opts.schema)
    if dims is None:
        raise LoadError(f"{opts.table}.{opts.column} must be declared with dimensions, e.g. vector({file_dims})")
    if dims != file_dims:
        raise LoadError(f"{reader.path}: {wrong_dims(dims, file_dims)} (table {opts.table}; {note})")
    unique_id = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                          AND a.attnum = i.indkey[0]
                          WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indnatts = 1
                            AND a.attname = 'id' AND a.atttypid = 'int8'::regtype)""",
        (name,)).fetchone()[0]  # type: ignore[index]  # always one row (an aggregate, an expression, RETURNING)
    if not unique_id:
        raise LoadError(f"table {opts.schema}.{opts.table} needs a bigint column 'id' with a unique index or primary key")
    try:
        codes = parse_codes(opts.profile or "bits", dims)
    except ProfileError as exc:
        raise LoadError(str(exc)) from None
    cols = {r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (name,)).fetchall()}
    clash = sorted({c.column for c in codes} & cols)
    if clash:
        raise LoadError(f"table {opts.table} already has a column {clash[0]!r}: name the code, e.g. bits=my_bits")
    profile = _new_profile(reader, opts, dims, codes)
    with conn.transaction():
        ddl.add_codes(conn, profile)
        catalog.save_profile(conn, profile)
    ddl.backfill(conn, profile)
    return Target(profile, [(n, t) for n, t in reader.payload_columns if n in cols], False)
