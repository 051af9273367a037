"""GNNPredictor: learns a known function of the graph, accepts generic DAGs, round-trips
through save/load exactly, is deterministic, and rejects bad input with one clear error."""

from __future__ import annotations

import json
import time

import networkx as nx
import numpy as np
import pytest

from predictors import GNNPredictor, arch_to_graph, kendall_tau, load_predictor, make_predictor
from search_spaces import get_space

FAST = {"hidden": 32, "ensemble": 3, "steps": 150}
COST = {"attention": 3.0, "glu_mlp": 2.0, "ssm": 1.5, "conv": 1.0}


def _target(arch) -> float:
    """Known function of the graph: per-op cost weighted by width, plus a kernel-size term."""
    return sum(COST[layer.mixer] * stage.width / 64 + 0.1 * (layer.kernel_size or 0)
               for stage in arch.stages for layer in stage.layers)


@pytest.fixture(scope="module")
def lm_space():
    return get_space("hybrid_lm_tiny")


@pytest.fixture(scope="module")
def fitted(lm_space):
    rng = np.random.default_rng(0)
    archs = [lm_space.sample(rng) for _ in range(500)]
    y = np.array([_target(a) for a in archs])
    predictor = GNNPredictor(lm_space, seed=0, **FAST).fit(archs[:300], y[:300])
    return predictor, archs, y


def test_learns_a_known_function_of_the_graph(fitted):
    predictor, archs, y = fitted
    mean, std = predictor.predict(archs[300:])
    assert mean.shape == std.shape == (200,)
    assert (std >= 0).all() and std.mean() > 0  # members disagree a little
    tau = kendall_tau(mean, y[300:])
    assert tau > 0.9, tau


def test_graph_input_equals_arch_input(fitted, lm_space):
    predictor, archs, _ = fitted
    graphs = [arch_to_graph(lm_space, a) for a in archs[300:320]]
    np.testing.assert_allclose(predictor.predict(graphs)[0], predictor.predict(archs[300:320])[0],
                               rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_is_exact(fitted, tmp_path):
    predictor, archs, _ = fitted
    path = predictor.save(tmp_path / "gnn")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.pt"]
    assert json.loads((path / "config.json").read_text())["kind"] == "gnn"
    for loaded in (GNNPredictor.load(path), load_predictor(path),
                   GNNPredictor.load(path, space=predictor.space)):
        for a, b in zip(predictor.predict(archs[300:]), loaded.predict(archs[300:])):
            np.testing.assert_array_equal(a, b)


def test_load_rejects_other_space_and_kind(fitted, tmp_path):
    predictor, _, _ = fitted
    path = predictor.save(tmp_path / "gnn")
    with pytest.raises(ValueError, match="differs"):
        GNNPredictor.load(path, space=get_space("hybrid_lm_tiny", vocab_size=128))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot read"):
        GNNPredictor.load(tmp_path / "empty")


def test_deterministic_given_seed(lm_space, rng):
    archs = [lm_space.sample(rng) for _ in range(40)]
    y = [_target(a) for a in archs]
    options = {"hidden": 16, "ensemble": 2, "steps": 15}
    a = GNNPredictor(lm_space, seed=3, **options).fit(archs, y).predict(archs)
    b = GNNPredictor(lm_space, seed=3, **options).fit(archs, y).predict(archs)
    c = GNNPredictor(lm_space, seed=4, **options).fit(archs, y).predict(archs)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_update_adds_labels_and_survives_save(lm_space, rng, tmp_path):
    archs = [lm_space.sample(rng) for _ in range(30)]
    y = [_target(a) for a in archs]
    options = {"hidden": 16, "ensemble": 2, "steps": 20}
    predictor = make_predictor("gnn", lm_space, **options).fit(archs[:20], y[:20])
    loaded = GNNPredictor.load(predictor.save(tmp_path / "p"))
    loaded.update(archs[20:], y[20:])
    assert loaded.describe()["labels"] == 30
    direct = make_predictor("gnn", lm_space, **options).fit(archs, y)
    np.testing.assert_allclose(loaded.predict(archs)[0], direct.predict(archs)[0], rtol=1e-5)


def _random_dag(rng, ops=("in", "conv", "pool", "fc")):
    n = int(rng.integers(3, 9))
    graph = nx.DiGraph()
    for i in range(n):
        op = "in" if i == 0 else ops[int(rng.integers(1, len(ops)))]
        graph.add_node(f"n{i}", op=op, channels=int(rng.choice([8, 16, 32])))
    for i in range(1, n):
        for j in rng.choice(i, size=min(i, 2), replace=False):
            graph.add_edge(f"n{j}", f"n{i}")
    return graph


def _dag_score(graph) -> float:
    weight = {"in": 0.0, "conv": 2.0, "pool": 0.5, "fc": 1.0, "attention": 4.0}
    return sum(weight[d["op"]] * d.get("channels", 8) / 16 for _, d in graph.nodes(data=True))


def test_generic_dags_fit_predict_save_load_and_unknown_op(tmp_path):
    rng = np.random.default_rng(1)
    graphs = [_random_dag(rng) for _ in range(200)]
    y = np.array([_dag_score(g) for g in graphs])
    predictor = GNNPredictor(seed=0, **{**FAST, "steps": 100}).fit(graphs[:150], y[:150])
    mean, std = predictor.predict(graphs[150:])
    assert kendall_tau(mean, y[150:]) > 0.8
    novel = _random_dag(rng)
    novel.nodes["n1"]["op"] = "attention"  # never seen in fit: maps to UNK
    novel.nodes["n1"]["extra"] = 1.5  # unknown attribute: ignored
    assert np.isfinite(predictor.predict([novel])[0]).all()
    loaded = load_predictor(predictor.save(tmp_path / "dag"))
    np.testing.assert_array_equal(loaded.predict(graphs[150:])[0], mean)
    assert loaded.describe()["feature_names"] == ["channels"]


@pytest.mark.parametrize("items, y, match", [
    ("archs", [1.0, 2.0], "lengths differ"),
    ([], [], "empty"),
    ("archs", [1.0, float("nan"), 2.0], "non-finite"),
    ("mixed", [1.0, 2.0, 3.0], "all Arch objects or all networkx"),
    ("archs", [[1.0], [2.0], [3.0]], "1-D"),
])
def test_bad_inputs_raise_value_error(lm_space, rng, items, y, match, tmp_path):
    archs = [lm_space.sample(rng) for _ in range(3)]
    if items == "archs":
        items = archs
    elif items == "mixed":
        items = [archs[0], nx.DiGraph(), archs[1]]
    predictor = GNNPredictor(lm_space, hidden=8, ensemble=1, steps=4)
    with pytest.raises(ValueError, match=match):
        predictor.fit(items, y)
    with pytest.raises(ValueError, match="not fitted"):
        predictor.predict(archs)
    with pytest.raises(ValueError, match="not fitted"):
        predictor.save(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_other_bad_inputs(lm_space, rng):
    archs = [lm_space.sample(rng) for _ in range(4)]
    with pytest.raises(ValueError, match="no space"):
        GNNPredictor(hidden=8, ensemble=1, steps=4).fit(archs, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="unknown option"):
        GNNPredictor(lm_space, hiden=8)
    with pytest.raises(ValueError, match="conv"):
        GNNPredictor(lm_space, conv="gcn")
    with pytest.raises(ValueError, match="unknown predictor"):
        make_predictor("xgboost", lm_space)
    other = get_space("hybrid_vit_tiny").sample(rng)
    predictor = GNNPredictor(lm_space, hidden=8, ensemble=1, steps=4).fit(archs, [1, 2, 3, 4])
    with pytest.raises(ValueError):
        predictor.predict([other])


@pytest.mark.parametrize("conv", ["gin", "mean", "gat"])
def test_every_conv_gives_the_same_scores_on_both_paths(conv, rng):
    """The grouped dense path (archs) and the sparse path (graphs) agree for every conv."""
    space = get_space("hybrid_vit_tiny")
    archs = [space.sample(rng) for _ in range(40)]
    y = [_target(a) for a in archs]
    predictor = GNNPredictor(space, conv=conv, hidden=16, ensemble=2, steps=10).fit(archs, y)
    graphs = [arch_to_graph(space, a) for a in archs]
    np.testing.assert_allclose(predictor.predict(graphs)[0], predictor.predict(archs)[0],
                               rtol=1e-5, atol=1e-5)


def test_scoring_throughput_is_reported(fitted, lm_space):
    """Printed, not asserted (timing belongs to benchmarks/predictor.py)."""
    predictor, _, _ = fitted
    rng = np.random.default_rng(5)
    candidates = [lm_space.sample(rng) for _ in range(2000)]
    t0 = time.perf_counter()
    predictor.predict(candidates)
    print(f"scored {len(candidates) / (time.perf_counter() - t0):.0f} archs/s "
          f"(test config {FAST})")


@pytest.mark.parametrize("target", ["log", "rank"])
def test_target_transforms_keep_label_units_and_round_trip(target, lm_space, tmp_path):
    """Log and rank targets learn the same function's order, predict in label units, and
    save/load exactly (the transform is rebuilt from the stored labels)."""
    rng = np.random.default_rng(3)
    archs = [lm_space.sample(rng) for _ in range(160)]
    y = np.array([_target(a) for a in archs])
    predictor = GNNPredictor(lm_space, target=target, seed=0, hidden=16, ensemble=2,
                             steps=80).fit(archs[:120], y[:120])
    mean, std = predictor.predict(archs[120:])
    assert kendall_tau(mean, y[120:]) > 0.7
    assert y.min() / 2 < np.median(mean) < 2 * y.max()  # label units, not scores
    assert (std >= 0).all()
    loaded = GNNPredictor.load(predictor.save(tmp_path / target))
    np.testing.assert_array_equal(loaded.predict(archs[120:])[0], mean)


def test_target_transform_rejects_bad_labels(lm_space, rng):
    archs = [lm_space.sample(rng) for _ in range(4)]
    predictor = GNNPredictor(lm_space, target="log", hidden=8, ensemble=1, steps=4)
    with pytest.raises(ValueError, match="labels > 0"):
        predictor.fit(archs, [1.0, 0.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="not fitted"):
        predictor.predict(archs)
    with pytest.raises(ValueError, match="target"):
        GNNPredictor(lm_space, target="sqrt")


def test_auto_target_accepts_any_sign_and_old_files_load_as_standard(lm_space, tmp_path):
    """The default target learns log losses but also takes negated accuracies; a file saved
    before the option existed loads with the transform it was trained with."""
    rng = np.random.default_rng(4)
    archs = [lm_space.sample(rng) for _ in range(40)]
    y = -np.array([_target(a) for a in archs])  # e.g. a minimised accuracy objective
    predictor = GNNPredictor(lm_space, hidden=8, ensemble=2, steps=20).fit(archs, y)
    mean, _ = predictor.predict(archs)
    assert (mean < 0).all()
    path = predictor.save(tmp_path / "old")
    document = json.loads((path / "config.json").read_text())
    del document["config"]["target"]  # as written before the option existed
    (path / "config.json").write_text(json.dumps(document))
    loaded = GNNPredictor.load(path)
    assert loaded.config.target == "standard"
    np.testing.assert_array_equal(loaded.predict(archs)[0], mean)  # auto chose standard


def test_log_target_inverse_saturates_instead_of_overflowing():
    """A wild standardised prediction maps to a large finite loss, in order, never inf."""
    import warnings

    from predictors.gnn import TargetTransform

    t = TargetTransform("log", np.array([0.2, 0.5, 1.0, 2.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = t.inverse(np.array([-1e6, -1.0, 0.0, 1.0, 1e3, 1e6]))
    assert np.isfinite(out).all() and np.all(np.diff(out) >= 0)
    assert np.allclose(t.inverse(t.forward()), [0.2, 0.5, 1.0, 2.0])
