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
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Also listen on localhost:PORT (TCP, password; remembered for later starts); 0: the Unix socket "
                   "only. Default: as the last start chose.")
def server_start(data_dir: Path | None, port: int | None) -> None:
    """Start the server (a running one is left alone, or restarted to listen as --port asks) and print its
    DSN (the Unix socket's; `shrinkvec server url` prints the TCP URL)."""
    with _one_line_errors():
        info = srv.start(data_dir, port)
    click.echo(info.dsn())
    if info.tcp is not None:
        click.echo(f"also on localhost:{info.tcp.port} (password: shrinkvec server url)", err=True)


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
    tcp = f", TCP localhost:{info.tcp.port}" if info.tcp is not None else ""
    click.echo(f"running: pid {info.pid}, data dir {info.data_dir}, socket {info.socket_dir}, port {info.port}{tcp}")
    click.echo(info.dsn())


@server.command("url")
@DATA_DIR_OPTION
@click.option("--dbname", default="postgres", show_default=True, help="Database name in the DSN.")
@click.option("--driver", default=None, metavar="NAME",
              help="SQLAlchemy driver in the scheme, e.g. psycopg (postgresql+psycopg://), psycopg2, asyncpg.")
@click.option("--socket", "use_socket", is_flag=True, help="The Unix socket's DSN even when the server is on TCP.")
def server_url(data_dir: Path | None, dbname: str, driver: str | None, use_socket: bool) -> None:
    """Print the URL of the running server (for psql, psycopg, SQLAlchemy, DATABASE_URL, the frameworks): on
    TCP (started with --port) localhost with the password, else the Unix socket."""
    if driver is not None and not driver.replace("_", "").isalnum():
        _fail(f"invalid driver name {driver!r}")
    info = _running(data_dir)
    if use_socket:
        info = srv.ServerInfo(info.data_dir, info.pid, info.socket_dir, info.port, info.user)
    click.echo(info.url(dbname, driver))


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
