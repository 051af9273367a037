"""Connecting to the store's database and bringing its schema to this package's revision.

Where the database is: the ``url`` argument, else the ``NAS_STORAGE`` environment
variable, else the SQLite file ``./.nas/nas.db`` under the current directory (created
on first use). Any SQLAlchemy URL of SQLite or PostgreSQL works; ``postgresql://`` means
``postgresql+psycopg://`` (psycopg 3 is a dependency, psycopg2 is not).

SQLite runs in WAL mode with a 30 s busy timeout and foreign keys on, and write
transactions start with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of
failing. The schema is migrated by the Alembic scripts in ``migrations/`` inside one
transaction (a PostgreSQL advisory lock or SQLite's write lock keeps two processes from
migrating at once); a database whose revision this package does not know was made by a
newer version of nas and is refused without writing anything.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from nas.storage.models import Base
from nas.storage.records import StoreError

ENV_VAR = "NAS_STORAGE"
DEFAULT_PATH = Path(".nas") / "nas.db"
SQLITE_BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 10
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x6E61_7301  # PostgreSQL advisory lock id of nas schema migrations


def resolve_url(url: str | None = None) -> str:
    """The URL the store opens: ``url``, else ``$NAS_STORAGE``, else ``./.nas/nas.db``."""
    if url:
        return url
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    path = Path.cwd() / DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (for messages)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (
        (url.database or "") in ("", ":memory:") or url.query.get("mode") == "memory")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code, pointing at the migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def connect(url: str) -> tuple[Engine, str]:
    """Create the engine for ``url`` (no connection yet); returns it and the masked URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # e.g. a non-numeric port: int() fails inside
        raise StoreError(f"storage URL {mask_url(url)!r} is not a database URL (expected e.g. "
                         "sqlite:///path/nas.db or postgresql+psycopg://user@host/db)") from None
    shown = mask_url(parsed)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        kwargs["pool_pre_ping"] = True
    elif backend == "sqlite":
        database = parsed.database or ""
        in_memory = is_memory_sqlite(parsed)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        if in_memory:  # one shared connection: each new one would see another empty database
            kwargs.update(poolclass=StaticPool,
                          connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S,
                                        "check_same_thread": False})
        elif not database.startswith("file:") and not Path(database).parent.is_dir():
            raise StoreError(f"cannot open database at {shown}: directory "
                             f"{Path(database).parent} does not exist")
    else:
        raise StoreError(f"storage URL {shown}: backend {backend!r} is not supported "
                         "(use sqlite or postgresql)")
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ArgumentError) as err:
        raise StoreError(f"cannot open database at {shown}: {err}") from None
    if backend == "sqlite":
        _configure_sqlite(engine)
    return engine, shown


def _configure_sqlite(engine: Engine) -> None:
    """Busy timeout and foreign keys per connection; transactions begun by us, so that
    writers can ask for ``BEGIN IMMEDIATE`` (execution option ``nas_begin``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('nas_begin', '')}")


def _schema_heads(conn: Connection, shown: str, *, check_foreign: bool = True,
                  ) -> tuple[str, ...]:
    """Revisions the database is at; refuses unknown (newer) ones and, with
    ``check_foreign``, foreign tables (only under the migration lock: outside it, another
    process may commit its new schema between the read of the revisions and the read of
    the table names, which would look like foreign tables)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    script = ScriptDirectory(str(MIGRATIONS))
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = sorted(set(heads) - known)
    if unknown:
        raise StoreError(f"database at {shown} was created by a newer version of nas (schema "
                         f"revision {', '.join(unknown)}); upgrade nas")
    if not heads and check_foreign:
        clashing = sorted(set(inspect(conn).get_table_names()) & set(Base.metadata.tables))
        if clashing:
            raise StoreError(f"database at {shown} already has tables {clashing} that nas did "
                             "not create; use an empty database")
    return heads


def prepare_schema(engine: Engine, shown: str) -> None:
    """Create the schema on an empty database, migrate an older one, refuse a newer one."""
    head = ScriptDirectory(str(MIGRATIONS)).get_heads()
    try:
        with engine.connect() as conn:
            with conn.begin():
                current = _schema_heads(conn, shown, check_foreign=False)
            if set(current) != set(head):  # look again under the lock: another process may
                conn.execution_options(nas_begin="IMMEDIATE")  # have migrated meanwhile
                with conn.begin():
                    if engine.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                     {"key": _MIGRATION_LOCK})
                    if set(_schema_heads(conn, shown)) != set(head):
                        command.upgrade(alembic_config(conn), "head")
        if engine.dialect.name == "sqlite" and not is_memory_sqlite(engine.url):
            _use_wal(engine)
    except DBAPIError as err:
        raise StoreError(f"cannot open database at {shown}: {first_line(err)}") from None
    except sqlite3.Error as err:
        raise StoreError(f"cannot open database at {shown}: {err}") from None


def _use_wal(engine: Engine) -> None:
    """Put the SQLite file in WAL mode (persistent in the file), retrying while it is locked.

    The switch needs the file's exclusive lock, and SQLite answers "database is locked"
    at once, without its busy timeout, when waiting could deadlock (this connection holds
    a read lock while another process waits to write, as when several processes open a
    new database together); so the connection is let go and the switch retried until the
    busy timeout. A file already in WAL mode is left alone without taking any lock.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        raw = engine.raw_connection()  # outside any transaction, as the pragma needs
        try:
            cursor = raw.cursor()
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) and "busy" not in str(err):
                raise
            if time.monotonic() + delay > deadline:
                raise
        finally:
            raw.close()
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def first_line(err: DBAPIError) -> str:
    message = str(err.orig) if err.orig is not None else str(err)
    return message.strip().splitlines()[0] if message.strip() else type(err).__name__
