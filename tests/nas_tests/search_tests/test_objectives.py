"""Objectives, constraints, the budgeted evaluator and the search config."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search import (
    OBJECTIVES,
    BudgetedEvaluator,
    BudgetExceededError,
    Constraints,
    ObjectiveSet,
    SearchConfig,
    SearchSetupError,
    canonical_objectives,
    parse_objectives,
)
from nas.search.objectives import as_latency_model


def test_one_name_per_objective_and_older_spellings_still_read() -> None:
    """The registry key is the name configs, fronts and the app use; a config written with
    an older spelling (``latency``, as studies and stored runs before 2026-12-03 did) reads
    as the same objectives, stored under their one name."""
    assert all(key == objective.name for key, objective in OBJECTIVES.items())
    assert canonical_objectives(["acc", "latency", "params"]) == (
        "accuracy", "latency_ms", "params")
    old = SearchConfig(objectives=("accuracy", "latency"))
    assert old.objectives == ("accuracy", "latency_ms") == SearchConfig().objectives
    assert old.to_dict()["objectives"] == ["accuracy", "latency_ms"]
    assert SearchConfig.from_dict({"objectives": ["val_loss", "latency"]}).objectives == (
        "loss", "latency_ms")
    with pytest.raises(SearchSetupError, match="two or three"):
        SearchConfig(objectives="accuracy")  # type: ignore[arg-type]


def test_parse_objectives() -> None:
    assert [o.name for o in parse_objectives(["accuracy", "latency"])] == ["accuracy",
                                                                          "latency_ms"]
    assert [o.name for o in parse_objectives(("loss", "params", "flops"))] == [
        "loss", "params", "flops"]
    for bad, match in ((["accuracy"], "two or three"), ("accuracy", "two or three"),
                       (["accuracy", "latency", "flops", "params"], "two or three"),
                       (["accuracy", "speed"], "unknown objective 'speed'"),
                       (["accuracy", "accuracy"], "twice"),
                       (["latency", "flops"], "exactly one"),
                       (["accuracy", "loss"], "exactly one")):
        with pytest.raises(SearchSetupError, match=match):
            parse_objectives(bad)


def test_constraints_validation_and_round_trip() -> None:
    c = Constraints(max_latency_ms=2.0, max_params=1_000_000)
    assert Constraints.from_dict(c.to_dict()) == c
    for bad in (dict(max_latency_ms=0), dict(max_params=-1), dict(max_flops=float("nan")),
                dict(max_params=True)):
        with pytest.raises(SearchSetupError):
            Constraints(**bad)
    with pytest.raises(SearchSetupError, match="unknown"):
        Constraints.from_dict({"max_memory": 1})


def test_latency_needs_a_model(space, table) -> None:
    with pytest.raises(SearchSetupError, match="no latency model"):
        ObjectiveSet(("accuracy", "latency_ms"), space=space)
    with pytest.raises(SearchSetupError, match="no latency model"):
        ObjectiveSet(("accuracy", "params"), space=space,
                     constraints=Constraints(max_latency_ms=1.0))
    with pytest.raises(SearchSetupError, match="LatencyTable"):
        ObjectiveSet(("accuracy", "latency_ms"), space=space, latency=object())
    ObjectiveSet(("accuracy", "params"), space=space)  # no latency needed


def test_table_is_wrapped_and_matches_the_reference_path(space, table, rng) -> None:
    archs = [space.sample(rng) for _ in range(20)]
    model = as_latency_model(space, table)
    expected = [table.predict(space.layers(a), naive=True) for a in archs]
    np.testing.assert_allclose(model.predict_many(archs), expected, rtol=1e-12)


def test_values_costs_and_feasibility(space, table, rng) -> None:
    objectives = ObjectiveSet(("accuracy", "latency_ms", "params"), space=space, latency=table,
                              constraints=Constraints(max_params=8000, max_flops=10**9))
    archs = [space.sample(rng) for _ in range(30)]
    values = objectives.values(archs, [{"val_accuracy": 0.5 + i / 100} for i in range(30)])
    assert values.shape == (30, 3)
    np.testing.assert_allclose(values[:, 2], [space.params(a) for a in archs])
    np.testing.assert_allclose(objectives.minimised(values)[:, 0], -values[:, 0])
    ok = objectives.feasible(archs)
    np.testing.assert_array_equal(ok, [space.params(a) <= 8000 for a in archs])
    bad = archs[int(np.argmin(ok))]
    assert "params" in objectives.violations(bad)[0]
    with pytest.raises(SearchSetupError, match="val_accuracy"):
        objectives.values(archs[:1], [{"val_loss": 0.3}])


def test_budgeted_evaluator_caches_counts_and_stops(space, table, rng, make_evaluator) -> None:
    objectives = ObjectiveSet(("loss", "latency_ms"), space=space, latency=table)
    inner = make_evaluator(space)
    archs = list({a.key(): a for a in (space.sample(rng) for _ in range(40))}.values())[:6]
    seen = []
    evaluator = BudgetedEvaluator(inner, budget=5, objectives=objectives, chunk_size=2,
                                  on_results=lambda a, m: seen.append(len(a)))
    first = evaluator(archs[:3] + archs[:1])
    assert first[0] == first[3] and "note" not in first[0]
    assert evaluator.used == 3 and evaluator.calls == 3 and seen == [2, 1]
    evaluator(archs[:3])  # repeats are free
    assert evaluator.used == 3 and len(inner.evaluated) == 3
    with pytest.raises(BudgetExceededError):
        evaluator(archs[3:6])
    assert evaluator.used == 3 and len(inner.evaluated) == 3
    evaluator(archs[3:5])
    assert evaluator.remaining == 0 and [a.key() for a in evaluator.labelled] == [
        a.key() for a in archs[:5]]


def test_known_results_spend_budget_but_are_not_evaluated(space, table, rng,
                                                          make_evaluator) -> None:
    objectives = ObjectiveSet(("loss", "latency_ms"), space=space, latency=table)
    a, b = space.sample(rng), space.largest()
    inner = make_evaluator(space)
    evaluator = BudgetedEvaluator(inner, budget=3, objectives=objectives,
                                  known={a.key(): {"val_loss": 0.25}})
    out = evaluator([a, b])
    assert out[0] == {"val_loss": 0.25} and evaluator.used == 2 and evaluator.reused == 1
    assert inner.evaluated == [b.key()]


def test_bad_evaluator_output_is_refused(space, table, rng) -> None:
    objectives = ObjectiveSet(("accuracy", "latency_ms"), space=space, latency=table)
    arch = space.sample(rng)
    for evaluate, match in ((lambda archs: [], "returned 0 results"),
                            (lambda archs: [[0.5]], "expected a dict"),
                            (lambda archs: [{"val_accuracy": float("nan")}], "val_accuracy")):
        with pytest.raises(SearchSetupError, match=match):
            BudgetedEvaluator(evaluate, budget=2, objectives=objectives)([arch])
    with pytest.raises(SearchSetupError, match="budget"):
        BudgetedEvaluator(lambda archs: [], budget=0, objectives=objectives)


def test_search_config_validation_and_round_trip() -> None:
    config = SearchConfig(budget=50, objectives=("loss", "flops"),
                          constraints=Constraints(max_params=10**6), batch_size=4)
    again = SearchConfig.from_dict(config.to_dict())
    assert again == config
    assert config.with_overrides(seed=3, batch_size=None).batch_size == 4
    for bad, match in ((dict(budget=0), "budget"), (dict(population=1), "population"),
                       (dict(kappa=-1.0), "kappa"), (dict(random_fraction=2.0), "random"),
                       (dict(objectives=("latency_ms", "flops")), "exactly one"),
                       (dict(use_predictor="yes"), "use_predictor")):
        with pytest.raises(SearchSetupError, match=match):
            SearchConfig(**bad)
    with pytest.raises(SearchSetupError, match="unknown option"):
        SearchConfig.from_dict({"budgett": 3})


def test_predictor_settings_are_the_search_defaults_updated_by_the_options() -> None:
    from nas.search import SEARCH_PREDICTOR_DEFAULTS

    assert SearchConfig().predictor_settings() == SEARCH_PREDICTOR_DEFAULTS["gnn"]
    assert SearchConfig(predictor_options={"steps": 50}).predictor_settings() == {
        **SEARCH_PREDICTOR_DEFAULTS["gnn"], "steps": 50}
    assert SearchConfig(predictor="ridge").predictor_settings() == {}
