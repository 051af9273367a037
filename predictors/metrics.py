"""Ranking metrics for predictors, the noise ceiling, and bootstrap confidence intervals.

Conventions: labels are validation losses, so **lower is better**; `top_k_precision` takes
``lower_is_better=True`` by default (pass False for accuracies). Correlations are symmetric
and direction-free: a predictor of the loss should correlate positively with the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np
from scipy import stats

#: 1-D numbers: a sequence of floats or an array (converted with ``np.asarray``)
Floats: TypeAlias = "np.ndarray | Sequence[float]"


def _pair(a: Floats, b: Floats, *, names: tuple[str, str] = ("pred", "true"),
          minimum: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Two equal-length finite 1-D float arrays, or ValueError naming the problem."""
    out = []
    for name, values in zip(names, (a, b)):
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a sequence of numbers") from None
        if arr.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D sequence, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or inf at index "
                             f"{np.flatnonzero(~np.isfinite(arr))[:5].tolist()}")
        out.append(arr)
    if len(out[0]) != len(out[1]):
        raise ValueError(f"{names[0]} and {names[1]}: lengths differ "
                         f"({len(out[0])} vs {len(out[1])})")
    if len(out[0]) < minimum:
        raise ValueError(f"{names[0]}: need at least {minimum} values, got {len(out[0])}")
    return out[0], out[1]


def _correlation(value: float) -> float:
    """scipy returns NaN when one side is constant; no ranking information means 0."""
    return 0.0 if math.isnan(value) else float(value)


def kendall_tau(pred: Floats, true: Floats) -> float:
    """Kendall's tau-b (ties handled) between predictions and labels, in [-1, 1]."""
    p, t = _pair(pred, true)
    return _correlation(stats.kendalltau(p, t).statistic)


def spearman_rho(pred: Floats, true: Floats) -> float:
    """Spearman's rank correlation between predictions and labels, in [-1, 1]."""
    p, t = _pair(pred, true)
    return _correlation(stats.spearmanr(p, t).statistic)


def top_k_precision(pred: Floats, true: Floats, *, k: int | None = None,
                    fraction: float | None = None, lower_is_better: bool = True) -> float:
    """Share of the true best ``k`` items found among the predicted best ``k``.

    Give ``k`` (a count) or ``fraction`` (of the items, rounded, at least 1). The best items
    are the lowest values when ``lower_is_better`` (losses), the highest otherwise. Ties
    are broken by index (stable sort), the same way on both sides.
    """
    p, t = _pair(pred, true, minimum=1)
    if (k is None) == (fraction is None):
        raise ValueError("top_k_precision: give exactly one of k or fraction")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction: expected a value in (0, 1], got {fraction}")
        k = max(1, int(round(fraction * len(p))))
    assert k is not None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(p):
        raise ValueError(f"k: expected an int in [1, {len(p)}], got {k!r}")
    sign = 1.0 if lower_is_better else -1.0
    best_pred = set(np.argsort(sign * p, kind="stable")[:k].tolist())
    best_true = set(np.argsort(sign * t, kind="stable")[:k].tolist())
    return len(best_pred & best_true) / k


def spearman_brown_tau(tau_half: float, *, factor: float = 2.0) -> float:
    """Kendall tau of labels ``factor`` times as reliable, from a split-half tau.

    Spearman-Brown is a formula for Pearson correlations, so tau goes through Greiner's
    relation for bivariate normal scores (``r = sin(pi tau / 2)``)::

        r_half = sin(pi / 2 * tau_half)
        r_full = factor * r_half / (1 + (factor - 1) * r_half)
        tau_full = 2 / pi * arcsin(r_full)

    A non-positive split-half tau is returned unchanged (no reliable signal to extrapolate).
    """
    if not -1.0 <= tau_half <= 1.0:
        raise ValueError(f"tau_half: expected a value in [-1, 1], got {tau_half}")
    if tau_half <= 0:
        return float(tau_half)
    r_half = math.sin(math.pi / 2 * tau_half)
    r_full = factor * r_half / (1 + (factor - 1) * r_half)
    return float(2 / math.pi * math.asin(min(1.0, r_full)))


def noise_ceiling_tau(labels_a: Floats, labels_b: Floats, *,
                      spearman_brown: bool = True) -> float:
    """The tau that two independent evaluations of the same archs agree to.

    ``labels_a`` and ``labels_b`` are the losses of the same archs on two disjoint halves of
    the validation set. Their tau is the agreement of two half-size evaluations; with
    ``spearman_brown`` (default) it is extrapolated to two full-size evaluations (the
    labels a predictor is scored against are the mean over both halves) with
    `spearman_brown_tau`. A predictor is judged against one noisy evaluation, so its tau
    against the labels is limited by this agreement. Caveat: this is test-retest agreement
    (the issue's definition). A predictor that knew the noise-free score exactly would be
    compared with only one noisy evaluation and can exceed it; `truth_ceiling_tau` estimates
    that higher bound.
    """
    a, b = _pair(labels_a, labels_b, names=("labels_a", "labels_b"))
    tau_half = _correlation(stats.kendalltau(a, b).statistic)
    return spearman_brown_tau(tau_half) if spearman_brown else tau_half


def truth_ceiling_tau(labels_a: Floats, labels_b: Floats) -> float:
    """Estimated tau between the noise-free score and the full-set labels (mean of halves).

    Classical test theory: the reliability of the full-set labels is the Spearman-Brown
    corrected split-half correlation ``rel``, and a noise-free score correlates
    ``sqrt(rel)`` with them; with Greiner's relation::

        r_half = sin(pi / 2 * tau(labels_a, labels_b))
        rel = 2 r_half / (1 + r_half)
        tau = 2 / pi * arcsin(sqrt(rel))

    This is the most a predictor can reach against the labels when its errors are
    independent of the evaluation noise; it is >= `noise_ceiling_tau`.
    """
    a, b = _pair(labels_a, labels_b, names=("labels_a", "labels_b"))
    tau_half = _correlation(stats.kendalltau(a, b).statistic)
    if tau_half <= 0:
        return 0.0
    r_half = math.sin(math.pi / 2 * tau_half)
    reliability = 2 * r_half / (1 + r_half)
    return float(2 / math.pi * math.asin(math.sqrt(min(1.0, reliability))))


def bootstrap_ci(metric_fn: Callable[[np.ndarray, np.ndarray], float], a: Floats,
                 b: Floats, *, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric_fn(a, b)`` resampling pairs (a_i, b_i).

    Example: ``bootstrap_ci(kendall_tau, pred, labels, n=1000, seed=0)`` -> (low, high).
    """
    x, y = _pair(a, b, names=("a", "b"))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a value in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    values = np.empty(n)
    for i in range(n):
        idx = rng.integers(0, len(x), len(x))
        values[i] = metric_fn(x[idx], y[idx])
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


__all__ = ["bootstrap_ci", "kendall_tau", "noise_ceiling_tau", "spearman_brown_tau",
           "spearman_rho", "top_k_precision", "truth_ceiling_tau"]
