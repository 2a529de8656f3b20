"""The `shrinkvec server` group: start, stop, status, url, env and pg-config of the embedded server."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from shrinkvec import server as srv
from shrinkvec.cli.common import DATA_DIR_OPTION, _fail, _one_line_errors


def _running(data_dir: Path | None) -> srv.ServerInfo:
    """The running server's details, or a one-line error saying how to start it."""
    with _one_line_errors():
        info = srv.status(data_dir)
    if info is None:
        _fail("the server is not running: run 'shrinkvec server start'")
    return info


@click.group()
def server() -> None:
    """The embedded PostgreSQL 18 + pgvector server."""


@server.command("start")
@DATA_DIR_OPTION
def server_start(data_dir: Path | None) -> None:
    """Start the server (a running one is left alone) and print its DSN."""
    with _one_line_errors():
        click.echo(srv.start(data_dir).dsn())


@server.command("stop")
@DATA_DIR_OPTION
def server_stop(data_dir: Path | None) -> None:
    """Stop the server if it runs."""
    with _one_line_errors():
        click.echo("stopped" if srv.stop(data_dir) else "not running")


@server.command("status")
@DATA_DIR_OPTION
def server_status(data_dir: Path | None) -> None:
    """Say whether the server accepts connections; exit 3 when it does not (like pg_ctl status)."""
    with _one_line_errors():
        state, _ = srv.check(data_dir)
        info = srv.status(data_dir) if state is srv.State.UP else None
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
    click.echo(_running(data_dir).dsn(dbname))


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
        env = _running(data_dir).libpq_env()
    click.echo(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))


@server.command("pg-config")
def server_pg_config() -> None:
    """Print the path of the embedded installation's pg_config."""
    with _one_line_errors():
        click.echo(srv.pg_config())
