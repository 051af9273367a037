"""Predictor-guided evolutionary multi-objective search (NSGA-II-style, active learning).

Each generation:

1. **Parents**: the labelled archs ranked by non-dominated sorting, ties by crowding
   distance (NSGA-II survival), the best ``population`` kept; binary tournaments pick parents.
2. **Pool**: ``pool_factor * population`` candidates from the space's own `crossover` and
   `mutate` (plus a share of uniform samples), new and feasible only: the cheap objectives
   (latency table, FLOPs, params) are computed for all of them and every hard constraint is
   checked before anything is evaluated.
3. **Screen**: the predictor scores the pool (mean and std of the measured objective); each
   candidate gets an optimistic vector (``mean - kappa * scale * std`` for the measured
   objective, where ``scale`` >= 1 is the RMS of the predictor's standardised errors on
   archs it screened before they were labelled, so an overconfident ensemble still explores;
   exact cheap objectives). ``batch_size`` candidates are picked greedily by the
   hypervolume they would add to the current front (each pick joins the front before the
   next, so a batch spreads along it), then by their additive-epsilon distance to the
   front. Objectives are normalised by the front's ideal and the worst values seen, so a
   candidate that extends the front (slower but more accurate than anything labelled)
   gets credit; ``explore_fraction`` of the batch may be drawn uniformly from the pool.
4. **Label**: the supernet evaluates only those; the predictor is refitted on every label
   (active learning).

The first generation holds the cheapest arch of each cheap objective (a short search on the
table and the counts alone), the space's largest and smallest archs (the sandwich rule
trains both at every step, so they anchor the accurate and the cheap end of the front) and
archs spread evenly over the first cheap objective, so the predictor starts from labels
that span the front. When few uniform samples meet the hard constraints (a tight latency
limit), feasible archs are first sought on the table by their constraint violation.
Without a predictor (``use_predictor=False``) the pool is not screened: the first
``batch_size`` children of each generation are evaluated, which is plain NSGA-II
with the same first generation.

Determinism: every random choice comes from one generator seeded by ``config.seed`` and each
generation's batch is evaluated in one call (results ordered as the archs), so a seed gives
the same front however ``evaluate`` is parallelised, and a restarted run retraces its path.
The budget is honoured exactly: the last batch is cut to what is left, and a batch is
ordered by the greedy picks, so a run with a smaller budget labels a prefix of a larger one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.search.budget import Evaluate
from nas.search.config import SearchConfig
from nas.search.objectives import ObjectiveSet
from nas.search.pareto import (
    crowding_distance,
    hypervolume_improvements,
    non_dominated_mask,
    non_dominated_sort,
    normalise,
)
from nas.search.session import SearchResult, SearchSession
from search_spaces import Arch, SearchSpace


def nsga2_survivors(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices of the ``k`` survivors, rank, crowding) of minimised ``points`` (n, m):
    whole fronts in rank order, the last one cut by crowding distance (largest first)."""
    n = len(points)
    ranks = non_dominated_sort(points)
    crowd = np.zeros(n)
    for r in np.unique(ranks):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = crowding_distance(points[idx])
    order = np.lexsort((np.arange(n), -crowd, ranks))
    return order[:k], ranks, crowd


def epsilon_distance(candidates: np.ndarray, front: np.ndarray) -> np.ndarray:
    """(c,) smallest uniform improvement that would make each candidate non-dominated by
    ``front`` (<= 0: it already is): ``max over f of min over j of (c_j - f_j)``."""
    if len(front) == 0:
        return np.full(len(candidates), -np.inf)
    diff = candidates[:, None, :] - front[None, :, :]  # (c, f, m)
    return diff.min(axis=2).max(axis=1)


def greedy_hypervolume_batch(candidates: np.ndarray, front: np.ndarray, k: int, *,
                             ref: np.ndarray) -> list[int]:
    """Indices of ``k`` rows of ``candidates`` (c, m, minimised) picked one at a time by the
    hypervolume each adds (up to ``ref``) to ``front`` plus the earlier picks, then by
    `epsilon_distance` to that front."""
    chosen: list[int] = []
    current = front.copy()
    left = np.arange(len(candidates))
    while len(chosen) < k and len(left):
        cand = candidates[left]
        useful = np.all(cand < ref, axis=1) & (epsilon_distance(cand, current) < 0)
        if not useful.any():
            break
        gains = np.zeros(len(left))
        gains[useful] = hypervolume_improvements(current, cand[useful], ref)
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append(int(left[best]))
        current = np.vstack([current, cand[best]])
        left = np.delete(left, best)
    if len(chosen) < k and len(left):
        eps = epsilon_distance(candidates[left], current)
        chosen += [int(i) for i in left[np.argsort(eps, kind="stable")][:k - len(chosen)]]
    return chosen


class _Evolution:
    def __init__(self, *, space: SearchSpace, session: SearchSession, config: SearchConfig,
                 predictor: Any) -> None:
        self.space, self.session, self.config = space, session, config
        self.objectives: ObjectiveSet = session.objectives
        self.predictor = predictor
        self.rng = np.random.default_rng(config.seed)
        self.cheap = [j for j, o in enumerate(self.objectives.objectives) if o.kind != "measured"]
        self.fits = 0
        self._pending: dict[str, tuple[float, float]] = {}
        self._z: list[float] = []

    # ---- candidates ------------------------------------------------------------------------

    def _new_feasible(self, archs: Sequence[Arch], seen: set[str]) -> list[Arch]:
        """Distinct archs not labelled and not in ``seen`` that meet the constraints."""
        unique = []
        for arch in archs:
            key = arch.key()
            if key not in seen and not self.session.is_labelled(arch):
                seen.add(key)
                unique.append(arch)
        ok = self.objectives.feasible(unique)
        return [a for a, good in zip(unique, ok) if good]

    def _cheap_minimum(self, j: int, start: list[Arch]) -> Arch | None:
        """The arch minimising cheap objective ``j`` found by a short evolution on the table
        and the counts alone (no evaluation)."""
        pop = self._new_feasible(start, set()) or start
        if not pop:
            return None
        score = lambda archs: self.objectives.minimised(  # noqa: E731
            self.objectives.cheap_values(archs))[:, j]
        best = pop[int(np.argmin(score(pop)))]
        for _ in range(self.config.cheap_search_rounds):
            children = self._new_feasible(
                [self.space.mutate(best, self.rng, prob=self.config.mutation_prob)
                 for _ in range(self.config.population)], {best.key()})
            if children:
                scores = score(children)
                if scores.min() < score([best])[0]:
                    best = children[int(np.argmin(scores))]
        return best

    def initial(self) -> list[Arch]:
        """The first generation (see the module docstring), at most ``population`` archs;
        chosen whatever the budget, then cut to it (so a smaller budget labels a prefix)."""
        cfg, n = self.config, self.config.population
        seen: set[str] = set()
        samples = [self.space.smallest(), self.space.largest()] + [
            self.space.sample(self.rng) for _ in range(cfg.pool_factor * cfg.population)]
        pool = self._new_feasible(samples, seen)
        if len(pool) < n:  # a small feasible region: look for it on the table
            found, _ = self.objectives.search_feasible(
                samples, want=2 * n, rng=self.rng, rounds=cfg.cheap_search_rounds,
                keep=cfg.population, breed=cfg.pool_factor * cfg.population,
                mutation_prob=cfg.mutation_prob)
            pool += self._new_feasible(found, seen)
        if not pool:
            return []
        chosen: list[Arch] = []
        for j in self.cheap:
            best = self._cheap_minimum(j, pool)
            if best is not None and best.key() not in {a.key() for a in chosen}:
                chosen.append(best)
        for anchor in (self.space.largest(), self.space.smallest()):
            if (anchor.key() not in {c.key() for c in chosen}
                    and self.objectives.feasible([anchor])[0]):
                chosen.append(anchor)
        rest = [a for a in pool if a.key() not in {c.key() for c in chosen}]
        if rest and len(chosen) < n:
            values = self.objectives.cheap_values(rest)[:, self.cheap[0]]
            order = np.argsort(values, kind="stable")
            picks = np.unique(np.round(np.linspace(0, len(rest) - 1, n - len(chosen)))
                              .astype(int))
            chosen += [rest[i] for i in order[picks]]
        return chosen[:min(n, self.session.remaining)]

    def pool(self, parents: list[Arch], ranks: np.ndarray, crowd: np.ndarray) -> list[Arch]:
        """New feasible children of ``parents`` (binary tournaments on rank, then crowding)
        and uniform samples, shuffled."""
        cfg, rng, space = self.config, self.rng, self.space
        size = cfg.pool_factor * cfg.population
        n_random = int(round(cfg.random_fraction * size))

        def tournament() -> Arch:
            a, b = rng.integers(len(parents), size=2)
            better = a if (ranks[a], -crowd[a]) <= (ranks[b], -crowd[b]) else b
            return parents[int(better)]

        children = []
        for _ in range(size - n_random):
            child = tournament()
            if rng.random() < cfg.crossover_prob:
                child = space.crossover(child, tournament(), rng)
            children.append(space.mutate(child, rng, prob=cfg.mutation_prob))
        children += [space.sample(rng) for _ in range(n_random)]
        found = self._new_feasible(children, set())
        return [found[i] for i in rng.permutation(len(found))]

    # ---- screening -------------------------------------------------------------------------

    def screen(self, pool: list[Arch], k: int, labelled: np.ndarray) -> list[Arch]:
        """The ``k`` candidates of ``pool`` worth a supernet evaluation (see module doc)."""
        if self.predictor is None or self.fits == 0 or len(pool) <= k:
            return pool[:k]
        mean, std = self.predictor.predict(pool)
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        scale = self._std_scale()
        mine = self.objectives.minimised(self.objectives.cheap_values(pool))
        mine[:, self.objectives.measured_index] = mean - self.config.kappa * scale * std
        # Normalise by the front's ideal and the worst values seen (labels, and the exact
        # cheap values of the pool): a reference point at the front's own nadir would give
        # no credit to a candidate that extends the front past it (slower but more accurate
        # than anything labelled), and the search would never climb the accurate end.
        front = labelled[non_dominated_mask(labelled)]
        ideal = front.min(0)
        worst = np.maximum(labelled.max(0), mine.max(0))
        worst[self.objectives.measured_index] = labelled[:, self.objectives.measured_index].max()
        k_explore = int(round(self.config.explore_fraction * k))
        picks = greedy_hypervolume_batch(normalise(mine, ideal, worst),
                                         normalise(front, ideal, worst), k - k_explore,
                                         ref=np.full(mine.shape[1], 1.1))
        if k_explore:  # uniform picks among the rest: labels where the predictor is blind
            taken = set(picks)
            rest = np.array([i for i in range(len(pool)) if i not in taken])
            picks += [int(i) for i in self.rng.choice(rest, size=min(k_explore, len(rest)),
                                                      replace=False)]
        self._pending = {pool[i].key(): (mean[i], std[i]) for i in picks}
        return [pool[i] for i in picks]

    def _std_scale(self) -> float:
        """How far off the predictor's std has been on archs it had not seen: the RMS of
        ``(label - mean) / std`` over every screened arch once labelled (>= 1), so an
        overconfident predictor still explores."""
        if not self._z:
            return 1.0
        return max(1.0, float(np.sqrt(np.mean(np.square(self._z)))))

    def refit(self) -> None:
        if self.predictor is None:
            return
        archs = self.session.labelled
        if len(archs) < self.config.min_labels:
            return
        y = self.objectives.minimised(self.session.labelled_values())[
            :, self.objectives.measured_index]
        for arch, label in zip(archs, y):
            guess = self._pending.pop(arch.key(), None)
            if guess is not None:
                self._z.append((label - guess[0]) / max(guess[1], 1e-12))
        self._pending = {}
        self.predictor.fit(list(archs), y)
        self.fits += 1

    # ---- the loop --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        cfg, session = self.config, self.session
        first = self.initial()
        if first:
            session.evaluate(first)
        self.refit()
        generation = 0
        while session.labelled and session.remaining > 0 and (
                cfg.generations is None or generation < cfg.generations):
            generation += 1
            labelled = self.objectives.minimised(session.labelled_values())
            survivors, ranks, crowd = nsga2_survivors(labelled, cfg.population)
            parents = [session.labelled[i] for i in survivors]
            pool = self.pool(parents, ranks[survivors], crowd[survivors])
            if not pool:
                break  # nothing new and feasible could be bred: the space is exhausted
            k = cfg.batch_size or max(1, cfg.population // 2)
            # the whole batch is chosen, then cut to the budget left: a smaller budget
            # labels a prefix of what a larger one labels
            session.evaluate(self.screen(pool, k, labelled)[:session.remaining])
            if generation % cfg.refit_every == 0 and session.remaining > 0:
                self.refit()
        return {"generations": generation, "predictor_fits": self.fits}


def run_search(*, space: SearchSpace, evaluate: Evaluate, config: SearchConfig,
               latency: Any = None, predictor: Any = None, store: Any = None,
               study: Any = None, run: str | None = None, checkpoint_sha256: str = "",
               fidelity: str = "", progress: bool = True) -> SearchResult:
    """Predictor-guided evolutionary Pareto search of ``space`` (see the module docstring).

    ``evaluate(archs) -> [metrics dict per arch]`` labels archs with the supernet (it must
    return ``val_accuracy`` or ``val_loss``, whichever objective is measured); ``latency`` is
    a `LatencyTable` or any object with ``predict_many(archs) -> ms``; ``predictor`` has
    ``fit(archs, y)`` and ``predict(archs) -> (mean, std)`` (default: ``make_predictor(
    config.predictor, space, seed=config.seed, **config.predictor_settings())`` when
    ``config.use_predictor``). With
    ``store`` (a `nas.storage.Store`), ``study`` (its name or a `Study`) and ``run``,
    results are stored as they come and a restarted run resumes without re-evaluating;
    ``checkpoint`` / ``fidelity`` tag the stored evaluations (the supernet weights' sha256
    and how they were measured).

    Example::

        config = SearchConfig(budget=200, objectives=("accuracy", "latency_ms"),
                              constraints=Constraints(max_latency_ms=2.0))
        result = run_search(space=space, evaluate=evaluate, config=config, latency=table)
        for arch in result.front_archs():
            print(arch.label())
    """
    objectives = ObjectiveSet(config.objectives, space=space, latency=latency,
                              constraints=config.constraints)
    if config.use_predictor and predictor is None:
        from predictors import make_predictor

        predictor = make_predictor(config.predictor, space,
                                   **{"seed": config.seed, **config.predictor_settings()})
    method = "evolution" if config.use_predictor else "evolution_no_predictor"
    with SearchSession(space=space, evaluate=evaluate, objectives=objectives,
                       budget=config.budget, method=method, config=config.to_dict(),
                       seed=config.seed, store=store, study=study, run=run,
                       checkpoint_sha256=checkpoint_sha256, fidelity=fidelity,
                       chunk_size=config.eval_chunk,
                       progress=progress) as session:
        engine = _Evolution(space=space, session=session, config=config,
                            predictor=predictor if config.use_predictor else None)
        info = engine.run()
        return session.finish(**info)


__all__ = ["epsilon_distance", "greedy_hypervolume_batch", "nsga2_survivors", "run_search"]
