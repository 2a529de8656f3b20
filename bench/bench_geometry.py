"""Recall and latency of the shrinkvec index on four geometries (issue 28's yardstick).

The same index settings on: the docstrings as they are (all-MiniLM-L6-v2, 384-d), the same vectors
PCA-rotated (an orthogonal map: the same distances, variance front-loaded), the same texts embedded by a
Matryoshka-trained model (WordLlama, 256-d), and synthetic Gaussian vectors with per-dim sd ~ 1/sqrt(i+1).
Recall@10 is against exact cosine search in numpy; ms/query is the mean over the queries of one
`ORDER BY embedding <=> q LIMIT 10` round trip, with the exact sequential scan of the same run as the peer;
heap rows/query is the mean over 50 queries of the rows each index scan fetched (its DEBUG1 line), untimed.

    .venv/bin/python bench/bench_geometry.py --dsn "$(.venv/bin/shrinkvec server url)" [--rows 28000]
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
K = 10
CONFIGS: list[tuple[str, str, dict[str, str]]] = [
    ("flat, shortlist 50", "lists = 1", {"shrinkvec.shortlist": "50"}),
    ("flat, shortlist 100", "lists = 1", {"shrinkvec.shortlist": "100"}),
    ("flat refine 4, defaults", "lists = 1, refine = 4", {}),
    ("IVF defaults", "", {}),
    ("IVF refine 4, shortlist 200, rerank 40", "refine = 4",
     {"shrinkvec.shortlist": "200", "shrinkvec.rerank": "40"}),
    ("0.3.0's codes and defaults: flat, shortlist 50", "lists = 1, rotate = off, target_recall = 0",
     {"shrinkvec.shortlist": "50"}),
    ("0.3.0's codes and defaults: IVF defaults", "rotate = off, target_recall = 0", {}),
]


def load_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    return (np.load(SHARED / name / "docs.f16.npy").astype(np.float32),
            np.load(SHARED / name / "queries.f16.npy").astype(np.float32))


def pca_rotated(x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and q through the PCA eigenvectors (no centring: an orthogonal map keeps every cosine)."""
    _, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    v = vecs[:, ::-1].astype(np.float32)  # largest variance first
    return x @ v, q @ v


def synthetic(n: int, nq: int, d: int = 384) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(28)
    sd = (1 / np.sqrt(np.arange(d) + 1)).astype(np.float32)
    return ((rng.standard_normal((n, d)) * sd).astype(np.float32),
            (rng.standard_normal((nq, d)) * sd).astype(np.float32))


def datasets(rows: int, nq: int) -> dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]]:
    def docs() -> tuple[np.ndarray, np.ndarray]:
        x, q = load_pair("docstrings")
        return x[:rows], q[:nq]

    def rotated() -> tuple[np.ndarray, np.ndarray]:
        return pca_rotated(*docs())

    def wordllama() -> tuple[np.ndarray, np.ndarray]:
        x, q = load_pair("docstrings-wordllama")
        return x[:rows], q[:nq]

    return {"docstrings (MiniLM 384-d)": docs, "docstrings PCA-rotated": rotated,
            "WordLlama 256-d (Matryoshka)": wordllama, "synthetic sd ~ 1/sqrt(i+1)": lambda: synthetic(rows, nq)}


def exact_top(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :K]


def timed_queries(conn: psycopg.Connection, q: np.ndarray) -> tuple[list[list[int]], float]:
    stmt = "SELECT id FROM geo ORDER BY embedding <=> %s LIMIT 10"
    for v in q[:5]:
        conn.execute(stmt, (v,)).fetchall()
    out = []
    t = time.perf_counter()
    for v in q:
        out.append([r[0] for r in conn.execute(stmt, (v,)).fetchall()])
    return out, (time.perf_counter() - t) * 1000 / len(q)


def recall(got: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(t.tolist())) / K for g, t in zip(got, truth, strict=True)]))


def heap_rows(conn: psycopg.Connection, q: np.ndarray) -> float:
    """Mean heap rows an index scan fetched per query, from its DEBUG1 line (untimed: logging costs)."""
    notes: list[str] = []
    conn.add_notice_handler(lambda d: notes.append(d.message_primary or ""))
    conn.execute("SET client_min_messages = debug1")
    for v in q:
        conn.execute("SELECT id FROM geo ORDER BY embedding <=> %s LIMIT 10", (v,)).fetchall()
    conn.execute("RESET client_min_messages")
    fetched = [int(m) for n in notes for m in re.findall(r"(\d+) heap rows fetched", n)]
    return float(np.mean(fetched)) if fetched else float("nan")


def run(dsn: str, rows: int, nq: int) -> None:
    print("| data | setting | recall@10 | ms/query | heap rows/query | exact scan ms | speedup |\n"
          "|---|---|---|---|---|---|---|")
    for label, make in datasets(rows, nq).items():
        x, q = make()
        truth = exact_top(x, q)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec")
            register_vector(conn)
            conn.execute("DROP TABLE IF EXISTS geo")
            conn.execute(sql.SQL("CREATE TABLE geo (id int PRIMARY KEY, embedding vector({}))").format(
                sql.Literal(x.shape[1])))
            with conn.cursor().copy("COPY geo (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "vector"])
                for i, v in enumerate(x):
                    cp.write_row((i, v))
            conn.execute("VACUUM ANALYZE geo")
            conn.execute("SET enable_indexscan = off")
            _, exact_ms = timed_queries(conn, q[:50])
            conn.execute("RESET enable_indexscan")
            for name, opts, gucs in CONFIGS:
                conn.execute("DROP INDEX IF EXISTS geo_idx")
                with_ = sql.SQL(f" WITH ({opts})" if opts else "")
                conn.execute(sql.SQL("CREATE INDEX geo_idx ON geo USING shrinkvec (embedding vector_cosine_ops){}")
                             .format(with_))
                for g in ("shrinkvec.shortlist", "shrinkvec.rerank", "shrinkvec.probes"):
                    conn.execute(sql.SQL("RESET {}").format(sql.Identifier(*g.split("."))))
                for g, v in gucs.items():
                    conn.execute("SELECT set_config(%s, %s, false)", (g, v))
                got, ms = timed_queries(conn, q)
                rows_read = heap_rows(conn, q[:50])
                print(f"| {label} | {name} | {recall(got, truth):.3f} | {ms:.2f} | {rows_read:.1f} | {exact_ms:.2f} | "
                      f"{exact_ms / ms:.1f}x |", flush=True)
            conn.execute("DROP TABLE geo")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--rows", type=int, default=28000)
    ap.add_argument("--queries", type=int, default=200)
    a = ap.parse_args()
    run(a.dsn, a.rows, a.queries)


if __name__ == "__main__":
    main()
