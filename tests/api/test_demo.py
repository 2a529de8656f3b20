"""The demo on a fresh database: data loads, codes are generated in SQL, two-stage search keeps recall."""

from __future__ import annotations

import numpy as np
import psycopg
from rich.console import Console

from shrinkvec import codes, demo


def test_demo_data_is_real_and_consistent() -> None:
    data = demo.load_data()
    assert data.docs.shape == (4000, 384) and data.queries.shape == (200, 384)
    assert len(data.doc_texts) == 4000 and len(data.query_texts) == 200
    norms = np.linalg.norm(data.docs, axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)  # all-MiniLM-L6-v2 embeddings are L2-normalised


def test_demo_runs_and_two_stage_keeps_recall(dsn: str, conn: psycopg.Connection) -> None:
    recalls = demo.run(dsn, n_queries=1, console=Console(file=open("/dev/null", "w")))
    assert recalls[demo.EXACT] == 1.0
    assert set(recalls) == {*demo.SEARCHES, demo.INDEX_SEARCH}
    assert recalls[f"bits shortlist {demo.SHORTLIST} -> rerank"] >= 0.95
    assert recalls[f"funnel bits {4 * demo.SHORTLIST} -> int8 30 -> rerank"] >= 0.95
    # the unchanged exact query, answered through the shrinkvec index
    assert recalls[demo.INDEX_SEARCH] >= 0.95
    # the loader's codes are exactly the reference codes
    data = demo.load_data()
    rows = conn.execute(f"SELECT id, bits::text FROM {demo.TABLE} ORDER BY id LIMIT 50").fetchall()
    for doc_id, bits in rows:
        assert bits == codes.bits_to_str(codes.binarize(data.docs[doc_id]), 384)
    # a rerun starts over (drops and reloads the table) and gives the same answers
    assert demo.run(dsn, n_queries=0, console=Console(file=open("/dev/null", "w"))) == recalls
