"""Backends for the storage contract tests: in-memory SQLite, file SQLite, and a real
PostgreSQL server started once per session from the Debian ``postgresql`` binaries.

The server binaries (``initdb``, ``pg_ctl``) are taken from ``$NAS_PG_BIN``, else from
``PATH``, else from the newest ``/usr/lib/postgresql/<version>/bin``. Without them the
PostgreSQL cases are skipped, unless ``NAS_REQUIRE_POSTGRES=1`` (CI) turns that into a
failure. As root the server runs as the ``postgres`` user (initdb refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_OPTIONS = ("-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                  "-c full_page_writes=off -c max_connections=50")


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""
    if os.environ.get("NAS_PG_BIN"):
        return Path(os.environ["NAS_PG_BIN"])
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                        else 0)
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A throwaway cluster in a temporary folder; `database()` makes a fresh database."""

    def __init__(self, pg_bin: Path) -> None:
        self.pg_bin = pg_bin
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="naspg"))  # short: unix socket path limit
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = _free_port()

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(self.pg_bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}\n"
                               + (log.read_text() if log.exists() else ""))

    def start(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-locale", "--no-sync")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                 "-t", "30", "-o", f"{SERVER_OPTIONS} -p {self.port} -k {self.root}", "start")

    def stop(self) -> None:
        try:
            self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)

    def database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    pg_bin = find_pg_bin()
    if pg_bin is None or not (pg_bin / "pg_ctl").exists():
        reason = ("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y "
                  "postgresql, or set NAS_PG_BIN")
        if os.environ.get("NAS_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(pg_bin)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite_memory", "sqlite_file", "postgresql"])
def backend_url(request, tmp_path) -> Iterator[str]:
    """An empty database of each backend; the in-memory one is a shared-cache URI kept
    alive by an open connection, so a test can open it again as another Store."""
    if request.param == "sqlite_memory":
        uri = f"file:nas_{uuid.uuid4().hex[:12]}?mode=memory&cache=shared"
        keeper = sqlite3.connect(uri, uri=True)
        yield f"sqlite:///{uri}&uri=true"
        keeper.close()
    elif request.param == "sqlite_file":
        yield f"sqlite:///{tmp_path / 'nas.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        name = server.database()
        yield server.url(name)
        server.drop(name)
