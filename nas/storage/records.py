"""Plain records the store returns and accepts: detached from any database session.

Times are timezone-aware UTC. JSON fields hold only ``None/bool/int/float/str`` and lists
and dicts of them (non-finite floats are stored as ``null``: JSON has no NaN).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class StoreError(ValueError):
    """The store cannot do what was asked: bad URL or input, unknown study, newer schema."""


class ArchLike(Protocol):
    def key(self) -> str: ...

    def to_json(self) -> str: ...


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    space: str
    space_overrides: dict[str, Any]
    study_path: str
    study_hash: str
    study_text: str
    package_versions: dict[str, Any]
    git_commit: str | None
    seeds: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StudySummary:
    """A study with its stage statuses (``{"train": "done", ...}``) for listings."""

    study: StudyRecord
    stages: dict[str, str]
    n_evaluations: int
    last_activity: datetime


@dataclass(frozen=True)
class ArchRecord:
    """An arch of a study: ``key == sha256(arch_json)[:16]`` (``Arch.key()``)."""

    key: str
    arch_json: str
    flops: int | None = None
    params: int | None = None

    @classmethod
    def from_arch(cls, arch: ArchLike, *, flops: int | None = None,
                  params: int | None = None) -> ArchRecord:
        return cls(key=arch.key(), arch_json=arch.to_json(), flops=flops, params=params)

    def check(self) -> None:
        if hashlib.sha256(self.arch_json.encode()).hexdigest()[:16] != self.key:
            raise StoreError(f"arch {self.key!r}: key is not the hash of its arch_json "
                             "(expected Arch.key() and Arch.to_json() of the same arch)")


@dataclass(frozen=True)
class Evaluation:
    """One number about one arch. ``source`` is supernet / standalone / predictor;
    ``checkpoint_sha256`` the sha256 of the weights used (``""``: none); ``fidelity`` how it was
    measured (e.g. ``"val_batches=8"``); ``recorded_at`` is set by the store."""

    arch_key: str
    metric: str
    value: float
    source: str
    checkpoint_sha256: str = ""
    fidelity: str = ""
    split: str = "val"
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class CheckpointRecord:
    id: int
    path: str
    sha256: str
    step: int
    created_at: datetime


@dataclass(frozen=True)
class MetricRecord:
    """One line of a training metrics log; ``payload`` is the whole JSON object."""

    run: str
    step: int
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredLatencyEntry:
    """Latency of one layer of a stored table (``signature`` =
    ``kernels.specs.signature(spec)``); in a `kernels.LatencyTable` the same numbers are a
    `kernels.LatencyEntry`, keyed by the signature."""

    signature: str
    median_ms: float
    spread_ms: float
    repeats: int


@dataclass(frozen=True)
class LatencyTableRecord:
    """A stored latency table; ``entries`` maps signature -> entry (empty in listings)."""

    id: int
    fingerprint_id: str
    fingerprint: dict[str, Any]
    mode: str
    batch_size: int
    dtype: str
    space: str
    calibration: dict[str, Any] | None
    validation: dict[str, Any] | None
    n_entries: int
    created_at: datetime
    updated_at: datetime
    entries: dict[str, StoredLatencyEntry] = field(default_factory=dict)


@dataclass(frozen=True)
class PredictorRecord:
    id: int
    kind: str
    blob: bytes | None
    path: str | None
    metrics: dict[str, Any]
    n_labels: int
    created_at: datetime


@dataclass(frozen=True)
class SearchRunRecord:
    id: int
    name: str
    method: str
    config: dict[str, Any]
    seed: int
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class FrontRow:
    """One member of a Pareto front: ``objectives`` e.g. ``{"accuracy": .9, "latency_ms": 2}``,
    ``rank`` its position in the stored order (0 first)."""

    arch_key: str
    objectives: dict[str, Any]
    rank: int


@dataclass(frozen=True)
class StageStatus:
    stage: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    detail: dict[str, Any] | None
    updated_at: datetime


@dataclass(frozen=True)
class TrialRecord:
    number: int
    config: dict[str, Any]
    score: float | None
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LeaseRecord:
    """The run holding a study: ``host``, ``pid``, its unique ``token``, the ``command``
    it runs, when it took the study (``since``) and its last heartbeat (UTC)."""

    study: str
    token: str
    host: str
    pid: int
    command: str
    since: datetime
    heartbeat_at: datetime

    def owner(self) -> str:
        """``host pid N since 2026-12-05 10:00:00 UTC`` for messages."""
        return (f"{self.host} pid {self.pid} since "
                f"{self.since.strftime('%Y-%m-%d %H:%M:%S')} UTC")


class LeaseHeldError(StoreError):
    """Another live run holds the study; ``lease`` is its record."""

    def __init__(self, message: str, *, lease: LeaseRecord) -> None:
        super().__init__(message)
        self.lease = lease
