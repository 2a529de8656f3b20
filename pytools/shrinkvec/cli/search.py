"""The search commands: sql (print a profiled table's search SQL) and search (run it for query vectors),
with the stage options they share and the plan those options ask for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shrinkvec.cli.common import DATA_DIR_OPTION, DSN_OPTION, _dsn, _one_line_errors, _profile

if TYPE_CHECKING:
    from shrinkvec.profile import Profile
    from shrinkvec.sql.query import Plan, Stage

F = TypeVar("F", bound=Callable[..., Any])

STAGE_OPTIONS = [
    click.option("--table", required=True, help="A table: profiled, or any pgvector table (searched through its index)."),
    click.option("--schema", default="public", show_default=True),
    click.option("--column", default=None, help="Vector column (default: the profile's, else the table's only one)."),
    click.option("--id-column", default=None, help="Column that identifies rows (default: the profile's, else the "
                                                   "primary key)."),
    click.option("--k", "k", type=click.IntRange(min=1), default=None, help="Rows to return (default: the profile's)."),
    click.option("--shortlist", type=int, multiple=True,
                 help="Shortlist size of each stage (repeat for a funnel; default: the profile's, then halves)."),
    click.option("--stage", "stages", multiple=True,
                 help="bits | prefix:N | int8 | a code column; repeat for a funnel (default: the first code)."),
    click.option("--funnel", is_flag=True, help="bits, then the prefix, then the full vector."),
]


def _stage_options(f: F) -> F:
    """Add STAGE_OPTIONS to a command."""
    for opt in reversed(STAGE_OPTIONS):
        f = opt(f)
    return f


def _stages(p: Profile, stages: tuple[str, ...], shortlist: tuple[int, ...], funnel: bool) -> list[Stage]:
    """The stages of --stage / --funnel and --shortlist."""
    from shrinkvec.sql import query
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


def _plan(p: Profile, stages: tuple[str, ...], shortlist: tuple[int, ...], funnel: bool, k: int | None) -> Plan:
    """The search the options ask for: --stage / --funnel, else the profile's tuned configuration."""
    from shrinkvec.sql import query
    if stages or funnel:
        return query.Plan({}, tuple(_stages(p, stages, shortlist, funnel)), k or p.k)
    return query.plan(p, k=k, shortlists=shortlist)


@click.command("sql")
@_stage_options
@DSN_OPTION
@DATA_DIR_OPTION
def sql_cmd(table: str, schema: str, column: str | None, id_column: str | None, k: int | None,
            shortlist: tuple[int, ...], stages: tuple[str, ...],
            funnel: bool, dsn: str | None, data_dir: Path | None) -> None:
    """Print the two-stage (or funnel) search SQL of a profiled table, with $1-style parameters."""
    from shrinkvec.sql import connection, query
    with _one_line_errors():
        url = _dsn(dsn, data_dir)
        p = _profile(url, table, schema, column, id_column)
        pl = _plan(p, stages, shortlist, funnel, k)
        q = query.build(p, pl.stages, dollar=True, k=pl.k)
        with connection.connect(url) as conn:
            click.echo(query.pretty(conn, q, p, pl.stages, pl.k, pl.settings))


@click.command("search")
@_stage_options
@click.option("--queries", "queries_path", type=click.Path(path_type=Path), default=None,
              help=".npy of query vectors (1-D for one query, 2-D for several); for a multi-vector (maxsim) table "
                   "an .npz of query tokens: embeddings (T, dims) and offsets (n+1).  [required]")
@click.option("--query-file", type=click.Path(path_type=Path), default=None, hidden=True,
              help="Deprecated name of --queries.")
@DSN_OPTION
@DATA_DIR_OPTION
def search_cmd(table: str, schema: str, column: str | None, id_column: str | None, k: int | None,
               shortlist: tuple[int, ...], stages: tuple[str, ...],
               funnel: bool, queries_path: Path | None, query_file: Path | None, dsn: str | None,
               data_dir: Path | None) -> None:
    """Run the two-stage search for every query vector: {"query": i, "ids": [...], "distances": [...]}."""
    import json

    import numpy as np

    from shrinkvec.load.readers import ReadError
    from shrinkvec.sql import connection, query

    if query_file is not None:
        if queries_path is not None:
            raise click.UsageError("--queries and --query-file (its deprecated name) are exclusive")
        click.echo("warning: --query-file is deprecated, use --queries", err=True)
        queries_path = query_file
    if queries_path is None:
        raise click.MissingParameter(param_hint="'--queries'", param_type="option")
    with _one_line_errors():
        if not queries_path.is_file():
            raise ReadError(f"no such file: {queries_path}")
        url = _dsn(dsn, data_dir)
        p = _profile(url, table, schema, column, id_column)
        qs: Any
        if p.multi:
            from shrinkvec.load.readers.multi import read_npz_docs

            qs = read_npz_docs(queries_path)
        else:
            try:
                qs = np.load(queries_path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise ReadError(f"{queries_path}: not a readable .npy file ({exc})") from None
        pl = _plan(p, stages, shortlist, funnel, k)
        with connection.connect(url, autocommit=True) as conn:
            results = query.search(conn, p, pl, qs)
        for i, (ids, dists) in enumerate(results):
            click.echo(json.dumps({"query": i, "ids": ids, "distances": dists}))
