"""`shrinkvec demo`: load the shipped docstring embeddings and run two-stage searches in SQL.

The data (pytools/shrinkvec/demo_data) is 4,000 real all-MiniLM-L6-v2 embeddings of Python
docstrings and 200 queries. The demo loads them with the loader (every code computed in numpy), then
compares an exact scan with shortlist-then-rerank searches from each compact code, a funnel, and the
shrinkvec index answering the unchanged exact query; every search is built by the one search builder
(query.plan), and it prints recall@10 against exact search and timings.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from shrinkvec.load.loader import LoadOptions, load
from shrinkvec.profile import Profile
from shrinkvec.sql import catalog, connection, query
from shrinkvec.sql import names as sqlnames

TABLE = "shrinkvec_demo"
SCHEMA = "public"  # the loader's default schema, where the demo table lives
K = 10
SHORTLIST = 100


@dataclass(frozen=True)
class DemoData:
    """Documents and queries of the demo dataset."""

    doc_ids: np.ndarray
    doc_sources: list[str]
    doc_texts: list[str]
    docs: np.ndarray
    query_texts: list[str]
    queries: np.ndarray


def data_dir() -> Path:
    """Folder of the shipped demo data."""
    return Path(str(resources.files("shrinkvec") / "demo_data"))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a gzipped JSON-lines file."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def load_data() -> DemoData:
    """Read the shipped embeddings (float16 on disk, float32 here) and texts."""
    d = data_dir()
    docs = _read_jsonl(d / "docs.jsonl.gz")
    queries = _read_jsonl(d / "queries.jsonl.gz")
    return DemoData(
        doc_ids=np.array([r["id"] for r in docs], dtype=np.int64),
        doc_sources=[r["source"] for r in docs],
        doc_texts=[r["text"] for r in docs],
        docs=np.load(d / "docs.f16.npy").astype(np.float32),
        query_texts=[r["text"] for r in queries],
        queries=np.load(d / "queries.f16.npy").astype(np.float32),
    )


CODES = "bits,prefix:64,int8"
# what the demo compares: label -> configuration spec (evaluation/configs.py), each run by the one search builder
# (query.plan / query.search), as `shrinkvec search` and `shrinkvec eval` run them
SEARCHES = {
    "exact (pgvector <=>, no index)": "exact",
    f"bits shortlist {SHORTLIST} -> rerank": f"bits@{SHORTLIST}",
    f"prefix-64 shortlist {SHORTLIST} -> rerank": f"prefix:64@{SHORTLIST}",
    "int8 shortlist 30 -> rerank": "int8@30",
    f"funnel bits {4 * SHORTLIST} -> int8 30 -> rerank": f"bits@{4 * SHORTLIST}>int8@30",
}
EXACT = "exact (pgvector <=>, no index)"
INDEX_SEARCH = "shrinkvec index: the exact query, unchanged"
INDEX_CONFIG = "index@50"


def create_table(dsn: str, data: DemoData, table: str = TABLE) -> Profile:
    """(Re)create the demo table with `shrinkvec load`: the vectors and every code of CODES, computed in
    numpy, written with binary COPY; the table's trigger computes the same codes for later writes."""
    with connection.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SCHEMA, table)))
    catalog.migrate(dsn)
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "docs.npy", data.docs)
        np.save(Path(d) / "ids.npy", data.doc_ids.astype(np.int64))
        load(dsn, Path(d) / "docs.npy", LoadOptions(table=table, schema=SCHEMA, profile=CODES, ids_path=Path(d) / "ids.npy",
                                                    reject_file=Path(d) / "rejects.jsonl"))
    with connection.connect(dsn, autocommit=True) as conn:
        p = catalog.find_profile(conn, table, SCHEMA)
    assert p is not None, "the loader creates the profile"
    return p


def run_searches(conn: psycopg.Connection, p: Profile, queries: np.ndarray, searches: dict[str, str]
                 ) -> dict[str, tuple[list[list[int]], float]]:
    """Run every search for every query: per search, the ids returned and the mean ms."""
    results: dict[str, tuple[list[list[int]], float]] = {}
    for name, spec in searches.items():
        plan = query.plan(p, spec, k=K)
        start = time.perf_counter()
        found = query.search(conn, p, plan, queries)
        results[name] = ([[int(i) for i in ids] for ids, _ in found],  # the demo table's ids are bigint
                          (time.perf_counter() - start) * 1000 / len(queries))
    return results


def recall_at_k(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean fraction of the true top-k found."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def run(dsn: str, n_queries: int = 5, console: Console | None = None) -> dict[str, float]:
    """The whole demo; returns recall@10 per search."""
    console = console or Console()
    data = load_data()
    start = time.perf_counter()
    p = create_table(dsn, data)
    with connection.connect(dsn, autocommit=True) as conn:
        kernels = conn.execute(sql.SQL("SELECT {}()").format(sqlnames.ext_fn(p, "shrinkvec_kernels"))).fetchone()
        console.print(
            f"loaded {len(data.doc_ids)} docstring embeddings ({data.docs.shape[1]}-d) into {TABLE} with codes "
            f"{CODES} in {time.perf_counter() - start:.2f} s; server kernels: {kernels[0] if kernels else '?'}")
        results = run_searches(conn, p, data.queries, SEARCHES)
        # the same exact query, now answered by the shrinkvec index: codes scanned packed, the
        # shortlist reranked exactly inside the scan
        start = time.perf_counter()
        conn.execute(sql.SQL("CREATE INDEX {} ON {} USING shrinkvec (embedding {})").format(
            sql.Identifier(f"{TABLE}_embedding_idx"), sql.Identifier(SCHEMA, TABLE),
            sqlnames.ext_fn(p, "vector_cosine_ops")))
        build_ms = (time.perf_counter() - start) * 1000
        plan = query.plan(p, INDEX_CONFIG, k=K)
        statement = query.build(p, plan.stages, dollar=False, k=K).statement
        with conn.transaction():
            for name, value in plan.settings.items():
                conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", (name, value))
            explain = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + statement,
                                                            {"q": data.queries[0]}).fetchall())
        if "Index Scan" not in explain:
            raise RuntimeError(f"the planner did not use the shrinkvec index:\n{explain}")
        results.update(run_searches(conn, p, data.queries, {INDEX_SEARCH: INDEX_CONFIG}))
        console.print(f"built the shrinkvec index in {build_ms:.0f} ms")

    truth = results[EXACT][0]
    table = Table(title=f"{len(data.queries)} queries, k={K}, {len(data.doc_ids)} rows")
    table.add_column("search")
    table.add_column("recall@10", justify="right")
    table.add_column("ms/query", justify="right")
    recalls = {}
    for name, (ids, ms) in results.items():
        recalls[name] = recall_at_k(ids, truth)
        table.add_row(name, f"{recalls[name]:.3f}", f"{ms:.2f}")
    console.print(table)

    best = INDEX_SEARCH
    text_by_id = dict(zip(data.doc_ids.tolist(), zip(data.doc_sources, data.doc_texts, strict=True), strict=True))
    for qi in range(min(n_queries, len(data.queries))):
        console.print(f"\n[bold]query:[/bold] {data.query_texts[qi]}")
        for rank, doc_id in enumerate(results[best][0][qi][:3], 1):
            source, text = text_by_id[doc_id]
            console.print(f"  {rank}. [cyan]{source}[/cyan]: {text[:110]}")
    return recalls
