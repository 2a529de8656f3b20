"""The recipes of docs/frameworks.md, run with the real packages (the `frameworks` extra; skipped without it):
a shrinkvec index on the tables that LangChain `PGVector`, LangChain `PGVectorStore` (langchain-postgres) and
LlamaIndex `PGVectorStore` make, loaded and searched through each framework's own API.

Data: the first 4,000 demo docstrings (all-MiniLM-L6-v2, 384-d) with a metadata `category` whose filters keep
0.1%, 1%, 10% and 50% of the rows, and the first 100 demo queries. For each framework:
- the SQL of its unfiltered search (captured from SQLAlchemy) is planned as a scan of the shrinkvec index;
- recall@10 >= 0.99 against numpy's exact cosine top 10, with the index's defaults (no SET anywhere);
- every filtered search returns as many rows as the exact plan of the same SQL (`enable_indexscan = off`), and
  the right ones (recall >= 0.99 against numpy within the category);
- where the recipe gives the planner statistics on the filter (an expression index for LlamaIndex and for
  PGVector's $in filters; a real column for PGVectorStore), its row estimate of each category is within 2x.
Besides: rows with a NULL embedding come out of an index scan last, as from the exact plan; PGVectorStore's
settings hooks; LlamaIndex's indexed_metadata_keys and async queries; docs/frameworks.md shows these recipes.
Without SHRINKVEC_TEST_DSN the frameworks must be installed beside the embedded server that has the extension.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import Any
from urllib.parse import quote

import numpy as np
import psycopg
import pytest
from numpy.typing import NDArray
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from conftest import REPO, one_row

DEMO = REPO / "pytools" / "shrinkvec" / "demo_data"
N_DOCS = 4000
N_QUERIES = 100
DIMS = 384
K = 10
MIN_RECALL = 0.99
# category -> rows: filters that keep 0.1%, 1%, 10% and 50% of the rows; the other 1,556 rows are "rest"
CATEGORIES = {"p0_1": 4, "p1": 40, "p10": 400, "p50": 2000}
# k of the filtered searches: the 1% category is also asked for more rows than it has (all 40 must come)
FILTER_K = {"p0_1": K, "p1": 50, "p10": K, "p50": K}
# distances of numpy (float64) and of pgvector (float32 sums) differ by ~1e-7; ties within this count as hits
TIE = 1e-5


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    vectors: NDArray[np.float32]  # (N_DOCS, DIMS), as the frameworks store them
    categories: NDArray[np.str_]
    queries: NDArray[np.float32]  # (N_QUERIES, DIMS)

    @cached_property
    def distances(self) -> NDArray[np.float64]:
        """Exact cosine distances (N_QUERIES, N_DOCS)."""
        x = self.vectors.astype(np.float64)
        q = self.queries.astype(np.float64)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return np.asarray(1.0 - q @ x.T, dtype=np.float64)

    @cached_property
    def vector_of(self) -> dict[str, list[float]]:
        return {t: v.tolist() for t, v in zip(self.texts, self.vectors, strict=True)}

    @cached_property
    def ids(self) -> list[str]:
        """Framework ids: UUIDs, as the frameworks make them."""
        return [doc_uuid(i) for i in range(N_DOCS)]

    @cached_property
    def metadatas(self) -> list[dict[str, Any]]:
        return [{"category": str(c), "doc": i} for i, c in enumerate(self.categories)]

    def score(self, query: int, got: list[int], category: str | None, k: int) -> tuple[int, int]:
        """(hits, wanted) of one search: a returned row is a hit when it passes the filter and is no farther than
        the exact k-th nearest that passes it; wanted is min(k, rows that pass)."""
        assert len(set(got)) == len(got), f"a search returned a row twice: {got}"
        keep = np.ones(N_DOCS, dtype=bool) if category is None else self.categories == category
        d = self.distances[query]
        wanted = min(k, int(keep.sum()))
        kth = float(np.sort(d[keep])[wanted - 1])
        hits = sum(1 for i in got if keep[i] and d[i] <= kth + TIE)
        return hits, wanted


def doc_uuid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def load_corpus() -> Corpus:
    with gzip.open(DEMO / "docs.jsonl.gz", "rt") as f:
        texts = [str(json.loads(line)["text"]) for line in f][:N_DOCS]
    vectors = np.load(DEMO / "docs.f16.npy")[:N_DOCS].astype(np.float32)
    queries = np.load(DEMO / "queries.f16.npy")[:N_QUERIES].astype(np.float32)
    categories = np.full(N_DOCS, "rest", dtype="<U8")
    order = np.random.default_rng(30).permutation(N_DOCS)
    start = 0
    for name, rows in CATEGORIES.items():
        categories[order[start:start + rows]] = name
        start += rows
    return Corpus(texts, vectors, categories, queries)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus()


# --- the frameworks' SQL: captured from SQLAlchemy, run again with psycopg -----------------------------------------


@dataclass
class SqlLog:
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def last_search(self) -> tuple[str, Any]:
        """The last vector search the framework ran, as psycopg runs it (statement, parameters)."""
        for statement, params in reversed(self.statements):
            if statement.lstrip().upper().startswith("SELECT") and "<=>" in statement:
                return psycopg_form(statement, params)
        raise AssertionError("the framework ran no vector search")


@contextmanager
def captured_sql() -> Iterator[SqlLog]:
    """Every statement any SQLAlchemy engine (also an AsyncEngine's) sends while the block runs."""
    log = SqlLog()

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        log.statements.append((statement, params))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def psycopg_form(statement: str, params: Any) -> tuple[str, Any]:
    """SQLAlchemy's psycopg and psycopg2 dialects send %(name)s placeholders with a dict, which psycopg runs as it
    is; asyncpg's send $1..$n with a sequence, rewritten here to %s."""
    if params is None or isinstance(params, dict):
        return statement, params
    values = list(params)
    ordered: list[Any] = []

    def placeholder(m: re.Match[str]) -> str:
        ordered.append(values[int(m.group(1)) - 1])
        return "%s"

    return re.sub(r"\$(\d+)", placeholder, statement.replace("%", "%%")), ordered


def plan_of(conn: psycopg.Connection, statement: str, params: Any) -> dict[str, Any]:
    plan: dict[str, Any] = one_row(conn.execute("EXPLAIN (FORMAT JSON) " + statement, params))[0][0]["Plan"]
    return plan


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def shrinkvec_indexes(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
           WHERE i.indrelid = %s::regclass AND a.amname = 'shrinkvec'""", (table,)).fetchall()
    return {str(r[0]) for r in rows}


def exact_plan_rows(conn: psycopg.Connection, statement: str, params: Any, indexes: set[str]) -> int:
    """Rows of the same SQL in the exact plan (no index scan: a sort over every row that passes the filter)."""
    conn.execute("SET enable_indexscan = off")
    try:
        used = {n.get("Index Name") for n in plan_nodes(plan_of(conn, statement, params))}
        assert not used & indexes, f"the exact plan still scans {used & indexes}"
        return len(conn.execute(statement, params).fetchall())
    finally:
        conn.execute("RESET enable_indexscan")


def filter_estimate(conn: psycopg.Connection, statement: str, params: Any, table: str) -> float:
    """The planner's row estimate of the table's scan in the plan of a filtered search."""
    scans = [n for n in plan_nodes(plan_of(conn, statement, params)) if n.get("Relation Name") == table]
    assert scans, f"no scan of {table} in the plan"
    return float(scans[0]["Plan Rows"])


Search = Callable[[NDArray[np.float32], "str | None", int], list[int]]


def check_recipe(conn: psycopg.Connection, corpus: Corpus, search: Search, table: str, *, estimates: bool,
                 unfiltered: bool = True, filtered_queries: int = N_QUERIES) -> None:
    """The checks every framework's recipe must pass (see the module's docstring); the filtered searches run the
    first `filtered_queries` queries."""
    indexes = shrinkvec_indexes(conn, table)
    assert indexes, f"{table} has no shrinkvec index"

    if unfiltered:
        hits = wanted = 0
        with captured_sql() as log:
            for qi, q in enumerate(corpus.queries):
                h, w = corpus.score(qi, search(q, None, K), None, K)
                hits, wanted = hits + h, wanted + w
        used = {n.get("Index Name") for n in plan_nodes(plan_of(conn, *log.last_search()))}
        assert used & indexes, f"the framework's search is not planned on {indexes}: {used}"
        assert hits / wanted >= MIN_RECALL, f"recall@{K} {hits / wanted:.4f}"

    problems: list[str] = []
    for category, k in FILTER_K.items():
        hits = wanted = 0
        for qi, q in enumerate(corpus.queries[:filtered_queries]):
            with captured_sql() as log:
                got = search(q, category, k)
            statement, params = log.last_search()
            exact = exact_plan_rows(conn, statement, params, indexes)
            if len(got) != exact:
                problems.append(f"{category} query {qi}: {len(got)} rows, the exact plan {exact}")
            h, w = corpus.score(qi, got, category, k)
            hits, wanted = hits + h, wanted + w
        if hits / wanted < MIN_RECALL:
            problems.append(f"{category}: recall@{k} {hits / wanted:.4f}")
        if estimates:
            estimate, rows = filter_estimate(conn, statement, params, table), CATEGORIES[category]
            if not rows / 2 <= estimate <= rows * 2:
                problems.append(f"{category}: the planner expects {estimate:.0f} rows, {rows} pass")
    assert not problems, "\n".join(problems[:20])


def sa_url(driver: str, dsn: str) -> str:
    """A SQLAlchemy URL of the test database; the host (a socket directory of the embedded server) goes in the
    query string, which psycopg, psycopg2 and asyncpg all accept."""
    p = conninfo_to_dict(dsn)
    auth = quote(str(p.get("user", "postgres")), safe="")
    if p.get("password"):
        auth += ":" + quote(str(p["password"]), safe="")
    host = quote(str(p.get("host", "localhost")), safe="")
    return f"postgresql+{driver}://{auth}@/{quote(str(p['dbname']), safe='')}?host={host}&port={p.get('port', 5432)}"


def stored_embeddings(corpus: Corpus) -> Any:
    """A LangChain Embeddings that returns the demo's precomputed vector of each text (stands in for a model)."""
    embeddings: Any = pytest.importorskip("langchain_core.embeddings").Embeddings

    class StoredEmbeddings(embeddings):  # type: ignore[misc]  # a class from importorskip is Any to mypy
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [corpus.vector_of[t] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return corpus.vector_of[text]

    return StoredEmbeddings()


# --- LangChain PGVector ------------------------------------------------------------------------------------------


def langchain_pgvector(corpus: Corpus, engine: Engine) -> tuple[Any, Search, Search]:
    """A LangChain PGVector store on `engine` and two searches (similarity_search_by_vector): with the filter
    {"category": value}, which PGVector writes as jsonb_path_match(cmetadata, ...), and with {"category": {"$in":
    [value]}}, which it writes as (cmetadata ->> 'category') IN (...)."""
    langchain_postgres = pytest.importorskip("langchain_postgres")
    store = langchain_postgres.PGVector(stored_embeddings(corpus), connection=engine, collection_name="docs", use_jsonb=True)

    def search(q: NDArray[np.float32], category: str | None, k: int) -> list[int]:
        found = store.similarity_search_by_vector(q.tolist(), k=k, filter=None if category is None else {"category": category})
        return [int(d.metadata["doc"]) for d in found]

    def search_in(q: NDArray[np.float32], category: str | None, k: int) -> list[int]:
        where = None if category is None else {"category": {"$in": [category]}}
        return [int(d.metadata["doc"]) for d in store.similarity_search_by_vector(q.tolist(), k=k, filter=where)]

    return store, search, search_in


def test_langchain_pgvector(conn: psycopg.Connection, dsn: str, corpus: Corpus) -> None:
    """PGVector makes `langchain_pg_embedding` with an undimensioned `vector`: ALTER it to vector(384), then the index.
    Its {"category": value} filters are jsonb_path_match(cmetadata, ...), whose selectivity the planner guesses; its
    $in filters are (cmetadata ->> 'category') IN (...), which an expression index gives statistics."""
    engine = create_engine(sa_url("psycopg", dsn))
    try:
        store, search, search_in = langchain_pgvector(corpus, engine)
        store.add_texts(corpus.texts, metadatas=corpus.metadatas, ids=corpus.ids)

        with pytest.raises(psycopg.Error, match="does not have dimensions"):
            conn.execute("CREATE INDEX ON langchain_pg_embedding USING shrinkvec (embedding vector_cosine_ops)")
        conn.execute(f"ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector({DIMS})")
        conn.execute("CREATE INDEX ON langchain_pg_embedding USING shrinkvec (embedding vector_cosine_ops)")
        conn.execute("ANALYZE langchain_pg_embedding")

        check_recipe(conn, corpus, search, "langchain_pg_embedding", estimates=False)

        conn.execute("CREATE INDEX ON langchain_pg_embedding ((cmetadata->>'category'))")
        conn.execute("ANALYZE langchain_pg_embedding")
        check_recipe(conn, corpus, search_in, "langchain_pg_embedding", estimates=True, unfiltered=False, filtered_queries=50)
    finally:
        engine.dispose()


def test_langchain_pgvector_null_embeddings(conn: psycopg.Connection, dsn: str, corpus: Corpus) -> None:
    """Rows with a NULL embedding (PGVector's column allows them) come out of the exact plan after all the others
    (NULL distances sort last), and must come out of an index scan too, last (issue 30). Two such rows join the
    0.1% category; the framework's connections are kept off the sequential scan so that the planner takes the index."""
    engine = create_engine(sa_url("psycopg", dsn), connect_args={"options": "-c enable_seqscan=off"})
    try:
        store, search, _ = langchain_pgvector(corpus, engine)
        store.add_texts(corpus.texts, metadatas=corpus.metadatas, ids=corpus.ids)
        store.add_embeddings(["no vector 1", "no vector 2"], [None, None],
                             metadatas=[{"category": "p0_1", "doc": N_DOCS + i} for i in range(2)])
        conn.execute(f"ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector({DIMS})")
        conn.execute("CREATE INDEX ON langchain_pg_embedding USING shrinkvec (embedding vector_cosine_ops)")
        conn.execute("ANALYZE langchain_pg_embedding")
        assert one_row(conn.execute("SELECT count(*) FROM langchain_pg_embedding WHERE embedding IS NULL"))[0] == 2

        with captured_sql() as log:
            found = search(corpus.queries[0], "p0_1", K)
        statement, params = log.last_search()
        indexes = shrinkvec_indexes(conn, "langchain_pg_embedding")
        conn.execute("SET enable_seqscan = off")
        used = {n.get("Index Name") for n in plan_nodes(plan_of(conn, statement, params))}
        assert used & indexes, f"the search is not planned on the shrinkvec index ({used}): this test would check nothing"
        exact = exact_plan_rows(conn, statement, params, indexes)
        rows = CATEGORIES["p0_1"]
        assert exact == rows + 2, f"the exact plan returns {exact} rows, not {rows} and the 2 without an embedding"
        assert len(found) == exact, f"the index scan returned {len(found)} rows, the exact plan {exact}: {found}"
        nearest = np.flatnonzero(corpus.categories == "p0_1")[np.argsort(corpus.distances[0][corpus.categories == "p0_1"])]
        assert found[:rows] == nearest.tolist(), "the rows with an embedding come first, nearest first"
        assert sorted(found[rows:]) == [N_DOCS, N_DOCS + 1], "then the two without one"
    finally:
        engine.dispose()


# --- LangChain PGVectorStore -------------------------------------------------------------------------------------


def shrinkvec_hooks() -> tuple[type[Any], type[Any]]:
    """PGVectorStore's hooks for shrinkvec: a BaseIndex (apply_vector_index writes `USING {index_type}` and
    `WITH {index_options()}`) and QueryOptions (each of to_parameter() runs as `SET LOCAL ...` before a search)."""
    indexes = pytest.importorskip("langchain_postgres.v2.indexes")
    base_index: Any = indexes.BaseIndex
    query_options: Any = indexes.QueryOptions

    @dataclass
    class ShrinkvecIndex(base_index):  # type: ignore[misc]  # a class from importorskip is Any to mypy
        index_type: str = "shrinkvec"
        target_recall: float = 0.95  # the index's default; WITH needs at least one option
        shortlist: int = 0  # 0: the build's choice
        probes: int = 0

        def index_options(self) -> str:
            return f"(target_recall = {self.target_recall}, shortlist = {self.shortlist}, probes = {self.probes})"

    @dataclass
    class ShrinkvecQueryOptions(query_options):  # type: ignore[misc]  # as above
        shortlist: int = 0
        probes: int = 0

        def to_parameter(self) -> list[str]:
            return [f"shrinkvec.shortlist = {self.shortlist}", f"shrinkvec.probes = {self.probes}"]

        def to_string(self) -> str:
            return ", ".join(self.to_parameter())

    return ShrinkvecIndex, ShrinkvecQueryOptions


def test_langchain_pgvectorstore(conn: psycopg.Connection, dsn: str, corpus: Corpus) -> None:
    """PGVectorStore makes vector(384) itself; apply_vector_index with a BaseIndex of index_type "shrinkvec" makes
    the index. The category is a real column (metadata_columns), so ANALYZE gives the planner its statistics."""
    langchain_postgres = pytest.importorskip("langchain_postgres")
    shrinkvec_index, shrinkvec_query_options = shrinkvec_hooks()
    engine = langchain_postgres.PGEngine.from_connection_string(sa_url("asyncpg", dsn))
    try:
        engine.init_vectorstore_table("docs", DIMS, metadata_columns=[langchain_postgres.Column("category", "TEXT")])
        store = langchain_postgres.PGVectorStore.create_sync(engine, stored_embeddings(corpus), "docs",
                                                             metadata_columns=["category"])
        # add_texts runs one transaction per row: eight concurrent calls
        async def load(step: int = N_DOCS // 8) -> None:
            await asyncio.gather(*(store.aadd_texts(corpus.texts[i:i + step], metadatas=corpus.metadatas[i:i + step],
                                                    ids=corpus.ids[i:i + step]) for i in range(0, N_DOCS, step)))

        asyncio.run(load())
        store.apply_vector_index(shrinkvec_index())
        conn.execute("ANALYZE docs")
        assert shrinkvec_indexes(conn, "docs") == {"docslangchainvectorindex"}

        def search(q: NDArray[np.float32], category: str | None, k: int) -> list[int]:
            found = store.similarity_search_by_vector(q.tolist(), k=k,
                                                      filter=None if category is None else {"category": category})
            return [int(d.metadata["doc"]) for d in found]

        check_recipe(conn, corpus, search, "docs", estimates=True)

        # settings in the index (for every client) and per search (SET LOCAL: safe behind a transaction pooler)
        store.drop_vector_index()
        store.apply_vector_index(shrinkvec_index(shortlist=120))
        info = conn.execute("SELECT scan_shortlist FROM shrinkvec_index_info('docslangchainvectorindex')")
        assert one_row(info)[0] == 120
        tuned = langchain_postgres.PGVectorStore.create_sync(
            engine, stored_embeddings(corpus), "docs", metadata_columns=["category"],
            index_query_options=shrinkvec_query_options(shortlist=200))
        hits = wanted = 0
        with captured_sql() as log:
            for qi, q in enumerate(corpus.queries[:20]):
                found = tuned.similarity_search_by_vector(q.tolist(), k=K)
                h, w = corpus.score(qi, [int(d.metadata["doc"]) for d in found], None, K)
                hits, wanted = hits + h, wanted + w
        assert "SET LOCAL shrinkvec.shortlist = 200;" in [s for s, _ in log.statements]
        assert hits / wanted >= MIN_RECALL, f"recall@{K} {hits / wanted:.4f} with QueryOptions"
    finally:
        asyncio.run(engine.close())


# --- LlamaIndex PGVectorStore ------------------------------------------------------------------------------------


def llamaindex_store(dsn: str, **kwargs: Any) -> Any:
    """A LlamaIndex PGVectorStore (table data_docs) on the test database: connection strings with the host in the
    query string, because from_params(host=...) writes user:password@host:port, which a socket directory breaks."""
    postgres: ModuleType = pytest.importorskip("llama_index.vector_stores.postgres")
    return postgres.PGVectorStore.from_params(
        connection_string=sa_url("psycopg2", dsn), async_connection_string=sa_url("asyncpg", dsn),
        table_name="docs", embed_dim=DIMS, use_jsonb=True, **kwargs)


def llamaindex_query(q: NDArray[np.float32], category: str | None, k: int) -> Any:
    """A VectorStoreQuery, with MetadataFilters on the category when one is given."""
    types: ModuleType = pytest.importorskip("llama_index.core.vector_stores.types")
    filters = None if category is None else types.MetadataFilters(filters=[types.MetadataFilter(key="category", value=category)])
    return types.VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=k, filters=filters)


def llamaindex_load(store: Any, corpus: Corpus, rows: int) -> Search:
    """Add the first `rows` docs as TextNodes with their embeddings; the search: query() with MetadataFilters."""
    schema: ModuleType = pytest.importorskip("llama_index.core.schema")
    store.add([schema.TextNode(id_=corpus.ids[i], text=corpus.texts[i], embedding=corpus.vector_of[corpus.texts[i]],
                               metadata=corpus.metadatas[i]) for i in range(rows)])

    def search(q: NDArray[np.float32], category: str | None, k: int) -> list[int]:
        return [int(n.metadata["doc"]) for n in store.query(llamaindex_query(q, category, k)).nodes]

    return search


def test_llamaindex(conn: psycopg.Connection, dsn: str, corpus: Corpus) -> None:
    """LlamaIndex filters with `metadata_->>'category' = '...'`, which the planner estimates at a default 0.5% of
    the rows until an expression index on it (and ANALYZE) gives it statistics."""
    store = llamaindex_store(dsn)
    try:
        search = llamaindex_load(store, corpus, N_DOCS)
        conn.execute("CREATE INDEX ON data_docs USING shrinkvec (embedding vector_cosine_ops)")
        conn.execute("ANALYZE data_docs")

        with captured_sql() as log:
            search(corpus.queries[0], "p50", K)
        guess = filter_estimate(conn, *log.last_search(), "data_docs")
        assert guess < CATEGORIES["p50"] / 10, f"without the expression index the planner expects {guess} rows"

        conn.execute("CREATE INDEX ON data_docs ((metadata_->>'category'))")
        conn.execute("ANALYZE data_docs")
        check_recipe(conn, corpus, search, "data_docs", estimates=True)
    finally:
        asyncio.run(store.close())


def test_llamaindex_indexed_metadata_keys(conn: psycopg.Connection, dsn: str, corpus: Corpus) -> None:
    """LlamaIndex's own indexed_metadata_keys={("category", "text")} makes a btree on
    (metadata_->>'category')::varchar when it makes the table, which serves as the expression index. Its async
    queries (asyncpg, the socket directory in the URL's query string) return the same rows."""
    store = llamaindex_store(dsn, indexed_metadata_keys={("category", "text")})

    async def async_search(category: str | None) -> list[int]:
        try:
            result = await store.aquery(llamaindex_query(corpus.queries[0], category, K))
            return [int(n.metadata["doc"]) for n in result.nodes]
        finally:
            await store.close()  # the async engine's connections belong to this event loop

    try:
        search = llamaindex_load(store, corpus, N_DOCS)
        conn.execute("CREATE INDEX ON data_docs USING shrinkvec (embedding vector_cosine_ops)")
        conn.execute("ANALYZE data_docs")
        for category, rows in CATEGORIES.items():
            with captured_sql() as log:
                found = search(corpus.queries[0], category, K)
            assert len(found) == min(K, rows)
            estimate = filter_estimate(conn, *log.last_search(), "data_docs")
            assert rows / 2 <= estimate <= rows * 2, f"{category}: the planner expects {estimate} rows, {rows} pass"
        assert asyncio.run(async_search("p10")) == search(corpus.queries[0], "p10", K)
    finally:
        asyncio.run(store.close())


def test_docs_name_the_tested_recipes() -> None:
    """docs/frameworks.md shows the statements these tests run."""
    text = (REPO / "docs" / "frameworks.md").read_text()
    for needle in ["ALTER TABLE langchain_pg_embedding ALTER COLUMN embedding TYPE vector(384)",
                   "USING shrinkvec (embedding vector_cosine_ops)", "CREATE INDEX ON data_docs ((metadata_->>'category'))",
                   'index_type: str = "shrinkvec"', "indexed_metadata_keys", "tests/frameworks/test_frameworks.py"]:
        assert needle in text, needle
