"""`BudgetedEvaluator`: supernet evaluations counted against an explicit budget.

The budget is the number of distinct archs a search labels. Asking again for an arch already
labelled costs nothing (results are cached by arch key), an arch whose result is already
``known`` (from the store: an earlier, interrupted run of the same search) costs budget but
is not evaluated again, and an arch that breaks a hard constraint is refused before the
evaluator sees it. So the budget counts the same whether a run is fresh or resumed, and the
search follows the same path either way.

The evaluator is injected: ``evaluate(archs) -> [metrics dict per arch]`` in the same order
(supernet inherited-weight evaluation in one process, or a Ray actor pool).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nas.search.objectives import ObjectiveSet, SearchSetupError
from search_spaces import Arch

Evaluate = Callable[[Sequence[Arch]], Sequence[Mapping[str, Any]]]
OnResults = Callable[[Sequence[Arch], Sequence[dict[str, float]]], None]


class BudgetExceededError(RuntimeError):
    """More archs were asked for than the budget has left (nothing was evaluated)."""


class InfeasibleArchError(SearchSetupError):
    """An arch that breaks a hard constraint was sent for evaluation (nothing was evaluated)."""


def clean_metrics(metrics: Mapping[str, Any], *, arch_key: str) -> dict[str, float]:
    """The finite numeric entries of one evaluation's metrics, as floats."""
    if not isinstance(metrics, Mapping):
        raise SearchSetupError(f"evaluate() returned {type(metrics).__name__} for arch "
                               f"{arch_key}, expected a dict of metrics")
    out = {}
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
                value):
            out[str(name)] = float(value)
    return out


class BudgetedEvaluator:
    """Wraps ``evaluate`` with a budget, a cache by arch key and the constraint guard.

    ``used``: distinct archs labelled (budget spent); ``calls``: archs actually passed to
    ``evaluate``; ``chunk_size``: at most this many archs per ``evaluate`` call (results go
    to ``on_results`` after each call, so they are stored as they come).
    """

    def __init__(self, evaluate: Evaluate, *, budget: int, objectives: ObjectiveSet,
                 known: Mapping[str, Mapping[str, float]] | None = None,
                 on_results: OnResults | None = None, chunk_size: int | None = None) -> None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise SearchSetupError(f"budget: expected an int >= 1, got {budget!r}")
        if chunk_size is not None and chunk_size < 1:
            raise SearchSetupError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
        self._evaluate = evaluate
        self.budget = budget
        self.objectives = objectives
        self.known = {k: dict(v) for k, v in (known or {}).items()}
        self.on_results = on_results
        self.chunk_size = chunk_size
        self.used = 0
        self.calls = 0
        self.reused = 0
        self._cache: dict[str, dict[str, float]] = {}
        self.labelled: list[Arch] = []

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def __contains__(self, arch: Arch) -> bool:
        return arch.key() in self._cache

    def metrics_of(self, arch: Arch) -> dict[str, float]:
        return self._cache[arch.key()]

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """Metrics of each arch (in order); new archs spend budget, repeats are free."""
        archs = list(archs)
        fresh = list({a.key(): a for a in archs if a.key() not in self._cache}.values())
        if len(fresh) > self.remaining:
            raise BudgetExceededError(f"{len(fresh)} new archs asked for but only "
                                      f"{self.remaining} of the budget of {self.budget} left")
        ok = self.objectives.feasible(fresh)
        if not ok.all():
            bad = fresh[int(ok.argmin())]
            raise InfeasibleArchError(f"arch {bad.label()} breaks a hard constraint ("
                                      f"{'; '.join(self.objectives.violations(bad))}): it "
                                      "must not be evaluated")
        todo = []
        for arch in fresh:
            stored = self.known.get(arch.key())
            if stored is not None:
                self.objectives.measured_value(stored, arch_key=arch.key())
                self._cache[arch.key()] = dict(stored)
                self.used += 1
                self.reused += 1
            else:
                todo.append(arch)
        step = self.chunk_size or max(1, len(todo))
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            results = list(self._evaluate(chunk))
            if len(results) != len(chunk):
                raise SearchSetupError(f"evaluate() returned {len(results)} results for "
                                       f"{len(chunk)} archs")
            cleaned = [clean_metrics(m, arch_key=a.key()) for a, m in zip(chunk, results)]
            for arch, metrics in zip(chunk, cleaned):
                self.objectives.measured_value(metrics, arch_key=arch.key())
            self.calls += len(chunk)
            for arch, metrics in zip(chunk, cleaned):
                self._cache[arch.key()] = metrics
                self.used += 1
            if self.on_results is not None:
                self.on_results(chunk, cleaned)
        self.labelled += fresh  # in the order asked, whichever were stored before
        return [self._cache[a.key()] for a in archs]


__all__ = ["BudgetExceededError", "BudgetedEvaluator", "Evaluate", "InfeasibleArchError",
           "clean_metrics"]
