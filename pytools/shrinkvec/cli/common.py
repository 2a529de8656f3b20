"""What the commands share: the --dsn and --data-dir options, one-line errors, the profile lookup and the
progress bar."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from shrinkvec import server as srv

if TYPE_CHECKING:
    from rich.progress import Progress

    from shrinkvec.profile import Profile

DATA_DIR_OPTION = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="SHRINKVEC_DATA_DIR",
    help="Data directory of the embedded server (default: under the user's data dir).",
    show_envvar=True,
)

DSN_OPTION = click.option(
    "--dsn", envvar="DATABASE_URL", default=None, show_envvar=True,
    help="Server to use (default: the embedded one, started if needed).",
)


def _fail(message: str) -> NoReturn:
    """Print a one-line error and exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


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

    from shrinkvec.errors import ShrinkvecError

    try:
        yield
    except ShrinkvecError as exc:  # every error a user can cause and fix; anything else is a bug
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    except OSError as exc:  # a file the user named cannot be read or written
        _fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))


def _profile(url: str, table: str, schema: str, column: str | None = None, id_column: str | None = None) -> Profile:
    """The shrinkvec profile of schema.table (its id column replaced by `id_column` when given), its column
    types checked (profile_check.ColumnTypeError); for a table without one, a profile without codes found
    from the table (tables.table_profile), whose search is the plain ORDER BY that its index answers."""
    from dataclasses import replace

    from shrinkvec.sql import catalog, connection, profile_check, tables

    with connection.connect(url) as conn:
        p = catalog.find_profile(conn, table, schema, column) if catalog.has_catalog(conn) else None
        if p is None:
            p = tables.table_profile(conn, table, schema, column, id_column)
        elif id_column is not None:
            p = replace(p, id_column=id_column)
        return profile_check.check_profile(conn, p)  # refuses columns of other types than the profile's


def progress(quiet: bool, *, transient: bool = False) -> Progress:
    """The progress bar of load, adapt, eval and tune, on stderr (stdout keeps the results):
    description, bar, done/total, the task's `info` field, elapsed time. Every task must have an `info`
    field (`add_task(..., info="")`); print messages through its `.console` to keep them above the bar."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn()]
    return Progress(*columns, console=Console(stderr=True), disable=quiet, transient=transient)
