"""The study store: SQLAlchemy models, Alembic migrations and the repository API.

Everything a study produces lands here; nothing outside this package writes SQL.
`open_store(url)` opens ``url``, else ``$NAS_STORAGE``, else the SQLite file
``./.nas/nas.db`` under the current directory (WAL, 30 s busy timeout), creating the
schema on an empty database, migrating an older one and refusing one written by a newer
nas. Any SQLite or PostgreSQL SQLAlchemy URL works (``postgresql+psycopg://...``).
"""

from __future__ import annotations

from nas.storage.database import DEFAULT_PATH, ENV_VAR, resolve_url
from nas.storage.models import SOURCES, STATUSES
from nas.storage.records import (
    ArchRecord,
    CheckpointRecord,
    Evaluation,
    FrontRow,
    LatencyTableRecord,
    LeaseHeldError,
    LeaseRecord,
    MetricRecord,
    PredictorRecord,
    SearchRunRecord,
    StageStatus,
    StoredLatencyEntry,
    StoreError,
    StudyRecord,
    StudySummary,
    TrialRecord,
)
from nas.storage.store import Store, open_store

__all__ = [
    "DEFAULT_PATH", "ENV_VAR", "SOURCES", "STATUSES", "ArchRecord", "CheckpointRecord",
    "Evaluation", "FrontRow", "LatencyTableRecord", "LeaseHeldError", "LeaseRecord",
    "MetricRecord", "PredictorRecord", "SearchRunRecord", "StageStatus", "Store", "StoreError",
    "StoredLatencyEntry", "StudyRecord", "StudySummary", "TrialRecord", "open_store",
    "resolve_url",
]
