"""The embedded server's command line: start is idempotent, url works for psql and psycopg, stop stops."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest

from conftest import one_row
from shrinkvec import server


def shrinkvec(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `shrinkvec` command line."""
    return subprocess.run([sys.executable, "-m", "shrinkvec.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.pg
def test_server_lifecycle(server_root: Path) -> None:
    data_dir = server_root / "pgdata"
    try:
        status = shrinkvec("server", "status", "--data-dir", str(data_dir))
        assert status.returncode == 3 and "not running" in status.stdout

        first = shrinkvec("server", "start", "--data-dir", str(data_dir))
        assert first.returncode == 0, first.stderr
        dsn = first.stdout.strip()
        again = shrinkvec("server", "start", "--data-dir", str(data_dir))
        assert again.returncode == 0 and again.stdout.strip() == dsn  # idempotent

        url = shrinkvec("server", "url", "--data-dir", str(data_dir)).stdout.strip()
        assert url == dsn
        with psycopg.connect(url) as conn:
            assert one_row(conn.execute("SELECT current_setting('server_version_num')::int"))[0] >= 150000
            assert one_row(conn.execute("SELECT count(*) FROM pg_available_extensions "
                                "WHERE name IN ('vector', 'shrinkvec')"))[0] == 2
        psql = server.bin_dir() / "psql"
        out = subprocess.run([str(psql), url, "-XAtc", "SELECT 40 + 2"], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "42", out.stderr

        env = shrinkvec("server", "env", "--data-dir", str(data_dir)).stdout
        assert "PGHOST=" in env and "PGPORT=" in env

        assert shrinkvec("server", "status", "--data-dir", str(data_dir)).returncode == 0
        stop = shrinkvec("server", "stop", "--data-dir", str(data_dir))
        assert stop.returncode == 0 and stop.stdout.strip() == "stopped"
        assert shrinkvec("server", "status", "--data-dir", str(data_dir)).returncode == 3
        assert shrinkvec("server", "stop", "--data-dir", str(data_dir)).stdout.strip() == "not running"
        url_down = shrinkvec("server", "url", "--data-dir", str(data_dir))
        assert url_down.returncode == 1 and url_down.stderr.startswith("error: the server is not running")
        assert "Traceback" not in url_down.stderr
    finally:
        server.stop(data_dir)


# Starts the server as a descendant of a child subreaper that never reaps: when the postmaster is killed,
# it stays a zombie with its pid, as under a container init that does not reap orphans.
NON_REAPING_PARENT = """
import ctypes, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
r = subprocess.run([sys.executable, "-m", "shrinkvec.cli", "server", "start", "--data-dir", sys.argv[1]],
                   capture_output=True, text=True)
print(r.returncode, r.stdout.strip() or r.stderr.strip(), flush=True)
sys.stdin.read()
"""


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _wait_for(pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.pg
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_CHILD_SUBREAPER is Linux only")
def test_kill_9_of_the_postmaster_left_as_a_zombie_then_start_really_starts(server_root: Path) -> None:
    data_dir = server_root / "pgdata"
    parent = subprocess.Popen([sys.executable, "-c", NON_REAPING_PARENT, str(data_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        rc, dsn = parent.stdout.readline().split(" ", 1)
        assert rc == "0", dsn
        old_pid = _postmaster_pid(data_dir)
        psycopg.connect(dsn.strip()).close()

        psutil.Process(old_pid).kill()  # kill -9 of the postmaster
        assert _wait_for(lambda: psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE), "no zombie: test is void"
        assert _postmaster_pid(data_dir) == old_pid  # stale, still there

        down = shrinkvec("server", "status", "--data-dir", str(data_dir))
        assert down.returncode == 3 and down.stdout.startswith("not running"), down.stdout
        assert shrinkvec("server", "url", "--data-dir", str(data_dir)).returncode == 1

        start = shrinkvec("server", "start", "--data-dir", str(data_dir))
        assert start.returncode == 0, start.stderr
        with psycopg.connect(start.stdout.strip()) as conn:  # it really answers
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert _postmaster_pid(data_dir) != old_pid
        assert psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE  # the zombie is still there
        up = shrinkvec("server", "status", "--data-dir", str(data_dir))
        assert up.returncode == 0 and up.stdout.startswith("running: pid "), up.stdout
        assert shrinkvec("server", "stop", "--data-dir", str(data_dir)).stdout.strip() == "stopped"
        assert shrinkvec("server", "status", "--data-dir", str(data_dir)).returncode == 3
    finally:
        server.stop(data_dir)
        if parent.stdin is not None:
            parent.stdin.close()  # the parent exits; init reaps its zombies
        parent.wait(timeout=60)


def test_env_from_dsn() -> None:
    env = server.libpq_env_from_dsn("postgresql://alice:pw@db.example:6543/app")
    assert env == {"PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "alice", "PGPASSWORD": "pw"}
    with pytest.raises(ValueError, match="invalid DSN"):
        server.libpq_env_from_dsn("not a dsn")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.pg
def test_server_on_localhost_tcp(server_root: Path) -> None:
    """start --port: localhost TCP with a SCRAM password (none and a wrong one refused), a URL that
    SQLAlchemy takes, remembered across a stop, a busy port refused with the server left as it was, and
    --port 0 back to the socket only."""
    import sqlalchemy as sa

    data_dir, port = server_root / "pgdata", free_port()
    try:
        first = shrinkvec("server", "start", "--data-dir", str(data_dir), "--port", str(port))
        assert first.returncode == 0, first.stderr
        assert f"also on localhost:{port}" in first.stderr
        url = shrinkvec("server", "url", "--data-dir", str(data_dir)).stdout.strip()
        assert url.startswith("postgresql://postgres:") and url.endswith(f"@localhost:{port}/postgres")
        with psycopg.connect(url) as conn:
            assert one_row(conn.execute("SELECT inet_server_port()"))[0] == port  # TCP, not the socket
        for bad in ("", " password=wrong"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(f"host=localhost port={port} user=postgres dbname=postgres{bad}").close()
        sa_url = shrinkvec("server", "url", "--data-dir", str(data_dir), "--driver", "psycopg", "--dbname", "x y").stdout
        assert sa_url.startswith("postgresql+psycopg://") and sa_url.strip().endswith("/x%20y")
        engine = sa.create_engine(sa_url.strip().replace("/x%20y", "/postgres"))
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT inet_server_port()")).scalar() == port
        engine.dispose()
        settings = data_dir / "shrinkvec-tcp.json"
        assert settings.stat().st_mode & 0o077 == 0  # the password file: its owner only

        assert shrinkvec("server", "stop", "--data-dir", str(data_dir)).returncode == 0
        again = shrinkvec("server", "start", "--data-dir", str(data_dir))  # remembered
        assert again.returncode == 0 and f"localhost:{port}" in shrinkvec("server", "status", "--data-dir",
                                                                          str(data_dir)).stdout
        with psycopg.connect(url) as conn:  # same password
            assert one_row(conn.execute("SELECT 1"))[0] == 1

        import socket
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            out = shrinkvec("server", "start", "--data-dir", str(data_dir), "--port", str(taken))
            assert out.returncode == 1 and f"port {taken} on localhost is not free" in out.stderr, out.stderr
        with psycopg.connect(url) as conn:  # still as it was
            assert one_row(conn.execute("SELECT inet_server_port()"))[0] == port

        off = shrinkvec("server", "start", "--data-dir", str(data_dir), "--port", "0")
        assert off.returncode == 0 and "also on" not in off.stderr, off.stderr
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=3).close()
        socket_url = shrinkvec("server", "url", "--data-dir", str(data_dir)).stdout.strip()
        assert "host=" in socket_url and not settings.exists()
        with psycopg.connect(socket_url) as conn:
            assert one_row(conn.execute("SELECT inet_server_port()"))[0] is None  # the socket
    finally:
        server.stop(data_dir)
