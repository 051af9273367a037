"""Multi-objective architecture search: objectives and hard constraints, Pareto utilities,
the predictor-guided evolutionary search and the baselines in the same harness.

Example::

    from nas.search import Constraints, SearchConfig, run_search

    config = SearchConfig(budget=200, objectives=("accuracy", "latency_ms"),
                          constraints=Constraints(max_latency_ms=2.0))
    result = run_search(space=space, evaluate=evaluate, config=config, latency=table,
                        store=store, study="quickstart", run="search")
    print([arch.label() for arch in result.front_archs()])

Optuna is imported only when an Optuna baseline runs.
"""

from __future__ import annotations

from nas.search.baselines import BASELINES, ArchParams, run_baseline
from nas.search.budget import BudgetedEvaluator, BudgetExceededError, InfeasibleArchError
from nas.search.config import SEARCH_PREDICTOR_DEFAULTS, SearchConfig
from nas.search.evolution import run_search
from nas.search.objectives import (
    OBJECTIVES,
    Constraints,
    LatencyModel,
    Objective,
    ObjectiveSet,
    SearchSetupError,
    canonical_objectives,
    parse_objectives,
)
from nas.search.pareto import (
    crowding_distance,
    hypervolume,
    knee_point,
    non_dominated_mask,
    non_dominated_sort,
    normalise,
    reference_point,
)
from nas.search.session import SearchResult, SearchSession

__all__ = [
    "BASELINES", "OBJECTIVES", "SEARCH_PREDICTOR_DEFAULTS", "ArchParams",
    "BudgetExceededError", "BudgetedEvaluator",
    "Constraints", "InfeasibleArchError", "LatencyModel", "Objective", "ObjectiveSet",
    "SearchConfig", "SearchResult", "SearchSession", "SearchSetupError", "crowding_distance",
    "canonical_objectives", "hypervolume", "knee_point", "non_dominated_mask",
    "non_dominated_sort", "normalise",
    "parse_objectives", "reference_point", "run_baseline", "run_search",
]
