"""AutoML of the supernet training recipe: Ray Tune + OptunaSearch (TPE) + ASHA.

Each trial trains the study's supernet for ``trial_steps`` steps with one recipe (learning
rate, weight decay, warm-up, distillation weight and temperature, sampler, its bin count,
subnets per step) and reports, ``reports`` times along the way, the mean validation loss
and accuracy of the fixed subnet panel (largest, smallest and the study's random panel
subnets). ASHA stops the trials that trail at a report; Optuna proposes the next recipes
from the finished ones. The study's own recipe is the first trial, so the best stored
recipe is never worse than the default on this budget. Every trial lands in the store
(`Store.put_trial`) as it starts, reports and ends; `best_recipe` turns the best one into
`TrainConfig` overrides (``nas train STUDY --recipe best``).

Example::

    summary = run_tune(study_file="studies/quickstart.py", trials=20, trial_steps=100)
    overrides = best_recipe(store=open_store(), study="quickstart", steps=400)
    config = study.training.with_overrides(**overrides)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from nas.storage import Store, TrialRecord, open_store
from nas.study import Study, load_study
from nas.training.config import TrainConfig
from nas.training.samplers import SAMPLERS

METRICS = {"loss": "min", "accuracy": "max"}

# (low, high, log) of each searched number; the sampler is categorical over SAMPLERS
RANGES: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-4, 1e-2, True),
    "weight_decay": (1e-4, 0.2, True),
    "warmup_fraction": (0.0, 0.3, False),
    "distill_weight": (0.0, 1.0, False),
    "temperature": (0.5, 4.0, True),
    "bins": (2, 16, False),
    "num_random": (1, 4, False),
}
INTEGERS = ("bins", "num_random")


@dataclass(frozen=True)
class TuneSummary:
    """What a tuning run stored: its trials (numbers, configs, scores, statuses) and the
    best recipe as `TrainConfig` overrides (None if no trial finished)."""

    study: str
    metric: str
    trials: list[TrialRecord]
    best: dict[str, Any] | None
    storage_path: Path
    seconds: float


def search_space() -> dict[str, Any]:
    """The recipe space as Optuna distributions (what OptunaSearch samples)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    space: dict[str, Any] = {"sampler": CategoricalDistribution(list(SAMPLERS))}
    for name, (low, high, log) in RANGES.items():
        space[name] = (IntDistribution(int(low), int(high)) if name in INTEGERS
                       else FloatDistribution(low, high, log=log))
    return space


def params_of(config: TrainConfig) -> dict[str, Any]:
    """A study's recipe as search parameters (clipped into the ranges): the first trial."""
    params: dict[str, Any] = {"sampler": config.sampler}
    values = dict(lr=config.lr, weight_decay=config.weight_decay,
                  warmup_fraction=config.warmup_steps / config.steps,
                  distill_weight=config.distill_weight, temperature=config.temperature,
                  bins=config.bins, num_random=config.num_random)
    for name, value in values.items():
        low, high, _ = RANGES[name]
        value = min(max(value, low), high)
        params[name] = int(value) if name in INTEGERS else float(value)
    return params


def recipe_of(params: dict[str, Any], steps: int) -> dict[str, Any]:
    """Search parameters -> `TrainConfig` overrides for a run of ``steps`` steps."""
    recipe = {k: v for k, v in params.items() if k in RANGES or k == "sampler"}
    recipe["warmup_steps"] = int(round(recipe.pop("warmup_fraction") * steps))
    for name in INTEGERS:
        recipe[name] = int(recipe[name])
    return recipe


def _trial(params: dict[str, Any], *, space_name: str, space_overrides: dict[str, Any],
           base: dict[str, Any], train: Any, val: tuple, trial_steps: int,
           reports: int) -> None:
    """One Tune trial (runs in a Ray worker): train in ``reports`` chunks, report each."""
    from ray import tune

    from nas.training import train_supernet
    from search_spaces import get_space

    space = get_space(space_name, **space_overrides)
    config = TrainConfig.from_dict({**base, **recipe_of(params, trial_steps),
                                    "steps": trial_steps, "eval_every": trial_steps,
                                    "checkpoint_every": trial_steps})
    out = Path(tune.get_context().get_trial_dir()) / "supernet"
    for i in range(1, reports + 1):
        stop = max(1, round(i * trial_steps / reports))
        result = train_supernet(space=space, train=train, val=val, config=config, out_dir=out,
                                resume=True, stop_at=stop, progress=False)
        panel = result.panel
        tune.report({"loss": sum(p["loss"] for p in panel) / len(panel),
                     "accuracy": sum(p["accuracy"] for p in panel) / len(panel),
                     "step": result.step})


def _recorder(store: Store, study: str, *, first_number: int, trial_steps: int,
              metric: str, seed: int, on_trial_end: Callable[..., None] | None):
    """A Tune callback writing each trial to the store as it starts, reports and ends."""
    from ray import tune

    class TrialRecorder(tune.Callback):
        # state passed in, not closed over: Tune pickles this class by value
        def __init__(self, store: Store, study: str, first_number: int, trial_steps: int,
                     metric: str, seed: int, on_trial_end: Any) -> None:
            self.store: Store | None = store
            self.on_trial_end = on_trial_end
            self.study, self.first_number, self.trial_steps = study, first_number, trial_steps
            self.metric, self.seed = metric, seed
            self.numbers: dict[str, int] = {}

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its callbacks into the experiment state; a database engine does
            # not pickle, and a restored experiment is recorded by the caller's own store
            return {**self.__dict__, "store": None, "on_trial_end": None}

        def _write(self, trial: Any, status: str, result: dict[str, Any] | None) -> None:
            if self.store is None:
                return
            number = self.numbers.setdefault(trial.trial_id,
                                             self.first_number + len(self.numbers))
            params = dict(trial.config)
            result = result or trial.last_result or {}
            step = int(result.get("step", 0))
            if status == "done" and step < self.trial_steps:
                status = "stopped"  # ended early by ASHA
            score = None if result.get(self.metric) is None else float(result[self.metric])
            config = {"recipe": recipe_of(params, self.trial_steps), "params": params,
                      "trial_steps": self.trial_steps, "steps": step, "metric": self.metric,
                      "mode": METRICS[self.metric], "seed": self.seed,
                      "tune_trial_id": trial.trial_id}
            self.store.put_trial(study=self.study, number=number, status=status, score=score,
                                 config=config)
            if status != "running" and self.on_trial_end is not None:
                self.on_trial_end(number, status, score, config)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._write(trial, "running", {})

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self._write(trial, "running", result)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._write(trial, "done", None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._write(trial, "failed", None)

    return TrialRecorder(store, study, first_number, trial_steps, metric, seed, on_trial_end)


def run_tune(*, study_file: str | Path | None = None, study: Study | None = None,
             trials: int = 16, trial_steps: int = 100, reports: int = 4,
             workers: int | None = None, cpus_per_trial: float = 1.0,
             gpus_per_trial: float = 0.0, metric: str = "loss", address: str | None = None,
             store: Store | None = None, storage_url: str | None = None, seed: int = 0,
             out_dir: str | Path | None = None, verbose: bool = False,
             on_trial_end: Callable[[int, str, float | None, dict[str, Any]], None]
             | None = None) -> TuneSummary:
    """Tune the training recipe of a study (give ``study_file`` or ``study``).

    ``trials`` recipes, each trained ``trial_steps`` steps and scored ``reports`` times by
    the panel's mean validation ``metric`` (``loss`` or ``accuracy``); ``workers`` trials
    at a time (default: as many as the cluster's CPUs allow at ``cpus_per_trial`` each).
    Ray: local, or the cluster at ``address`` / ``$RAY_ADDRESS``. Trials go to ``store``
    (else the store at ``storage_url``, else the default store); Tune's own files to
    ``out_dir`` (default ``runs/<study>/tune``). ``on_trial_end(number, status, score,
    config)`` is called as each trial ends (status ``done``, ``stopped`` by ASHA, or
    ``failed``), e.g. to print progress.
    """
    if (study_file is None) == (study is None):
        raise ValueError("run_tune: give exactly one of study_file and study")
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {sorted(METRICS)}, got {metric!r}")
    if trials < 1 or trial_steps < 1 or not 1 <= reports <= trial_steps:
        raise ValueError("trials and trial_steps must be >= 1, reports in 1..trial_steps")
    if workers is not None and workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ValueError("cpus_per_trial must be > 0 and gpus_per_trial >= 0")
    study = study or load_study(cast("str | Path", study_file))  # exactly one was given
    own_store = store is None
    store = store or open_store(storage_url)
    try:
        return _tune(study, trials=trials, trial_steps=trial_steps, reports=reports,
                     workers=workers, cpus_per_trial=cpus_per_trial,
                     gpus_per_trial=gpus_per_trial, metric=metric, address=address,
                     store=store, seed=seed, out_dir=out_dir, verbose=verbose,
                     on_trial_end=on_trial_end)
    finally:
        if own_store:
            store.close()


def _tune(study: Study, *, trials: int, trial_steps: int, reports: int, workers: int | None,
          cpus_per_trial: float, gpus_per_trial: float, metric: str, address: str | None,
          store: Store, seed: int, out_dir: str | Path | None, verbose: bool,
          on_trial_end: Callable[..., None] | None) -> TuneSummary:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from nas.distributed.runtime import ray_session

    started = time.perf_counter()
    if not verbose:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = study.load_data()
    store.create_or_get_study(name=study.name, space=study.space,
                              space_overrides=dict(study.space_overrides))
    known = store.list_trials(study=study.name)
    first_number = max((t.number for t in known), default=-1) + 1
    base = study.training.to_dict()
    base["threads"] = max(1, math.floor(cpus_per_trial))
    if gpus_per_trial > 0:
        base["device"] = "cuda"
    storage = Path(out_dir or Path("runs") / study.name / "tune").resolve()
    trainable = tune.with_resources(
        tune.with_parameters(_trial, space_name=study.space,
                             space_overrides=dict(study.space_overrides), base=base,
                             train=data.train_source(), val=(data.val.x, data.val.y),
                             trial_steps=trial_steps, reports=reports),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    search = OptunaSearch(space=search_space(), metric=metric, mode=METRICS[metric],
                          points_to_evaluate=[params_of(study.training)], seed=seed)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=reports,
                              grace_period=1, reduction_factor=2)
    recorder = _recorder(store, study.name, first_number=first_number,
                         trial_steps=trial_steps, metric=metric, seed=seed,
                         on_trial_end=on_trial_end)
    with ray_session(address=address, verbose=verbose):
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric=metric, mode=METRICS[metric],
                                        search_alg=search, scheduler=scheduler,
                                        num_samples=trials, max_concurrent_trials=workers),
            run_config=tune.RunConfig(name=f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str(storage), callbacks=[recorder],
                                      verbose=1 if verbose else 0,
                                      failure_config=tune.FailureConfig(max_failures=1)))
        tuner.fit()
    stored = [t for t in store.list_trials(study=study.name) if t.number >= first_number]
    try:
        best = best_recipe(store=store, study=study.name)
    except ValueError:
        best = None
    return TuneSummary(study=study.name, metric=metric, trials=stored, best=best,
                       storage_path=storage, seconds=time.perf_counter() - started)


def best_trial(*, store: Store, study: str) -> TrialRecord:
    """The stored trial with the best score among those that ran their full budget (any
    finished trial if none did); raises ValueError when the study has none."""
    finished = [t for t in store.list_trials(study=study)
                if t.status in ("done", "stopped") and t.score is not None
                and isinstance(t.config.get("recipe"), dict)]
    if not finished:
        raise ValueError(f"study {study!r} has no finished tuning trial: run `nas tune` first")
    full = [t for t in finished if t.status == "done"] or finished
    sign = -1.0 if full[0].config.get("mode") == "max" else 1.0
    return min(full, key=lambda t: (sign * cast(float, t.score), t.number))  # not None here


def best_recipe(*, store: Store, study: str, steps: int | None = None) -> dict[str, Any]:
    """`TrainConfig` overrides of the best stored trial (`best_trial`).

    The warm-up was tuned as a fraction of the trial; with ``steps`` (the horizon of the
    run that uses the recipe) it is rescaled to that horizon.
    """
    trial = best_trial(store=store, study=study)
    recipe = dict(trial.config["recipe"])
    fraction = trial.config.get("params", {}).get("warmup_fraction")
    if steps is not None and fraction is not None:
        recipe["warmup_steps"] = int(round(fraction * steps))
    return recipe
