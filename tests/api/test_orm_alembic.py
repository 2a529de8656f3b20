"""SQLAlchemy two_stage (sync, async, filters inside the shortlist) and the alembic op helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import BigInteger, Connection, Engine, Text, create_engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

import shrinkvec.alembic_ops  # noqa: F401  (registers the op helpers)
from conftest import one_row, pairs
from shrinkvec import alembic_ops, catalog, codes, query
from shrinkvec.orm import bits_column, int8_column, prefix_column, two_stage

D = 32


def make_model(lo: np.ndarray, hi: np.ndarray) -> tuple[type[DeclarativeBase], Any]:
    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "docs"
        id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
        embedding = mapped_column(VECTOR(D), nullable=False)
        category: Mapped[str | None] = mapped_column(Text)
        bits = bits_column("embedding", D)
        pfx = prefix_column("embedding", 8)
        q8 = int8_column("embedding", D, lo, hi)

    return Base, Doc


def _engine(dsn: str) -> Engine:
    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool)


@contextlib.contextmanager
def _migration(c: Connection) -> Iterator[Any]:
    """Operations inside a migration transaction, as alembic's env.py runs them (typed Any: the shrinkvec ops
    are registered on Operations at run time, so its type does not know them)."""
    mc = MigrationContext.configure(c)
    with mc.begin_transaction():
        yield Operations(mc)


@pytest.fixture
def filled(migrated_dsn: str, conn: psycopg.Connection) -> np.ndarray:
    """A plain pgvector table with rows, then codes added by the alembic helpers (as a user would)."""
    x = np.random.default_rng(4).standard_normal((1500, D)).astype(np.float32)
    conn.execute(f"CREATE TABLE docs (id bigint PRIMARY KEY, embedding vector({D}) NOT NULL, category text)")
    with conn.cursor().copy("COPY docs (id, embedding, category) FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["int8", "vector", "text"])
        for i, v in enumerate(x):
            cp.write_row((i, v, "rare" if i % 50 == 0 else "common"))
    r = codes.int8_ranges(x)
    with _engine(migrated_dsn).connect() as c, _migration(c) as op:
        op.add_shrinkvec_codes("docs", "embedding", f"bits:{D}=bits,prefix:8=pfx,int8=q8", lo=r.lo, hi=r.hi)
        assert op.backfill_shrinkvec_codes("docs", "embedding", batch_size=400) == 1500
        op.create_shrinkvec_indexes("docs", "embedding", concurrently=True)
    return x


def test_alembic_helpers_add_backfill_index_and_downgrade_exactly(filled: np.ndarray, migrated_dsn: str,
                                                                  conn: psycopg.Connection) -> None:
    p = catalog.find_profile(conn, "docs")
    assert p is not None and [c.column for c in p.codes] == ["bits", "pfx", "q8"]
    enc = p.encode(filled)
    rows = conn.execute("SELECT id, bits::text, pfx::text FROM docs ORDER BY id").fetchall()
    assert all(r[1] == codes.bits_to_str(enc["bits"][r[0]], D) for r in rows)
    assert one_row(conn.execute("SELECT count(*) FROM docs WHERE q8 IS NULL OR pfx IS NULL"))[0] == 0
    # shrinkvec indexes, as the README promises: on the vector column (the profile's cosine opclass) and on bits
    indexes = conn.execute(
        """SELECT am.amname, a.attname, o.opcname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am am ON am.oid = c.relam JOIN pg_opclass o ON o.oid = i.indclass[0]
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = 'docs'::regclass AND NOT i.indisprimary ORDER BY a.attname""").fetchall()
    assert indexes == [("shrinkvec", "bits", "bit_hamming_ops"), ("shrinkvec", "embedding", "vector_cosine_ops")]
    q = filled[7]
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET shrinkvec.shortlist = 1500")  # every row a candidate: the rerank makes it exact
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN (COSTS OFF) SELECT id FROM docs ORDER BY embedding <=> %s LIMIT 10", (q,)))
    assert "Index Scan using shrinkvec_" in plan and "_embedding on docs" in plan, plan
    got = [r[0] for r in conn.execute("SELECT id FROM docs ORDER BY embedding <=> %s LIMIT 10", (q,))]
    conn.execute("RESET enable_seqscan")
    conn.execute("RESET shrinkvec.shortlist")
    x64 = filled.astype(np.float64)
    exact = np.argsort(1 - x64 @ q / (np.linalg.norm(x64, axis=1) * np.linalg.norm(q)), kind="stable")[:10]
    assert got == exact.tolist()  # the index answers the unchanged exact query
    # the op helpers' downgrade: back to exactly the original table
    with _engine(migrated_dsn).connect() as c, _migration(c) as op:
        op.drop_shrinkvec_indexes("docs", "embedding")
        op.drop_shrinkvec_codes("docs", "embedding", f"bits:{D}=bits,prefix:8=pfx,int8=q8")
    cols = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]
    assert cols == ["id", "embedding", "category"]
    assert one_row(conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'docs'::regclass"))[0] == 0
    assert one_row(conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'shrinkvec_codes_%'"))[0] == 0
    assert one_row(conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'docs'"))[0] == 1
    assert catalog.find_profile(conn, "docs") is None


def test_alembic_index_options_and_methods(filled: np.ndarray, migrated_dsn: str, conn: psycopg.Connection) -> None:
    with _engine(migrated_dsn).connect() as c, _migration(c) as op:
        op.drop_shrinkvec_indexes("docs", "embedding")
        op.create_shrinkvec_indexes("docs", "embedding", options={"lists": 4},
                                    methods={"bits": None, "prefix": ("hnsw", "")})
    got = conn.execute(
        """SELECT am.amname, a.attname, c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am am ON am.oid = c.relam JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = 'docs'::regclass AND NOT i.indisprimary ORDER BY a.attname""").fetchall()
    assert got == [("shrinkvec", "embedding", ["lists=4"]), ("hnsw", "pfx", None)]
    assert one_row(conn.execute("SELECT lists FROM shrinkvec_index_info(%s)",
                        (one_row(conn.execute("SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON "
                                      "c.oid = i.indexrelid WHERE c.relam = (SELECT oid FROM pg_am WHERE amname = "
                                      "'shrinkvec')"))[0],)))[0] == 4
    with pytest.raises(ValueError, match="unknown shrinkvec index option 'probes'"):
        alembic_ops.CreateIndexesOp("docs", "embedding", options={"probes": 3})


def test_two_stage_sync_matches_generated_sql_and_filters_inside_shortlist(filled: np.ndarray, migrated_dsn: str,
                                                                           conn: psycopg.Connection) -> None:
    p = catalog.find_profile(conn, "docs")
    assert p is not None
    r = codes.int8_ranges(filled)
    _, Doc = make_model(r.lo, r.hi)
    q = np.random.default_rng(8).standard_normal(D).astype(np.float32)
    with Session(_engine(migrated_dsn)) as s:
        for stage in ("bits", "pfx", "q8"):
            rows = pairs(s.execute(two_stage(Doc, q, k=10, shortlist=80, stage=stage)).all())
            want, dists = query.search(conn, p, query.stages_for(p, [stage], [80]), q, k=10)[0]
            assert [d.id for d, _ in rows] == want, stage
            np.testing.assert_allclose([dist for _, dist in rows], dists, rtol=1e-9)
        # 30 'rare' rows of 1500: filtering after a shortlist of 80 would find ~1-2 of them
        stmt = two_stage(Doc, q, k=10, shortlist=80).where(Doc.category == "rare")
        rows = pairs(s.execute(stmt).all())
        assert len(rows) == 10 and all(d.category == "rare" for d, _ in rows)
        rare = np.arange(0, 1500, 50)
        bits = np.unpackbits(codes.binarize_batch(filled[rare]), axis=1, bitorder="big")
        order = rare[np.argsort(-((bits * 2.0 - 1) @ q.astype(np.float64)), kind="stable")]
        short = order[:80]
        cos = 1 - filled[short] @ q / (np.linalg.norm(filled[short], axis=1) * np.linalg.norm(q))
        assert [d.id for d, _ in rows] == [int(i) for i in short[np.argsort(cos, kind="stable")[:10]]]
        # further chaining keeps working
        assert len(s.execute(stmt.limit(3)).all()) == 3


def test_two_stage_async_session(filled: np.ndarray, migrated_dsn: str, conn: psycopg.Connection) -> None:
    r = codes.int8_ranges(filled)
    _, Doc = make_model(r.lo, r.hi)
    q = filled[42]
    sync_ids = None
    with Session(_engine(migrated_dsn)) as s:
        sync_rows = pairs(s.execute(two_stage(Doc, q, k=5, shortlist=50)).all())
        sync_ids = [d.id for d, _ in sync_rows]

    async def run() -> list[int]:
        engine = create_async_engine("postgresql+psycopg://", async_creator=lambda: psycopg.AsyncConnection.connect(migrated_dsn),
                                     poolclass=NullPool)
        async with AsyncSession(engine) as s:
            rows = pairs((await s.execute(two_stage(Doc, q, k=5, shortlist=50))).all())
        await engine.dispose()
        return [d.id for d, _ in rows]

    ids = asyncio.run(run())
    assert ids == sync_ids and ids[0] == 42


def test_autogenerate_renders_code_columns_as_one_op_that_runs(migrated_dsn: str, conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE TABLE docs (id bigint PRIMARY KEY, embedding vector({D}) NOT NULL, category text)")
    conn.execute("INSERT INTO docs SELECT i, array_fill(i::real / 10 - 1, ARRAY[%s])::vector, 'c' "
                 "FROM generate_series(1, 30) i" % D)
    lo, hi = np.full(D, -1, np.float32), np.full(D, 2, np.float32)
    Base, _ = make_model(lo, hi)
    with _engine(migrated_dsn).begin() as c:
        mc = MigrationContext.configure(c, opts={"render_item": alembic_ops.render_item, "include_schemas": False})
        script = produce_migrations(mc, Base.metadata)
        alembic_ops.rewriter.process_revision_directives(mc, "head", [script])
        assert script.upgrade_ops is not None and script.downgrade_ops is not None
        code = render_python_code(script.upgrade_ops, render_item=alembic_ops.render_item,  # type: ignore[arg-type]  # str | bool, not Literal[False]
                                  migration_context=mc)
    assert f"op.add_shrinkvec_codes('docs', 'embedding', 'bits:{D}=bits,prefix:8=pfx,int8=q8'" in code
    assert "add_column" not in code
    down = render_python_code(script.downgrade_ops, render_item=alembic_ops.render_item,  # type: ignore[arg-type]  # str | bool, not Literal[False]
                              migration_context=mc)
    assert f"op.drop_shrinkvec_codes('docs', 'embedding', 'bits:{D}=bits,prefix:8=pfx,int8=q8'" in down
    assert "drop_column" not in down
    with _engine(migrated_dsn).connect() as c, _migration(c) as op:
        body = "\n".join(line.strip() for line in code.splitlines() if line.strip() and not line.strip().startswith("#"))
        exec(body,  # noqa: S102
             {"op": op, "sa": __import__("sqlalchemy"), "np": np})
    p = catalog.find_profile(conn, "docs")
    assert p is not None and [c.spec() for c in p.codes] == [f"bits:{D}", "prefix:8", "int8"]
    np.testing.assert_array_equal(p.code("q8").lo, lo)

    # column types of a new table render with their imports
    from alembic.autogenerate.api import AutogenContext

    ctx = AutogenContext(mc, opts={"render_item": alembic_ops.render_item})
    table = Base.metadata.tables["docs"]
    assert alembic_ops.render_item("type", table.c.q8.type, ctx) == f"shrinkvec.orm.Int8Vec({D})"
    assert alembic_ops.render_item("type", table.c.embedding.type, ctx) == f"pgvector.sqlalchemy.VECTOR(dim={D})"
    assert alembic_ops.render_item("type", table.c.bits.type, ctx) == f"pgvector.sqlalchemy.BIT(length={D})"
    assert {"import shrinkvec.orm", "import pgvector.sqlalchemy"} <= ctx.imports


def test_migrate_twice_downgrade_and_concurrently(dsn: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    assert catalog.current_revision(dsn) is None
    with ThreadPoolExecutor(3) as pool:
        revs = list(pool.map(lambda _: catalog.migrate(dsn), range(3)))
    head = catalog.head_revision()
    assert head is not None and revs == [head] * 3
    assert catalog.migrate(dsn) == head
    catalog.downgrade(dsn, "base")
    with psycopg.connect(dsn) as c:
        assert one_row(c.execute("SELECT to_regclass('shrinkvec.profiles')"))[0] is None
        assert one_row(c.execute("SELECT to_regprocedure('shrinkvec.search(regclass,vector,integer,integer,text)')"))[0]
    assert catalog.migrate(dsn) == head
