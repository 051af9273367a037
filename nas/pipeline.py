"""The study pipeline: train -> profile -> evaluate -> predict -> search -> export.

Each stage records its status in the store (pending / running / done / failed); `nas run`
runs every stage that is not done, so a study killed at any point resumes at the first
unfinished stage (training itself resumes from its last checkpoint, and every write is an
idempotent upsert, so replays never duplicate rows). ``redo`` re-runs named stages.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import math
import os
import platform
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from nas.storage import ArchRecord, Evaluation, LeaseHeldError, LeaseRecord, Store
from nas.study import CheckedStudy, Study, check_study, file_hash, load_study

STAGES: tuple[str, ...] = ("train", "profile", "evaluate", "predict", "search", "export")


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
            self.store.add_checkpoint(study=self.name, path=str(path.resolve()), sha256=sha,
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
    finished stage and no checkpoint takes the new file without it), and record what
    reproduces it (file hash, versions, git commit, seeds). ``lease``: the run's hold on the
    study (`StudyLease`), checked before every stage."""
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
    if record.study_hash and record.study_hash != digest:
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


# ---- one run per study: the lease ---------------------------------------------------------

LEASE_TTL_ENV = "NAS_LEASE_TTL_S"
DEFAULT_LEASE_TTL_S = 60.0


class LeaseLostError(RuntimeError):
    """Another run took the study over (this one stopped beating for too long)."""


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class StudyLease:
    """A run's hold on a study in the store (like Optuna's heartbeat): taken before any
    stage runs, beaten every ``ttl_s / 4`` seconds by a daemon thread, given back at the end.
    A second run on the study is refused with one line naming the owner (host, pid, since),
    or waits with ``wait``. An owner that stopped beating for ``ttl_s`` seconds (default
    60, ``$NAS_LEASE_TTL_S``), or whose process is gone on this host, is taken over: its
    stages left "running" are run again, resuming their partial work.

    Use as a context manager: ``with StudyLease(store=s, study="q", command="run"): ...``.
    """

    def __init__(self, *, store: Store, study: str, command: str, wait: bool = False,
                 ttl_s: float | None = None, poll_s: float = 1.0,
                 console: Console | None = None) -> None:
        ttl = ttl_s if ttl_s is not None else float(os.environ.get(LEASE_TTL_ENV,
                                                                   DEFAULT_LEASE_TTL_S))
        if not math.isfinite(ttl) or ttl <= 0:
            raise ValueError(f"lease ttl: must be a number > 0 s, got {ttl!r}")
        self.store, self.study, self.command, self.wait = store, study, command, wait
        self.ttl_s, self.poll_s = ttl, poll_s
        self.console = console or Console(stderr=True)
        self.host, self.pid, self.token = socket.gethostname(), os.getpid(), uuid.uuid4().hex
        self.taken_over: LeaseRecord | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def owner(self) -> str:
        return f"{self.host} pid {self.pid}"

    def is_stale(self, lease: LeaseRecord, now: datetime) -> bool:
        """Whether ``lease``'s owner stopped: its process is gone (same host) or it has not
        beaten for ``ttl_s`` seconds."""
        if lease.host == self.host and not _pid_alive(lease.pid):
            return True
        return (now - lease.heartbeat_at).total_seconds() > self.ttl_s

    def acquire(self) -> StudyLease:
        """Take the lease (waiting for it with ``wait``) and start beating."""
        announced = False
        while True:
            try:
                _, self.taken_over = self.store.acquire_lease(
                    study=self.study, token=self.token, host=self.host, pid=self.pid,
                    command=self.command, is_stale=self.is_stale)
                break
            except LeaseHeldError as exc:
                if not self.wait:
                    raise
                if not announced:
                    self.console.print(f"waiting for study {self.study!r}: held by "
                                       f"{exc.lease.owner()} ({exc.lease.command})",
                                       markup=False)
                    announced = True
                time.sleep(self.poll_s)
        if self.taken_over is not None:
            running = [s.stage for s in self._stages() if s.status == "running"]
            self.console.print(
                f"took study {self.study!r} over from {self.taken_over.owner()}, which stopped "
                f"beating" + (f"; resuming its stage(s) {', '.join(running)}" if running else ""),
                markup=False)
        self._thread = threading.Thread(target=self._beat, name=f"nas-lease-{self.study}",
                                        daemon=True)
        self._thread.start()
        return self

    def _stages(self) -> list:
        try:
            return self.store.stages(study=self.study)
        except ValueError:  # the study is not in the store yet
            return []

    def _beat(self) -> None:
        interval = max(0.05, self.ttl_s / 4)
        while not self._stop.wait(interval):
            try:
                held = self.store.heartbeat_lease(study=self.study, token=self.token)
            except Exception:  # a transient database error: try again at the next beat
                continue
            if not held:
                self.lost = True
                return

    def check(self) -> None:
        """Raise `LeaseLostError` if another run took the study over."""
        if self.lost:
            lease = self.store.get_lease(study=self.study)
            who = lease.owner() if lease is not None else "nobody"
            raise LeaseLostError(f"study {self.study!r} was taken over by {who} while this "
                                 f"run ({self.owner()}) was not beating; stopping")

    def release(self) -> None:
        """Stop beating and give the lease back (if still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.release_lease(study=self.study, token=self.token)

    def __enter__(self) -> StudyLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---- stages ----------------------------------------------------------------------------


def stage_train(ctx: StudyContext, *, nproc: int = 1) -> dict[str, Any]:
    """Train (or resume) the supernet, then store its checkpoint and metrics log; ``nproc``
    > 1 trains data-parallel (one rank per GPU, or gloo processes on CPU) with the study's
    batch size as the global batch; the checkpoint is the same either way."""
    from nas.training import load_checkpoint, train_data_parallel, train_supernet
    from nas.training.trainer import METRICS_NAME

    data = ctx.data()
    common = dict(train=data.train_source(), val=(data.val.x, data.val.y),
                  config=ctx.train_config(), out_dir=ctx.supernet_dir, resume=True)
    if nproc != 1:  # train_data_parallel refuses a bad count before anything starts
        result = train_data_parallel(nproc=nproc, space_factory=ctx.study.build_space,
                                     **common)
    else:
        result = train_supernet(space=ctx.space(), **common)
    ctx._cache.pop("supernet", None)
    # the store records the checkpoint the later stages use (best.pt when kept) and its step
    selected = selected_checkpoint(ctx.supernet_dir)
    state = load_checkpoint(selected)
    sha = sha256_file(selected)
    ctx.store.add_checkpoint(study=ctx.name, path=str(selected.resolve()), sha256=sha,
                             step=int(state["step"]))
    rows = ctx.store.import_metrics_log(study=ctx.name, run="supernet",
                                        path=ctx.supernet_dir / METRICS_NAME)
    largest = next(p for p in result.panel if p["role"] == "largest")
    return {"step": result.step, "checkpoint": sha, "metrics_rows": rows,
            "largest_val_accuracy": largest["accuracy"], "largest_val_loss": largest["loss"],
            "selected": selected.name, "selected_step": int(state["step"]),
            "best_step": int(state["step"]) if selected.name != "checkpoint.pt" else None,
            "best_panel_loss": state.get("panel_loss")}


def stage_evaluate(ctx: StudyContext, *, workers: int = 1,
                   address: str | None = None) -> dict[str, Any]:
    """Score a seeded sample of subnets with inherited weights on the validation split and
    its two halves (the halves give the labels' noise ceiling). Results are stored batch by
    batch, so a killed run keeps what it finished; ``workers`` > 1 or a Ray ``address``
    spreads the batches over Ray actors (same numbers as in process)."""
    import numpy as np

    from nas.distributed import make_evaluator
    from nas.progress import progress_bar

    space, data, config = ctx.space(), ctx.data(), ctx.study.evaluation
    rng = np.random.default_rng([config.seed, 104729])
    archs = list({a.key(): a for a in [space.largest(), space.smallest()] + [
        space.sample(rng) for _ in range(config.n_archs)]}.values())
    sha = ctx.checkpoint_sha()
    done = {e.arch_key for e in ctx.store.get_evaluations(study=ctx.name, metric="val_loss_b",
                                                          source="supernet", checkpoint=sha)}
    todo = [a for a in archs if a.key() not in done]
    ctx.store.upsert_archs(study=ctx.name, archs=[
        ArchRecord.from_arch(a, flops=space.flops(a), params=space.params(a)) for a in archs])
    if todo:
        with progress_bar(len(todo), "evaluate subnets") as advance:
            evaluator = make_evaluator(
                supernet=ctx.supernet(), x=data.val.x, y=data.val.y, workers=workers,
                address=address, batch_size=config.batch_size, halves=True, store=ctx.store,
                study=ctx.name, checkpoint=sha, fidelity=f"val={len(data.val)}",
                reuse_stored=False, on_batch=lambda report: advance(len(report.arch_keys)))
            try:
                evaluator(todo)
            finally:
                evaluator.close()
    return {"archs": len(archs), "evaluated_now": len(todo), "checkpoint": sha}


def _profile_config(ctx: StudyContext):
    from dataclasses import replace

    from nas.latency.profile import MeasureConfig, default_timings

    cfg = ctx.study.profiling
    layer, model = default_timings(cfg.device, cfg.mode)
    if cfg.min_block_s is not None:
        layer = replace(layer, min_total_s=cfg.min_block_s)
        model = replace(model, min_total_s=cfg.min_block_s)
    return MeasureConfig(device=cfg.device, mode=cfg.mode, batch_size=cfg.batch_size,
                         layer_timing=layer, model_timing=model)


def stage_profile(ctx: StudyContext) -> dict[str, Any]:
    """Measure this machine's latency table for the space (resumable file in the run dir),
    calibrate and validate it on whole models, and store it."""
    from nas.latency.profile import build_table, calibrate_and_validate, needs_validation
    from nas.latency.store import store_table
    from nas.latency.trust import latency_trust, validation_line

    config, cfg = _profile_config(ctx), ctx.study.profiling
    out = ctx.run_dir / f"latency_{config.fingerprint().id}.json"
    table = build_table(ctx.space(), config=config, out=out)
    if needs_validation(table):
        calibrate_and_validate(table, ctx.space(), config=config,
                               n_calibration=cfg.n_calibration, n_validation=cfg.n_validation,
                               seed=ctx.study.seed)
        table.save(out)
    store_table(ctx.store, table, space=ctx.space_key())
    validation = table.validation
    assert validation is not None  # calibrate_and_validate ran unless it was there already
    ctx.console.print(f"latency table {table.fingerprint.id} ({len(table)} layers): "
                      f"{validation_line(validation)}")
    trust = latency_trust(table.validation)
    for line in trust.lines():
        ctx.console.print(line, style=None if trust.trusted else "bold yellow", markup=False)
    cal = validation.get("calibrated", {})
    return {"fingerprint": table.fingerprint.id, "entries": len(table), "file": str(out),
            **{k: cal[k] for k in ("mape", "within10", "kendall") if k in cal},
            "repeat_within10": trust.repeat_within10, "latency_trust": trust.status}


def import_profile(ctx: StudyContext, path: str | Path) -> dict[str, Any]:
    """`nas profile STUDY --import table.json`: store a table measured on another machine."""
    from kernels import signature
    from nas.latency.profile import enumerate_layer_specs
    from nas.latency.store import import_table_file
    from nas.latency.trust import latency_trust, validation_line

    check_latency_table_file(path, study=ctx.study)  # crafted or corrupt: one line, no write
    expected = {signature(s) for s in enumerate_layer_specs(ctx.space())}
    table = import_table_file(ctx.store, path, space_name=ctx.space_key(),
                              expected_signatures=expected)
    trust = latency_trust(table.validation)
    if table.validation:
        ctx.console.print(f"latency table {table.fingerprint.id}: "
                          f"{validation_line(table.validation)}", markup=False)
    for line in trust.lines():
        ctx.console.print(line, style=None if trust.trusted else "bold yellow", markup=False)
    detail = {"fingerprint": table.fingerprint.id, "entries": len(table), "file": str(path),
              "imported": True, "latency_trust": trust.status}
    ctx.store.set_stage_status(study=ctx.name, stage="profile", status="done", detail=detail)
    return detail


def check_latency_table_file(path: str | Path, *, study: Study):
    """Read a latency table file and refuse it unless every latency is finite and
    positive (spreads finite and >= 0, repeats >= 1, calibration finite with a positive
    scale) and its fingerprint matches the study's profiling settings (mode, batch size,
    device type). Returns the table; raises `ValueError` naming the file and the field."""
    from kernels import LatencyTable

    path = Path(path)
    try:
        table = LatencyTable.load(path)
    except ValueError as exc:
        raise ValueError(f"latency table {path}: {exc}") from None
    if not table.entries:
        raise ValueError(f"latency table {path}: it has no entries")
    for sig, e in table.entries.items():
        where = f"latency table {path}: entry {sig[:60]!r}"
        for name, value, ok in (("median_ms", e.median_ms, lambda v: v > 0),
                                ("spread_ms", e.spread_ms, lambda v: v >= 0)):
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not ok(value)):
                need = "> 0" if name == "median_ms" else ">= 0"
                raise ValueError(f"{where}: {name} must be a finite number {need}, "
                                 f"got {value!r}")
        if isinstance(e.repeats, bool) or not isinstance(e.repeats, int) or e.repeats < 1:
            raise ValueError(f"{where}: repeats must be an int >= 1, got {e.repeats!r}")
    cal = table.calibration
    if cal is None:  # the search cannot use it (it composes layer sums with the calibration)
        raise ValueError(f"latency table {path}: it has no calibration; build it with "
                         f"`python -m nas.latency.profile`, which calibrates it on whole models")
    if cal is not None:
        for name in ("scale", "per_layer_ms", "intercept_ms"):
            value = getattr(cal, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value)):
                raise ValueError(f"latency table {path}: calibration.{name} must be a finite "
                                 f"number, got {value!r}")
        if cal.scale <= 0:
            raise ValueError(f"latency table {path}: calibration.scale must be > 0, got "
                             f"{cal.scale!r}")
    fp, cfg = table.fingerprint, study.profiling
    for name, got, want in (("mode", fp.mode, cfg.mode), ("batch_size", fp.batch_size,
                                                          cfg.batch_size),
                            ("device type", fp.device_type, cfg.device)):
        if got != want:
            raise ValueError(f"latency table {path}: measured with {name} {got!r}, but study "
                             f"{study.name!r} profiles with {want!r} (profiling="
                             f"ProfilingConfig(...) in the study file)")
    return table


def check_stored_predictor(ctx: StudyContext) -> None:
    """Refuse, before anything is written, a stored predictor whose files do not load or
    predict (a crafted or corrupt file); a missing one is left to the caller."""
    record = ctx.store.get_latest_predictor(study=ctx.name)
    if record is None or record.path is None or not Path(record.path).is_dir():
        return
    from predictors import load_predictor

    space = ctx.space()
    try:
        model = load_predictor(record.path, space=space)
        mean, _ = model.predict([space.smallest(), space.largest()])
        values = [float(v) for v in mean]
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"stored {record.kind} predictor {record.path} cannot be used "
                         f"({type(exc).__name__}: {first}); refit it with `nas predict "
                         f"{ctx.path}`") from None
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"stored {record.kind} predictor {record.path} predicts {values} for "
                         f"the smallest and largest subnets; refit it with `nas predict "
                         f"{ctx.path}`")


def supernet_labels(ctx: StudyContext) -> tuple[list, dict[str, dict[str, float]]]:
    """The archs evaluated with the current checkpoint and their metrics by name."""
    from search_spaces import Arch

    sha = ctx.checkpoint_sha()
    by_arch: dict[str, dict[str, float]] = {}
    for e in ctx.store.get_evaluations(study=ctx.name, source="supernet", checkpoint=sha):
        by_arch.setdefault(e.arch_key, {})[e.metric] = e.value
    records = {a.key: a for a in ctx.store.get_archs(study=ctx.name, keys=list(by_arch))}
    archs = [Arch.from_json(records[k].arch_json) for k in sorted(by_arch) if k in records]
    return archs, by_arch


def stage_predict(ctx: StudyContext) -> dict[str, Any]:
    """Fit the study's predictor on the evaluated subnets: ranking metrics on a held-out
    part (against the split-half noise ceiling), then refit on all labels and store it."""
    import numpy as np

    from predictors import fit_with_holdout

    cfg = ctx.study.predictor
    archs, labels = supernet_labels(ctx)
    archs = [a for a in archs if "val_loss" in labels[a.key()]]
    if len(archs) < 16:
        raise ValueError(f"only {len(archs)} evaluated subnets: run the evaluate stage first")
    y = np.array([labels[a.key()]["val_loss"] for a in archs])
    # held out: only the evaluate stage's random sample (it has the split-half losses, so
    # the noise ceiling is measured on the same archs); the search's evaluations, biased
    # towards the front, are training labels only
    sampled = np.array([i for i, a in enumerate(archs)
                        if {"val_loss_a", "val_loss_b"} <= labels[a.key()].keys()], dtype=int)
    if len(sampled) < 8:
        raise ValueError(f"only {len(sampled)} subnets from the evaluate stage: run it first "
                         f"(`nas predict STUDY` runs both)")
    halves = ([labels[a.key()].get("val_loss_a") for a in archs],
              [labels[a.key()].get("val_loss_b") for a in archs])
    fit = fit_with_holdout(cfg.kind, ctx.space(), archs, y, sampled=sampled,
                           holdout=cfg.holdout, seed=cfg.seed, halves=halves,
                           options=cfg.options)
    metrics, model = fit.metrics, fit.model
    sha = ctx.checkpoint_sha()
    ctx.store.add_evaluations(study=ctx.name, evaluations=[
        Evaluation(arch_key=archs[i].key(), metric="val_loss", value=float(m),
                   source="predictor", checkpoint=sha, fidelity=f"{cfg.kind}:holdout")
        for i, m in zip(fit.test, fit.predictions)])
    path = model.save(ctx.run_dir / f"predictor_{cfg.kind}")
    ctx.store.save_predictor(study=ctx.name, kind=cfg.kind, metrics=metrics,
                             n_labels=len(archs), path=str(Path(path).resolve()))
    ctx.console.print(f"predictor {cfg.kind}: held-out Kendall tau {metrics['kendall_tau']:.3f}"
                      + (f" (noise ceiling {metrics['noise_ceiling_tau']:.3f})"
                         if "noise_ceiling_tau" in metrics else ""))
    return metrics


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


def stage_search(ctx: StudyContext, *, config=None, workers: int = 1,
                 address: str | None = None, run_name: str = "search") -> dict[str, Any]:
    """Predictor-guided evolutionary Pareto search; evaluations and the front are stored
    as they come, so a killed search resumes without re-evaluating anything."""
    from nas.distributed import make_evaluator
    from nas.search import run_search

    config = config or ctx.study.search
    data = ctx.data()
    latency = latency_scorer(ctx)
    if latency is None and any(o == "latency" for o in config.objectives) or (
            latency is None and config.constraints.max_latency_ms is not None):
        raise ValueError("the search needs a latency table: run `nas profile STUDY` first")
    evaluator = make_evaluator(supernet=ctx.supernet(), x=data.val.x, y=data.val.y,
                               workers=workers, address=address, batch_size=512)

    def evaluate(archs):
        return [{"val_loss": r["val_loss"], "val_accuracy": r["val_accuracy"]}
                for r in evaluator(archs)]

    try:
        result = run_search(space=ctx.space(), evaluate=evaluate, config=config,
                            latency=None if latency is None else latency[1],
                            store=ctx.store, study=ctx.name, run_name=run_name,
                            checkpoint=ctx.checkpoint_sha(), fidelity=f"val={len(data.val)}")
    finally:
        evaluator.close()
    knee = result.knee()
    return {"run": run_name, "evaluated": result.budget_used, "front": len(result.front),
            "knee": knee.key(), "objectives": list(result.objectives)}


STAGE_FUNCTIONS: dict[str, Callable[[StudyContext], dict[str, Any]]] = {
    "train": stage_train,
    "profile": stage_profile,
    "evaluate": stage_evaluate,
    "predict": stage_predict,
    "search": stage_search,
    "export": lambda ctx: _stage_export(ctx),
}


def _stage_export(ctx: StudyContext) -> dict[str, Any]:
    """Export the knee of the front (the pipeline's default pick) with its model card."""
    from nas.export_study import export_study

    card = export_study(ctx)
    return {"arch": card["arch_key"], "out": card["out"],
            "val_accuracy": card["exported_model"]["val_accuracy"]}


def available_stages() -> list[str]:
    return [s for s in STAGES if s in STAGE_FUNCTIONS]


def run_stage(ctx: StudyContext, stage: str, **options: Any) -> dict[str, Any]:
    """Run one stage, recording running / done / failed in the store; ``options`` go to the
    stage function (``workers`` / ``address`` for evaluate)."""
    if stage not in STAGE_FUNCTIONS:
        raise ValueError(f"unknown stage {stage!r}; stages: {available_stages()}")
    if ctx.lease is not None:
        ctx.lease.check()
    ctx.store.set_stage_status(
        study=ctx.name, stage=stage, status="running",
        detail=None if ctx.lease is None else {"owner": ctx.lease.owner()})
    try:
        detail = STAGE_FUNCTIONS[stage](ctx, **options)
    except BaseException as exc:
        ctx.store.set_stage_status(study=ctx.name, stage=stage, status="failed",
                                   detail={"error": f"{type(exc).__name__}: {exc}"})
        raise
    ctx.store.set_stage_status(study=ctx.name, stage=stage, status="done", detail=detail)
    return detail


def run_pipeline(ctx: StudyContext, *, redo: Sequence[str] = (), nproc: int = 1,
                 ) -> list[str]:
    """Run every stage that is not done (plus those in ``redo``); returns the stages run.
    ``nproc`` > 1 trains the supernet data-parallel (`stage_train`)."""
    unknown = [s for s in redo if s not in STAGE_FUNCTIONS]
    if unknown:
        raise ValueError(f"--redo: unknown stage(s) {unknown}; stages: {available_stages()}")
    ran = []
    for stage in available_stages():
        status = ctx.store.get_stage_status(study=ctx.name, stage=stage)
        if status is not None and status.status == "done" and stage not in redo:
            ctx.console.print(f"[dim]{stage}: done, skipped[/dim]")
            continue
        ctx.console.print(f"[bold]{stage}[/bold] ...")
        detail = run_stage(ctx, stage, **({"nproc": nproc} if stage == "train" else {}))
        ctx.console.print(f"{stage}: done {detail}")
        ran.append(stage)
    return ran
