"""What the app computes, without Streamlit: Pareto masks, arch points, layer rows,
baseline fronts, the noise ceiling, the launch command and export errors."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from nas.storage import ArchRecord, Evaluation, FrontRow, open_store
from search_spaces import get_space
from ui import APP_PATH, streamlit_command
from ui.arch_metrics import arch_points, layer_rows, pareto_mask
from ui.baselines import baseline_fronts, read_benchmark
from ui.export_zip import ExportError, export_arch_zip


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


def test_arch_points_pick_sources_and_fill_from_the_front(space, rng):
    a, b = space.sample(rng), space.largest()
    archs = [ArchRecord.from_arch(x, flops=space.flops(x), params=space.params(x))
             for x in (a, b)]
    evals = [Evaluation(a.key(), "val_accuracy", 0.5, "supernet"),
             Evaluation(a.key(), "val_accuracy", 0.6, "standalone"),
             Evaluation(b.key(), "val_accuracy", 0.7, "predictor")]
    front = [FrontRow(b.key(), {"latency_ms": 2.0, "val_loss": 1.5}, 0)]
    df = arch_points(archs, evals, front=front, front_name="run").set_index("key")
    assert df.loc[a.key(), "accuracy"] == 0.6 and df.loc[a.key(), "accuracy_source"] == \
        "standalone"
    assert df.loc[b.key(), "accuracy_source"] == "predictor"
    assert df.loc[b.key(), "latency_ms"] == 2.0 and df.loc[b.key(), "loss"] == 1.5
    assert df.loc[b.key(), "latency_ms_source"] == "front run"
    assert bool(df.loc[b.key(), "on_front"]) and not bool(df.loc[a.key(), "on_front"])
    only = arch_points(archs, evals, source="supernet").set_index("key")
    assert only.loc[a.key(), "accuracy"] == 0.5 and math.isnan(only.loc[b.key(), "accuracy"])


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


def test_export_refuses_what_the_store_cannot_back(tmp_path, space):
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        with pytest.raises(ExportError, match="no study"):
            export_arch_zip(store=store, study="nope", arch_key="0" * 16)
        store.create_or_get_study(name="s", space="hybrid_vit_tiny")
        arch = space.largest()
        store.upsert_archs(study="s", archs=[ArchRecord.from_arch(arch)])
        with pytest.raises(ExportError, match="not stored"):
            export_arch_zip(store=store, study="s", arch_key="0" * 16)
        with pytest.raises(ExportError, match="no supernet checkpoint"):
            export_arch_zip(store=store, study="s", arch_key=arch.key())
        store.add_checkpoint(study="s", path=tmp_path / "gone.pt", sha256="a" * 64, step=1)
        with pytest.raises(ExportError, match="not on this machine"):
            export_arch_zip(store=store, study="s", arch_key=arch.key())
