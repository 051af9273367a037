"""What the app computes, without Streamlit: Pareto masks, arch points, layer rows,
baseline fronts, the noise ceiling and the launch command (the export zip's errors:
`tests/nas_tests/test_export_bundle.py`)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from nas.app_launch import APP_PATH, streamlit_command
from nas.storage import ArchRecord, Evaluation, FrontRow
from search_spaces import get_space
from ui.arch_metrics import arch_points, layer_rows, pareto_mask
from ui.baselines import baseline_fronts, read_benchmark


def brute_force_front(x, y):
    """Minimise x, maximise y."""
    return np.array([not any((x[j] <= x[i] and y[j] >= y[i]) and (x[j] < x[i] or y[j] > y[i])
                             for j in range(len(x))) for i in range(len(x))])


def test_pareto_mask_matches_brute_force(rng):
    for _ in range(20):
        x, y = rng.integers(0, 6, 30).astype(float), rng.integers(0, 6, 30).astype(float)
        got, want = pareto_mask(x, y), brute_force_front(x, y)
        # duplicates of a front point: one of them is kept (they do not dominate each other)
        assert {(a, b) for a, b, m in zip(x, y, got) if m} == \
            {(a, b) for a, b, m in zip(x, y, want) if m}


@pytest.fixture
def space():
    return get_space("hybrid_vit_tiny", in_channels=1, resolutions=(8,), patch_size=2,
                     widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8)


def test_arch_points_take_each_source_and_never_stand_in(space, rng):
    a, b, c = space.sample(rng), space.largest(), space.smallest()
    archs = [ArchRecord.from_arch(x, flops=space.flops(x), params=space.params(x))
             for x in (a, b, c)]
    evals = [Evaluation(a.key(), "val_accuracy", 0.5, "supernet"),
             Evaluation(a.key(), "test_accuracy", 0.6, "standalone", fidelity="seed0"),
             Evaluation(a.key(), "test_accuracy", 0.8, "standalone", fidelity="seed1"),
             Evaluation(b.key(), "val_loss", 0.7, "predictor"),
             Evaluation(c.key(), "val_accuracy", 0.4, "supernet")]
    front = [FrontRow(b.key(), {"latency_ms": 2.0, "accuracy": 0.9, "val_loss": 1.5}, 0)]
    df = arch_points(archs, evals, front=front, front_name="run").set_index("key")
    # best: standalone (the mean of its runs), else supernet (or the supernet value stored
    # with the front), else the predictor
    assert df.loc[a.key(), "accuracy"] == pytest.approx(0.7)
    assert df.loc[a.key(), "accuracy_source"] == \
        "standalone training, test split, mean of 2 runs"
    assert df.loc[b.key(), "accuracy"] == 0.9
    assert df.loc[b.key(), "accuracy_source"] == \
        "supernet (inherited weights), stored with front run"
    assert df.loc[b.key(), "loss"] == 1.5  # the front's supernet loss before the predictor
    assert df.loc[c.key(), "accuracy_source"].startswith("supernet")
    # latency comes from a table only: the front's stored latency does not stand in
    assert math.isnan(df.loc[b.key(), "latency_ms"]) and df.loc[b.key(),
                                                                 "latency_ms_source"] == ""
    assert bool(df.loc[b.key(), "on_front"]) and not bool(df.loc[a.key(), "on_front"])
    # one source: what it lacks is missing, front members included
    only = arch_points(archs, evals, source="standalone", front=front,
                       front_name="run").set_index("key")
    assert only.loc[a.key(), "accuracy"] == pytest.approx(0.7)
    assert math.isnan(only.loc[b.key(), "accuracy"]) and only.loc[b.key(),
                                                                  "accuracy_source"] == ""
    assert math.isnan(only.loc[c.key(), "accuracy"])
    pred = arch_points(archs, evals, source="predictor", front=front).set_index("key")
    assert pred["accuracy"].isna().all()  # the predictor estimates the loss only
    assert pred.loc[b.key(), "loss"] == 0.7
    assert pred.loc[b.key(), "loss_source"] == "predictor estimate of the validation loss"
    sup = arch_points(archs, evals, source="supernet").set_index("key")
    assert sup.loc[a.key(), "accuracy"] == 0.5 and math.isnan(sup.loc[b.key(), "accuracy"])
    with pytest.raises(ValueError, match="source"):
        arch_points(archs, evals, source="nope")


def test_hypervolume_curves_and_choice_columns(space, rng):
    from ui.explore import baseline_orders, choice_columns, history_order, hypervolume_curves

    points = pd.DataFrame({"key": list("abcde"), "accuracy": [0.5, 0.7, 0.9, math.nan, 0.45],
                           "latency_ms": [1.0, 2.0, 3.0, 1.0, 2.5]})
    order = history_order([{"step": 4, "labelled": ["c", "e"]},
                           {"step": 2, "labelled": ["a", "d"]}])
    assert order == ["a", "d", "c", "e"]
    curves = hypervolume_curves(points, {"run": order, "other": ["b"], "none": ["zz"]},
                                objectives=["accuracy", "latency_ms"])
    assert set(curves) == {"run", "other"}
    xs, ys = curves["run"]
    assert xs == [1, 3, 4] and ys[0] < ys[1] == ys[2]  # d has no accuracy; e is dominated
    # normalised by the front of every plotted point (a, b, c): a alone covers 0.1 x 1.1
    assert ys[0] == pytest.approx(0.1 * 1.1)
    with pytest.raises(ValueError, match="not columns"):
        hypervolume_curves(points, {"run": order}, objectives=["accuracy", "flops"])
    bench = {"budgets": {"all": 3}, "runs": {"random/seed0": ["a", "b", "q"],
                                             "tpe/seed0": ["q"], "random/seed1": ["a", "b"]}}
    assert baseline_orders(bench, points) == {"baseline: random": ["a", "b", "q"]}
    assert baseline_orders(None, points) == {}
    archs = [ArchRecord.from_arch(x) for x in (space.largest(), space.smallest())]
    columns = choice_columns(archs).set_index("key")
    big = space.largest()
    assert columns.loc[big.key(), "stage2 depth"] == big.stages[1].depth
    assert sum(columns.loc[big.key(), f"n {m}"] for m in ("attention", "glu_mlp", "ssm",
                                                          "conv")) == sum(
        s.depth for s in big.stages)


def test_latency_source_names_the_table_and_its_verdict():
    from nas.storage import LatencyTableRecord
    from ui.arch_metrics import latency_source, table_trust

    def record(validation):
        return LatencyTableRecord(
            id=1, fingerprint_id="f" * 16,
            fingerprint={"device_name": "CPU X", "device_type": "cpu", "threads": 1},
            mode="eager", batch_size=1, dtype="float32", space="", calibration=None,
            validation=validation, n_entries=0, created_at=None, updated_at=None)

    good = {"naive": {"mape": 0.03, "within10": 0.95, "kendall": 0.9, "n": 30},
            "repeat": {"mape": 0.02, "within10": 1.0, "kendall": 0.95, "n": 30},
            "meta": {"note": "x"}}
    assert table_trust(record(good)).trusted
    assert latency_source(record(good)) == ("latency table CPU X (cpu, 1 threads) · eager · "
                                            "batch 1 · float32 (sum of layers; trusted: 95 % "
                                            "of models within +-10 %)")
    bad = {"naive": {"mape": 0.7, "within10": 0.0, "kendall": 0.1, "n": 30}}
    assert "UNRELIABLE: 0 %" in latency_source(record(bad))
    assert "NOT VALIDATED" in latency_source(record(None))


def test_layer_rows_follow_the_space(space):
    arch = space.largest()
    rows = layer_rows(space, arch)
    assert [r["part"] for r in rows] == ["stem", "stage 1", "downsample 1->2", "stage 2",
                                         "stage 2", "head"]
    assert sum(r["flops"] for r in rows) == space.flops(arch)
    assert sum(r["params"] for r in rows) == space.params(arch)


def test_baseline_fronts_from_the_benchmark_file(tmp_path):
    points = pd.DataFrame({"key": list("abcd"), "latency_ms": [1.0, 2.0, 3.0, 2.5],
                           "accuracy": [0.5, 0.7, 0.8, 0.6]})
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"raw": {"budgets": {"2pct": 3}, "runs": {
        "random/seed0": {"labelled": ["d", "b", "zz", "c"]},
        "random/seed1": {"labelled": ["a"]}, "tpe/seed0": {"labelled": ["zz"]}}}}))
    bench = read_benchmark(path)
    fronts = baseline_fronts(points, bench, x="latency_ms", y="accuracy",
                             budget=bench["budgets"]["2pct"])
    assert list(fronts) == ["random"]  # tpe's archs are not in the study
    assert fronts["random"]["key"].tolist() == ["b"]  # d is dominated; c is past the budget
    assert read_benchmark(tmp_path / "missing.json") is None


def test_noise_ceiling_matches_the_predictors_package(rng):
    from predictors.metrics import noise_ceiling_tau
    from ui.ranking import noise_ceiling

    a = rng.normal(size=40)
    b = a + rng.normal(scale=0.7, size=40)
    frame = pd.DataFrame([{"arch_key": f"k{i}", "metric": m, "value": v, "source": "supernet"}
                          for i, (x, y) in enumerate(zip(a, b))
                          for m, v in (("val_loss_a", x), ("val_loss_b", y))])
    got, n = noise_ceiling(frame)
    assert n == 40 and got == pytest.approx(noise_ceiling_tau(a, b))


def test_launch_command_serves_the_app():
    command = streamlit_command(port=8599, address="127.0.0.1")
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert command[4] == str(APP_PATH) and APP_PATH.is_file()
    assert command[command.index("--server.port") + 1] == "8599"
    with pytest.raises(ValueError, match="port"):
        streamlit_command(port=0)


def test_the_engine_launches_the_app_without_importing_ui(tmp_path, monkeypatch):
    """`nas ui` runs `nas.app_launch.launch`, which finds ``ui/app.py`` without importing the
    layer above the engine, checks the store first and passes its URL in the environment."""
    import subprocess

    import nas.app_launch

    calls = []
    monkeypatch.setattr(nas.app_launch.subprocess, "call",
                        lambda command, env: calls.append((command, env)) or 0)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert nas.app_launch.launch(storage_url=url, port=8599) == 0
    (command, env), = calls
    assert command == streamlit_command(port=8599) and env["NAS_STORAGE"] == url
    code = ("import sys, nas.cli, nas.app_launch; print(nas.app_launch.APP_PATH); "
            "assert 'ui' not in sys.modules, 'ui imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(APP_PATH)
