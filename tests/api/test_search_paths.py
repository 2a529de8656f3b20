"""One search, every path (issue 18): the CLI (`shrinkvec search`, `shrinkvec sql`), SQL's
shrinkvec.search() and the ORM's two_stage() return the same rows for every configuration kind that
`shrinkvec tune --apply` can store (a code stage, a funnel, the shrinkvec index) and every distance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.sqlalchemy import VECTOR
from psycopg import sql
from sqlalchemy import BigInteger, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

from conftest import pairs
from shrinkvec import catalog, demo
from shrinkvec.load import LoadOptions, load
from shrinkvec.orm import bits_column, int8_column, prefix_column, two_stage

SV = [sys.executable, "-m", "shrinkvec.cli"]
N, NQ, K = 4000, 6, 10
CONFIGS = ["bits@50", "prefix:64@60", "int8@40", "bits@200>int8@40", "index@50", "index:refine=4:rerank=7@50"]
OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "ip": "vector_ip_ops"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*SV, *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res


@pytest.mark.parametrize("distance", ["cosine", "l2", "ip"])
def test_cli_sql_and_orm_return_the_same_rows(migrated_dsn: str, conn: psycopg.Connection, tmp_path: Path,
                                              distance: str) -> None:
    data = demo.load_data()
    np.save(tmp_path / "docs.npy", data.docs[:N])
    np.save(tmp_path / "q.npy", data.queries[:NQ])
    load(migrated_dsn, tmp_path / "docs.npy",
         LoadOptions(table="docs", profile="bits,prefix:64,int8", distance=distance))
    conn.execute(f"CREATE INDEX docs_v ON docs USING shrinkvec (embedding {OPCLASS[distance]}) WITH (lists = 1)")
    conn.execute("ANALYZE docs")
    p = catalog.find_profile(conn, "docs")
    assert p is not None and p.distance == distance
    ranges = p.code("int8")
    assert ranges.lo is not None and ranges.hi is not None
    lo: np.ndarray = ranges.lo  # (typed: the class body below sees the declared type, not a narrowed one)
    hi: np.ndarray = ranges.hi

    class Base(DeclarativeBase):
        pass

    class Doc(Base):
        __tablename__ = "docs"
        id = mapped_column(BigInteger, primary_key=True)
        embedding = mapped_column(VECTOR(384), nullable=False)
        bits = bits_column("embedding", 384)
        prefix64 = prefix_column("embedding", 64)
        int8 = int8_column("embedding", 384, lo, hi)

    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(migrated_dsn))
    for config in CONFIGS:
        # what tune --apply stores
        conn.execute("UPDATE shrinkvec.profiles SET search_config = %s, k = %s WHERE relation = 'docs'::regclass",
                     (config, K))
        out = cli("search", "--table", "docs", "--queries", str(tmp_path / "q.npy"), "--dsn", migrated_dsn)
        by_cli = [json.loads(line)["ids"] for line in out.stdout.splitlines()]
        assert len(by_cli) == NQ and all(len(ids) == K for ids in by_cli), config
        printed = cli("sql", "--table", "docs", "--dsn", migrated_dsn).stdout
        for qi, q in enumerate(data.queries[:NQ]):
            by_sql = [r[0] for r in conn.execute("SELECT id FROM shrinkvec.search('docs'::regclass, %s)", (q,))]
            assert by_sql == by_cli[qi], (config, qi)
        if config.startswith("index"):
            # the unchanged exact query under the index's settings, and the index answers it
            assert "SET LOCAL shrinkvec.shortlist = '50';" in printed, printed
            assert ("SET LOCAL shrinkvec.rerank = '7';" in printed) == ("rerank" in config), printed
            with conn.transaction():
                conn.execute("SET LOCAL shrinkvec.shortlist = 50")
                stmt = printed[printed.index("SELECT"):].rstrip(";\n")
                conn.execute("PREPARE knn(vector) AS " + stmt)
                plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN EXECUTE knn({})").format(
                    sql.Literal(str(data.queries[0].tolist())))))
                conn.execute("DEALLOCATE knn")
            assert "docs_v" in plan, plan
            # nothing of the index's settings stays behind in the caller's session
            assert conn.execute("SHOW shrinkvec.shortlist").fetchone() == ("0",)
            assert conn.execute("SHOW shrinkvec.rerank").fetchone() == ("200",)
            continue
        if ">" in config:
            continue  # the ORM's two_stage has one code stage
        stage, shortlist = config.split("@")
        with Session(engine) as session:
            for qi, q in enumerate(data.queries[:NQ]):
                rows = pairs(session.execute(two_stage(Doc, q, k=K, shortlist=int(shortlist), stage=stage,
                                                 distance=distance)).all())
                assert [d.id for d, _ in rows] == by_cli[qi], (config, qi)
    engine.dispose()
