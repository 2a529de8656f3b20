"""Retrieval metrics of `shrinkvec eval`: recall@k against exact search, nDCG@k and MRR@k against
relevance labels (qrels), and the Pareto front of a set of (cost, recall) points.

Qrels file format (plain text, one judgement a line, fields separated by tabs or spaces):

    QUERY  DOC  [GRADE]          # QUERY: 0-based row of the queries .npy; DOC: the table's id
    QUERY  0    DOC  GRADE       # TREC qrels (the second field is ignored)

GRADE is a number, 1 when left out; 0 means judged not relevant. Empty lines, lines starting with
'#' and a header line (whose first field is not an integer, such as BEIR's "query-id corpus-id
score") are skipped. A later line for the same (QUERY, DOC) replaces an earlier one.

nDCG@k uses linear gain, as trec_eval and BEIR do: DCG = sum_{i=1..k} grade(d_i) / log2(i + 1), divided
by the DCG of the ideal order of all the query's judged documents. MRR@k = 1 / rank of the first
document with grade > 0 in the top k (0 if none). Both are averaged over the queries that have at
least one document with grade > 0; the others are left out (and counted in the report).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shrinkvec.errors import ShrinkvecError

Qrels = dict[int, dict[int, float]]


class QrelsError(ShrinkvecError, ValueError):
    """A qrels file that cannot be read (the message names the file and line)."""


def read_qrels(path: Path, n_queries: int) -> Qrels:
    """Judgements from a qrels file: query row -> {doc id: grade}."""
    if not path.is_file():
        raise QrelsError(f"no such qrels file: {path}")
    out: Qrels = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise QrelsError(f"{path}: not a readable text file ({exc})") from None
    first_data = True
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if first_data and not _is_int(fields[0]):
            first_data = False  # a header line
            continue
        first_data = False
        qi, doc, grade = _judgement(f"{path}:{lineno}", fields, n_queries)
        out.setdefault(qi, {})[doc] = grade
    if not any(g > 0 for rels in out.values() for g in rels.values()):
        raise QrelsError(f"{path}: no relevant judgements (grade > 0)")
    return out


def _judgement(where: str, fields: list[str], n_queries: int) -> tuple[int, int, float]:
    """(query row, doc id, grade) of a data line of a qrels file; `where` is its path:line."""
    if len(fields) == 2:
        q, d, g = fields[0], fields[1], "1"
    elif len(fields) == 3:
        q, d, g = fields
    elif len(fields) == 4:
        q, _, d, g = fields
    else:
        raise QrelsError(f"{where}: expected 'QUERY DOC [GRADE]' or 'QUERY 0 DOC GRADE', got {len(fields)} fields")
    if not _is_int(q) or not _is_int(d):
        raise QrelsError(f"{where}: query row and document id must be integers, got {q!r} and {d!r}")
    try:
        grade = float(g)
    except ValueError:
        raise QrelsError(f"{where}: grade {g!r} is not a number") from None
    if not np.isfinite(grade) or grade < 0:
        raise QrelsError(f"{where}: grade {g!r} must be a finite number >= 0")
    qi = int(q)
    if not 0 <= qi < n_queries:
        raise QrelsError(f"{where}: query row {qi} is outside the {n_queries} queries (rows are 0-based)")
    return qi, int(d), grade


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def ndcg_at_k(ranked: Sequence[int], rels: dict[int, float], k: int) -> float:
    """nDCG@k with linear gain (module docstring); rels: doc id -> grade."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.array([rels.get(int(d), 0.0) for d in list(ranked)[:k]], dtype=np.float64)
    dcg = float(gains @ discounts[: len(gains)])
    ideal = np.sort(np.array([g for g in rels.values() if g > 0], dtype=np.float64))[::-1][:k]
    idcg = float(ideal @ discounts[: len(ideal)])
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[int], rels: dict[int, float], k: int) -> float:
    """1 / rank of the first relevant (grade > 0) document in the top k, else 0."""
    for rank, d in enumerate(list(ranked)[:k], 1):
        if rels.get(int(d), 0.0) > 0:
            return 1.0 / rank
    return 0.0


def judged(qrels: Qrels, rows: Sequence[int]) -> list[int]:
    """The query rows (of `rows`) that have at least one relevant document."""
    return [int(r) for r in rows if any(g > 0 for g in qrels.get(int(r), {}).values())]


def recall_at_k(found: Sequence[int], truth: Sequence[int]) -> float:
    """Fraction of the true top-k ids found."""
    return len(set(map(int, found)) & set(map(int, truth))) / max(1, len(truth))


def pareto_front(cost: npt.ArrayLike, recall: npt.ArrayLike) -> list[int]:
    """Indexes of the points no other point beats (cost <= and recall >=, one strictly), by cost."""
    c, r = np.asarray(cost, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    front, best = [], -np.inf
    for i in np.lexsort((-r, c)):
        if r[i] > best:
            front.append(int(i))
            best = r[i]
    return front
