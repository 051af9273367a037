"""The store's tables as SQLAlchemy 2.0 typed models (the schema Alembic migrates to).

Every table that receives replayed results carries a natural unique key, so writes are
upserts and a replay never duplicates a row. Columns that take part in a unique key are
NOT NULL with an empty-string default meaning "none" (SQL treats NULLs as distinct, which
would let duplicates through): an evaluation without a checkpoint has ``checkpoint_sha256 = ""``.
Times are UTC. Changing anything here needs a new revision in ``migrations/versions/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SOURCES: tuple[str, ...] = ("supernet", "standalone", "predictor")
STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed")

_JSON = JSON(none_as_null=True)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    """One study and what reproduces it (study file text and hash, versions, commit, seeds)."""

    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    space: Mapped[str] = mapped_column(String(200))
    space_overrides: Mapped[dict[str, Any]] = mapped_column(_JSON)
    study_path: Mapped[str] = mapped_column(Text)
    study_hash: Mapped[str] = mapped_column(String(64))
    study_text: Mapped[str] = mapped_column(Text)
    package_versions: Mapped[dict[str, Any]] = mapped_column(_JSON)
    git_commit: Mapped[str | None] = mapped_column(String(64))
    seeds: Mapped[dict[str, Any]] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ArchRow(Base):
    """An architecture, study-independent: ``key`` is ``Arch.key()`` of ``arch_json``."""

    __tablename__ = "archs"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    arch_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StudyArchRow(Base):
    """An arch as seen by one study: FLOPs and params depend on the space's overrides."""

    __tablename__ = "study_archs"
    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    arch_key: Mapped[str] = mapped_column(ForeignKey("archs.key"), primary_key=True)
    flops: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[int | None] = mapped_column(BigInteger)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("study_id", "sha256", name="uq_checkpoints"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EvaluationRow(Base):
    """One measured or predicted number of one arch; ``checkpoint_sha256`` is the sha256 of
    the checkpoint it was measured with (or ``""``; the column was ``checkpoint`` before
    migration 0003), ``fidelity`` how it was measured (e.g. ``"val_batches=8"``)."""

    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint("study_id", "arch_key", "metric", "source", "checkpoint_sha256",
                         "fidelity",
                         "split", name="uq_evaluations"),
        _one_of("source", SOURCES, "ck_evaluations_source"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    arch_key: Mapped[str] = mapped_column(ForeignKey("archs.key"))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    fidelity: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(50))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MetricLogRow(Base):
    """One line of a training run's metrics log (``{"step": ..., "kind": ..., ...}``)."""

    __tablename__ = "metric_logs"
    __table_args__ = (UniqueConstraint("study_id", "run", "step", "kind", name="uq_metric_logs"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    run: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON)


class LatencyTableRow(Base):
    """A latency lookup table: one device fingerprint, execution mode, batch and dtype."""

    __tablename__ = "latency_tables"
    __table_args__ = (UniqueConstraint("fingerprint_id", "mode", "batch_size", "dtype", "space",
                                       name="uq_latency_tables"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(_JSON)
    mode: Mapped[str] = mapped_column(String(50))
    batch_size: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(50))
    space: Mapped[str] = mapped_column(String(200))
    calibration: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    validation: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LatencyEntryRow(Base):
    __tablename__ = "latency_entries"
    __table_args__ = (UniqueConstraint("table_id", "signature", name="uq_latency_entries"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_id: Mapped[int] = mapped_column(ForeignKey("latency_tables.id", ondelete="CASCADE"))
    signature: Mapped[str] = mapped_column(Text)
    median_ms: Mapped[float] = mapped_column(Float)
    spread_ms: Mapped[float] = mapped_column(Float)
    repeats: Mapped[int] = mapped_column(Integer)


class PredictorRow(Base):
    """A fitted predictor: its saved files (``blob``, e.g. a zip) or a path to them."""

    __tablename__ = "predictors"
    __table_args__ = (UniqueConstraint("study_id", "kind", "content_hash", name="uq_predictors"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)
    path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(_JSON)
    n_labels: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SearchRunRow(Base):
    __tablename__ = "search_runs"
    __table_args__ = (UniqueConstraint("study_id", "name", name="uq_search_runs"),
                      _one_of("status", STATUSES, "ck_search_runs_status"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(_JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ParetoRow(Base):
    """One arch of a search run's Pareto front; ``objectives`` e.g. accuracy and latency."""

    __tablename__ = "pareto_fronts"
    __table_args__ = (UniqueConstraint("search_run_id", "arch_key", name="uq_pareto_fronts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_run_id: Mapped[int] = mapped_column(
        ForeignKey("search_runs.id", ondelete="CASCADE"))
    arch_key: Mapped[str] = mapped_column(ForeignKey("archs.key"))
    objectives: Mapped[dict[str, Any]] = mapped_column(_JSON)
    rank: Mapped[int] = mapped_column(Integer)


class StageRow(Base):
    """Pipeline stage status of a study; resuming starts at the first stage not ``done``."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("study_id", "stage", name="uq_stages"),
                      _one_of("status", STATUSES, "ck_stages_status"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrialRow(Base):
    """One hyper-parameter trial (Ray Tune / Optuna) of a study."""

    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("study_id", "number", name="uq_trials"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(_JSON)
    score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StudyLeaseRow(Base):
    """Who is running a study now: one row per study name while a run holds it. The owner
    (``host``, ``pid``, ``token`` unique to that run) beats ``heartbeat_at``; another run
    takes the lease over only when the owner stopped beating (or its process is gone)."""

    __tablename__ = "study_leases"
    study: Mapped[str] = mapped_column(String(200), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    command: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
