"""`Study`: the unit users run, resume, browse and export from, declared in a Python file.

A study file builds exactly one `Study` at module level and holds no logic beyond that
(a custom dataset is a function the file defines and passes as ``data``)::

    from nas.study import DataConfig, Study, TrainConfig

    study = Study(name="quickstart", space="hybrid_vit_tiny",
                  space_overrides={"in_channels": 1, "resolutions": (8, 12, 16)},
                  data=DataConfig(source="digits"), training=TrainConfig(steps=600))
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.audit.config import AuditConfig
from nas.data import DataConfig, DataSplits, load_data
from nas.search.config import SearchConfig
from nas.training.config import TrainConfig
from search_spaces import SearchSpace, get_space

__all__ = ["AuditConfig", "DataConfig", "EvaluationConfig", "PredictorConfig", "ProfilingConfig",
           "SearchConfig", "Study", "StudyFileError", "TrainConfig", "load_study"]


class StudyFileError(ValueError):
    """A study file that is missing, fails to import, or does not declare one Study."""


@dataclass(frozen=True)
class EvaluationConfig:
    """The `evaluate` stage: ``n_archs`` random subnets scored with inherited weights on the
    validation split (and on its two halves, for the noise ceiling of any ranking)."""

    n_archs: int = 200
    batch_size: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_archs < 8 or self.batch_size < 1:
            raise ValueError("evaluation.n_archs must be >= 8 and batch_size >= 1")


@dataclass(frozen=True)
class ProfilingConfig:
    """The `profile` stage: a latency table of this machine for the study's space, its
    composition calibrated on ``n_calibration`` whole models and validated on
    ``n_validation`` others. ``min_block_s``: least wall time over which each block of
    measurements is spread (None: the device's default, `nas.profile.default_timings`; 0 for
    quick runs such as tests)."""

    device: str = "cpu"
    mode: str = "eager"
    batch_size: int = 1
    n_calibration: int = 10
    n_validation: int = 30
    min_block_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.n_calibration <= 10 or self.n_validation < 2:
            raise ValueError("profiling.n_calibration must be 1..10 and n_validation >= 2")
        if self.min_block_s is not None and self.min_block_s < 0:
            raise ValueError(f"profiling.min_block_s must be >= 0, got {self.min_block_s}")


@dataclass(frozen=True)
class PredictorConfig:
    """The `predict` stage: fit ``kind`` on the evaluated subnets' validation losses;
    ``holdout`` of them are kept out to measure its ranking quality honestly, then the
    stored model is refitted on all labels."""

    kind: str = "gnn"
    holdout: float = 0.25
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.05 <= self.holdout <= 0.5:
            raise ValueError(f"predictor.holdout must be in [0.05, 0.5], got {self.holdout}")


@dataclass(frozen=True)
class Study:
    """Space + data + recipes. ``data`` is a `DataConfig` or a zero-argument function
    returning `DataSplits` (a custom dataset); ``audit`` sets `nas audit` (the recipe of
    its stand-alone runs)."""

    name: str
    space: str
    data: DataConfig | Callable[[], DataSplits]
    space_overrides: dict[str, Any] = field(default_factory=dict)
    training: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    profiling: ProfilingConfig = field(default_factory=ProfilingConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"study name: use letters, digits, '_' or '-', got {self.name!r}")
        if not isinstance(self.training, TrainConfig):
            raise ValueError("training: expected a TrainConfig")
        if not (isinstance(self.data, DataConfig) or callable(self.data)):
            raise ValueError("data: expected a DataConfig or a function returning DataSplits")

    def build_space(self) -> SearchSpace:
        return get_space(self.space, **self.space_overrides)

    def load_data(self) -> DataSplits:
        if isinstance(self.data, DataConfig):
            return load_data(self.data)
        splits = self.data()
        if not isinstance(splits, DataSplits):
            raise ValueError(f"data: the study's data function returned "
                             f"{type(splits).__name__}, not DataSplits")
        return splits


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_study(path: str | Path) -> Study:
    """Import a study file and return its one `Study`; errors name the file and line."""
    path = Path(path).resolve()
    if not path.is_file():
        raise StudyFileError(f"study file not found: {path}")
    module_name = f"_nas_study_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StudyFileError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise StudyFileError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:
        line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                     if Path(f.filename).resolve() == path), None)
        where = f"{path}:{line}" if line else str(path)
        raise StudyFileError(f"{where}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(module_name, None)
    studies = [v for v in vars(module).values() if isinstance(v, Study)]
    if len(studies) != 1:
        raise StudyFileError(f"{path}: expected exactly one Study at module level, found "
                             f"{len(studies)}")
    return studies[0]
