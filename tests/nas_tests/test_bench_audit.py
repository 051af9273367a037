"""`benchmarks/audit.py` summary: a diverged stand-alone run is reported, not fatal.

On the H200 (2026-12-03) one NaN stand-alone score made `rank_fidelity` raise after every
run had finished, and the whole audit's device time was lost."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nas.audit.config import StandaloneRecipe
from nas.audit.selection import SelectedArch
from search_spaces import get_space

ROOT = Path(__file__).resolve().parents[2]
RECIPE = StandaloneRecipe(steps=10, batch_size=8, lr=1e-3, weight_decay=0.0, warmup_steps=1,
                          min_lr_ratio=0.1, grad_clip=1.0)


@pytest.fixture(scope="module")
def audit_module():
    spec = importlib.util.spec_from_file_location("bench_audit", ROOT / "benchmarks" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_audit"] = module
    spec.loader.exec_module(module)
    return module


def test_diverged_standalone_run_is_reported_and_left_out_of_the_ranking(audit_module):
    space = get_space("hybrid_vit_tiny")
    rng = np.random.default_rng(0)
    archs = list({a.key(): a for a in (space.sample(rng) for _ in range(12))}.values())[:6]
    selection = [SelectedArch(arch=a, stratum=f"flops {i}/6", flops=space.flops(a))
                 for i, a in enumerate(archs)]
    keys = [a.key() for a in archs]
    bad = keys[2]
    standalone = [{"arch_key": k, "seed": 0, "seconds": 1.0,
                   "test_accuracy": math.nan if k == bad else 0.9 + 0.01 * i}
                  for i, k in enumerate(keys)]
    supernet = {"test_accuracy": {k: 0.8 + 0.01 * i for i, k in enumerate(keys)},
                "steps": 10, "horizon": 10, "seconds": 1.0}
    plan = {"mnist": {"selection": selection, "recipe": RECIPE, "space": space,
                      "labels": {}}}
    args = SimpleNamespace(n=6, seeds=1, budget=1.0, standalone_steps=10, procs=1)
    metrics, raw = audit_module.summarise(
        plan, {"mnist": {"supernet": supernet, "standalone": standalone}},
        {"mnist": [math.nan] * len(keys)}, args)
    entry = metrics["mnist"]
    assert entry["diverged"] == [bad]
    assert entry["archs_complete"] == 5
    assert bad not in entry["gap_points"] and len(entry["gap_points"]) == 5
    # inherited 0.8 + 0.01 i vs stand-alone 0.9 + 0.01 i: 10 points worse for every arch
    assert entry["mean_gap_inherited_vs_standalone"] == pytest.approx(-10.0)
    assert entry["supernet_tau"] == pytest.approx(1.0)
