"""Baselines in the same harness as our search: random search, Optuna NSGA-II and TPE.

Same `SearchSession` (budget, cache, constraint guard, store), same evaluator, same
objectives. Optuna samplers are driven through ask / tell on the same space, encoded as
categorical parameters: ``resolution``, and per stage ``stage{i}.width``, ``stage{i}.depth``
and one ``stage{i}.layer{j}`` per layer slot up to the largest depth (a layer option's label:
``A``, ``S``, ``G3``, ``C5``); an arch uses the first ``depth`` slots of its stage (a fixed
search space, which both samplers handle best). A trial whose arch breaks a hard constraint
is told FAIL without being evaluated and costs nothing; a trial that repeats an arch already
labelled is told its values for free. Optuna is imported only here, when a baseline runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from nas.search.budget import Evaluate
from nas.search.config import SearchConfig
from nas.search.objectives import ObjectiveSet, SearchSetupError
from nas.search.session import SearchResult, SearchSession
from search_spaces import Arch, SearchSpace, StageArch
from search_spaces.arch import LayerArch

BASELINES = ("random", "optuna_nsga2", "optuna_tpe")


class ArchParams:
    """The categorical encoding of a space's archs for Optuna's define-by-run API."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.options: list[dict[str, LayerArch]] = [
            {layer.label(): layer for layer in stage.layer_options()} for stage in space.stages]

    def suggest(self, trial: Any) -> Arch:
        """Ask ``trial`` for every parameter and decode the arch."""
        resolution = trial.suggest_categorical("resolution", list(self.space.resolution))
        stem = (None if self.space.stem is None
                else trial.suggest_categorical("stem", list(self.space.stem)))
        stages = []
        for i, (stage, options) in enumerate(zip(self.space.stages, self.options)):
            width = trial.suggest_categorical(f"stage{i}.width", list(stage.width))
            depth = trial.suggest_categorical(f"stage{i}.depth", list(stage.depth))
            labels = [trial.suggest_categorical(f"stage{i}.layer{j}", list(options))
                      for j in range(stage.depth.max)]
            stages.append(StageArch(depth=depth, width=width,
                                    layers=tuple(options[label] for label in labels[:depth])))
        return Arch(resolution=resolution, stages=tuple(stages), stem=stem)


def _random(session: SearchSession, space: SearchSpace, config: SearchConfig) -> dict[str, Any]:
    """Uniform samples, distinct and feasible, in batches of ``batch_size``."""
    rng = np.random.default_rng(config.seed)
    batch_size = config.batch_size or max(1, config.population // 2)
    seen: set[str] = set()
    draws, max_draws = 0, 1000 * config.budget
    while session.remaining > 0 and draws < max_draws:
        batch: list[Arch] = []
        while len(batch) < min(batch_size, session.remaining) and draws < max_draws:
            arch = space.sample(rng)
            draws += 1
            if arch.key() in seen:
                continue
            seen.add(arch.key())
            if session.objectives.feasible([arch])[0]:
                batch.append(arch)
        if batch:
            session.evaluate(batch)
    return {"draws": draws}


def _optuna_sampler(method: str, config: SearchConfig) -> Any:
    import optuna

    if method == "optuna_nsga2":
        return optuna.samplers.NSGAIISampler(population_size=config.population,
                                             seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, multivariate=True)


def _optuna(session: SearchSession, space: SearchSpace, config: SearchConfig,
            method: str) -> dict[str, Any]:
    """Sequential ask / tell (one trial at a time, the samplers' best setting)."""
    import optuna
    from optuna.trial import TrialState

    objectives: ObjectiveSet = session.objectives
    params = ArchParams(space)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(directions=["minimize"] * len(objectives.names),
                                        sampler=_optuna_sampler(method, config))
            asks, failed, max_asks = 0, 0, 50 * config.budget
            while session.remaining > 0 and asks < max_asks:
                trial = study.ask()
                asks += 1
                arch = params.suggest(trial)
                if not objectives.feasible([arch])[0]:
                    study.tell(trial, state=TrialState.FAIL)
                    failed += 1
                    continue
                values = objectives.minimised(session.evaluate([arch]))[0]
                study.tell(trial, [float(v) for v in values])
    finally:
        optuna.logging.set_verbosity(verbosity)
    return {"trials": asks, "infeasible_trials": failed}


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "random": lambda session, space, config: _random(session, space, config),
    "optuna_nsga2": lambda session, space, config: _optuna(session, space, config,
                                                           "optuna_nsga2"),
    "optuna_tpe": lambda session, space, config: _optuna(session, space, config, "optuna_tpe"),
}


def run_baseline(method: str, *, space: SearchSpace, evaluate: Evaluate, config: SearchConfig,
                 latency: Any = None, store: Any = None, study: Any = None,
                 run: str | None = None, checkpoint_sha256: str = "", fidelity: str = "",
                 progress: bool = True) -> SearchResult:
    """Run baseline ``method`` (one of `BASELINES`) with ``config``'s budget, objectives,
    constraints and seed (``population`` is NSGA-II's population size); arguments as for
    `nas.search.run_search`. The predictor settings of ``config`` are ignored.

    Example::

        result = run_baseline("optuna_tpe", space=space, evaluate=evaluate, config=config,
                              latency=table)
    """
    if method not in RUNNERS:
        raise SearchSetupError(f"unknown baseline {method!r}; baselines: {list(BASELINES)}")
    objectives = ObjectiveSet(config.objectives, space=space, latency=latency,
                              constraints=config.constraints)
    with SearchSession(space=space, evaluate=evaluate, objectives=objectives,
                       budget=config.budget, method=method, config=config.to_dict(),
                       seed=config.seed, store=store, study=study, run=run,
                       checkpoint_sha256=checkpoint_sha256, fidelity=fidelity,
                       chunk_size=config.eval_chunk,
                       progress=progress) as session:
        info = RUNNERS[method](session, space, config)
        return session.finish(**info)


__all__ = ["BASELINES", "ArchParams", "run_baseline"]
