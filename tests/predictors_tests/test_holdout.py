"""The predict stage's held-out split and metrics (`predictors.holdout`): only sampled labels
are held out, seeded and disjoint from training; the noise ceiling only with both halves;
importable without torch-geometric."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from predictors import holdout_metrics, holdout_split
from predictors.metrics import kendall_tau, noise_ceiling_tau


def test_split_holds_out_only_sampled_labels_and_is_seeded():
    sampled = np.arange(10, 30)
    train, test = holdout_split(40, sampled, holdout=0.2, seed=3)
    assert len(test) == 4 and set(test) <= set(sampled)
    assert sorted(set(train) | set(test)) == list(range(40)) and not set(train) & set(test)
    again, test_again = holdout_split(40, sampled, holdout=0.2, seed=3)
    assert test.tolist() == test_again.tolist() and train.tolist() == again.tolist()
    assert len(holdout_split(40, sampled[:5], holdout=0.1, seed=0)[1]) == 4  # at least 4


def test_metrics_and_noise_ceiling():
    rng = np.random.default_rng(0)
    true = rng.normal(size=12)
    pred = true + rng.normal(scale=0.3, size=12)
    a, b = true + 0.1 * rng.normal(size=12), true + 0.1 * rng.normal(size=12)
    m = holdout_metrics(pred, true, n_train=30, halves=(list(a), list(b)))
    assert m["kendall_tau"] == pytest.approx(kendall_tau(pred, true))
    assert m["noise_ceiling_tau"] == pytest.approx(noise_ceiling_tau(a, b))
    assert m["n_train"] == 30 and m["n_test"] == 12
    missing = holdout_metrics(pred, true, n_train=30, halves=([None] * 12, list(b)))
    assert "noise_ceiling_tau" not in missing


def test_holdout_needs_no_torch_geometric():
    code = ("import sys, predictors; from predictors import holdout_split, holdout_metrics; "
            "assert 'torch_geometric' not in sys.modules, 'torch_geometric imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
