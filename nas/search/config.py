"""`SearchConfig`: the settings of one search run, validated once and stored with the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from nas.search.objectives import (
    Constraints,
    SearchSetupError,
    canonical_objectives,
    parse_objectives,
)

# The search refits its predictor after every generation (tens of fits per run), so it
# uses a cheaper fit than a one-shot predictor: the GNN settings the search was validated
# with (tuning seeds 100-102 and 200-207 of the `search` benchmark, never its seeds 0-4).
SEARCH_PREDICTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "gnn": {"steps": 200, "weight_decay": 1e-4},
}


@dataclass(frozen=True)
class SearchConfig:
    """How a search runs (`nas.search.run_search` and the baselines).

    ``budget``: supernet evaluations (distinct archs labelled), exactly. ``population``:
    NSGA-II population (and the size of the first, evenly spread generation);
    ``pool_factor``: candidates bred per generation, as a multiple of the population
    (screening costs the predictor and the table only, so a large pool is cheap and lets
    the predictor find isolated front members that few children land on);
    ``batch_size``: archs evaluated per generation (default ``population // 2``);
    ``generations``: stop after this many generations (default: when the budget is spent).
    ``objectives``: two or three of accuracy / loss / latency_ms / flops / params (one of
    accuracy and loss); ``constraints``: hard limits, never evaluated past.
    ``use_predictor``: screen the pool with the predictor (``predictor`` names the kind
    built when none is passed, with `SEARCH_PREDICTOR_DEFAULTS` for its kind updated by
    ``predictor_options``, e.g. ``{"steps": 150}``);
    ``kappa``: optimism, ``mean - kappa * std`` (std rescaled by the predictor's own error
    on archs it had not seen); ``explore_fraction``: share of each generation's batch
    picked uniformly from the pool instead of by the predictor;
    ``min_labels``: labels before the first fit; ``refit_every``: generations between fits.
    ``random_fraction``: share of the pool sampled uniformly (global candidates that the
    predictor judges, where the children stay near the parents); ``mutation_prob``: per
    dimension; ``crossover_prob``: per child; ``cheap_search_rounds``: rounds of the
    table-only search for the cheapest arch of each cheap objective. ``eval_chunk``: at
    most this many archs per ``evaluate`` call (results are stored after each call).
    """

    budget: int = 100
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")
    constraints: Constraints = field(default_factory=Constraints)
    seed: int = 0
    population: int = 16
    pool_factor: int = 60
    batch_size: int | None = None
    generations: int | None = None
    use_predictor: bool = True
    predictor: str = "gnn"
    predictor_options: dict[str, Any] = field(default_factory=dict)
    kappa: float = 1.0
    explore_fraction: float = 0.0
    min_labels: int = 8
    refit_every: int = 1
    random_fraction: float = 0.3
    mutation_prob: float = 0.2
    crossover_prob: float = 0.5
    cheap_search_rounds: int = 30
    eval_chunk: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.objectives, str):  # a string is refused by parse_objectives
            # one name per objective: an older spelling ("latency") is kept as its name
            object.__setattr__(self, "objectives", canonical_objectives(self.objectives))
        if isinstance(self.constraints, dict):
            object.__setattr__(self, "constraints", Constraints.from_dict(self.constraints))
        if not isinstance(self.constraints, Constraints):
            raise SearchSetupError("constraints: expected a Constraints")
        parse_objectives(self.objectives)
        for name in ("budget", "population", "pool_factor", "min_labels", "refit_every"):
            _int_at_least(name, getattr(self, name), 1)
        _int_at_least("seed", self.seed, 0)
        _int_at_least("cheap_search_rounds", self.cheap_search_rounds, 0)
        if self.population < 2:
            raise SearchSetupError(f"population: expected >= 2, got {self.population}")
        for name in ("batch_size", "generations", "eval_chunk"):
            if getattr(self, name) is not None:
                _int_at_least(name, getattr(self, name), 1)
        for name in ("random_fraction", "mutation_prob", "crossover_prob", "explore_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    0 <= value <= 1):
                raise SearchSetupError(f"{name}: expected a number in [0, 1], got {value!r}")
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, (int, float)) or not (
                self.kappa >= 0):
            raise SearchSetupError(f"kappa: expected a number >= 0, got {self.kappa!r}")
        if not isinstance(self.predictor_options, dict):
            raise SearchSetupError(f"predictor_options: expected a dict, got "
                                   f"{self.predictor_options!r}")
        if not isinstance(self.use_predictor, bool):
            raise SearchSetupError(f"use_predictor: expected a bool, got {self.use_predictor!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["objectives"] = list(self.objectives)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SearchSetupError(f"search config: unknown option(s) {unknown}; options: "
                                   f"{sorted(known)}")
        data = dict(data)
        if "constraints" in data:
            data["constraints"] = Constraints.from_dict(data["constraints"])
        return cls(**data)

    def predictor_settings(self) -> dict[str, Any]:
        """Options the predictor is built with: `SEARCH_PREDICTOR_DEFAULTS` of its kind,
        updated by ``predictor_options``."""
        return {**SEARCH_PREDICTOR_DEFAULTS.get(self.predictor, {}), **self.predictor_options}

    def with_overrides(self, **overrides: Any) -> SearchConfig:
        """A copy with the non-None overrides applied (validated again)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _int_at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SearchSetupError(f"{name}: expected an int >= {low}, got {value!r}")


__all__ = ["SEARCH_PREDICTOR_DEFAULTS", "SearchConfig"]
