"""The `shrinkvec` command line."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click

from shrinkvec import server as srv

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="SHRINKVEC_DATA_DIR",
    help="Data directory of the embedded server (default: under the user's data dir).",
    show_envvar=True,
)


@click.group()
@click.version_option(package_name="shrinkvec")
def main() -> None:
    """shrinkvec: compact codes and two-stage search for pgvector tables."""


@main.group()
def server() -> None:
    """The embedded PostgreSQL 18 + pgvector server."""


def _fail(message: str) -> NoReturn:
    """Print a one-line error and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@server.command("start")
@DATA_DIR_OPTION
def server_start(data_dir: Path | None) -> None:
    """Start the server (a running one is left alone) and print its DSN."""
    try:
        info = srv.start(data_dir)
    except srv.ServerError as exc:
        _fail(str(exc))
    click.echo(info.dsn())


@server.command("stop")
@DATA_DIR_OPTION
def server_stop(data_dir: Path | None) -> None:
    """Stop the server if it runs."""
    try:
        stopped = srv.stop(data_dir)
    except srv.ServerError as exc:
        _fail(str(exc))
    click.echo("stopped" if stopped else "not running")


@server.command("status")
@DATA_DIR_OPTION
def server_status(data_dir: Path | None) -> None:
    """Say whether the server accepts connections; exit 3 when it does not (like pg_ctl status)."""
    try:
        state, _ = srv.check(data_dir)
        info = srv.status(data_dir) if state is srv.State.UP else None
    except srv.ServerError as exc:
        _fail(str(exc))
    if info is None:
        # decided by a connection attempt on the socket (pg_isready), not by the pid in postmaster.pid
        what = "not running" if state is srv.State.DOWN else state.value
        click.echo(f"{what} (data dir {data_dir or srv.default_data_dir()})")
        sys.exit(3)
    click.echo(f"running: pid {info.pid}, data dir {info.data_dir}, socket {info.socket_dir}, port {info.port}")
    click.echo(info.dsn())


@server.command("url")
@DATA_DIR_OPTION
@click.option("--dbname", default="postgres", show_default=True, help="Database name in the DSN.")
def server_url(data_dir: Path | None, dbname: str) -> None:
    """Print the DSN of the running server (for psql, psycopg, DATABASE_URL)."""
    try:
        info = srv.status(data_dir)
    except srv.ServerError as exc:
        _fail(str(exc))
    if info is None:
        _fail("the server is not running: run 'shrinkvec server start'")
    click.echo(info.dsn(dbname))


@server.command("env")
@DATA_DIR_OPTION
@click.option("--dsn", default=None, help="Print the variables for this DSN instead of the embedded server.")
def server_env(data_dir: Path | None, dsn: str | None) -> None:
    """Print PGHOST/PGPORT/PGUSER/... assignments for libpq tools such as pg_regress."""
    if dsn is not None:
        try:
            env = srv.libpq_env_from_dsn(dsn)
        except ValueError as exc:
            _fail(str(exc))
    else:
        try:
            info = srv.status(data_dir)
        except srv.ServerError as exc:
            _fail(str(exc))
        if info is None:
            _fail("the server is not running: run 'shrinkvec server start'")
        env = info.libpq_env()
    click.echo(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))


@server.command("pg-config")
def server_pg_config() -> None:
    """Print the path of the embedded installation's pg_config."""
    try:
        click.echo(srv.pg_config())
    except srv.ServerError as exc:
        _fail(str(exc))


@main.command("demo")
@click.option("--dsn", envvar="DATABASE_URL", default=None, help="Server to use (default: the embedded one).")
@DATA_DIR_OPTION
@click.option("--queries", default=5, show_default=True, help="How many demo queries to show.")
def demo_cmd(dsn: str | None, data_dir: Path | None, queries: int) -> None:
    """Load the shipped docstring embeddings and run a two-stage search."""
    from shrinkvec import demo

    if dsn is None:
        try:
            dsn = srv.start(data_dir).dsn()
        except srv.ServerError as exc:
            _fail(str(exc))
    demo.run(dsn, n_queries=queries)


DSN_OPTION = click.option(
    "--dsn", envvar="DATABASE_URL", default=None, show_envvar=True,
    help="Server to use (default: the embedded one, started if needed).",
)


def _dsn(dsn: str | None, data_dir: Path | None) -> str:
    """The DSN given, or the embedded server's (started if needed)."""
    if dsn is not None:
        return dsn
    try:
        return srv.start(data_dir).dsn()
    except srv.ServerError as exc:
        _fail(str(exc))


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one-line messages (exit 1) instead of tracebacks."""
    import psycopg

    from shrinkvec.catalog import CatalogError
    from shrinkvec.load import LoadError
    from shrinkvec.profile import ProfileError
    from shrinkvec.adapt import AdaptError
    from shrinkvec.readers import ReadError
    from shrinkvec.reencode import ReencodeError
    from shrinkvec.transforms import TransformError

    try:
        yield
    except (ReadError, LoadError, ProfileError, CatalogError, AdaptError, ReencodeError, TransformError) as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    except OSError as exc:  # a file the user named cannot be read or written
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))


@main.command("migrate")
@DSN_OPTION
@DATA_DIR_OPTION
def migrate_cmd(dsn: str | None, data_dir: Path | None) -> None:
    """Create the extension if missing and upgrade the shrinkvec catalog (safe to run again)."""
    from shrinkvec import catalog

    with _one_line_errors():
        rev = catalog.migrate(_dsn(dsn, data_dir))
    click.echo(f"shrinkvec catalog at revision {rev}")


@main.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--table", required=True, help="Target table (created with its profile when missing).")
@click.option("--schema", default="public", show_default=True, help="Schema of the table.")
@click.option("--column", default="embedding", show_default=True, help="Vector column of a new table.")
@click.option("--profile", "codes", default=None,
              help="Codes of a new table, e.g. 'bits,prefix:128,int8' (default: bits).")
@click.option("--distance", type=click.Choice(["cosine", "l2", "ip"]), default="cosine", show_default=True)
@click.option("--center/--no-center", default=False, show_default=True,
              help="Sign bits of (v - mean of the first 10k vectors) instead of v.")
@click.option("--ids", "ids_path", type=click.Path(path_type=Path), default=None,
              help="For .npy input: a 1-D integer .npy of ids (default: row numbers).")
@click.option("--batch-size", default=10_000, show_default=True, help="Rows per COPY and transaction.")
@click.option("--rejects", "reject_file", type=click.Path(path_type=Path), default=None,
              help="Reject file (default: ./FILE.TABLE.rejects.jsonl).")
@click.option("--restart", is_flag=True, help="Forget an earlier (finished or interrupted) load of this file.")
@click.option("--dims", type=int, default=None,
              help="Width of a new table's vectors (default: the most common width among the first 1000 records; "
                   "records of other widths are rejected).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@DSN_OPTION
@DATA_DIR_OPTION
def load_cmd(file: Path, table: str, schema: str, column: str, codes: str | None, distance: str, center: bool,
             ids_path: Path | None, batch_size: int, reject_file: Path | None, restart: bool, dims: int | None,
             quiet: bool, dsn: str | None, data_dir: Path | None) -> None:
    """Load FILE (.npy, .parquet, .jsonl, .jsonl.gz) into a table, with every code; resumable.

    Exits 1 when nothing valid was loaded (every record rejected, or none in the file)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shrinkvec.load import LoadOptions, load

    opts = LoadOptions(table=table, schema=schema, column=column, profile=codes, distance=distance, center=center,
                       ids_path=ids_path, batch_size=batch_size, reject_file=reject_file, restart=restart, dims=dims)
    with _one_line_errors():
        url = _dsn(dsn, data_dir)
        console = Console(stderr=True)
        columns = [TextColumn("loading"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn()]
        with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
            task = bar.add_task("load", total=None, rate="-")
            t0 = time.perf_counter()

            def progress(records: int, total: int | None, rows: int) -> None:
                rate = rows / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, completed=records, total=total, rate=f"{rate:,.0f}")

            result = load(url, file, opts, progress)
    click.echo(result.summary())
    if result.nothing_loaded:
        why = f"all {result.rejected} records were rejected (see {result.reject_file})" if result.rejected \
            else "the file has no records"
        _fail(f"nothing valid was loaded into {result.table}: {why}")


def _profile(url: str, table: str, schema: str):  # type: ignore[no-untyped-def]
    import psycopg

    from shrinkvec import catalog
    from shrinkvec.catalog import CatalogError

    with psycopg.connect(url) as conn:
        p = catalog.find_profile(conn, table, schema)
    if p is None:
        raise CatalogError(f"table {schema}.{table} has no shrinkvec profile")
    return p


STAGE_OPTIONS = [
    click.option("--table", required=True, help="A profiled table."),
    click.option("--schema", default="public", show_default=True),
    click.option("--k", "k", type=int, default=None, help="Rows to return (default: the profile's)."),
    click.option("--shortlist", type=int, multiple=True,
                 help="Shortlist size of each stage (repeat for a funnel; default: the profile's, then halves)."),
    click.option("--stage", "stages", multiple=True,
                 help="bits | prefix:N | int8 | a code column; repeat for a funnel (default: the first code)."),
    click.option("--funnel", is_flag=True, help="bits, then the prefix, then the full vector."),
]


def _stage_options(f):  # type: ignore[no-untyped-def]
    for opt in reversed(STAGE_OPTIONS):
        f = opt(f)
    return f


def _stages(p, stages: tuple[str, ...], shortlist: tuple[int, ...], funnel: bool):  # type: ignore[no-untyped-def]
    from shrinkvec import query

    if funnel:
        if stages:
            raise click.UsageError("--funnel and --stage are exclusive")
        stages = tuple(c.column for c in sorted(p.codes, key=lambda c: ("bits", "int8", "prefix").index(c.kind))
                       if c.kind in ("bits", "prefix"))
        if len(stages) < 2:
            from shrinkvec.profile import ProfileError

            raise ProfileError(f"a funnel needs bits and prefix codes; profile {p.name} has "
                               + ",".join(c.spec() for c in p.codes))
    return query.stages_for(p, stages, shortlist)


def _plan(p, stages: tuple[str, ...], shortlist: tuple[int, ...], funnel: bool, k: int | None):  # type: ignore[no-untyped-def]
    """The search the options ask for: --stage / --funnel, else the profile's tuned configuration."""
    from shrinkvec import query

    if stages or funnel:
        return query.Plan({}, tuple(_stages(p, stages, shortlist, funnel)), k or p.k)
    return query.plan(p, k=k, shortlists=shortlist)


@main.command("adapt")
@click.option("--table", required=True, help="A profiled table.")
@click.option("--schema", default="public", show_default=True, help="Schema of the table.")
@click.option("--column", default=None, help="Vector column (when the table has profiles on several).")
@click.option("--method", type=click.Choice(["center", "pca", "adaptor"]), required=True,
              help="center: per-dim mean/median; pca: rotation by variance; adaptor: Matryoshka-Adaptor.")
@click.option("--sample", default=100_000, show_default=True, help="Vectors sampled from the table to fit on.")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="adaptor: qrels file (query_id doc_id [relevance] lines) for the supervised ranking loss.")
@click.option("--queries", type=click.Path(path_type=Path), default=None,
              help="With --labels: .npy of query vectors that query ids index (default: query ids are table ids).")
@click.option("--statistic", type=click.Choice(["mean", "median"]), default="mean", show_default=True,
              help="center: the per-dimension threshold.")
@click.option("--hidden", default=None, type=int, help="adaptor: hidden units of the residual MLP (default 256).")
@click.option("--steps", default=None, type=int, help="adaptor: at most this many training steps (default 1500).")
@click.option("--rank-weight", default=None, type=float,
              help="adaptor with --labels: weight of the ranking loss (default 0.2; higher fits the labels more).")
@click.option("--trainer", type=click.Choice(["numpy", "torch"]), default="numpy", show_default=True,
              help="adaptor: torch needs the optional extra shrinkvec[adapt-torch].")
@click.option("--seed", default=0, show_default=True, help="Seed of the sample and of training.")
@click.option("--batch-size", default=2000, show_default=True, help="Rows re-encoded per transaction.")
@click.option("--restart", is_flag=True, help="Discard an unfinished re-encode instead of resuming it.")
@click.option("--vacuum", type=click.Choice(["analyze", "full", "none"]), default="analyze", show_default=True,
              help="After the switch: VACUUM (ANALYZE) frees the dead row versions the re-encode left; full also "
                   "rewrites the table to drop the old codes' bytes (ACCESS EXCLUSIVE during the rewrite).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@DSN_OPTION
@DATA_DIR_OPTION
def adapt_cmd(table: str, schema: str, column: str | None, method: str, sample: int, labels: Path | None,
              queries: Path | None, statistic: str, hidden: int | None, steps: int | None, rank_weight: float | None,
              trainer: str, seed: int, batch_size: int, restart: bool, vacuum: str, quiet: bool, dsn: str | None,
              data_dir: Path | None) -> None:
    """Fit a transform on a sample of TABLE, store it, re-encode the codes and switch the profile to it.

    Rerun the same command to resume an interrupted run (--restart discards it instead).
    """
    from shrinkvec.adapt_cli import run_adapt

    with _one_line_errors():
        run_adapt(_dsn(dsn, data_dir), table=table, schema=schema, column=column, method=method, sample=sample,
                  labels=labels, queries=queries, statistic=statistic, hidden=hidden, steps=steps,
                  rank_weight=rank_weight, trainer=trainer,
                  seed=seed, batch_size=batch_size, restart=restart, vacuum=vacuum, quiet=quiet)


@main.command("sql")
@_stage_options
@DSN_OPTION
@DATA_DIR_OPTION
def sql_cmd(table: str, schema: str, k: int | None, shortlist: tuple[int, ...], stages: tuple[str, ...],
            funnel: bool, dsn: str | None, data_dir: Path | None) -> None:
    """Print the two-stage (or funnel) search SQL of a profiled table, with $1-style parameters."""
    import psycopg

    from shrinkvec import query

    with _one_line_errors():
        url = _dsn(dsn, data_dir)
        p = _profile(url, table, schema)
        pl = _plan(p, stages, shortlist, funnel, k)
        q = query.build(p, pl.stages, dollar=True, k=pl.k)
        with psycopg.connect(url) as conn:
            click.echo(query.pretty(conn, q, p, pl.stages, pl.k, pl.settings))


@main.command("search")
@_stage_options
@click.option("--query-file", type=click.Path(path_type=Path), required=True,
              help=".npy of query vectors (1-D for one query, 2-D for several).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per query (the default output too).")
@DSN_OPTION
@DATA_DIR_OPTION
def search_cmd(table: str, schema: str, k: int | None, shortlist: tuple[int, ...], stages: tuple[str, ...],
               funnel: bool, query_file: Path, as_json: bool, dsn: str | None, data_dir: Path | None) -> None:
    """Run the two-stage search for every query vector: {"query": i, "ids": [...], "distances": [...]}."""
    import json

    import numpy as np
    import psycopg

    from shrinkvec import query
    from shrinkvec.readers import ReadError

    with _one_line_errors():
        if not query_file.is_file():
            raise ReadError(f"no such file: {query_file}")
        try:
            qs = np.load(query_file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ReadError(f"{query_file}: not a readable .npy file ({exc})") from None
        url = _dsn(dsn, data_dir)
        p = _profile(url, table, schema)
        pl = _plan(p, stages, shortlist, funnel, k)
        with psycopg.connect(url, autocommit=True) as conn:
            results = query.search(conn, p, pl, qs)
        for i, (ids, dists) in enumerate(results):
            click.echo(json.dumps({"query": i, "ids": ids, "distances": dists}))


# ---- eval and tune (issue 6) ----------------------------------------------------------------------


@contextlib.contextmanager
def _eval_errors() -> Iterator[None]:
    """One-line messages for the errors of eval/tune input (on top of _one_line_errors)."""
    from shrinkvec.evaluate import EvalError
    from shrinkvec.metrics import QrelsError

    with _one_line_errors():
        try:
            yield
        except (EvalError, QrelsError) as exc:
            _fail(str(exc))


EVAL_OPTIONS = [
    click.option("--table", required=True, help="The table to evaluate (with a shrinkvec profile for code stages)."),
    click.option("--schema", default="public", show_default=True),
    click.option("--column", default=None, help="Vector column (default: the profile's, else 'embedding')."),
    click.option("--queries", "queries_path", type=click.Path(path_type=Path), required=True,
                 help=".npy of query vectors, one a row."),
    click.option("--k", "k", type=int, default=10, show_default=True, help="Recall@k / top-k size."),
    click.option("--configs", "config_specs", multiple=True,
                 help="Configurations (repeat, or separate with spaces): exact, bits@100, prefix:128@200, int8@50, "
                      "bits@400>prefix:128@100, index@100, index:lists=100:probes=8:bits=192@200. "
                      "Default: a grid over the profile's codes and the shrinkvec index."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
]


def _eval_options(f):  # type: ignore[no-untyped-def]
    for opt in reversed(EVAL_OPTIONS):
        f = opt(f)
    return f


@contextlib.contextmanager
def _evaluator(url: str, table: str, schema: str, column: str | None, queries_path: Path, k: int,
               qrels_path: Path | None, quiet: bool):  # type: ignore[no-untyped-def]
    """An Evaluator on a fresh connection, with a rich progress bar on stderr."""
    import psycopg
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shrinkvec import evaluate, metrics

    qs = evaluate.read_queries(queries_path)
    qrels = metrics.read_qrels(qrels_path, len(qs)) if qrels_path is not None else None
    columns = [TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with psycopg.connect(url, autocommit=True) as conn, \
            Progress(*columns, console=Console(stderr=True), disable=quiet, transient=True) as bar:
        tasks: dict[str, object] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what[:40], total=total)
            bar.update(tasks[what], completed=done, total=total)  # type: ignore[arg-type]

        profile = evaluate.resolve_profile(conn, table, schema, column)
        with evaluate.Evaluator(conn, profile, qs, k, qrels, progress) as ev:
            yield conn, ev


def _candidates(ev, config_specs: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from shrinkvec import configs

    cands = configs.parse_many(config_specs) if config_specs else configs.default_grid(ev.profile, ev.k, ev.rows)
    for c in cands:
        configs.check(c, ev.profile, ev.k, ev.rows)
    return cands


def _results_table(title: str, results, k: int, qrels: bool):  # type: ignore[no-untyped-def]
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


@main.command("eval")
@_eval_options
@click.option("--qrels", "qrels_path", type=click.Path(path_type=Path), default=None,
              help="Relevance labels, one 'QUERY_ROW DOC_ID [GRADE]' a line (README): adds nDCG@k and MRR@k.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="Pareto plot PNG (default: ./shrinkvec-eval-TABLE.png); its directory must exist.")
@click.option("--no-plot", is_flag=True, help="Do not write the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
@DSN_OPTION
@DATA_DIR_OPTION
def eval_cmd(table: str, schema: str, column: str | None, queries_path: Path, k: int, config_specs: tuple[str, ...],
             quiet: bool, qrels_path: Path | None, plot_path: Path | None, no_plot: bool, as_json: bool,
             dsn: str | None, data_dir: Path | None) -> None:
    """Recall@k (mean, p5), p50/p95 latency, bytes/row, index size and build time of each configuration,
    against the exact top-k computed in numpy."""
    import json

    from rich.console import Console

    from shrinkvec import evaluate

    out = plot_path or Path(f"shrinkvec-eval-{table}.png")
    if not no_plot and not out.absolute().parent.is_dir():  # before the measurements, not after them
        _fail(f"cannot write the plot {out}: directory {out.absolute().parent} does not exist")
    with _eval_errors():
        url = _dsn(dsn, data_dir)
        with _evaluator(url, table, schema, column, queries_path, k, qrels_path, quiet) as (_, ev):
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


@main.command("tune")
@_eval_options
@click.option("--target-recall", type=float, required=True, help="Recall@k to reach, e.g. 0.95.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the selection / held-out split.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"stage", "shortlist", "recall" (held-out), "ms", ...} as JSON.')
@click.option("--apply", "do_apply", is_flag=True, help="Store the choice as the profile's default search.")
@DSN_OPTION
@DATA_DIR_OPTION
def tune_cmd(table: str, schema: str, column: str | None, queries_path: Path, k: int, config_specs: tuple[str, ...],
             quiet: bool, target_recall: float, seed: int, as_json: bool, do_apply: bool, dsn: str | None,
             data_dir: Path | None) -> None:
    """The cheapest configuration (p50 latency, then bytes/row) whose recall@k on half the queries reaches
    the target, with its recall measured again on the other, held-out half."""
    import json

    from rich.console import Console

    from shrinkvec import tune

    with _eval_errors():
        if not 0 < target_recall <= 1:
            raise click.BadParameter(f"must be in (0, 1], got {target_recall}", param_hint="--target-recall")
        url = _dsn(dsn, data_dir)
        with _evaluator(url, table, schema, column, queries_path, k, None, quiet) as (conn, ev):
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


if __name__ == "__main__":  # pragma: no cover
    main()
