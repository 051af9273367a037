"""`SearchSession`: what every search method shares (ours and the baselines alike).

A session owns the objectives, the budgeted evaluator and, with a store, the search run's
records: the run is created (or found, when resuming) under the study, every evaluation is
written as it comes (``source="supernet"``, metric names as the evaluator returns them, e.g.
``val_loss`` / ``val_accuracy``), the current Pareto front is stored after each batch, and
the run's status goes running -> done (or failed). On a restart, evaluations already in
the store for this study, checkpoint, fidelity and split are loaded and answered from
there; a deterministic search then retraces its path without evaluating them again.
Constraints that no arch meets (`ObjectiveSet.require_feasible`, a table-only search) are
refused with one SearchSetupError before the store is touched.

`SearchResult` is what a search returns: every labelled arch in order, its objective values
(natural units) and metrics, and the front.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.progress import ProgressBar
from nas.search.budget import BudgetedEvaluator, Evaluate
from nas.search.objectives import ObjectiveSet, SearchSetupError, parse_objectives
from nas.search.pareto import (
    hypervolume,
    knee_point,
    non_dominated_mask,
    normalise,
    reference_point,
)
from search_spaces import Arch, SearchSpace


@dataclass
class SearchResult:
    """Every arch a search labelled, in order, and its Pareto front.

    ``values`` (n, m) are natural units in the order of ``objectives`` (accuracy as a
    fraction, latency in ms); ``maximise`` says which are maximised; ``front`` indexes the
    non-dominated archs, sorted by the first cheap objective (fastest first);
    ``evaluator_calls`` counts archs passed to the evaluator (archs found in the store are
    not); ``budget_used`` counts distinct archs labelled.
    """

    method: str
    objectives: tuple[str, ...]
    maximise: tuple[bool, ...]
    archs: list[Arch]
    values: np.ndarray
    metrics: list[dict[str, float]]
    costs: list[dict[str, float]]
    front: list[int]
    budget: int
    budget_used: int
    evaluator_calls: int
    seed: int
    run: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def minimised(self) -> np.ndarray:
        """(n, m) values with every objective minimised."""
        return self.values * np.where(np.array(self.maximise), -1.0, 1.0)

    def front_archs(self) -> list[Arch]:
        return [self.archs[i] for i in self.front]

    def knee(self) -> Arch:
        """The front's best trade-off: `knee_of_front` of the front as it is stored, so the
        search, `nas export`, `nas show` and the app name the same arch."""
        if not self.front:
            raise ValueError("the search labelled no arch: it has no front")
        rows = [self.front_objectives(i) for i in self.front]
        return self.archs[self.front[knee_of_front(rows, objectives=self.objectives)]]

    def front_objectives(self, i: int) -> dict[str, float]:
        """Objectives, costs and metrics of arch ``i`` as stored in the front."""
        row = dict(zip(self.objectives, (float(v) for v in self.values[i])))
        for name, value in {**self.costs[i], **self.metrics[i]}.items():
            row.setdefault(name, float(value))
        return row

    def hypervolume(self, *, ideal: np.ndarray, nadir: np.ndarray,
                    margin: float = 0.1) -> float:
        """Hypervolume of the labelled archs, normalised by ``ideal``/``nadir`` given in
        minimised units, reference point ``1 + margin`` in every objective."""
        if not self.archs:
            return 0.0
        z = normalise(self.minimised(), ideal, nadir)
        return hypervolume(z, np.full(len(self.objectives), 1.0 + margin))


def history_run_name(run: str) -> str:
    """Name of the metrics log that holds search run ``run``'s labelling order (read back
    with ``store.get_metrics(study=..., run=history_run_name(run), kind="search")``)."""
    return f"search:{run}"


def knee_of_front(rows: Sequence[Mapping[str, float]], *, objectives: Sequence[str]) -> int:
    """Index into ``rows`` of the knee of a front: the one knee of the project (the search's
    pick, `nas export`'s default, the mark in `nas show` and in the app).

    ``rows`` are the objective values of each front member as stored (`FrontRow.objectives`
    or `SearchResult.front_objectives`); ``objectives`` are the search run's objective
    names (its config's ``objectives``). The values are turned to minimised ones and passed
    to `nas.search.pareto.knee_point`: a front of one member is that member, of two the
    more accurate one (the better in the run's first objective). Raises ValueError for an
    empty front or a row without one of the objectives.
    """
    parsed = parse_objectives(tuple(objectives))
    if not rows:
        raise ValueError("knee_of_front: the front is empty")
    values = []
    for i, row in enumerate(rows):
        missing = [o.name for o in parsed if o.name not in row]
        if missing:
            raise ValueError(f"knee_of_front: front row {i} lacks objective(s) {missing} "
                             f"(it has {sorted(row)})")
        values.append([(-1.0 if o.maximise else 1.0) * float(row[o.name]) for o in parsed])
    return knee_point(np.array(values))


def front_knee_key(front: Sequence[Any], config: Mapping[str, Any] | None) -> str | None:
    """Arch key of the knee of stored front rows (`FrontRow`s; `knee_of_front` in the run's
    objectives from its stored ``config``); None for an empty front or rows that lack the
    run's objectives (a front stored by an older version)."""
    if not front:
        return None
    objectives = (config or {}).get("objectives", ("accuracy", "latency_ms"))
    try:
        return front[knee_of_front([r.objectives for r in front],
                                   objectives=objectives)].arch_key
    except ValueError:
        return None


def front_order(objectives: ObjectiveSet, minimised: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows, sorted by the first cheap objective, then the rest."""
    if len(minimised) == 0:
        return []
    idx = np.flatnonzero(non_dominated_mask(minimised))
    cheap = [j for j, o in enumerate(objectives.objectives) if o.kind != "measured"]
    keys = [minimised[idx, j] for j in reversed(range(minimised.shape[1]))
            if j not in cheap[:1]] + [minimised[idx, cheap[0]]]
    return [int(i) for i in idx[np.lexsort(keys)]]


def normalised_reference(minimised: np.ndarray, *, margin: float = 0.1
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ideal, nadir, reference point) of the front of ``minimised``, raw units."""
    front = minimised[non_dominated_mask(minimised)]
    ideal, nadir = front.min(0), front.max(0)
    return ideal, nadir, reference_point(ideal, nadir, margin=margin)


class SearchSession:
    """Budget, cache, constraint guard and store records of one search run (see module
    docstring). Use as a context manager: an exception marks the run failed."""

    def __init__(self, *, space: SearchSpace, evaluate: Evaluate, objectives: ObjectiveSet,
                 budget: int, method: str, config: Mapping[str, Any], seed: int,
                 store: Any = None, study: Any = None, run: str | None = None,
                 checkpoint_sha256: str = "", fidelity: str = "", split: str = "val",
                 chunk_size: int | None = None, progress: bool = True) -> None:
        self.space, self.objectives, self.method, self.seed = space, objectives, method, seed
        self.store, self.run = store, run
        self.study = getattr(study, "name", study)
        self.checkpoint_sha256, self.fidelity, self.split = checkpoint_sha256, fidelity, split
        self.config = json.loads(json.dumps(dict(config)))  # JSON-ready, as stored
        objectives.require_feasible(seed=seed)  # before the store is touched
        known = self._open_run() if store is not None else {}
        self.evaluator = BudgetedEvaluator(evaluate, budget=budget, objectives=objectives,
                                           known=known, on_results=self._record,
                                           chunk_size=chunk_size)
        self._values: list[np.ndarray] = []
        self._logged = 0  # labelled archs already in the run's history log
        self._progress = ProgressBar(enabled=progress, total=budget,
                                     description=f"search {method}", columns=())

    # ---- store ---------------------------------------------------------------------------

    def _open_run(self) -> dict[str, dict[str, float]]:
        if not self.study or not self.run:
            raise SearchSetupError("a search with a store needs study=<name> and run")
        existing = {r.name: r for r in self.store.list_search_runs(study=self.study)}
        old = existing.get(self.run)
        if old is not None and (old.method != self.method or old.seed != self.seed
                                or old.config != self.config):
            raise SearchSetupError(
                f"search run {self.run!r} of study {self.study!r} exists with another "
                f"method, seed or config (stored: {old.method}, seed {old.seed}, "
                f"{old.config}): resume it with the same settings or pick another run name")
        self.store.create_search_run(study=self.study, name=self.run, method=self.method,
                                     config=self.config, seed=self.seed)
        self.store.put_search_run_status(study=self.study, name=self.run,
                                         status="running")
        known: dict[str, dict[str, float]] = {}
        for ev in self.store.get_evaluations(study=self.study, source="supernet",
                                             split=self.split,
                                             checkpoint_sha256=self.checkpoint_sha256):
            if ev.fidelity == self.fidelity:
                known.setdefault(ev.arch_key, {})[ev.metric] = float(ev.value)
        metric = self.objectives.measured.metric
        return {k: v for k, v in known.items() if metric in v}

    def _record(self, archs: Sequence[Arch], metrics: Sequence[dict[str, float]]) -> None:
        if self.store is None:
            return
        from nas.storage import ArchRecord, Evaluation

        costs = self.objectives.costs(archs)
        self.store.put_archs(study=self.study, archs=[
            ArchRecord.from_arch(a, flops=int(c["flops"]), params=int(c["params"]))
            for a, c in zip(archs, costs)])
        self.store.put_evaluations(study=self.study, evaluations=[
            Evaluation(a.key(), name, value, "supernet", checkpoint_sha256=self.checkpoint_sha256,
                       fidelity=self.fidelity, split=self.split)
            for a, m in zip(archs, metrics) for name, value in m.items()])

    def _store_front(self, result: SearchResult) -> None:
        from nas.storage import FrontRow

        rows = [FrontRow(result.archs[i].key(), result.front_objectives(i), rank)
                for rank, i in enumerate(result.front)]
        self.store.put_front(study=self.study, run=self.run, front=rows)

    # ---- evaluation ----------------------------------------------------------------------

    @property
    def remaining(self) -> int:
        return self.evaluator.remaining

    @property
    def labelled(self) -> list[Arch]:
        return self.evaluator.labelled

    def is_labelled(self, arch: Arch) -> bool:
        return arch in self.evaluator

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """(n, m) natural-unit objective values of ``archs`` (new ones spend budget)."""
        before = self.evaluator.used
        metrics = self.evaluator(archs)
        values = self.objectives.values(archs, metrics)
        if self.evaluator.used != before:
            self._progress.advance(self.evaluator.used - before)
            if self.store is not None:
                self._store_front(self.result())
        if self.store is not None and len(self.evaluator.labelled) > self._logged:
            self._log_history()
        return values

    def _log_history(self) -> None:
        """Append the archs labelled since the last call to the run's history (a metrics
        log named `history_run_name`, one record per batch keyed by the number of archs
        labelled so far, so a resumed run rewrites the same records)."""
        import tempfile
        from pathlib import Path

        assert self.run is not None  # a search with a store has one (_open_run)
        labelled = self.evaluator.labelled
        record = {"kind": "search", "step": len(labelled), "method": self.method,
                  "labelled": [a.key() for a in labelled[self._logged:]]}
        with tempfile.TemporaryDirectory(prefix="nas-search-history-") as tmp:
            path = Path(tmp) / "history.jsonl"
            path.write_text(json.dumps(record) + "\n")
            self.store.import_metrics_log(study=self.study,
                                          run=history_run_name(self.run), path=path)
        self._logged = len(labelled)

    def labelled_values(self) -> np.ndarray:
        """(n, m) natural-unit values of every labelled arch, in label order."""
        archs = self.evaluator.labelled
        n_old = len(self._values)
        if len(archs) > n_old:
            new = archs[n_old:]
            self._values += list(self.objectives.values(
                new, [self.evaluator.metrics_of(a) for a in new]))
        m = len(self.objectives.objectives)
        return np.array(self._values).reshape(len(archs), m)

    def result(self, **info: Any) -> SearchResult:
        archs = list(self.evaluator.labelled)
        values = self.labelled_values()
        return SearchResult(
            method=self.method, objectives=self.objectives.names,
            maximise=tuple(o.maximise for o in self.objectives.objectives), archs=archs,
            values=values, metrics=[self.evaluator.metrics_of(a) for a in archs],
            costs=self.objectives.costs(archs),
            front=front_order(self.objectives, self.objectives.minimised(values)),
            budget=self.evaluator.budget, budget_used=self.evaluator.used,
            evaluator_calls=self.evaluator.calls, seed=self.seed, run=self.run,
            info=dict(info, reused_from_store=self.evaluator.reused))

    def finish(self, **info: Any) -> SearchResult:
        """The result; with a store, the final front is stored and the run marked done."""
        result = self.result(**info)
        if self.store is not None:
            self._store_front(result)
            self.store.put_search_run_status(study=self.study, name=self.run,
                                             status="done")
        return result

    def __enter__(self) -> SearchSession:
        self._progress.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._progress.stop()
        if exc_type is not None and self.store is not None:
            try:
                self.store.put_search_run_status(study=self.study, name=self.run,
                                                 status="failed")
            except Exception:  # the original error matters more than this bookkeeping
                pass


__all__ = ["SearchResult", "SearchSession", "front_knee_key", "front_order",
           "history_run_name", "knee_of_front", "normalised_reference"]
