"""Objectives and hard constraints of a search: what is compared, and what is never evaluated.

An objective is one of ``accuracy`` or ``loss`` (measured: supernet evaluation, or the
predictor while screening) and ``latency_ms`` (from a latency model of the user's device and
mode), ``flops`` or ``params`` (exact counts): two or three at once, exactly one of them
measured. Each has one name, the same in configs, fronts, the CLI and the app; the older
spellings (``latency``, ``acc``, ``val_accuracy``, ``val_loss``) are still read, as aliases
(`canonical_objectives`), so stored configs of older studies keep working. The cheap ones
come from the table and the counts, so hard constraints (``latency_ms <= X``,
``params <= N``, ``flops <= F``) are checked before anything is evaluated: an infeasible
arch is never evaluated (Optuna's constraints are soft: they
rank an evaluated trial, they do not spare its evaluation).

Values are kept in natural units (accuracy in [0, 1], latency in ms); `ObjectiveSet.minimised`
flips the sign of what is maximised for the Pareto utilities.

Example::

    objectives = ObjectiveSet(("accuracy", "latency_ms"), space=space, latency=table,
                              constraints=Constraints(max_latency_ms=2.0))
    ok = objectives.feasible(archs)  # (n,) bool, nothing evaluated
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from search_spaces import Arch, SearchSpace


class SearchSetupError(ValueError):
    """A search cannot start as configured: unknown objective, missing latency model, ..."""


class LatencyModel(Protocol):
    """Anything that predicts the latency (ms) of many archs at once
    (`nas.latency.ArchLatencyScorer`; a `LatencyTable` is wrapped into one)."""

    def predict_many(self, archs: Iterable[Arch]) -> np.ndarray: ...


@dataclass(frozen=True)
class Objective:
    """``name`` as written in configs, shown and stored in fronts (the key of `OBJECTIVES`);
    ``metric`` the key of its value in an evaluation's metrics (measured objectives) or the
    cost name; ``kind`` is ``measured``
    (needs the supernet), ``latency`` or ``count``."""

    name: str
    metric: str
    maximise: bool
    kind: str


OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", "val_accuracy", True, "measured"),
    "loss": Objective("loss", "val_loss", False, "measured"),
    "latency_ms": Objective("latency_ms", "latency_ms", False, "latency"),
    "flops": Objective("flops", "flops", False, "count"),
    "params": Objective("params", "params", False, "count"),
}
_ALIASES = {"latency": "latency_ms", "acc": "accuracy", "val_accuracy": "accuracy",
            "val_loss": "loss"}  # older spellings, read from stored configs and study files


def canonical_objectives(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with every alias replaced by its objective's one name (e.g. the older
    ``latency`` by ``latency_ms``); names that are not objectives are kept, for
    `parse_objectives` to refuse."""
    if isinstance(names, str):
        return (names,)
    return tuple(_ALIASES.get(name, name) for name in names)


def parse_objectives(names: Sequence[str]) -> tuple[Objective, ...]:
    """Two or three distinct objectives by name, exactly one measured (accuracy or loss)."""
    if isinstance(names, str) or not 2 <= len(names) <= 3:
        raise SearchSetupError(f"objectives: give two or three of {sorted(OBJECTIVES)}, "
                               f"got {names!r}")
    found = []
    for name in names:
        key = _ALIASES.get(name, name)
        if key not in OBJECTIVES:
            raise SearchSetupError(f"objectives: unknown objective {name!r}; known: "
                                   f"{sorted(OBJECTIVES)}")
        found.append(OBJECTIVES[key])
    if len({o.name for o in found}) != len(found):
        raise SearchSetupError(f"objectives: {names!r} names one objective twice")
    measured = [o.name for o in found if o.kind == "measured"]
    if len(measured) != 1:
        raise SearchSetupError(f"objectives: exactly one of accuracy / loss is needed (the "
                               f"measured objective), got {measured or 'none'} in {names!r}")
    return tuple(found)


@dataclass(frozen=True)
class Constraints:
    """Hard limits checked from the latency model and the exact counts before evaluation;
    ``None`` means no limit."""

    max_latency_ms: float | None = None
    max_params: int | None = None
    max_flops: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_latency_ms", "max_params", "max_flops"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not math.isfinite(value) or value <= 0):
                raise SearchSetupError(f"constraints.{name}: expected a number > 0 or None, "
                                       f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Constraints:
        data = dict(data or {})
        unknown = sorted(set(data) - {"max_latency_ms", "max_params", "max_flops"})
        if unknown:
            raise SearchSetupError(f"constraints: unknown option(s) {unknown}")
        return cls(**data)


def as_latency_model(space: SearchSpace, latency: Any) -> LatencyModel | None:
    """``latency`` as a `LatencyModel`: a `LatencyTable` becomes an `ArchLatencyScorer`
    (calibrated when the table has a calibration, else the plain sum of its entries)."""
    if latency is None or (hasattr(latency, "predict_many") and not hasattr(latency, "entries")):
        return latency
    from kernels.latency_table import LatencyTable
    from nas.latency.scorer import ArchLatencyScorer

    if isinstance(latency, LatencyTable):
        return ArchLatencyScorer(space, latency, naive=latency.calibration is None)
    raise SearchSetupError(f"latency: expected a LatencyTable or an object with "
                           f"predict_many(archs), got {type(latency).__name__}")


class ObjectiveSet:
    """The objectives and constraints of one search over ``space``; cheap values (latency,
    FLOPs, params) are computed once per arch and cached by key."""

    def __init__(self, objectives: Sequence[str], *, space: SearchSpace,
                 latency: Any = None, constraints: Constraints | None = None) -> None:
        self.objectives = parse_objectives(objectives)
        self.space = space
        self.constraints = constraints or Constraints()
        self.latency = as_latency_model(space, latency)
        needs_latency = (any(o.kind == "latency" for o in self.objectives)
                         or self.constraints.max_latency_ms is not None)
        if needs_latency and self.latency is None:
            raise SearchSetupError("latency objective or max_latency_ms constraint given but "
                                   "no latency model: pass latency=<LatencyTable or scorer>")
        self.measured = next(o for o in self.objectives if o.kind == "measured")
        self.measured_index = self.objectives.index(self.measured)
        self.sign = np.array([-1.0 if o.maximise else 1.0 for o in self.objectives])
        self._costs: dict[str, dict[str, float]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def costs(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        """Per arch: ``flops``, ``params`` and (with a latency model) ``latency_ms``."""
        missing = list({a.key(): a for a in archs if a.key() not in self._costs}.values())
        if missing:
            lat = self.latency.predict_many(missing) if self.latency is not None else None
            for i, arch in enumerate(missing):
                self.space.validate(arch)
                entry = {"flops": float(self.space.flops(arch)),
                         "params": float(self.space.params(arch))}
                if lat is not None:
                    entry["latency_ms"] = float(lat[i])
                self._costs[arch.key()] = entry
        return [self._costs[a.key()] for a in archs]

    def violations(self, arch: Arch) -> list[str]:
        """Human-readable list of the constraints ``arch`` breaks (empty: feasible)."""
        cost, c = self.costs([arch])[0], self.constraints
        out = []
        for name, limit, unit in (("latency_ms", c.max_latency_ms, " ms"),
                                  ("params", c.max_params, ""), ("flops", c.max_flops, "")):
            if limit is not None and cost[name] > limit:
                out.append(f"{name} {cost[name]:.6g}{unit} > {limit:.6g}{unit}")
        return out

    def violation(self, archs: Sequence[Arch]) -> np.ndarray:
        """(n,) how far each arch is past the hard constraints: the sum of the relative
        excesses ``max(0, value / limit - 1)`` (0: feasible); guides a table-only search
        towards a small feasible region."""
        c, costs = self.constraints, self.costs(archs)
        out = np.zeros(len(archs))
        for name, limit in (("latency_ms", c.max_latency_ms), ("params", c.max_params),
                            ("flops", c.max_flops)):
            if limit is not None:
                out += np.maximum(0.0, np.array([cost[name] for cost in costs]) / limit - 1.0)
        return out

    def search_feasible(self, start: Sequence[Arch], *, want: int, rng: np.random.Generator,
                        rounds: int = 30, keep: int = 16, breed: int = 320,
                        mutation_prob: float = 0.2, patience: int = 3
                        ) -> tuple[list[Arch], Arch | None]:
        """(up to ``want`` feasible archs, the least-violating arch seen) from a table-only
        search: ``rounds`` of ``breed`` mutations of the ``keep`` least-violating archs, from
        ``start``, stopped early after ``patience`` rounds that neither lower the least
        violation nor find a new feasible arch. Nothing is evaluated. Uniform samples rarely
        land in a small feasible region (a tight latency limit); the violation leads there."""
        pop = list({a.key(): a for a in start}.values())
        found: dict[str, Arch] = {}
        best: tuple[float, Arch] | None = None
        stale = 0
        for _ in range(rounds + 1):
            if not pop:
                break
            v = self.violation(pop)
            before = len(found)
            found.update((a.key(), a) for a, vi in zip(pop, v) if vi == 0)
            i = int(np.argmin(v))
            if best is None or v[i] < best[0] or len(found) > before:
                stale = 0
                best = (float(v[i]), pop[i]) if best is None or v[i] < best[0] else best
            else:
                stale += 1
            if len(found) >= want or stale >= patience:
                break
            parents = [pop[i] for i in np.argsort(v, kind="stable")[:keep]]
            children = [self.space.mutate(parents[int(rng.integers(len(parents)))], rng,
                                          prob=mutation_prob) for _ in range(breed)]
            pop = list({a.key(): a for a in parents + children}.values())
        return list(found.values())[:want], None if best is None else best[1]

    def require_feasible(self, *, seed: int = 0, samples: int = 320) -> None:
        """SearchSetupError naming the constraints if neither ``samples`` uniform archs nor
        a table-only search (`search_feasible`) find one that meets them: a search would
        evaluate nothing. Its own generator, so the search's random path is unchanged."""
        c = self.constraints
        if c.max_latency_ms is None and c.max_params is None and c.max_flops is None:
            return
        rng = np.random.default_rng([seed, 7])
        start = [self.space.smallest(), self.space.largest()] + [
            self.space.sample(rng) for _ in range(samples)]
        if self.feasible(start).any():
            return
        found, best = self.search_feasible(start, want=1, rng=rng)
        if found:
            return
        limits = ", ".join(f"{k}={v:g}" for k, v in c.to_dict().items() if v is not None)
        closest = "" if best is None else (f"; the closest arch found ({best.label()}) has "
                                           f"{'; '.join(self.violations(best))}")
        raise SearchSetupError(f"no arch of space {self.space.name!r} meets the constraints "
                               f"({limits}) in a search of the latency table and the "
                               f"counts{closest}: loosen them (nothing was evaluated)")

    def feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        """(n,) bool: which archs meet every hard constraint (from cheap values only)."""
        c = self.constraints
        if c.max_latency_ms is None and c.max_params is None and c.max_flops is None:
            return np.ones(len(archs), dtype=bool)
        costs = self.costs(archs)
        ok = np.ones(len(archs), dtype=bool)
        for name, limit in (("latency_ms", c.max_latency_ms), ("params", c.max_params),
                            ("flops", c.max_flops)):
            if limit is not None:
                ok &= np.array([cost[name] <= limit for cost in costs], dtype=bool)
        return ok

    def cheap_values(self, archs: Sequence[Arch]) -> np.ndarray:
        """(n, m) natural-unit values with the cheap objectives filled in and the measured
        column NaN."""
        costs = self.costs(archs)
        out = np.full((len(archs), len(self.objectives)), np.nan)
        for j, o in enumerate(self.objectives):
            if o.kind != "measured":
                out[:, j] = [cost[o.metric] for cost in costs]
        return out

    def measured_value(self, metrics: Mapping[str, Any], *, arch_key: str = "?") -> float:
        """The measured objective's value in ``metrics``; SearchSetupError if absent."""
        value = metrics.get(self.measured.metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise SearchSetupError(f"evaluation of arch {arch_key}: metric "
                                   f"{self.measured.metric!r} missing or not a finite number "
                                   f"(got {value!r}; metrics {sorted(metrics)})")
        return float(value)

    def values(self, archs: Sequence[Arch], metrics: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, m) natural-unit objective values of evaluated archs."""
        out = self.cheap_values(archs)
        out[:, self.measured_index] = [self.measured_value(m, arch_key=a.key())
                                       for a, m in zip(archs, metrics)]
        return out

    def minimised(self, values: np.ndarray) -> np.ndarray:
        """Natural-unit values (n, m) -> every objective minimised (maximised ones negated)."""
        return np.asarray(values, dtype=np.float64) * self.sign

    def describe(self) -> dict[str, Any]:
        return {"objectives": list(self.names), "constraints": self.constraints.to_dict()}


__all__ = [
    "OBJECTIVES", "Constraints", "LatencyModel", "Objective", "ObjectiveSet",
    "SearchSetupError", "as_latency_model", "parse_objectives",
]
