"""`nas audit`: the rank-fidelity audit of a study, bound to its store (and Ray, if asked).

Order of work, each part stored as soon as it exists so a killed audit resumes:

1. the selection (`select_archs` over the study's evaluated archs and its stored front) is
   recorded in the ``audit`` stage before anything trains, and reused on a rerun with the
   same N, seed and checkpoint;
2. the supernet's inherited-weight accuracy (sequence studies: loss, `audit_metric`) of
   each selected arch on the test split (source ``supernet``, stored, reused);
3. the stored predictor's prediction (not stored: it is recomputed in milliseconds);
4. every (arch, seed) stand-alone run not already in the store (source ``standalone``,
   split ``test``, fidelity naming the recipe and seed) is trained and written the moment
   it finishes;
5. the report (`rank_fidelity`) becomes the ``audit`` stage's detail, where `nas export`
   and the app read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nas.audit.config import StandaloneRecipe
from nas.audit.fidelity import disagreements, rank_fidelity
from nas.audit.selection import SelectedArch, select_archs
from nas.audit.standalone import StandaloneJob, StandaloneResult, run_in_process
from nas.progress import progress_bar
from nas.storage import ArchRecord, Evaluation, StageStatus, Store
from nas.study_context import StudyContext, supernet_labels
from search_spaces import Arch

AUDIT_STAGE = "audit"
PROXY_NAMES = {"supernet": "supernet (inherited weights)", "predictor": "predictor",
               "flops": "FLOPs alone (floor)"}


@dataclass(frozen=True)
class AuditOutcome:
    """The stored report and how many stand-alone runs this call trained / found stored."""

    report: dict[str, Any]
    trained_now: int
    reused: int


def stored_audit(store: Store, study: str) -> StageStatus | None:
    """The ``audit`` stage of ``study`` (its detail is the report once ``done``)."""
    return store.get_stage_status(study=study, stage=AUDIT_STAGE)


def _check_inputs(ctx: StudyContext, *, n: int, seeds: int, workers: int) -> None:
    for name, value, low in (("--n", n, 2), ("--seeds", seeds, 1), ("--workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}"
                             + (" (an audit ranks at least 2 archs)" if name == "--n" else ""))
    from nas.training.checkpoint import CHECKPOINT_NAME

    train = ctx.store.get_stage_status(study=ctx.name, stage="train")
    checkpoint = ctx.supernet_dir / CHECKPOINT_NAME
    if train is None or train.status != "done" or not checkpoint.is_file():
        state = "not run" if train is None else train.status
        where = "" if checkpoint.is_file() else f", no checkpoint at {checkpoint}"
        raise ValueError(f"study {ctx.name!r} has no trained supernet (train stage: {state}"
                         f"{where}): run `nas run {ctx.path}` first")


def _front_archs(ctx: StudyContext, run: str) -> list[Arch]:
    if not any(r.name == run for r in ctx.store.list_search_runs(study=ctx.name)):
        return []
    keys = [r.arch_key for r in ctx.store.get_front(study=ctx.name, run=run)]
    return [Arch.from_json(r.arch_json) for r in ctx.store.get_archs(study=ctx.name, keys=keys)]


def selection_params(detail: dict[str, Any]) -> dict[str, Any] | None:
    """What a stored audit's selection was made for (N, seed, checkpoint, search run), under
    today's names ``checkpoint_sha256`` and ``run`` (audits before 2026-12-03 stored them as
    ``checkpoint`` and ``front_run``); None when the audit stored none."""
    params = detail.get("selection_params")
    if not isinstance(params, dict):
        return None
    params = dict(params)
    for old, new in (("front_run", "run"), ("checkpoint", "checkpoint_sha256")):
        if old in params and new not in params:
            params[new] = params.pop(old)
    return params


def _selection(ctx: StudyContext, *, n: int, sha: str, run: str) -> list[SelectedArch]:
    """The recorded selection when it was made for the same N, seed and checkpoint, else a
    new one (recorded by the caller)."""
    config = ctx.study.audit
    params = {"n": n, "seed": config.seed, "checkpoint_sha256": sha, "run": run}
    previous = stored_audit(ctx.store, ctx.name)
    if previous is not None and previous.detail and selection_params(
            previous.detail) == params:
        return [SelectedArch.from_dict(d) for d in previous.detail["selection"]]
    candidates, _ = supernet_labels(ctx)
    return select_archs(space=ctx.space(), n=n, candidates=candidates,
                        front=_front_archs(ctx, run), seed=config.seed,
                        front_share=config.front_share)


def audit_metric(ctx: StudyContext) -> tuple[str, float]:
    """The test metric an audit ranks by and its orientation (+1: higher is better): test
    accuracy for image studies, the test loss (nats per token) for sequence studies, where
    next-token accuracy is a poor summary of a language model."""
    return ("test_loss", -1.0) if ctx.space().modality == "sequence" else ("test_accuracy", 1.0)


def _supernet_scores(ctx: StudyContext, archs: list[Arch], sha: str) -> dict[str, float]:
    """Inherited-weight `audit_metric` of each arch on the test split (stored; reused when
    already there)."""
    from nas.distributed import make_evaluator

    data = ctx.data()
    metric, _ = audit_metric(ctx)
    with make_evaluator(supernet=ctx.supernet(), x=data.test.x, y=data.test.y,
                        batch_size=ctx.study.audit.eval_batch_size, store=ctx.store,
                        study=ctx.name, checkpoint_sha256=sha, split="test") as evaluate:
        return {r["arch_key"]: r[metric] for r in evaluate(archs)}


def _predictor_scores(ctx: StudyContext, archs: list[Arch]) -> tuple[
        list[float] | None, str, str | None]:
    """(minus the predicted validation loss of each arch, why not, predictor kind)."""
    record = ctx.store.get_latest_predictor(study=ctx.name)
    if record is None:
        return None, f"n/a: no stored predictor (run `nas predict {ctx.path}`)", None
    if record.path is None or not Path(record.path).is_dir():
        return None, f"n/a: the stored {record.kind} predictor's files are missing " \
                     f"({record.path})", record.kind
    from predictors import load_predictor

    model = load_predictor(record.path, space=ctx.space())
    mean, _ = model.predict(archs)
    return [-float(m) for m in mean], "", record.kind


def _done_runs(ctx: StudyContext, recipe: StandaloneRecipe, keys: list[str], seeds: int
               ) -> dict[tuple[str, int], float]:
    fidelity = {recipe.fidelity(s): s for s in range(seeds)}
    found = {}
    for e in ctx.store.get_evaluations(study=ctx.name, metric=audit_metric(ctx)[0],
                                       source="standalone", split="test", arch_keys=keys):
        if e.fidelity in fidelity:
            found[(e.arch_key, fidelity[e.fidelity])] = e.value
    return found


def _store_result(ctx: StudyContext, recipe: StandaloneRecipe, r: StandaloneResult) -> None:
    fidelity = recipe.fidelity(r.seed)
    ctx.store.put_evaluations(study=ctx.name, evaluations=[
        Evaluation(arch_key=r.arch_key, metric=metric, value=value, source="standalone",
                   fidelity=fidelity, split="test")
        for metric, value in (("test_accuracy", r.test_accuracy), ("test_loss", r.test_loss))])


def _runner(ctx: StudyContext, jobs: list[StandaloneJob], *, recipe: StandaloneRecipe,
            device: str, workers: int, address: str | None) -> Iterator[StandaloneResult]:
    data = ctx.data()
    # a sequence study's stand-alone runs draw the supernet's random-offset windows
    train, test = data.train_source(), (data.test.x, data.test.y)
    import os

    if workers == 1 and address is None and not os.environ.get("RAY_ADDRESS"):
        return run_in_process(jobs, space=ctx.space(), recipe=recipe, train=train, test=test,
                              device=device)
    from nas.distributed.standalone import run_on_ray

    return run_on_ray(jobs, space=ctx.space(), recipe=recipe, train=train, test=test,
                      workers=workers, device=device, address=address)


def run_audit(ctx: StudyContext, *, n: int, seeds: int, workers: int = 1,
              address: str | None = None, budget: float | None = None,
              steps: int | None = None, device: str | None = None, run: str = "search",
              on_result: Callable[[StandaloneResult], None] | None = None,
              progress: bool = True) -> AuditOutcome:
    """Audit ``n`` archs of the study with ``seeds`` stand-alone runs each (see the module
    docstring); ``budget`` / ``steps`` override the study's audit recipe, ``device`` its
    training device. ``on_result`` is called after each stand-alone run is stored.

    Example::

        ctx = open_study("studies/quickstart.py", store=store)
        outcome = run_audit(ctx, n=6, seeds=1)
        outcome.report["comparisons"]["supernet"]["kendall_tau"]
    """
    _check_inputs(ctx, n=n, seeds=seeds, workers=workers)
    config = ctx.study.audit
    recipe = config.recipe(ctx.study.training, steps=steps, budget=budget)
    device = device or ctx.device or ctx.study.training.device
    space, store = ctx.space(), ctx.store
    sha = ctx.checkpoint_sha()
    selection = _selection(ctx, n=n, sha=sha, run=run)
    archs = [s.arch for s in selection]
    keys = [a.key() for a in archs]
    store.put_archs(study=ctx.name, archs=[
        ArchRecord.from_arch(a, flops=space.flops(a), params=space.params(a)) for a in archs])
    running = {"selection_params": {"n": n, "seed": config.seed, "checkpoint_sha256": sha,
                                    "run": run},
               "selection": [s.to_dict() for s in selection], "seeds": seeds,
               "recipe": recipe.to_dict(), "recipe_key": recipe.key(), "device": device}
    store.put_stage_status(study=ctx.name, stage=AUDIT_STAGE, status="running", detail=running)
    try:
        supernet = _supernet_scores(ctx, archs, sha)
        predictor, why_not, kind = _predictor_scores(ctx, archs)
        done = _done_runs(ctx, recipe, keys, seeds)
        jobs = [StandaloneJob(a.to_json(), s) for a in archs for s in range(seeds)
                if (a.key(), s) not in done]
        ctx.console.print(f"audit {ctx.name}: {n} archs x {seeds} seed(s), stand-alone "
                          f"recipe {recipe.describe()} on {device}; {len(done)} run(s) "
                          f"stored, {len(jobs)} to train")
        trained = 0
        with progress_bar(len(jobs), "stand-alone", enabled=progress,
                          console=ctx.console) as advance:
            for result in _runner(ctx, jobs, recipe=recipe, device=device, workers=workers,
                                  address=address):
                _store_result(ctx, recipe, result)
                trained += 1
                advance(note=f"{result.arch_key} seed {result.seed}: " + (
                    f"{result.test_loss:.4f} nats" if audit_metric(ctx)[0] == "test_loss"
                    else f"{100 * result.test_accuracy:.2f} %"))
                if on_result is not None:
                    on_result(result)
        done = _done_runs(ctx, recipe, keys, seeds)
        report = _report(ctx, selection=selection, runs=np.array(
            [[done[(k, s)] for s in range(seeds)] for k in keys]),
            supernet=[supernet[k] for k in keys], predictor=predictor,
            predictor_reason=why_not, predictor_kind=kind, running=running)
        report["trained_now"] = trained
    except BaseException as exc:
        store.put_stage_status(study=ctx.name, stage=AUDIT_STAGE, status="failed",
                               detail={**running, "error": f"{type(exc).__name__}: {exc}"})
        raise
    store.put_stage_status(study=ctx.name, stage=AUDIT_STAGE, status="done", detail=report)
    return AuditOutcome(report=report, trained_now=trained, reused=n * seeds - len(jobs))


def _report(ctx: StudyContext, *, selection: list[SelectedArch], runs: np.ndarray,
            supernet: list[float], predictor: list[float] | None, predictor_reason: str,
            predictor_kind: str | None, running: dict[str, Any]) -> dict[str, Any]:
    config = ctx.study.audit
    metric, sign = audit_metric(ctx)
    keys = [s.arch.key() for s in selection]
    flops = [float(s.flops) for s in selection]
    # ranks compare "higher is better" scores: a loss enters negated
    proxies = {"supernet": [sign * v for v in supernet], "predictor": predictor, "flops": flops}
    fidelity = rank_fidelity(standalone=sign * runs, proxies=proxies,
                             top_k=config.top_k(len(keys)),
                             reasons={"predictor": predictor_reason},
                             resamples=config.bootstrap, seed=config.bootstrap_seed,
                             level=config.level)
    truth = runs.mean(axis=1)
    rows = []
    for i, s in enumerate(selection):
        rows.append({"arch_key": keys[i], "label": s.arch.label(), "stratum": s.stratum,
                     "flops": s.flops, "standalone": float(truth[i]),
                     "standalone_seeds": [float(v) for v in runs[i]],
                     "supernet": supernet[i],
                     "predictor": None if predictor is None else predictor[i]})
    worst = {name: disagreements(keys, sign * truth, scores)
             for name, scores in proxies.items() if scores is not None}
    # mean of (standalone - inherited) in "higher is better" units: > 0 when inherited is worse
    gap = float(np.mean(sign * (truth - np.asarray(supernet, dtype=np.float64))))
    return {**running, **fidelity, "study": ctx.name, "predictor_kind": predictor_kind,
            "metric": metric, "higher_is_better": sign > 0,
            "mean_gap_inherited_vs_standalone": gap,
            "proxies": PROXY_NAMES, "rows": rows, "disagreements": worst,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


