"""The embedded server's command line: start is idempotent, url works for psql and psycopg, stop stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from shrinkvec import server


def shrinkvec(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `shrinkvec` command line."""
    return subprocess.run([sys.executable, "-m", "shrinkvec.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.pg
def test_server_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
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
            assert conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0] >= 150000
            assert conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name IN ('vector', 'shrinkvec')").fetchone()[0] == 2
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


def test_env_from_dsn() -> None:
    env = server.libpq_env_from_dsn("postgresql://alice:pw@db.example:6543/app")
    assert env == {"PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "alice", "PGPASSWORD": "pw"}
    with pytest.raises(ValueError, match="invalid DSN"):
        server.libpq_env_from_dsn("not a dsn")
