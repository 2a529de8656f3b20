"""The `shrinkvec adapt` command's work: options to AdaptOptions, progress bars, the summary line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from shrinkvec.adapt import AdaptError, AdaptOptions, Hooks, adapt
from shrinkvec.adaptor import AdaptorConfig


def run_adapt(dsn: str, *, table: str, schema: str, column: str | None, method: str, sample: int,
              labels: Path | None, queries: Path | None, statistic: str, hidden: int | None, steps: int | None,
              rank_weight: float | None, trainer: str, seed: int, batch_size: int, restart: bool, vacuum: str,
              quiet: bool) -> None:
    """Run adapt with rich progress on stderr and print its summary."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = AdaptorConfig()
    if hidden is not None:
        cfg = replace(cfg, hidden=hidden)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if rank_weight is not None:
        cfg = replace(cfg, w_rank=rank_weight)
    if trainer == "torch":
        cfg = replace(cfg, trainer="torch")
    if queries is not None and labels is None:
        raise AdaptError("--queries goes with --labels")
    opts = AdaptOptions(table=table, schema=schema, column=column, method=method, sample=sample,  # type: ignore[arg-type]
                        labels=labels, queries=queries, statistic=statistic, batch_size=batch_size,  # type: ignore[arg-type]
                        restart=restart, seed=seed, vacuum=vacuum, adaptor=cfg)  # type: ignore[arg-type]
    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=quiet) as bar:
        tasks: dict[str, int] = {}

        def stage(msg: str) -> None:
            if not quiet:
                console.print(msg)

        def train(step: int, total: int, loss: float) -> None:
            if "train" not in tasks:
                tasks["train"] = bar.add_task("training", total=total, info="")
            bar.update(tasks["train"], completed=step, info=f"held-out loss {loss:.4f}")

        def rows(done: int, total: int) -> None:
            if "rows" not in tasks:
                tasks["rows"] = bar.add_task("re-encoding", total=total, info="")
            bar.update(tasks["rows"], completed=done)

        result = adapt(dsn, opts, Hooks(stage=stage, train=train, rows=rows))
    click.echo(result.summary())
