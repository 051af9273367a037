"""The study pipeline: train -> profile -> evaluate -> predict -> search -> export.

Each stage records its status in the store (pending / running / done / failed); `nas run`
runs every stage that is not done, so a study killed at any point resumes at the first
unfinished stage (training itself resumes from its last checkpoint, and every write is an
idempotent upsert, so replays never duplicate rows). ``redo`` re-runs named stages. The
stages share a `nas.study_context.StudyContext` (opened by `nas.open_study`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.storage import ArchRecord, Evaluation
from nas.study import Study
from nas.study_context import (
    StudyContext,
    latency_scorer,
    selected_checkpoint,
    sha256_file,
    supernet_labels,
)

STAGES: tuple[str, ...] = ("train", "profile", "evaluate", "predict", "search", "export")


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
    ctx.store.put_checkpoint(study=ctx.name, path=str(selected.resolve()), sha256=sha,
                             step=int(state["step"]))
    rows = ctx.store.import_metrics_log(study=ctx.name, run="supernet",
                                        path=ctx.supernet_dir / METRICS_NAME)
    largest = next(p for p in result.panel if p["role"] == "largest")
    return {"step": result.step, "checkpoint_sha256": sha, "metrics_rows": rows,
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
                                                          source="supernet", checkpoint_sha256=sha)}
    todo = [a for a in archs if a.key() not in done]
    ctx.store.put_archs(study=ctx.name, archs=[
        ArchRecord.from_arch(a, flops=space.flops(a), params=space.params(a)) for a in archs])
    if todo:
        with progress_bar(len(todo), "evaluate subnets") as advance:
            evaluator = make_evaluator(
                supernet=ctx.supernet(), x=data.val.x, y=data.val.y, workers=workers,
                address=address, batch_size=config.batch_size, halves=True, store=ctx.store,
                study=ctx.name, checkpoint_sha256=sha, fidelity=f"val={len(data.val)}",
                reuse_stored=False, on_batch=lambda report: advance(len(report.arch_keys)))
            try:
                evaluator(todo)
            finally:
                evaluator.close()
    return {"archs": len(archs), "evaluated_now": len(todo), "checkpoint_sha256": sha}


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
    ctx.store.put_stage_status(study=ctx.name, stage="profile", status="done", detail=detail)
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
    ctx.store.put_evaluations(study=ctx.name, evaluations=[
        Evaluation(arch_key=archs[i].key(), metric="val_loss", value=float(m),
                   source="predictor", checkpoint_sha256=sha,
                   fidelity=f"{cfg.kind}:holdout")
        for i, m in zip(fit.test, fit.predictions)])
    path = model.save(ctx.run_dir / f"predictor_{cfg.kind}")
    ctx.store.put_predictor(study=ctx.name, kind=cfg.kind, metrics=metrics,
                             n_labels=len(archs), path=str(Path(path).resolve()))
    ctx.console.print(f"predictor {cfg.kind}: held-out Kendall tau {metrics['kendall_tau']:.3f}"
                      + (f" (noise ceiling {metrics['noise_ceiling_tau']:.3f})"
                         if "noise_ceiling_tau" in metrics else ""))
    return metrics


def stage_search(ctx: StudyContext, *, config=None, workers: int = 1,
                 address: str | None = None, run: str = "search") -> dict[str, Any]:
    """Predictor-guided evolutionary Pareto search; evaluations and the front are stored
    as they come, so a killed search resumes without re-evaluating anything."""
    from nas.distributed import make_evaluator
    from nas.search import run_search

    config = config or ctx.study.search
    data = ctx.data()
    latency = latency_scorer(ctx)
    if latency is None and "latency_ms" in config.objectives or (
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
                            store=ctx.store, study=ctx.name, run=run,
                            checkpoint_sha256=ctx.checkpoint_sha(),
                            fidelity=f"val={len(data.val)}")
    finally:
        evaluator.close()
    knee = result.knee()
    return {"run": run, "evaluated": result.budget_used, "front": len(result.front),
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
    from nas.export.study import export_study

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
    ctx.store.put_stage_status(
        study=ctx.name, stage=stage, status="running",
        detail=None if ctx.lease is None else {"owner": ctx.lease.owner()})
    try:
        detail = STAGE_FUNCTIONS[stage](ctx, **options)
    except BaseException as exc:
        ctx.store.put_stage_status(study=ctx.name, stage=stage, status="failed",
                                   detail={"error": f"{type(exc).__name__}: {exc}"})
        raise
    ctx.store.put_stage_status(study=ctx.name, stage=stage, status="done", detail=detail)
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
