"""The adapt command: options to AdaptOptions, fit and re-encode with progress bars, the summary line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from shrinkvec.cli.common import DATA_DIR_OPTION, DSN_OPTION, _dsn, _one_line_errors, progress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from shrinkvec.transforms.adapt import Hooks, Method
    from shrinkvec.transforms.adaptor import AdaptorConfig


@click.command("adapt")
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
def adapt_cmd(table: str, schema: str, column: str | None, method: Method, sample: int, labels: Path | None,
              queries: Path | None, statistic: Literal["mean", "median"], hidden: int | None, steps: int | None,
              rank_weight: float | None, trainer: str, seed: int, batch_size: int, restart: bool,
              vacuum: Literal["analyze", "full", "none"], quiet: bool, dsn: str | None, data_dir: Path | None) -> None:
    """Fit a transform on a sample of TABLE, store it, re-encode the codes and switch the profile to it.

    Rerun the same command to resume an interrupted run (--restart discards it instead).
    """
    # the click.Choice types above guarantee the Literal values of method, statistic and vacuum
    with _one_line_errors():
        run_adapt(_dsn(dsn, data_dir), table=table, schema=schema, column=column, method=method, sample=sample,
                  labels=labels, queries=queries, statistic=statistic, hidden=hidden, steps=steps,
                  rank_weight=rank_weight, trainer=trainer,
                  seed=seed, batch_size=batch_size, restart=restart, vacuum=vacuum, quiet=quiet)


def run_adapt(dsn: str, *, table: str, schema: str, column: str | None, method: Method, sample: int,
              labels: Path | None, queries: Path | None, statistic: Literal["mean", "median"], hidden: int | None,
              steps: int | None, rank_weight: float | None, trainer: str, seed: int, batch_size: int, restart: bool,
              vacuum: Literal["analyze", "full", "none"], quiet: bool) -> None:
    """Run adapt with rich progress on stderr and print its summary."""
    from shrinkvec.transforms.adapt import AdaptError, AdaptOptions, adapt

    cfg = _adaptor_config(hidden, steps, rank_weight, trainer)
    if queries is not None and labels is None:
        raise AdaptError("--queries goes with --labels")
    opts = AdaptOptions(table=table, schema=schema, column=column, method=method, sample=sample,
                        labels=labels, queries=queries, statistic=statistic, batch_size=batch_size,
                        restart=restart, seed=seed, vacuum=vacuum, adaptor=cfg)
    with progress(quiet) as bar:
        result = adapt(dsn, opts, _hooks(bar, quiet))
    click.echo(result.summary())


def _adaptor_config(hidden: int | None, steps: int | None, rank_weight: float | None, trainer: str) -> AdaptorConfig:
    """The adaptor's defaults with the options given on the command line."""
    from dataclasses import replace

    from shrinkvec.transforms.adaptor import DEFAULTS

    cfg = DEFAULTS
    if hidden is not None:
        cfg = replace(cfg, hidden=hidden)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if rank_weight is not None:
        cfg = replace(cfg, w_rank=rank_weight)
    if trainer == "torch":
        cfg = replace(cfg, trainer="torch")
    return cfg


def _hooks(bar: Progress, quiet: bool) -> Hooks:
    """adapt's hooks: stage messages on the console, a bar for the training and one for the re-encoding."""
    from shrinkvec.transforms.adapt import Hooks

    tasks: dict[str, TaskID] = {}

    def stage(msg: str) -> None:
        if not quiet:
            bar.console.print(msg)

    def train(step: int, total: int, loss: float) -> None:
        if "train" not in tasks:
            tasks["train"] = bar.add_task("training", total=total, info="")
        bar.update(tasks["train"], completed=step, info=f"held-out loss {loss:.4f}")

    def rows(done: int, total: int) -> None:
        if "rows" not in tasks:
            tasks["rows"] = bar.add_task("re-encoding", total=total, info="")
        bar.update(tasks["rows"], completed=done)

    return Hooks(stage=stage, train=train, rows=rows)
