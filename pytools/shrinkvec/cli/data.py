"""The data commands: demo, migrate (the catalog) and load (files into profiled tables)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from shrinkvec import server as srv
from shrinkvec.cli.common import DATA_DIR_OPTION, DSN_OPTION, _dsn, _fail, _one_line_errors, progress


@click.command("demo")
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


@click.command("migrate")
@DSN_OPTION
@DATA_DIR_OPTION
def migrate_cmd(dsn: str | None, data_dir: Path | None) -> None:
    """Create the extension if missing and upgrade the shrinkvec catalog (safe to run again)."""
    from shrinkvec.sql import catalog
    with _one_line_errors():
        rev = catalog.migrate(_dsn(dsn, data_dir))
    click.echo(f"shrinkvec catalog at revision {rev}")


@click.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--table", required=True, help="Target table (created with its profile when missing).")
@click.option("--schema", default="public", show_default=True, help="Schema of the table.")
@click.option("--column", default="embedding", show_default=True, help="Vector column of a new table.")
@click.option("--profile", "codes", default=None,
              help="Codes of a new table, e.g. 'bits,prefix:128,int8' (default: bits).")
@click.option("--distance", type=click.Choice(["cosine", "l2", "ip", "maxsim"]), default="cosine", show_default=True,
              help="maxsim (late interaction) for multi-vector documents: taken by default for .npz input and "
                   "jsonl/parquet records with \"embeddings\".")
@click.option("--center/--no-center", default=False, show_default=True,
              help="Sign bits of (v - mean of the first 10k vectors) instead of v.")
@click.option("--ids", "ids_path", type=click.Path(path_type=Path), default=None,
              help="For .npy input: a 1-D integer .npy of ids (default: row numbers).")
@click.option("--batch-size", default=10_000, show_default=True, help="Rows per COPY and transaction.")
@click.option("--rejects", "reject_file", type=click.Path(path_type=Path), default=None,
              help="Reject file (default: FILE.TABLE.rejects.jsonl next to FILE).")
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
    """Load FILE (.npy, .parquet, .jsonl, .jsonl.gz; multi-vector documents from .npz, or jsonl/parquet
    records with "embeddings") into a table, with every code; resumable.

    Exits 1 when nothing valid was loaded (every record rejected, or none in the file)."""
    from shrinkvec.load.loader import LoadOptions, load

    opts = LoadOptions(table=table, schema=schema, column=column, profile=codes, distance=distance, center=center,
                       ids_path=ids_path, batch_size=batch_size, reject_file=reject_file, restart=restart, dims=dims)
    with _one_line_errors():
        url = _dsn(dsn, data_dir)
        with progress(quiet) as bar:
            task = bar.add_task("loading", total=None, info="- rows/s")
            t0 = time.perf_counter()

            def report(records: int, total: int | None, rows: int) -> None:
                rate = rows / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, completed=records, total=total, info=f"{rate:,.0f} rows/s")

            result = load(url, file, opts, report)
    click.echo(result.summary())
    if result.nothing_loaded:
        why = f"all {result.rejected} records were rejected (see {result.reject_file})" if result.rejected \
            else "the file has no records"
        _fail(f"nothing valid was loaded into {result.table}: {why}")


@click.command("adopt")
@click.option("--table", required=True, help="A pgvector table the tools did not create (LangChain, LlamaIndex, ...).")
@click.option("--schema", default="public", show_default=True)
@click.option("--column", default=None, help="Vector column (default: the table's only vector or halfvec column).")
@click.option("--id-column", default=None,
              help="Column that identifies rows (default: the primary key: integer, uuid, text or varchar).")
@click.option("--distance", type=click.Choice(["cosine", "l2", "ip"]), default=None,
              help="Default: that of an index on the column, else cosine.")
@click.option("--create-index", is_flag=True,
              help="Also CREATE INDEX CONCURRENTLY a shrinkvec index on the column when it has none.")
@DSN_OPTION
@DATA_DIR_OPTION
def adopt_cmd(table: str, schema: str, column: str | None, id_column: str | None, distance: str | None,
              create_index: bool, dsn: str | None, data_dir: Path | None) -> None:
    """Record a profile (no code columns: the index does the work) for an existing pgvector table, so that
    eval, tune --apply, sql and search know its id column, vector column and distance."""
    from shrinkvec.sql import connection, tables

    with _one_line_errors():
        url = _dsn(dsn, data_dir)
        with connection.connect(url, autocommit=True) as conn:
            p = tables.table_profile(conn, table, schema, column, id_column, distance)
            name = tables.adopt(conn, p)
            click.echo(f"profile {name}: vector column {p.vector_column} ({p.vector_type}({p.dims}), {p.distance}), "
                       f"id column {p.id_column}")
            have = tables.shrinkvec_indexes(conn, p)
            if have:
                click.echo(f"searched through its shrinkvec index {', '.join(have)}")
            elif create_index:
                conn.execute(tables.create_index_sql(p))
                click.echo(f"created the shrinkvec index {', '.join(tables.shrinkvec_indexes(conn, p))}")
            else:
                click.echo(f"it has no shrinkvec index yet: {tables.create_index_sql(p).as_string(conn)} "
                           "(or run again with --create-index)")
