"""The embedded server on localhost TCP, for clients that take a host and a port (LlamaIndex's
`PGVectorStore.from_params`, JDBC, a GUI), not a Unix socket directory.

`shrinkvec server start --port N` makes the server listen on localhost:N as well as on its socket. TCP
clients authenticate with a password (SCRAM-SHA-256): a random one, generated once, kept with the port in
`shrinkvec-tcp.json` in the data directory (mode 0600), and set as the `postgres` role's password. The
host lines of pg_hba.conf, `trust` after initdb, become `scram-sha-256`; the socket keeps trusting the
data directory's owner. The choice is remembered: a later `start` without `--port` listens on the same
port, `--port 0` goes back to the socket only.

pgserver starts postgres with `-h ""` on its command line, which outranks postgresql.conf, so the listen
address is given the same way: `pg_ctl restart -o "-h localhost -p N -k <socket dir>"`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shrinkvec.errors import ServerError

SETTINGS_FILE = "shrinkvec-tcp.json"
HOST = "localhost"


@dataclass(frozen=True)
class Tcp:
    """The TCP port the server listens on (localhost) and the password of its `postgres` role there."""

    port: int
    password: str


def read(data_dir: Path) -> Tcp | None:
    """The remembered TCP setting of a data directory, or None (socket only)."""
    try:
        raw = json.loads((data_dir / SETTINGS_FILE).read_text())
        return Tcp(int(raw["port"]), str(raw["password"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ServerError(f"cannot read {data_dir / SETTINGS_FILE}: {exc}; remove it and start with --port again") from None


def remember(data_dir: Path, port: int) -> Tcp:
    """Record `port` (keeping the password, or making one) in the data directory, readable by its owner only."""
    old = read(data_dir)
    tcp = Tcp(port, old.password if old else secrets.token_urlsafe(24))
    path = data_dir / SETTINGS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"port": tcp.port, "password": tcp.password}, f)
    return tcp


def forget(data_dir: Path) -> None:
    """Back to the socket only."""
    (data_dir / SETTINGS_FILE).unlink(missing_ok=True)


def check_port_free(port: int) -> None:
    """ServerError unless `port` is a valid port that nothing listens on at localhost."""
    if not 1 <= port <= 65535:
        raise ServerError(f"port {port} is out of range (1 to 65535; 0 for the socket only)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres binds: a TIME_WAIT is no listener
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ServerError(f"port {port} on localhost is not free: {exc.strerror}") from None


def require_passwords(data_dir: Path) -> None:
    """Make every `host` line of pg_hba.conf that trusts ask for a SCRAM password instead."""
    hba = data_dir / "pg_hba.conf"
    text = hba.read_text()
    fixed = re.sub(r"^(host\S*\s.*\s)trust\s*$", r"\1scram-sha-256", text, flags=re.MULTILINE)
    if fixed != text:
        with hba.open("w") as f:  # in place: the file keeps its owner (the postgres system user under root)
            f.write(fixed)


def set_password(socket_dsn: str, password: str) -> None:
    """Set the `postgres` role's password (SCRAM) over the socket."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(socket_dsn, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))


def restart(pg_ctl: Path, data_dir: Path, socket_dir: Path, port: int | None, run_as: str | None) -> None:
    """Restart the server listening on localhost:port and its socket (port None: the socket only, on the
    default port)."""
    listen = f'-h {HOST} -p {port}' if port is not None else '-h ""'
    done = subprocess.run(
        [str(pg_ctl), "-D", str(data_dir), "-w", "-m", "fast", "-l", str(data_dir / "log"),
         "-o", f"{listen} -k {socket_dir}", "restart"],
        user=run_as, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=180)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["pg_ctl restart failed"])[-1]
        raise ServerError(f"could not restart the server in {data_dir} to listen on {HOST}:{port}: {reason} "
                          f"(see {data_dir / 'log'})")


def url(tcp: Tcp, user: str, dbname: str, driver: str | None) -> str:
    """postgresql[+driver]://user:password@localhost:port/dbname, which libpq, SQLAlchemy and the frameworks take."""
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{user}:{tcp.password}@{HOST}:{tcp.port}/{dbname}"
