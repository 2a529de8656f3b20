"""`shrinkvec demo`: load the shipped docstring embeddings and run two-stage searches in SQL.

The data (pytools/shrinkvec/demo_data) is 4,000 real all-MiniLM-L6-v2 embeddings of Python
docstrings and 200 queries. The demo compares an exact scan with shortlist-then-rerank queries
whose shortlist comes from a compact code, and prints recall@10 against exact search and timings.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from rich.console import Console
from rich.table import Table

TABLE = "shrinkvec_demo"
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


def _read_jsonl(path: Path) -> list[dict]:
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


def create_table(conn: psycopg.Connection, data: DemoData, table: str = TABLE) -> None:
    """(Re)create the demo table with a generated sign-bit column and fill it with binary COPY."""
    t = sql.Identifier(table)
    dim = data.docs.shape[1]
    with conn.transaction():
        conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        register_vector(conn)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
        conn.execute(
            sql.SQL(
                """CREATE TABLE {t} (
                    id bigint PRIMARY KEY,
                    source text NOT NULL,
                    body text NOT NULL,
                    embedding vector({dim}) NOT NULL,
                    bits bit({dim}) GENERATED ALWAYS AS (binarize(embedding)) STORED
                )"""
            ).format(t=t, dim=sql.Literal(dim))
        )
        with conn.cursor().copy(
            sql.SQL("COPY {} (id, source, body, embedding) FROM STDIN WITH (FORMAT BINARY)").format(t)
        ) as copy:
            copy.set_types(["int8", "text", "text", "vector"])
            for i, src, text, emb in zip(data.doc_ids, data.doc_sources, data.doc_texts, data.docs):
                copy.write_row((int(i), src, text, emb))
    conn.execute(sql.SQL("ANALYZE {}").format(t))


INDEX_SEARCH = "shrinkvec index: the exact query, unchanged"


def search_queries(table: str = TABLE) -> dict[str, sql.Composed]:
    """The searches the demo compares, each taking the query vector as %(q)s."""
    t = sql.Identifier(table)
    params = {"t": t, "k": sql.Literal(K), "n": sql.Literal(SHORTLIST)}
    two_stage = """SELECT id, embedding <=> %(q)s AS distance
        FROM (SELECT id, embedding FROM {t} ORDER BY {shortlist} LIMIT {n}) AS shortlist
        ORDER BY distance LIMIT {k}"""
    return {
        "exact (pgvector <=>)": sql.SQL("SELECT id, embedding <=> %(q)s AS distance FROM {t} ORDER BY distance LIMIT {k}").format(**params),
        f"hamming shortlist {SHORTLIST} -> rerank": sql.SQL(two_stage).format(
            shortlist=sql.SQL("bits <^> binarize(%(q)s)"), **params
        ),
        f"bit_ip shortlist {SHORTLIST} -> rerank": sql.SQL(two_stage).format(
            shortlist=sql.SQL("bits <^#> %(q)s"), **params
        ),
        f"prefix-64 shortlist {SHORTLIST} -> rerank": sql.SQL(two_stage).format(
            shortlist=sql.SQL("embedding <^=> subvector(%(q)s, 1, 64)"), **params
        ),
    }


def run_searches(conn: psycopg.Connection, queries: np.ndarray, table: str = TABLE,
                 only: str | None = None) -> dict[str, tuple[list[list[int]], float]]:
    """Run every search (or only one) for every query: per search, the ids returned and the mean ms."""
    register_vector(conn)
    results: dict[str, tuple[list[list[int]], float]] = {}
    for name, query in search_queries(table).items():
        if only is not None and name != only:
            continue
        ids: list[list[int]] = []
        start = time.perf_counter()
        with conn.cursor() as cur:
            for q in queries:
                cur.execute(query, {"q": q}, prepare=True)
                ids.append([row[0] for row in cur.fetchall()])
        results[name] = (ids, (time.perf_counter() - start) * 1000 / len(queries))
    return results


def recall_at_k(found: list[list[int]], truth: list[list[int]]) -> float:
    """Mean fraction of the true top-k found."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def run(dsn: str, n_queries: int = 5, console: Console | None = None) -> dict[str, float]:
    """The whole demo; returns recall@10 per search."""
    console = console or Console()
    data = load_data()
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        create_table(conn, data)
        console.print(
            f"loaded {len(data.doc_ids)} docstring embeddings ({data.docs.shape[1]}-d) into {TABLE} "
            f"in {time.perf_counter() - start:.2f} s; server kernels: "
            f"{conn.execute('SELECT shrinkvec_kernels()').fetchone()[0]}"
        )
        results = run_searches(conn, data.queries)
        # the same exact query, now answered by the shrinkvec index: codes scanned packed, the
        # shortlist reranked exactly by the executor
        start = time.perf_counter()
        conn.execute(sql.SQL("CREATE INDEX {} ON {} USING shrinkvec (embedding vector_cosine_ops)").format(
            sql.Identifier(f"{TABLE}_embedding_idx"), sql.Identifier(TABLE)))
        build_ms = (time.perf_counter() - start) * 1000
        exact = search_queries()["exact (pgvector <=>)"]
        plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + exact, {"q": data.queries[0]}).fetchall())
        if "Index Scan" not in plan:
            raise RuntimeError(f"the planner did not use the shrinkvec index:\n{plan}")
        indexed = run_searches(conn, data.queries, only="exact (pgvector <=>)")
        results[INDEX_SEARCH] = indexed["exact (pgvector <=>)"]
        console.print(f"built the shrinkvec index in {build_ms:.0f} ms")

    truth = results["exact (pgvector <=>)"][0]
    table = Table(title=f"{len(data.queries)} queries, k={K}, {len(data.doc_ids)} rows")
    table.add_column("search")
    table.add_column("recall@10", justify="right")
    table.add_column("ms/query", justify="right")
    recalls = {}
    for name, (ids, ms) in results.items():
        recalls[name] = recall_at_k(ids, truth)
        table.add_row(name, f"{recalls[name]:.3f}", f"{ms:.2f}")
    console.print(table)

    best = f"bit_ip shortlist {SHORTLIST} -> rerank"
    text_by_id = dict(zip(data.doc_ids.tolist(), zip(data.doc_sources, data.doc_texts)))
    for qi in range(min(n_queries, len(data.queries))):
        console.print(f"\n[bold]query:[/bold] {data.query_texts[qi]}")
        for rank, doc_id in enumerate(results[best][0][qi][:3], 1):
            source, text = text_by_id[doc_id]
            console.print(f"  {rank}. [cyan]{source}[/cyan]: {text[:110]}")
    return recalls
