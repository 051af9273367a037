"""Search engine and baselines on a tiny space with a cheap synthetic evaluator: budget,
constraints, determinism, prefix property and resume from the store."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search import (
    BASELINES,
    Constraints,
    InfeasibleArchError,
    ObjectiveSet,
    SearchConfig,
    SearchSetupError,
    non_dominated_mask,
    run_baseline,
    run_search,
)
from nas.storage import open_store

METHODS = ("ours", "ours_no_predictor", *BASELINES)


def run(method: str, space, evaluate, config: SearchConfig, table, **kw):
    if method in ("ours", "ours_no_predictor"):
        config = config.with_overrides(use_predictor=method == "ours")
        return run_search(space=space, evaluate=evaluate, config=config, latency=table,
                          progress=False, **kw)
    return run_baseline(method, space=space, evaluate=evaluate, config=config, latency=table,
                        progress=False, **kw)


def small_config(**kw) -> SearchConfig:
    base = dict(budget=24, population=8, pool_factor=8, predictor="ridge", seed=3,
                cheap_search_rounds=5)
    return SearchConfig(**{**base, **kw})


@pytest.mark.parametrize("method", METHODS)
def test_budget_spent_exactly_without_duplicates(method, space, table, make_evaluator) -> None:
    evaluator = make_evaluator(space)
    result = run(method, space, evaluator, small_config(), table)
    assert len(evaluator.evaluated) == 24 == result.evaluator_calls == result.budget_used
    assert len(set(evaluator.evaluated)) == 24
    assert [a.key() for a in result.archs] == evaluator.evaluated
    assert result.values.shape == (24, 2)
    front = result.minimised()[result.front]
    assert np.all(non_dominated_mask(result.minimised())[result.front])
    assert len(result.front) == int(non_dominated_mask(result.minimised()).sum())
    assert np.all(np.diff(front[:, 1]) >= 0)  # fastest first


@pytest.mark.parametrize("method", METHODS)
def test_constraints_never_violated_by_an_evaluated_arch(method, space, table,
                                                         make_evaluator) -> None:
    constraints = Constraints(max_latency_ms=0.085, max_params=9000)
    checker = ObjectiveSet(("accuracy", "latency_ms"), space=space, latency=table,
                           constraints=constraints)
    seen = []

    def guarded(archs):
        for arch in archs:
            assert not checker.violations(arch), arch.label()
        seen.extend(archs)
        return make_evaluator(space)(archs)

    result = run(method, space, guarded, small_config(constraints=constraints), table)
    assert len(seen) == 24
    assert all(c["latency_ms"] <= 0.085 and c["params"] <= 9000 for c in result.costs)


def test_same_seed_same_front_however_evaluate_is_batched(space, table, make_evaluator) -> None:
    runs = []
    for chunk in (None, 1, 3):
        evaluator = make_evaluator(space)
        result = run("ours", space, evaluator, small_config(eval_chunk=chunk), table)
        runs.append([a.key() for a in result.archs])
        assert max(len(c) for c in evaluator.calls) <= (chunk or 24)
    assert runs[0] == runs[1] == runs[2]
    other = run("ours", space, make_evaluator(space), small_config(seed=4), table)
    assert [a.key() for a in other.archs] != runs[0]


@pytest.mark.parametrize("method", METHODS)
def test_smaller_budget_labels_a_prefix(method, space, table, make_evaluator) -> None:
    long = run(method, space, make_evaluator(space), small_config(budget=30), table)
    for budget in (13, 5):  # 5: less than the first generation (population 8)
        short = run(method, space, make_evaluator(space), small_config(budget=budget), table)
        assert [a.key() for a in short.archs] == [a.key() for a in long.archs][:budget]


def test_resume_after_a_crash_loses_no_evaluation(space, table, tmp_path, make_evaluator) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    store.create_or_get_study(name="tiny", space=space.name)
    config = small_config(eval_chunk=3)
    reference = run("ours", space, make_evaluator(space), config, table)

    dying = make_evaluator(space, fail_after=14)  # dies inside a generation's batch
    with pytest.raises(RuntimeError, match="simulated"):
        run("ours", space, dying, config, table, store=store, study="tiny", run="s1")
    assert 0 < len(dying.evaluated) < 24
    status = {r.name: r.status for r in store.list_search_runs(study="tiny")}
    assert status == {"s1": "failed"}
    stored = {e.arch_key for e in store.get_evaluations(study="tiny", metric="val_accuracy")}
    assert stored == set(dying.evaluated)

    second = make_evaluator(space)
    result = run("ours", space, second, config, table, store=store, study="tiny",
                 run="s1")
    assert len(dying.evaluated) + len(second.evaluated) == 24
    assert not set(dying.evaluated) & set(second.evaluated)
    assert [a.key() for a in result.archs] == [a.key() for a in reference.archs]
    assert result.info["reused_from_store"] == len(dying.evaluated)
    assert store.list_search_runs(study="tiny")[0].status == "done"
    front = store.get_front(study="tiny", run="s1")
    assert [r.arch_key for r in front] == [a.key() for a in result.front_archs()]
    assert set(front[0].objectives) >= {"accuracy", "latency_ms", "flops", "params",
                                        "val_loss"}
    evals = store.get_evaluations(study="tiny", source="supernet")
    assert {e.metric for e in evals} == {"val_accuracy", "val_loss"}
    assert len(evals) == 2 * 24


def test_resume_with_other_settings_is_refused(space, table, tmp_path, make_evaluator) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    store.create_or_get_study(name="tiny", space=space.name)
    run("random", space, make_evaluator(space), small_config(budget=5), table, store=store,
        study="tiny", run="r")
    evaluator = make_evaluator(space)
    with pytest.raises(SearchSetupError, match="exists with another"):
        run("random", space, evaluator, small_config(budget=6), table, store=store,
            study="tiny", run="r")
    assert evaluator.calls == []
    with pytest.raises(SearchSetupError, match="run"):
        run("random", space, evaluator, small_config(), table, store=store, study="tiny")


def test_three_objectives_and_loss(space, table, make_evaluator) -> None:
    config = small_config(objectives=("loss", "latency_ms", "params"))
    result = run("ours", space, make_evaluator(space), config, table)
    assert result.objectives == ("loss", "latency_ms", "params")
    assert result.maximise == (False, False, False)
    assert result.values.shape == (24, 3)
    assert result.knee() in result.front_archs()


def test_infeasible_constraints_get_one_clear_error_and_write_nothing(
        space, table, tmp_path, make_evaluator) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    store.create_or_get_study(name="tiny", space=space.name)
    evaluator = make_evaluator(space)
    config = small_config(constraints=Constraints(max_params=10))
    for method in METHODS:
        with pytest.raises(SearchSetupError, match=r"no arch .* meets the constraints "
                                                   r"\(max_params=10\).*params \d+ > 10"):
            run(method, space, evaluator, config, table, store=store, study="tiny",
                run=method)
    assert evaluator.calls == [] and store.list_search_runs(study="tiny") == []


class OverheadLatency:
    """Latency dominated by a per-layer overhead of each mixer, as on a CPU at tiny sizes:
    the arch with the fewest FLOPs (convolutions) is not the fastest (small GLU MLPs are)."""

    OVERHEAD = {"attention": 0.30, "ssm": 0.40, "conv": 0.25, "glu_mlp": 0.10}

    def __init__(self, space) -> None:
        self.space = space

    def predict_many(self, archs) -> np.ndarray:
        return np.array([0.2 + self.space.flops(a) * 1e-7 + sum(
            self.OVERHEAD[layer.mixer] for s in a.stages for layer in s.layers)
            for a in archs])


def test_tight_latency_limit_with_an_existing_run_finds_its_small_feasible_region(
        tmp_path, make_evaluator) -> None:
    """Regression: `nas search --max-latency-ms X --run other` on the tiny pipeline study
    labelled nothing ("it has no front"): none of the first generation's uniform samples met
    the limit. The first generation now looks for the feasible region on the table."""
    import itertools

    from search_spaces import Arch, StageArch, get_space

    space = get_space("hybrid_vit_tiny", in_channels=1, num_classes=10, resolutions=(8,),
                      patch_size=2, widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8,
                      stems=())  # patch only: the test enumerates every arch
    latency = OverheadLatency(space)
    per_stage = [[StageArch(depth=d, width=w, layers=layers) for w in st.width
                  for d in st.depth for layers in itertools.product(st.layer_options(),
                                                                    repeat=d)]
                 for st in space.stages]
    every = [Arch(resolution=8, stages=stages) for stages in itertools.product(*per_stage)]
    assert len(every) == space.size()
    limit = float(np.sort(latency.predict_many(every))[3])  # 4 feasible archs of 1,152
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    store.create_or_get_study(name="tiny", space=space.name)
    config = SearchConfig(budget=12, population=4, pool_factor=4, seed=0, predictor="ridge")
    run("ours", space, make_evaluator(space), config, latency, store=store, study="tiny",
        run="search")
    tight = config.with_overrides(constraints={"max_latency_ms": limit})
    for method in ("ours", "ours_no_predictor"):
        evaluator = make_evaluator(space)
        result = run(method, space, evaluator, tight, latency, store=store, study="tiny",
                     run=f"other_{method}")
        assert result.archs and result.front
        assert all(c["latency_ms"] <= limit for c in result.costs)
        assert result.knee() in result.front_archs()
        assert [r.arch_key for r in store.get_front(study="tiny", run=f"other_{method}")] == [
            a.key() for a in result.front_archs()]


def test_real_gnn_predictor_drives_the_search(space, table, make_evaluator) -> None:
    from predictors import GNNPredictor

    predictor = GNNPredictor(space, steps=20, ensemble=2, hidden=16, seed=0)
    evaluator = make_evaluator(space)
    result = run_search(space=space, evaluate=evaluator, config=small_config(budget=16),
                        latency=table, predictor=predictor, progress=False)
    assert result.budget_used == 16 and result.info["predictor_fits"] >= 1


def test_guard_refuses_infeasible_archs_directly(space, table, make_evaluator) -> None:
    from nas.search import BudgetedEvaluator

    objectives = ObjectiveSet(("accuracy", "latency_ms"), space=space, latency=table,
                              constraints=Constraints(max_latency_ms=0.07))
    evaluator = make_evaluator(space)
    guarded = BudgetedEvaluator(evaluator, budget=5, objectives=objectives)
    big = space.largest()
    with pytest.raises(InfeasibleArchError, match="latency_ms"):
        guarded([big])
    assert evaluator.calls == [] and guarded.used == 0


def test_exploration_keeps_the_prefix_property(space, table, make_evaluator) -> None:
    config = small_config(explore_fraction=0.5)
    long = run("ours", space, make_evaluator(space), config.with_overrides(budget=30), table)
    short = run("ours", space, make_evaluator(space), config.with_overrides(budget=13), table)
    assert [a.key() for a in short.archs] == [a.key() for a in long.archs][:13]


def test_gnn_refits_after_scoring_unseen_shapes(space, make_evaluator) -> None:
    """Active learning scores archs of shapes the predictor has not trained on, then refits
    on them: what `predict` cached for those shapes must be usable by the next `fit`."""
    from predictors import GNNPredictor

    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(200)]
    # 32 of a shape: enough for the dense per-shape path, which caches the adjacency
    shallow = [a for a in archs if a.stages[1].depth == 1][:32]
    deep = [a for a in archs if a.stages[1].depth == 2][:32]
    acc = lambda batch: np.array([m["val_accuracy"]  # noqa: E731
                                  for m in make_evaluator(space)(batch)])
    predictor = GNNPredictor(space, steps=4, ensemble=2, hidden=8, seed=0)
    predictor.fit(shallow, acc(shallow))
    predictor.predict(deep)  # a shape the fit never saw
    predictor.fit(shallow + deep, acc(shallow + deep))
    mean, std = predictor.predict(deep)
    assert mean.shape == (32,) and np.isfinite(mean).all() and np.isfinite(std).all()
