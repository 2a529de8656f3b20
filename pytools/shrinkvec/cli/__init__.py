"""The `shrinkvec` command line: the `main` group and its commands, one module per command group
(server, data, search, adapt, evaluate; common holds what they share)."""

from __future__ import annotations

import click

from shrinkvec.cli.adapt import adapt_cmd
from shrinkvec.cli.data import adopt_cmd, demo_cmd, load_cmd, migrate_cmd
from shrinkvec.cli.evaluate import eval_cmd, tune_cmd
from shrinkvec.cli.search import search_cmd, sql_cmd
from shrinkvec.cli.server import server


@click.group()
@click.version_option(package_name="shrinkvec")
def main() -> None:
    """shrinkvec: compact codes and two-stage search for pgvector tables."""


for _command in (server, demo_cmd, migrate_cmd, load_cmd, adopt_cmd, adapt_cmd, sql_cmd, search_cmd, eval_cmd, tune_cmd):
    main.add_command(_command)

__all__ = ["main"]
