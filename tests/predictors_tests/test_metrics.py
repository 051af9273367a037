"""Ranking metrics against brute force / scipy, the noise ceiling on synthetic data with a
known noise level, and bad inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from predictors.metrics import (
    bootstrap_ci,
    kendall_tau,
    noise_ceiling_tau,
    spearman_brown_tau,
    spearman_rho,
    top_k_precision,
    truth_ceiling_tau,
)


def _brute_tau(a, b):
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return s / len(pairs)


def test_kendall_and_spearman_match_brute_force(rng):
    for _ in range(5):
        a, b = rng.normal(size=40), rng.normal(size=40)
        b = a + rng.normal(size=40)
        assert kendall_tau(a, b) == pytest.approx(_brute_tau(a, b))
        ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        assert spearman_rho(a, b) == pytest.approx(np.corrcoef(ranks_a, ranks_b)[0, 1])
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0  # constant prediction: no information


def test_kendall_handles_ties_like_scipy(rng):
    a, b = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)


def test_top_k_precision_brute_force(rng):
    true = rng.permutation(100).astype(float)
    assert top_k_precision(true, true, k=5) == 1.0
    assert top_k_precision(-true, true, k=5) == 0.0
    pred = true + rng.normal(0, 20, 100)
    for k in (1, 5, 10, 30):
        lowest = len(set(np.argsort(pred)[:k]) & set(np.argsort(true)[:k])) / k
        highest = len(set(np.argsort(pred)[-k:]) & set(np.argsort(true)[-k:])) / k
        assert top_k_precision(pred, true, k=k) == lowest
        assert top_k_precision(pred, true, k=k, lower_is_better=False) == highest
    assert top_k_precision(pred, true, fraction=0.05) == top_k_precision(pred, true, k=5)
    assert top_k_precision(pred, true, fraction=0.001) == top_k_precision(pred, true, k=1)


def test_spearman_brown_formula():
    assert spearman_brown_tau(0.0) == 0.0
    assert spearman_brown_tau(1.0) == pytest.approx(1.0)
    r = math.sin(math.pi / 2 * 0.5)
    assert spearman_brown_tau(0.5) == pytest.approx(2 / math.pi * math.asin(2 * r / (1 + r)))
    assert spearman_brown_tau(0.5) > 0.5


def test_noise_ceiling_recovers_known_noise():
    """Half-set losses = truth + N(0, s^2); full-set losses have noise variance s^2 / 2.
    Two independent full-set evaluations then agree to tau = 2/pi asin(rho_full) with
    rho_full = 1 / (1 + s^2 / 2) (unit-variance truth); the corrected split-half tau must
    match that, and the uncorrected one must be lower."""
    rng = np.random.default_rng(0)
    n, s = 4000, 0.6
    truth = rng.normal(size=n)
    a, b = truth + rng.normal(0, s, n), truth + rng.normal(0, s, n)
    expected = 2 / math.pi * math.asin(1 / (1 + s * s / 2))
    assert noise_ceiling_tau(a, b) == pytest.approx(expected, abs=0.015)
    full_1 = truth + rng.normal(0, s / math.sqrt(2), n)
    full_2 = truth + rng.normal(0, s / math.sqrt(2), n)
    assert noise_ceiling_tau(a, b) == pytest.approx(kendall_tau(full_1, full_2), abs=0.02)
    labels = (a + b) / 2
    assert truth_ceiling_tau(a, b) == pytest.approx(kendall_tau(truth, labels), abs=0.02)
    assert truth_ceiling_tau(a, b) > noise_ceiling_tau(a, b)
    half = noise_ceiling_tau(a, b, spearman_brown=False)
    assert half == pytest.approx(2 / math.pi * math.asin(1 / (1 + s * s)), abs=0.015)
    assert half < noise_ceiling_tau(a, b)


def test_bootstrap_ci_brackets_the_estimate(rng):
    a = rng.normal(size=200)
    b = a + rng.normal(size=200)
    low, high = bootstrap_ci(kendall_tau, a, b, n=200, seed=0)
    assert low < kendall_tau(a, b) < high
    assert (low, high) == bootstrap_ci(kendall_tau, a, b, n=200, seed=0)  # deterministic
    narrow = bootstrap_ci(kendall_tau, a, b, n=200, seed=0, level=0.5)
    assert low < narrow[0] < narrow[1] < high


@pytest.mark.parametrize("call, match", [
    (lambda: kendall_tau([1, 2, 3], [1, 2]), "lengths differ"),
    (lambda: spearman_rho([], []), "at least 2"),
    (lambda: kendall_tau([1, float("nan")], [1, 2]), "NaN"),
    (lambda: top_k_precision([1, 2], [1, 2], k=3), "k: expected"),
    (lambda: top_k_precision([1, 2], [1, 2]), "exactly one"),
    (lambda: top_k_precision([1, 2], [1, 2], fraction=1.5), "fraction"),
    (lambda: noise_ceiling_tau([1, 2, 3], [1, 2]), "labels_a and labels_b"),
    (lambda: bootstrap_ci(kendall_tau, [1, 2], [1, 2], n=0), "n: expected"),
    (lambda: kendall_tau([[1, 2]], [[1, 2]]), "1-D"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_metrics_import_without_torch_geometric():
    """`predictors` loads lazily: the app's metrics (noise ceiling, tau) come from
    `predictors.metrics` without torch-geometric, which only the GNN needs."""
    import subprocess
    import sys

    code = ("import sys; import predictors.metrics, ui.ranking; "
            "print('torch_geometric' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_latency_validation_kendall_equals_the_public_one():
    """`kernels`' scipy-free tau (latency validation on a bare box) is this Kendall tau."""
    from kernels.latency_table import _kendall_tau

    rng = np.random.default_rng(5)
    for n in (2, 7, 40):
        a = rng.integers(0, 5, size=n).astype(float)  # ties on both sides
        b = a + rng.integers(0, 3, size=n)
        if len(set(a)) > 1 and len(set(b)) > 1:
            assert _kendall_tau(list(a), list(b)) == pytest.approx(kendall_tau(a, b), abs=1e-12)
