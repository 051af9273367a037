"""Baselines: same interface as the GNN, exact save/load (by deterministic refit), the FLOPs
floor ranks by FLOPs, and bad input is rejected."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest

from predictors import kendall_tau, list_predictors, load_predictor, make_predictor
from predictors.baselines import BASELINES
from search_spaces import get_space

FAST = {"random_forest": {"n_estimators": 50}, "gradient_boosting": {"n_estimators": 50,
                                                                     "members": 2},
        "gaussian_process": {"restarts": 0}, "ridge": {}, "flops": {}}


@pytest.fixture(scope="module")
def data():
    space = get_space("hybrid_vit_tiny")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(160)]
    # a loss that falls with log FLOPs, plus a mixer effect FLOPs cannot see
    y = np.array([-np.log(space.flops(a)) + 0.3 * sum(layer.mixer == "conv" for s in a.stages
                                                      for layer in s.layers) for a in archs])
    return space, archs, y


def test_registry_names():
    assert list_predictors() == ["gnn", "random_forest", "gradient_boosting",
                                 "gaussian_process", "ridge", "flops"]
    assert set(BASELINES) == set(list_predictors()) - {"gnn"}


@pytest.mark.parametrize("name", list(FAST))
def test_fit_predict_save_load(name, data, tmp_path):
    space, archs, y = data
    predictor = make_predictor(name, space, seed=1, **FAST[name]).fit(archs[:100], y[:100])
    mean, std = predictor.predict(archs[100:])
    assert mean.shape == std.shape == (60,)
    assert np.isfinite(mean).all() and (std >= 0).all()
    assert kendall_tau(mean, y[100:]) > 0.5
    path = predictor.save(tmp_path / name)
    stored = json.loads((path / "config.json").read_text())
    assert stored["kind"] == name and len(stored["train"]["y"]) == 100
    for loaded in (load_predictor(path), type(predictor).load(path, space=space)):
        for a, b in zip(predictor.predict(archs[100:]), loaded.predict(archs[100:])):
            np.testing.assert_array_equal(a, b)
    loaded.update(archs[100:120], y[100:120])
    assert len(loaded._train_y) == 120


def test_flops_floor_ranks_by_flops(data):
    space, archs, y = data
    predictor = make_predictor("flops", space).fit(archs[:50], y[:50])
    mean, _ = predictor.predict(archs[50:])
    flops = [space.flops(a) for a in archs[50:]]
    assert kendall_tau(mean, flops) == pytest.approx(-1.0)  # loss falls as FLOPs grow


@pytest.mark.parametrize("name", list(FAST))
def test_bad_inputs(name, data):
    space, archs, y = data
    predictor = make_predictor(name, space, **FAST[name])
    with pytest.raises(ValueError, match="lengths differ"):
        predictor.fit(archs[:5], y[:4])
    with pytest.raises(ValueError, match="non-finite"):
        predictor.fit(archs[:3], [1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="not fitted"):
        predictor.predict(archs[:3])
    with pytest.raises(ValueError, match="graphs"):
        predictor.fit([nx.DiGraph(), nx.DiGraph()], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        predictor.fit([], [])


def test_unknown_option_is_a_value_error(data):
    space, _, _ = data
    with pytest.raises(ValueError, match="random_forest"):
        make_predictor("random_forest", space, depth=3)
