"""What the tools learn about a pgvector table they did not create: its id column, its vector column, the
vector's dimensions and distance, as a profile without codes.

A table made by LangChain, LlamaIndex, an ORM or by hand has a primary key of any type (bigint, uuid, text,
varchar) and an embedding column, often without declared dimensions. `table_profile` finds them (or takes
the names given), checks their types by OID (another role may own the table and its types), and says
what to do when something is missing: a table without a unique single-column key, a vector column
without dimensions (with the exact `ALTER TABLE` that declares them), a column that is no vector.

The profile has no codes: its default search is `ORDER BY vector <op> q LIMIT k`, which a shrinkvec index
answers. `adopt` records it in the catalog so that `tune --apply` has a profile to store its choice in.
Every statement here qualifies its names and operators, and runs under a pinned search_path.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from shrinkvec.errors import ShrinkvecError
from shrinkvec.profile import DISTANCES, Distance, Profile
from shrinkvec.sql import profile_check
from shrinkvec.sql.connection import extension_schemas
from shrinkvec.sql.profiles import pinned_search_path

# the distance of an index's operator class on the vector column (pgvector's and shrinkvec's share names)
OPCLASS_DISTANCE: dict[str, Distance] = {
    "vector_cosine_ops": "cosine", "halfvec_cosine_ops": "cosine",
    "vector_l2_ops": "l2", "halfvec_l2_ops": "l2",
    "vector_ip_ops": "ip", "halfvec_ip_ops": "ip",
}


class TableError(ShrinkvecError, ValueError):
    """A table the tools cannot search as it is (the message names the problem and the fix)."""


@dataclass(frozen=True)
class Column:
    """A column of a table: its name, number, type OID and type as format_type shows it."""

    name: str
    attnum: int
    type_oid: int
    shown: str


_RELATION = """
SELECT c.oid::pg_catalog.int8, c.relkind::pg_catalog.text FROM pg_catalog.pg_class c
WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s)
"""

_COLUMNS = """
SELECT a.attname::pg_catalog.text, a.attnum::pg_catalog.int4, a.atttypid::pg_catalog.int8,
       pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypmod
FROM pg_catalog.pg_attribute a
WHERE a.attrelid OPERATOR(pg_catalog.=) %s::pg_catalog.oid AND a.attnum OPERATOR(pg_catalog.>) 0
  AND NOT a.attisdropped
ORDER BY a.attnum
"""

# single-column unique keys of NOT NULL columns, without expression or predicate, the primary key first
_KEYS = """
SELECT a.attname::pg_catalog.text
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
     AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]
WHERE i.indrelid OPERATOR(pg_catalog.=) %s::pg_catalog.oid AND i.indisunique AND i.indisvalid
  AND i.indnkeyatts OPERATOR(pg_catalog.=) 1 AND i.indexprs IS NULL AND i.indpred IS NULL AND a.attnotnull
ORDER BY i.indisprimary DESC, a.attnum
"""

# operator classes of the indexes whose first key is the vector column
_OPCLASSES = """
SELECT o.opcname::pg_catalog.text
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_opclass o ON o.oid OPERATOR(pg_catalog.=) i.indclass[0]
WHERE i.indrelid OPERATOR(pg_catalog.=) %s::pg_catalog.oid AND i.indkey[0] OPERATOR(pg_catalog.=) %s::pg_catalog.int2
ORDER BY i.indexrelid
"""


def _vector_types(conn: psycopg.Connection) -> dict[int, str]:
    """The OIDs of pgvector's vector and halfvec types (members of the vector extension), by OID."""
    rows = conn.execute(
        """SELECT t.oid::pg_catalog.int8, t.typname::pg_catalog.text
           FROM pg_catalog.pg_depend d
           JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) d.objid
           WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
             AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
             AND d.deptype OPERATOR(pg_catalog.=) 'e' AND e.extname OPERATOR(pg_catalog.=) 'vector'
             AND t.typname OPERATOR(pg_catalog.=) ANY ('{vector,halfvec}'::pg_catalog.name[])""").fetchall()
    return {int(oid): str(name) for oid, name in rows}


def table_profile(conn: psycopg.Connection, table: str, schema: str = "public", column: str | None = None,
                  id_column: str | None = None, distance: str | None = None) -> Profile:
    """A profile without codes for schema.table: the vector column `column` (default: its only vector or
    halfvec column), the id column `id_column` (default: its primary key, else its one-column unique key)
    and `distance` (default: the operator class of an index on the column, else cosine). TableError says
    what is missing."""
    with pinned_search_path(conn):
        return _table_profile(conn, table, schema, column, id_column, distance)


def _table_profile(conn: psycopg.Connection, table: str, schema: str, column: str | None, id_column: str | None,
                   distance: str | None) -> Profile:
    ident = sql.Identifier(schema, table)
    where = f"{schema}.{table}"
    row = conn.execute(_RELATION, (ident.as_string(conn),)).fetchone()
    if row is None:
        raise TableError(f"table {where} does not exist")
    rel, relkind = int(row[0]), str(row[1])
    if relkind not in ("r", "p"):
        raise TableError(f"{where} is not a table (relkind {relkind!r})")
    columns = {str(n): (Column(str(n), int(a), int(t), str(s)), int(m))
               for n, a, t, s, m in conn.execute(_COLUMNS, (rel,)).fetchall()}
    types = _vector_types(conn)
    vec = _vector_column(types, where, columns, column)
    idc = _id_column(conn, where, rel, columns, id_column)
    dims = _dims(conn, ident, where, vec, columns[vec.name][1])
    dist = _distance(conn, where, rel, vec, distance)
    ext, vec_schema = extension_schemas(conn)
    return Profile(name=f"{schema}.{table}", schema=schema, table=table, vector_column=vec.name, dims=dims, codes=(),
                   id_column=idc, distance=dist, ext_schema=ext, vec_schema=vec_schema,
                   vector_type=types[vec.type_oid])


def _vector_column(types: dict[int, str], where: str, columns: dict[str, tuple[Column, int]],
                   column: str | None) -> Column:
    """The vector column named, or the table's only vector/halfvec column (types: pgvector's, by OID)."""
    if not types:
        raise TableError("the vector extension is not installed in this database")
    if column is not None:
        if column not in columns:
            raise TableError(f"table {where} has no column {column!r}")
        col = columns[column][0]
        if col.type_oid not in types:
            raise TableError(f"column {column!r} of {where} has type {col.shown}, not pgvector's vector or halfvec")
        return col
    found = [c for c, _ in columns.values() if c.type_oid in types]
    if not found:
        raise TableError(f"table {where} has no vector or halfvec column")
    if len(found) > 1:
        raise TableError(f"table {where} has several vector columns ({', '.join(c.name for c in found)}): name one "
                         "with --column")
    return found[0]


def _id_column(conn: psycopg.Connection, where: str, rel: int, columns: dict[str, tuple[Column, int]],
               id_column: str | None) -> str:
    """The id column named (of a type the tools take), or the table's primary key / one-column unique key."""
    allowed = profile_check.ID_TYPES
    oids = {profile_check.BUILTIN_TYPES[t] for t in allowed}
    if id_column is not None:
        if id_column not in columns:
            raise TableError(f"table {where} has no column {id_column!r} (the id column)")
        name = id_column
    else:
        keys = [str(r[0]) for r in conn.execute(_KEYS, (rel,)).fetchall()]
        usable = [k for k in keys if columns[k][0].type_oid in oids]
        if not usable:
            what = f"its unique keys are {', '.join(keys)}, of other types" if keys else "it has none"
            raise TableError(f"table {where} needs a one-column primary key or NOT NULL unique key of type {', '.join(allowed)} "
                             f"to identify rows ({what}): name one with --id-column")
        name = usable[0]
    col = columns[name][0]
    if col.type_oid not in oids:
        raise TableError(f"id column {name!r} of {where} has type {col.shown}, not one of {', '.join(allowed)}")
    return name


def _dims(conn: psycopg.Connection, ident: sql.Identifier, where: str, vec: Column, typmod: int) -> int:
    """The vector column's declared dimensions; TableError with the ALTER TABLE that declares them."""
    if typmod > 0:
        return typmod
    row = conn.execute(sql.SQL("SELECT {}.vector_dims({}) FROM {} WHERE {} IS NOT NULL LIMIT 1").format(
        sql.Identifier(extension_schemas(conn)[1]), sql.Identifier(vec.name), ident,
        sql.Identifier(vec.name))).fetchone()
    typ = vec.shown.split("(")[0]
    fix = (f"ALTER TABLE {ident.as_string(conn)} ALTER COLUMN {sql.Identifier(vec.name).as_string(conn)} "
           f"TYPE {typ}({int(row[0])}) (its first row has {int(row[0])} dimensions)") if row else \
        f"declare them with ALTER TABLE ... ALTER COLUMN ... TYPE {typ}(N) (it has no rows to tell N)"
    raise TableError(f"column {vec.name!r} of {where} has no declared dimensions ({typ}), which an index needs: {fix}")


def _distance(conn: psycopg.Connection, where: str, rel: int, vec: Column, distance: str | None) -> Distance:
    """The distance given, else that of an index's operator class on the column, else cosine."""
    if distance is not None:
        if distance not in DISTANCES or distance == "maxsim":
            raise TableError(f"unknown distance {distance!r}: cosine, l2 or ip")
        return distance
    for (opc,) in conn.execute(_OPCLASSES, (rel, vec.attnum)).fetchall():
        if str(opc) in OPCLASS_DISTANCE:
            return OPCLASS_DISTANCE[str(opc)]
    return "cosine"


_SHRINKVEC_INDEXES = """
SELECT ic.relname::pg_catalog.text
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid OPERATOR(pg_catalog.=) ic.relam
JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
     AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]
WHERE i.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%s) AND am.amname OPERATOR(pg_catalog.=) 'shrinkvec'
  AND a.attname OPERATOR(pg_catalog.=) %s
ORDER BY ic.relname
"""


def shrinkvec_indexes(conn: psycopg.Connection, p: Profile) -> list[str]:
    """The names of the shrinkvec indexes on the profile's vector column."""
    with pinned_search_path(conn):
        rows = conn.execute(_SHRINKVEC_INDEXES, (sql.Identifier(p.schema, p.table).as_string(conn),
                                                 p.vector_column)).fetchall()
    return [str(r[0]) for r in rows]


def create_index_sql(p: Profile) -> sql.Composed:
    """CREATE INDEX CONCURRENTLY of a shrinkvec index on the profile's vector column (its distance's opclass),
    named by PostgreSQL."""
    opclass = f"{p.vector_type}_{p.distance}_ops"
    return sql.SQL("CREATE INDEX CONCURRENTLY ON {} USING shrinkvec ({} {}.{})").format(
        sql.Identifier(p.schema, p.table), sql.Identifier(p.vector_column), sql.Identifier(p.ext_schema),
        sql.Identifier(opclass))


def adopt(conn: psycopg.Connection, p: Profile) -> str:
    """Record the profile of a table the tools did not create (a profile without codes, from table_profile)
    in the catalog, in its own transaction; returns its name. TableError when the table has one already."""
    from shrinkvec.sql import catalog

    with pinned_search_path(conn):
        if not catalog.has_catalog(conn):
            raise TableError("the shrinkvec catalog does not exist in this database: run 'shrinkvec migrate'")
        have = catalog.find_profile(conn, p.table, p.schema, p.vector_column)
        if have is not None:
            raise TableError(f"{p.schema}.{p.table}.{p.vector_column} has a profile already ({have.name}, id column "
                             f"{have.id_column!r})")
        with conn.transaction():
            return catalog.save_profile(conn, p)


_LEAVES = """
SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE c.oid OPERATOR(pg_catalog.=) ANY (
    SELECT t.relid FROM pg_catalog.pg_partition_tree(%(i)s::pg_catalog.regclass) t WHERE t.isleaf
    UNION ALL
    SELECT r.oid FROM pg_catalog.pg_class r
    WHERE r.oid OPERATOR(pg_catalog.=) %(i)s::pg_catalog.regclass AND r.relkind OPERATOR(pg_catalog.<>) 'I')
ORDER BY 1, 2
"""


def index_leaves(conn: psycopg.Connection, schema: str, name: str) -> list[tuple[str, str]]:
    """(schema, name) of the indexes a scan of index schema.name uses: itself, or for the index of a
    partitioned table the index of each partition."""
    with pinned_search_path(conn):
        rows = conn.execute(_LEAVES, {"i": sql.Identifier(schema, name).as_string(conn)}).fetchall()
    return [(str(s), str(n)) for s, n in rows]
