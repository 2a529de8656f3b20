"""The benchmark report: bench/report.md (tables) and bench/report.png (recall vs ms, each method's best
settings) from the
bench_index.py results in bench/results/ (index_docstrings.json and the largest index_synthetic_N.json).

    .venv/bin/python bench/report.py

README.md's benchmark section copies bench/report.md; bench/report.png is committed (kept small).
"""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from shrinkvec.evaluation.metrics import pareto_front  # noqa: E402

from common import RESULTS  # noqa: E402

MIN_RECALL = 0.8
STYLES = {"shrinkvec": "o-", "pgvector": "s--", "faiss": "^:"}  # line style by family


def results() -> list[dict]:
    """The docstrings result and the largest synthetic one, whichever exist."""
    out = []
    if (RESULTS / "index_docstrings.json").exists():
        out.append(json.loads((RESULTS / "index_docstrings.json").read_text()))
    synth = sorted(RESULTS.glob("index_synthetic_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if synth:
        out.append(json.loads(synth[-1].read_text()))
    return out


def versions(dsn: str | None) -> str:
    import faiss
    import psycopg

    with psycopg.connect(dsn or _dsn()) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        vec = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        sv = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'shrinkvec'").fetchone()
    return (f"PostgreSQL {pg} + pgvector {vec[0] if vec else '?'} (embedded), shrinkvec {sv[0] if sv else '?'}, "
            f"faiss-cpu {faiss.__version__}, Python {platform.python_version()}")


def _dsn() -> str:
    from shrinkvec import server

    info = server.status(server.default_data_dir())
    if info is None:
        raise SystemExit("report.py needs a running server for the versions (shrinkvec server start)")
    return info.dsn()


def fmt(x: float, digits: int) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) or x == 0 else f"{x:.{digits}f}"


def best_rows(rows: list[dict]) -> list[dict]:
    """Each method's rows on its own Pareto front (no other setting of it both faster and more accurate)."""
    out = []
    for m in dict.fromkeys(row["method"] for row in rows):
        mine = [row for row in rows if row["method"] == m]
        measured = [row for row in mine if row["recall"] == row["recall"]]
        if not measured:
            out += mine
            continue
        front = pareto_front([row["ms"] for row in measured], [row["recall"] for row in measured])
        out += sorted((measured[i] for i in front), key=lambda row: row["recall"])
    return out


def markdown(res: list[dict], version_line: str | None, best_only: bool = False) -> str:
    lines = []
    for r in res:
        lines += [f"### {r['name']}", "", f"{r['machine']}." + (f" {version_line}." if version_line else ""),
                  f"recall@{r['k']} against exact cosine top-{r['k']} in numpy; ms/query is the median over the "
                  "queries, one at a time (prepared statements; FAISS in-process, one thread).", "",
                  "| method | setting | recall@10 | ms/query | build s | index MB |", "|---|---|---|---|---|---|"]
        for row in best_rows(r["rows"]) if best_only else r["rows"]:
            ms = row["ms"]
            lines.append(f"| {row['method']} | {row['setting']} | {fmt(row['recall'], 3)} | "
                         f"{fmt(ms, 3 if ms == ms and ms < 1 else 2)} | {fmt(row['build_s'], 1)} | {fmt(row['index_mb'], 1)} |")
        lines.append("")
    return "\n".join(lines)


def plot(res: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res), figsize=(5.2 * len(res), 4.2), squeeze=False)
    for ax, r in zip(axes[0], res):
        methods = dict.fromkeys(row["method"] for row in r["rows"])
        for m in methods:
            every = [(row["ms"], row["recall"]) for row in r["rows"] if row["method"] == m and row["recall"] == row["recall"]]
            # each method's best settings only: no other of its settings is both faster and more accurate
            front = [every[i] for i in pareto_front([p[0] for p in every], [p[1] for p in every])] if every else []
            pts = [(rec, ms) for ms, rec in front if rec >= MIN_RECALL]
            if not pts:
                continue
            style = STYLES.get(m.split()[0], "o-")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3, lw=1, label=m[:48])
        ax.set_xlabel(f"recall@10 (settings below {MIN_RECALL} not drawn)")
        ax.set_ylabel("ms/query (median, log)")
        ax.set_yscale("log")
        ax.set_title(r["name"], fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dsn", default=None, help="server to read the versions from (default: the embedded one)")
    args, _ = ap.parse_known_args()
    res = results()
    if not res:
        raise SystemExit("no bench_index results in bench/results: run bench/bench_index.py first")
    try:
        version_line: str | None = versions(args.dsn)
    except Exception as exc:  # the table is still useful without the versions line
        print(f"versions unknown: {exc}")
        version_line = None
    (BENCH / "report.md").write_text(
        "## Each method's best settings (what README.md shows)\n\n" + markdown(res, version_line, best_only=True)
        + "\n## Every setting\n\n" + markdown(res, version_line))
    plot(res, BENCH / "report.png")
    print(f"wrote {BENCH / 'report.md'} and {BENCH / 'report.png'} ({(BENCH / 'report.png').stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
