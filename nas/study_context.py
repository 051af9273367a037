"""A study bound to its store: `StudyContext`, what every stage and `nas export` share.

`open_study` (the context opener under `nas.open_study` / `nas.api.open_study_run`) checks
the study file, creates or finds the study in the store, refuses a changed file unless
forced and records what reproduces the study; the context then caches the space, the data,
the selected supernet checkpoint and the stored latency table for the stages.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from nas.storage import Store
from nas.study import CheckedStudy, Study, check_study, file_hash, load_study, same_study_text
from nas.study_lease import StudyLease


class StudyChangedError(ValueError):
    """The study file differs from the one the stored study was created with."""


@dataclass
class StudyContext:
    """A loaded study bound to its store and run directory; caches what stages share."""

    study: Study
    path: Path
    store: Store
    run_dir: Path
    console: Console = field(default_factory=Console)
    device: str | None = None
    lease: StudyLease | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.study.name

    def space(self):
        if "space" not in self._cache:
            self._cache["space"] = self.study.build_space()
        return self._cache["space"]

    def data(self):
        if "data" not in self._cache:
            self._cache["data"] = self.study.load_data()
        return self._cache["data"]

    @property
    def supernet_dir(self) -> Path:
        return self.run_dir / "supernet"

    def space_key(self) -> str:
        """Key of the study's space (name + overrides) for latency tables in the store."""
        from nas.supernet import space_fingerprint

        return f"{self.study.space}:{space_fingerprint(self.space())}"

    def train_config(self):
        return self.study.training.with_overrides(device=self.device)

    def supernet(self):
        """The trained supernet, loaded from the selected checkpoint (space-checked): the
        weights at the best validation-panel loss (``best.pt``) when training kept them,
        else the last checkpoint (`selected_checkpoint`)."""
        if "supernet" not in self._cache:
            from nas.supernet import Supernet
            from nas.training import CheckpointError, load_checkpoint

            net = Supernet(self.space())
            path = selected_checkpoint(self.supernet_dir)
            state = load_checkpoint(path, space_fingerprint=net.fingerprint())
            try:
                net.load_state_dict(state["model"])
            except (KeyError, RuntimeError) as exc:  # a crafted file with the right header
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise CheckpointError(f"checkpoint {path}: its "
                                      f"weights do not fit the space: {first}") from None
            device = self.device or self.study.training.device
            self._cache["supernet"] = net.to(device).eval()
            sha = sha256_file(path)
            # a checkpoint from `nas train` (not the pipeline's train stage) is registered
            # here, the first time a stage uses it; idempotent on its sha256
            self.store.put_checkpoint(study=self.name, path=str(path.resolve()), sha256=sha,
                                      step=int(state.get("step", 0)))
            self._cache["checkpoint_sha"] = sha
        return self._cache["supernet"]

    def checkpoint_sha(self) -> str:
        self.supernet()
        return self._cache["checkpoint_sha"]


def selected_checkpoint(supernet_dir: Path) -> Path:
    """The weights every stage after training uses: ``best.pt`` (the lowest validation-panel
    loss, kept by the trainer) when it exists, else the last ``checkpoint.pt``."""
    from nas.training.checkpoint import CHECKPOINT_NAME
    from nas.training.trainer import BEST_NAME

    best = supernet_dir / BEST_NAME
    return best if best.is_file() else supernet_dir / CHECKPOINT_NAME


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("nas-service", "torch", "numpy", "torch-geometric", "scikit-learn",
                 "sqlalchemy", "optuna", "ray"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git_commit(where: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _describe_change(old: str, new: str, path: Path) -> str:
    diff = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), n=0,
                                                  lineterm="")
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    shown = "; ".join(diff[:6]) + (f"; ... ({len(diff) - 6} more)" if len(diff) > 6 else "")
    return (f"study file {path} changed since the study was created: {shown}. "
            f"Pass --force to continue with the new file (its record is updated).")


def prepare_study(path: str | Path, *, device: str | None = None) -> CheckedStudy:
    """Load a study file and check everything it needs (`nas.study.check_study`: space,
    data, recipe) without touching any store: call it before opening one, so an invalid
    study writes nothing."""
    return check_study(load_study(Path(path).resolve()), device=device)


def _has_results(store: Store, name: str) -> bool:
    """Whether the stored study produced anything a changed file could contradict: a
    finished stage or a checkpoint (a study whose every stage failed has none)."""
    return (any(s.status == "done" for s in store.stages(study=name))
            or bool(store.list_checkpoints(study=name)))


def open_study(path: str | Path, *, store: Store, force: bool = False,
               device: str | None = None, runs_root: str | Path = "runs",
               console: Console | None = None, checked: CheckedStudy | None = None,
               lease: StudyLease | None = None) -> StudyContext:
    """Load and check a study file (or take the ``checked`` one `prepare_study` returned),
    create or find it in the store, refuse a changed file unless ``force`` (a study with no
    finished stage and no checkpoint takes the new file without it; a file that differs only
    in the spelling of space-override keys, `nas.study.same_study_text`, is not changed), and
    record what reproduces it (file hash, versions, git commit, seeds). ``lease``: the run's
    hold on the study (`StudyLease`), checked before every stage."""
    path = Path(path).resolve()
    checked = checked or prepare_study(path, device=device)
    study = checked.study
    text = path.read_text()
    digest = file_hash(path)
    seeds = {"study": study.seed, "training": study.training.seed,
             "evaluation": study.evaluation.seed}
    record = store.create_or_get_study(
        name=study.name, space=study.space, space_overrides=dict(study.space_overrides),
        study_path=str(path), study_text=text, study_hash=digest,
        package_versions=_package_versions(), git_commit=_git_commit(path.parent), seeds=seeds)
    # a file that only renames older space-override keys (num_classes -> num_outputs) is
    # the same study: it resumes, and its record below takes the new file
    if record.study_hash and record.study_hash != digest and not same_study_text(
            record.study_text or "", text):
        if not force and _has_results(store, study.name):
            raise StudyChangedError(_describe_change(record.study_text or "", text, path))
    if record.study_hash != digest or force:
        store.record_study_reproducibility(
            name=study.name, study_path=str(path), study_text=text, study_hash=digest,
            package_versions=_package_versions(), git_commit=_git_commit(path.parent),
            seeds=seeds, space=study.space, space_overrides=dict(study.space_overrides))
    ctx = StudyContext(study=study, path=path, store=store,
                       run_dir=Path(runs_root) / study.name, device=device,
                       console=console or Console(), lease=lease)
    ctx._cache.update(space=checked.space, data=checked.data)
    return ctx


def supernet_labels(ctx: StudyContext) -> tuple[list, dict[str, dict[str, float]]]:
    """The archs evaluated with the current checkpoint and their metrics by name."""
    from search_spaces import Arch

    sha = ctx.checkpoint_sha()
    by_arch: dict[str, dict[str, float]] = {}
    for e in ctx.store.get_evaluations(study=ctx.name, source="supernet",
                                       checkpoint_sha256=sha):
        by_arch.setdefault(e.arch_key, {})[e.metric] = e.value
    records = {a.key: a for a in ctx.store.get_archs(study=ctx.name, keys=list(by_arch))}
    archs = [Arch.from_json(records[k].arch_json) for k in sorted(by_arch) if k in records]
    return archs, by_arch


def latency_scorer(ctx: StudyContext):
    """Fast arch -> ms scorer from the study's stored latency table (None if unprofiled)."""
    from nas.latency.scorer import ArchLatencyScorer
    from nas.latency.store import load_stored_table

    if "latency" not in ctx._cache:
        cfg = ctx.study.profiling
        table = load_stored_table(ctx.store, space=ctx.space_key(), mode=cfg.mode)
        ctx._cache["latency"] = None if table is None else (
            table, ArchLatencyScorer(ctx.space(), table))
    return ctx._cache["latency"]


__all__ = ["StudyChangedError", "StudyContext", "latency_scorer", "open_study", "prepare_study",
           "selected_checkpoint", "sha256_file", "supernet_labels"]
