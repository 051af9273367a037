"""Short transactions with retries and dialect-specific upserts: what `Store` builds on.

Each call runs in its own transaction on a pooled connection. Writers on SQLite start with
``BEGIN IMMEDIATE`` (they queue on the write lock for up to the busy timeout instead of
failing when a read snapshot goes stale); on PostgreSQL a deadlock or serialization failure
is retried, and rows are written in key order so concurrent upserts take row locks in the
same order. Database errors surface as one `StoreError` naming the URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from nas.storage.database import first_line
from nas.storage.models import ArchRow, Base, StudyRow
from nas.storage.records import StoreError
from nas.storage.values import in_chunks

T = TypeVar("T")
S = TypeVar("S", bound="Transactions")
_RETRIES = 5  # PostgreSQL deadlock / serialization failures are retried
_RETRYABLE_SQLSTATES = ("40P01", "40001")


def table_of(model: type[Base]) -> Table:
    return model.__table__  # type: ignore[return-value]


class Transactions:
    """An engine plus the transaction and upsert plumbing of the repository."""

    def __init__(self, *, engine: Engine, url: str) -> None:
        self._engine = engine
        self.url = url  # password masked
        self.dialect = engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        for attempt in range(_RETRIES):
            try:
                with self._engine.connect() as conn:
                    if write:
                        conn.execution_options(nas_begin="IMMEDIATE")
                    with conn.begin():
                        return work(conn)
            except DBAPIError as err:
                if (getattr(err.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
                        and attempt < _RETRIES - 1):
                    time.sleep(0.05 * 2 ** attempt)
                    continue
                raise StoreError(f"database error at {self.url}: {first_line(err)}") from err
        raise AssertionError("unreachable")

    def _insert(self, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT (it has ``on_conflict_do_nothing`` / ``_do_update``)."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table_of(model))

    def _upsert(self, conn: Connection, model: type[Base], rows: Sequence[dict[str, Any]],
                keys: Sequence[str], update_cols: Sequence[str] = (),
                keep_if_null: Sequence[str] = (), keep_stored: Sequence[str] = ()) -> None:
        """Insert ``rows``; on a key conflict update ``update_cols`` or, without any, do
        nothing. Of the updated columns, those in ``keep_if_null`` keep the stored value
        when the new one is NULL, those in ``keep_stored`` when the stored one is not."""
        if not rows:
            return
        stmt: Any = self._insert(model)
        if update_cols:
            table, new = table_of(model), stmt.excluded
            stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={
                c: func.coalesce(new[c], table.c[c]) if c in keep_if_null
                else func.coalesce(table.c[c], new[c]) if c in keep_stored
                else new[c] for c in update_cols})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        ordered = sorted(rows, key=lambda r: tuple(str(r[k]) for k in keys))
        for chunk in in_chunks(ordered):
            conn.execute(stmt, list(chunk))

    def _study_id(self, conn: Connection, name: str) -> int:
        table = table_of(StudyRow)
        study_id = conn.scalar(select(table.c.id).where(table.c.name == name))
        if study_id is None:
            raise StoreError(f"no study named {name!r} in {self.url}")
        return int(study_id)

    def _missing_archs(self, conn: Connection, keys: Iterable[str]) -> list[str]:
        wanted, found = sorted(set(keys)), set()
        key_col = table_of(ArchRow).c.key
        for chunk in in_chunks(wanted):
            found |= set(conn.scalars(select(key_col).where(key_col.in_(chunk))))
        return [k for k in wanted if k not in found]
