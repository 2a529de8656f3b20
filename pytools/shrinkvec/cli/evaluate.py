"""The eval and tune commands (issue 6), their shared options, the evaluator with its progress bar and the
results table."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shrinkvec.cli.common import DATA_DIR_OPTION, DSN_OPTION, _dsn, _fail, _one_line_errors, progress

if TYPE_CHECKING:
    import psycopg
    from rich.progress import TaskID
    from rich.table import Table

    from shrinkvec.evaluation.configs import Config
    from shrinkvec.evaluation.evaluate import Evaluator, Result

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def _eval_errors() -> Iterator[None]:
    """One-line messages for the errors of eval/tune input (on top of _one_line_errors)."""
    from shrinkvec.evaluation.evaluate import EvalError
    from shrinkvec.evaluation.metrics import QrelsError

    with _one_line_errors():
        try:
            yield
        except (EvalError, QrelsError) as exc:
            _fail(str(exc))


EVAL_OPTIONS = [
    click.option("--table", required=True, help="The table to evaluate (with a shrinkvec profile for code stages)."),
    click.option("--schema", default="public", show_default=True),
    click.option("--column", default=None, help="Vector column (default: the profile's, else the table's only vector "
                                                "column)."),
    click.option("--id-column", default=None, help="Column that identifies rows (default: the profile's, else the "
                                                   "primary key: integer, uuid, text or varchar)."),
    click.option("--queries", "queries_path", type=click.Path(path_type=Path), required=True,
                 help=".npy of query vectors, one a row."),
    click.option("--k", "k", type=int, default=10, show_default=True, help="Recall@k / top-k size."),
    click.option("--configs", "config_specs", multiple=True,
                 help="Configurations (repeat, or separate with spaces): exact, bits@100, prefix:128@200, int8@50, "
                      "bits@400>prefix:128@100, index@100, index:lists=100:probes=8:bits=192@200, "
                      "index:lists=100:probes=8:refine=4:rerank=40@200. "
                      "Default: a grid over the profile's codes and the shrinkvec index."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


def _eval_options(f: F) -> F:
    """Add EVAL_OPTIONS to a command."""
    for opt in reversed(EVAL_OPTIONS):
        f = opt(f)
    return f


@contextlib.contextmanager
def _evaluator(url: str, table: str, schema: str, column: str | None, id_column: str | None, queries_path: Path,
               k: int, qrels_path: Path | None, quiet: bool) -> Iterator[tuple[psycopg.Connection, Evaluator]]:
    """An Evaluator on a fresh connection, with a rich progress bar on stderr."""
    from shrinkvec.evaluation import evaluate, metrics
    from shrinkvec.sql import connection
    qs = evaluate.read_queries(queries_path)
    qrels = metrics.read_qrels(qrels_path, len(qs)) if qrels_path is not None else None
    with connection.connect(url, autocommit=True) as conn, progress(quiet, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(f"{what[:40]:<40}", total=total, info="")
            bar.update(tasks[what], completed=done, total=total)

        profile = evaluate.resolve_profile(conn, table, schema, column, id_column)
        with evaluate.Evaluator(conn, profile, qs, k, qrels, report) as ev:
            yield conn, ev


def _candidates(ev: Evaluator, config_specs: tuple[str, ...]) -> list[Config]:
    """The configurations of --configs (default: the profile's grid), checked against the table."""
    from shrinkvec.evaluation import configs
    cands = configs.parse_many(config_specs) if config_specs else configs.default_grid(ev.profile, ev.k, ev.rows)
    for c in cands:
        configs.check(c, ev.profile, ev.k, ev.rows)
    return cands


def _results_table(title: str, results: Sequence[Result], k: int, qrels: bool) -> Table:
    """The rich table of measured configurations (with nDCG and MRR columns when there are qrels)."""
    from rich.table import Table

    t = Table(title=title)
    for h in ("config", "family", "queries", f"recall@{k}", "p5", "p50 ms", "p95 ms", "bytes/row", "index MB",
              "build s"):
        t.add_column(h, justify="left" if h in ("config", "family") else "right")
    if qrels:
        t.add_column(f"nDCG@{k}", justify="right")
        t.add_column(f"MRR@{k}", justify="right")
    for r in results:
        cells = [r.config.spec(), r.config.family(), str(r.queries), f"{r.recall:.3f}", f"{r.recall_p5:.2f}", f"{r.ms_p50:.2f}",
                 f"{r.ms_p95:.2f}", f"{r.bytes_per_row:,.0f}",
                 "" if r.index_mb is None else f"{r.index_mb:.2f}", "" if r.build_s is None else f"{r.build_s:.2f}"]
        if qrels:
            cells += ["" if r.ndcg is None else f"{r.ndcg:.3f}", "" if r.mrr is None else f"{r.mrr:.3f}"]
        t.add_row(*cells)
    return t


@click.command("eval")
@_eval_options
@click.option("--qrels", "qrels_path", type=click.Path(path_type=Path), default=None,
              help="Relevance labels, one 'QUERY_ROW DOC_ID [GRADE]' a line (README): adds nDCG@k and MRR@k.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="Pareto plot PNG (default: ./shrinkvec-eval-TABLE.png); its directory must exist.")
@click.option("--no-plot", is_flag=True, help="Do not write the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@DSN_OPTION
@DATA_DIR_OPTION
def eval_cmd(table: str, schema: str, column: str | None, id_column: str | None, queries_path: Path, k: int,
             config_specs: tuple[str, ...],
             quiet: bool, qrels_path: Path | None, plot_path: Path | None, no_plot: bool, as_json: bool,
             dsn: str | None, data_dir: Path | None) -> None:
    """Recall@k (mean, p5), p50/p95 latency, bytes/row, index size and build time of each configuration,
    against the exact top-k computed in numpy."""
    import json

    from rich.console import Console

    from shrinkvec.evaluation import evaluate
    out = plot_path or Path(f"shrinkvec-eval-{table}.png")
    if not no_plot and not out.absolute().parent.is_dir():  # before the measurements, not after them
        _fail(f"cannot write the plot {out}: directory {out.absolute().parent} does not exist")
    with _eval_errors():
        url = _dsn(dsn, data_dir)
        with _evaluator(url, table, schema, column, id_column, queries_path, k, qrels_path, quiet) as (_, ev):
            cands = _candidates(ev, config_specs)
            ev.truth  # noqa: B018 -- ground truth first, with its own progress line
            results = [ev.measure(c) for c in cands]
            exact_ndcg, exact_mrr = ev.exact_task_metrics() if qrels_path else (None, None)
            rows, nq = ev.rows, len(ev.queries)
    title = (f"{schema}.{table}: {rows:,} rows, {nq} queries, k={k}; recall against the exact top-{k} "
             "computed in numpy (float64)")
    if not no_plot:
        with _one_line_errors():  # e.g. the directory went away or is not writable
            evaluate.pareto_plot(results, out, title)
    if as_json:
        click.echo(json.dumps({
            "table": f"{schema}.{table}", "rows": rows, "queries": nq, "k": k, "ground_truth": "numpy",
            "exact_ndcg": exact_ndcg, "exact_mrr": exact_mrr, "results": [r.as_dict() for r in results]}))
        return
    console = Console(width=160)
    console.print(_results_table(title, results, k, qrels_path is not None))
    if qrels_path:
        console.print(f"exact top-{k} (numpy): nDCG@{k} {exact_ndcg:.3f}, MRR@{k} {exact_mrr:.3f} "
                      "(over the queries with a relevant document)")
    if any(r.config.kind == "exact" for r in results):
        console.print("exact: the exact query in the database (index scans off), on the first queries only when "
                      "the table is large (its recall and nDCG/MRR are over those queries)")
    console.print("bytes/row: code payload (funnel: all its codes; index: size on disk / entries; exact: the float32 "
                  "vector); p5: 5th percentile of recall over the queries")
    if not no_plot:
        console.print(f"wrote {out}")


@click.command("tune")
@_eval_options
@click.option("--target-recall", type=float, required=True, help="Recall@k to reach, e.g. 0.95.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the selection / held-out split.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"stage", "shortlist", "recall" (held-out), "ms", ...} as JSON.')
@click.option("--apply", "do_apply", is_flag=True, help="Store the choice as the profile's default search.")
@DSN_OPTION
@DATA_DIR_OPTION
def tune_cmd(table: str, schema: str, column: str | None, id_column: str | None, queries_path: Path, k: int,
             config_specs: tuple[str, ...],
             quiet: bool, target_recall: float, seed: int, as_json: bool, do_apply: bool, dsn: str | None,
             data_dir: Path | None) -> None:
    """The cheapest configuration (p50 latency, then bytes/row) whose recall@k on half the queries reaches
    the target, with its recall measured again on the other, held-out half."""
    import json

    from rich.console import Console

    from shrinkvec.evaluation import tune
    with _eval_errors():
        if not 0 < target_recall <= 1:
            raise click.BadParameter(f"must be in (0, 1], got {target_recall}", param_hint="--target-recall")
        url = _dsn(dsn, data_dir)
        with _evaluator(url, table, schema, column, id_column, queries_path, k, None, quiet) as (conn, ev):
            choice = tune.tune(ev, _candidates(ev, config_specs), target_recall, seed)
            applied = tune.apply(conn, ev, choice) if do_apply and choice.met else None
    if as_json:
        click.echo(json.dumps(choice.as_json()))
    else:
        console = Console(width=160)
        console.print(_results_table(f"candidates on the selection half ({choice.selection_rows} queries, seed {seed})",
                                     sorted(choice.candidates, key=lambda r: r.ms_p50), k, False))
        c, h = choice.chosen, choice.held_out
        if choice.met:
            console.print(f"chosen: {c.config.spec()} — recall@{k} {c.recall:.3f} on the selection half, "
                          f"[bold]{h.recall:.3f} on the {choice.held_out_rows} held-out queries[/bold] "
                          f"(target {target_recall}), p50 {h.ms_p50:.2f} ms, {c.bytes_per_row:,.0f} bytes/row")
        else:
            console.print(f"no configuration reaches recall@{k} {target_recall}; the best found is "
                          f"{c.config.spec()}: {c.recall:.3f} on the selection half, {h.recall:.3f} held out, "
                          f"p50 {h.ms_p50:.2f} ms")
    if applied:
        click.echo(applied, err=as_json)
    if not choice.met:
        if as_json:
            click.echo(f"no configuration reaches recall@{k} {target_recall}; the best found is "
                       f"{choice.chosen.config.spec()} ({choice.held_out.recall:.3f} held out)", err=True)
        if do_apply:
            click.echo("nothing applied", err=True)
        sys.exit(2)
