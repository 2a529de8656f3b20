"""The `shrinkvec` command line."""

from __future__ import annotations

import shlex
import sys
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
    """Say whether the server runs; exit 3 when it does not (like pg_ctl status)."""
    try:
        info = srv.status(data_dir)
    except srv.ServerError as exc:
        _fail(str(exc))
    if info is None:
        click.echo(f"not running (data dir {data_dir or srv.default_data_dir()})")
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


if __name__ == "__main__":  # pragma: no cover
    main()
