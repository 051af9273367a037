"""`benchmarks/vs_baselines.py --smoke` on the CPU: the whole path (horizon probe, supernet,
latency table, search, baselines, measurement, test split, fine-tune) end to end, with the
smoke's small defaults (before them the smoke took > 25 min on 2 cores, most of it
fine-tuning every front member 300 steps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_cpu_smoke_runs_the_whole_path_with_its_small_defaults(shared_data, tmp_path):
    if not (shared_data / "images" / "mnist").is_dir():
        pytest.skip(f"no MNIST under {shared_data / 'images'}")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "vs_baselines.py"), "--smoke", "--datasets",
         "mnist", "--device", "cpu", "--work", str(tmp_path / "work"), "--results",
         str(tmp_path / "results"), "--no-figures"],
        capture_output=True, text=True, timeout=900, cwd=REPO,
        env={**os.environ, "NAS_SHARED_DATA": str(shared_data)})
    seconds = time.monotonic() - started
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    data = json.loads((tmp_path / "results" / "vs_baselines.json").read_text())
    metrics, raw = data["metrics"]["mnist"], data["raw"]["mnist"]
    # the smoke's defaults: a 24-arch search, 2 members fine-tuned 20 steps
    assert raw["search_budget"] == 24 and raw["labelled"] == 24
    assert raw["finetune_steps"] == 20
    members = raw["members"]
    tuned = [k for k, row in members.items() if "finetuned_test_acc" in row]
    assert raw["finetuned_members"] == len(tuned) == min(2, len(members))
    assert f"fine-tuned {len(tuned)} of {len(members)} front members 20 steps" in proc.stdout
    # the two of best validation accuracy
    best_val = sorted(members.values(), key=lambda r: -r["val_acc"])[:len(tuned)]
    assert sorted(r["val_acc"] for r in best_val) == sorted(members[k]["val_acc"] for k in tuned)
    assert metrics["best_finetuned_test_acc"] == max(members[k]["finetuned_test_acc"]
                                                     for k in tuned)
    # a 10 s budget (at least 10 steps; the time limit may cut a busy machine's run short),
    # its panel evaluated once; the archs scored on 1,000 validation and 2,000 test images
    assert raw["train_config"]["steps"] >= 10
    assert raw["train_config"]["eval_every"] == raw["train_config"]["steps"]
    assert 1 <= metrics["supernet_steps"] <= raw["train_config"]["steps"]
    assert "mnist: train 55000 / val 1000 / test 2000" in proc.stdout
    assert set(metrics["baselines"]) == {"lenet5", "resnet_tiny", "vit_tiny",
                                         "mobilenetv2_tiny"}
    for row in [*metrics["baselines"].values(), *members.values()]:
        assert 0.0 <= row["test_acc"] <= 1.0 and row["latency_ms"]["cpu"] > 0
    assert metrics["dominates_gpu"] is None and set(metrics["dominance"]) == {"cpu"}
    print(f"vs_baselines --smoke: {seconds:.0f} s")
