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
from search_spaces import (
    SPACE_OVERRIDE_ALIASES,
    SearchSpace,
    canonical_space_overrides,
    get_space,
)

__all__ = ["AuditConfig", "CheckedStudy", "DataConfig", "EvaluationConfig", "PredictorConfig",
           "ProfilingConfig", "SearchConfig", "Study", "StudyFileError", "StudyInvalidError",
           "TrainConfig", "check_study", "load_study", "same_study_text", "study_name_from_file",
           "study_name_in_store"]


class StudyFileError(ValueError):
    """A study file that is missing, fails to import, or does not declare one Study."""


def _int_at_least(where: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{where}: must be an int >= {least}, got {value!r}")


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{where}: must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class EvaluationConfig:
    """The `evaluate` stage: ``n_archs`` random subnets scored with inherited weights on the
    validation split (and on its two halves, for the noise ceiling of any ranking)."""

    n_archs: int = 200
    batch_size: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        _int_at_least("evaluation.n_archs", self.n_archs, 8)
        _int_at_least("evaluation.batch_size", self.batch_size, 1)
        _int_at_least("evaluation.seed", self.seed, 0)


@dataclass(frozen=True)
class ProfilingConfig:
    """The `profile` stage: a latency table of this machine for the study's space, its
    composition calibrated on ``n_calibration`` whole models and validated on
    ``n_validation`` others. ``min_block_s``: least wall time over which each block of
    measurements is spread (None: the device's default, `nas.latency.profile.default_timings`; 0 for
    quick runs such as tests)."""

    device: str = "cpu"
    mode: str = "eager"
    batch_size: int = 1
    n_calibration: int = 10
    n_validation: int = 30
    min_block_s: float | None = None

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"profiling.device: expected 'cpu' or 'cuda', got {self.device!r}")
        if not isinstance(self.mode, str) or not self.mode:
            raise ValueError(f"profiling.mode: expected a mode name, got {self.mode!r}")
        _int_at_least("profiling.batch_size", self.batch_size, 1)
        _int_at_least("profiling.n_calibration", self.n_calibration, 1)
        if self.n_calibration > 10:
            raise ValueError(f"profiling.n_calibration: must be 1..10, got {self.n_calibration}")
        _int_at_least("profiling.n_validation", self.n_validation, 2)
        if self.min_block_s is not None and not (
                0 <= _number("profiling.min_block_s", self.min_block_s) < float("inf")):
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
        if not 0.05 <= _number("predictor.holdout", self.holdout) <= 0.5:
            raise ValueError(f"predictor.holdout must be in [0.05, 0.5], got {self.holdout}")
        _int_at_least("predictor.seed", self.seed, 0)
        if not isinstance(self.options, dict):
            raise ValueError(f"predictor.options: expected a dict, got {self.options!r}")


@dataclass(frozen=True)
class Study:
    """Space + data + recipes. ``data`` is a `DataConfig` or a zero-argument function
    returning `DataSplits` (a custom dataset); ``audit`` sets `nas audit` (the recipe of
    its stand-alone runs). ``space_overrides`` are the space factory's arguments, older names
    read as their canonical ones (`search_spaces.canonical_space_overrides`)."""

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
        if (not isinstance(self.name, str) or not self.name
                or not self.name.replace("_", "").replace("-", "").isalnum()):
            raise ValueError(f"study name: use letters, digits, '_' or '-', got {self.name!r}")
        if not isinstance(self.space, str) or not self.space:
            raise ValueError(f"space: expected a registered space name, got {self.space!r}")
        if not isinstance(self.space_overrides, dict):
            raise ValueError(f"space_overrides: expected a dict, got {self.space_overrides!r}")
        # older argument names (num_classes, vocab_size) read as num_outputs; a conflict raises
        object.__setattr__(self, "space_overrides",
                           canonical_space_overrides(self.space_overrides, space=self.space))
        _int_at_least("seed", self.seed, 0)
        for name, kind in (("training", TrainConfig), ("evaluation", EvaluationConfig),
                           ("profiling", ProfilingConfig), ("predictor", PredictorConfig),
                           ("search", SearchConfig), ("audit", AuditConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"{name}: expected a {kind.__name__}, got "
                                 f"{type(getattr(self, name)).__name__}")
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


def same_study_text(old: str, new: str) -> bool:
    """Whether study file ``new`` declares the same study as ``old`` (the text a store
    recorded): the same text, or the same once every ``space_overrides`` key is spelled by
    its canonical name (`search_spaces.SPACE_OVERRIDE_ALIASES`), so a file that only renames
    ``num_classes`` to ``num_outputs`` does not count as changed. Any other difference,
    comments and layout included, does."""
    if old == new:
        return True
    canonical_old, canonical_new = _canonical_spelling(old), _canonical_spelling(new)
    return canonical_old is not None and canonical_old == canonical_new


def _canonical_spelling(text: str) -> str | None:
    """``text`` with the older key names of every ``space_overrides=`` dict (a literal, a
    ``dict(...)`` call, or a module-level name bound to one) replaced by their canonical
    names; None if it does not parse."""
    import ast

    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    bound = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)}
    edits: list[tuple[int, int, int, str, str]] = []  # line, col, end col, alias, canonical
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg != "space_overrides":
                continue
            value = bound.get(kw.value.id, kw.value) if isinstance(kw.value, ast.Name) else (
                kw.value)
            if isinstance(value, ast.Dict):
                for key in value.keys:
                    if (isinstance(key, ast.Constant) and key.value in SPACE_OVERRIDE_ALIASES
                            and key.end_lineno == key.lineno and key.end_col_offset is not None):
                        edits.append((key.lineno, key.col_offset, key.end_col_offset, key.value,
                                      SPACE_OVERRIDE_ALIASES[key.value]))
            elif (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                  and value.func.id == "dict"):
                for arg in value.keywords:
                    if arg.arg in SPACE_OVERRIDE_ALIASES:
                        edits.append((arg.lineno, arg.col_offset, arg.col_offset + len(arg.arg),
                                      arg.arg, SPACE_OVERRIDE_ALIASES[arg.arg]))
    lines = text.encode().splitlines(keepends=True)  # ast offsets count UTF-8 bytes
    for line, start, end, alias, canonical in sorted(edits, reverse=True):
        row = lines[line - 1]
        part = row[start:end].replace(alias.encode(), canonical.encode(), 1)
        lines[line - 1] = row[:start] + part + row[end:]
    return b"".join(lines).decode()


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


class StudyInvalidError(ValueError):
    """A study whose space, data or recipe cannot work; raised before anything is written."""


@dataclass(frozen=True)
class CheckedStudy:
    """A study that passed `check_study`: its built space and loaded data."""

    study: Study
    space: SearchSpace
    data: DataSplits


def _fail(study: Study, where: str, message: str) -> StudyInvalidError:
    return StudyInvalidError(f"study {study.name!r}: {where}: {message}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_study(study: Study, *, device: str | None = None) -> CheckedStudy:
    """Check everything the study needs before anything is written: the space builds, the
    data loads and fits the space (modality, channels, classes, vocabulary, context length),
    the recipe is sane (batch sizes against the splits, devices present, predictor kind),
    and the smallest and largest subnets run on two validation examples. Every error is a
    `StudyInvalidError` naming the study, the field and the value. ``device`` overrides the
    training device (``--device``)."""
    import torch

    try:
        space = study.build_space()
    except Exception as exc:  # unknown space, bad override, empty Choice, bad depth/width
        raise _fail(study, f"space {study.space!r} with space_overrides "
                    f"{dict(study.space_overrides)}", _first_line(exc)) from None
    try:
        data = study.load_data()
    except Exception as exc:  # missing files, empty data set, a failing data function
        what = study.data if isinstance(study.data, DataConfig) else "the data function"
        raise _fail(study, f"data ({what})", _first_line(exc)) from None
    for part in ("train", "val"):
        if len(getattr(data, part)) == 0:
            raise _fail(study, "data", f"{data.name}: the {part} split is empty")
    if data.modality != space.modality:
        raise _fail(study, "data", f"{data.name} is {data.modality} data but space "
                    f"{space.name!r} is a {space.modality} space")
    if space.modality == "image":
        channels = data.input_shape[0]
        if channels != space.in_channels:
            raise _fail(study, "space_overrides.in_channels",
                        f"space {space.name!r} takes {space.in_channels}-channel images but "
                        f"{data.name} has {channels} channel(s) (shape {data.input_shape}): "
                        f"set space_overrides in_channels={channels}")
        y_max = int(data.train.y.max()) if len(data.train) else -1
        if data.num_outputs > space.num_outputs or y_max >= space.num_outputs:
            raise _fail(study, "space_overrides.num_outputs",
                        f"space {space.name!r} has {space.num_outputs} outputs but "
                        f"{data.name} has {max(data.num_outputs, y_max + 1)} classes")
    else:
        top = max(int(data.train.x.max()), int(data.train.y.max()))
        if data.num_outputs > space.vocab_size or top >= space.vocab_size:
            raise _fail(study, "space_overrides.num_outputs",
                        f"space {space.name!r} has a vocabulary of {space.vocab_size} but "
                        f"{data.name} has {max(data.num_outputs, top + 1)} tokens")
        length = data.input_shape[0]
        if length < space.resolution.max:
            raise _fail(study, "data.seq_len",
                        f"{data.name} has sequences of {length} tokens but space "
                        f"{space.name!r} reads up to {space.resolution.max}: make seq_len >= "
                        f"{space.resolution.max} or shorten the space's resolutions")
    training = study.training.with_overrides(device=device) if device else study.training
    if training.batch_size > len(data.train):
        raise _fail(study, "training.batch_size",
                    f"{training.batch_size} is larger than the training split of {data.name} "
                    f"({len(data.train)} examples)")
    for field_name, dev in (("training.device", training.device),
                            ("profiling.device", study.profiling.device)):
        if dev == "cuda" and not torch.cuda.is_available():
            raise _fail(study, field_name, "'cuda' but no CUDA device is available here")
    from predictors.registry import PREDICTORS

    if study.predictor.kind not in PREDICTORS:
        raise _fail(study, "predictor.kind", f"{study.predictor.kind!r} is not one of "
                    f"{sorted(PREDICTORS)}")
    _smoke_forward(study, space, data)
    return CheckedStudy(study=study, space=space, data=data)


def _smoke_forward(study: Study, space: SearchSpace, data: DataSplits) -> None:
    """The smallest and largest subnets on two validation examples: any shape the checks
    above miss surfaces here, named, instead of deep inside the train stage."""
    import torch

    from nas.supernet import Supernet

    x = data.val.x[:2]
    try:
        net = Supernet(space).eval()
    except Exception as exc:
        raise _fail(study, f"space {study.space!r}", f"its supernet cannot be built: "
                    f"{_first_line(exc)}") from None
    for role, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        try:
            with torch.no_grad():
                out = net(x, arch)
        except Exception as exc:
            raise _fail(study, "data/space", f"the {role} subnet fails on {data.name} inputs of "
                        f"shape {tuple(x.shape[1:])}: {_first_line(exc)}") from None
        if not torch.isfinite(out).all():
            raise _fail(study, "data", f"the {role} subnet gives non-finite outputs on "
                        f"{data.name} (NaN or inf in the inputs?)")


def study_name_from_file(path: str | Path) -> str:
    """The ``name=`` a study file gives its `Study(...)`, read from the file's syntax tree
    without running it; `StudyFileError` if it is not a plain string literal."""
    import ast

    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyFileError(f"study file {path}: cannot read it ({exc})") from None
    except SyntaxError as exc:
        raise StudyFileError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else (
            func.attr if isinstance(func, ast.Attribute) else None)
        if called != "Study":
            continue
        for kw in node.keywords:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(
                    kw.value.value, str):
                names.add(kw.value.value)
    if len(names) != 1:
        raise StudyFileError(f"{path}: cannot read the study's name without running the file "
                             f"(found {sorted(names) or 'no'} literal Study(name=...)); give the "
                             f"study's name instead")
    return names.pop()


def study_name_in_store(study: str, *, store: Any) -> str:
    """The stored study meant by ``study``: a name as given, or for a study file the study
    recorded with that path, else the name the file declares (`study_name_from_file`).
    The file is never run: read-only commands must not execute study code."""
    if not (study.endswith(".py") or Path(study).is_file()):
        return study
    path = Path(study).resolve()
    for summary in store.list_studies():
        if summary.study.study_path and Path(summary.study.study_path) == path:
            return summary.study.name
    if not path.is_file():
        raise StudyFileError(f"study file not found: {path}")
    return study_name_from_file(path)
