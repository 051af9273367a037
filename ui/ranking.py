"""Rank agreement between sources of the same metric: predictor or supernet against
supernet or standalone labels, and the split-half noise ceiling."""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats


def paired(frame: pd.DataFrame, *, metric: str, source_a: str, source_b: str) -> pd.DataFrame:
    """Arch key, value from ``source_a``, value from ``source_b`` (latest of each) for the
    archs that have ``metric`` from both sources."""
    part = frame[frame["metric"] == metric]
    a = part[part["source"] == source_a].groupby("arch_key")["value"].last()
    b = part[part["source"] == source_b].groupby("arch_key")["value"].last()
    both = pd.concat([a.rename(source_a), b.rename(source_b)], axis=1, join="inner")
    return both.reset_index()


def tau(a, b) -> float:
    """Kendall tau-b (0 when one side is constant), as `predictors.metrics.kendall_tau`."""
    if len(a) < 2:
        return math.nan
    value = stats.kendalltau(list(a), list(b)).statistic
    return 0.0 if math.isnan(value) else float(value)


def noise_ceiling(frame: pd.DataFrame) -> tuple[float, int]:
    """Agreement of the supernet losses on the two validation halves, corrected to
    full-size labels, and the number of archs it is measured on. Same formula as
    `predictors.metrics.noise_ceiling_tau` (Spearman-Brown through Greiner's relation),
    written out here because importing `predictors` loads torch-geometric (seconds)."""
    supernet = frame[frame["source"] == "supernet"]
    halves = [supernet[supernet["metric"] == m].groupby("arch_key")["value"].last().rename(m)
              for m in ("val_loss_a", "val_loss_b")]
    both = pd.concat(halves, axis=1, join="inner")
    if len(both) < 3:
        return math.nan, len(both)
    half = tau(both["val_loss_a"], both["val_loss_b"])
    if half <= 0:
        return half, len(both)
    r_half = math.sin(math.pi / 2 * half)
    r_full = 2 * r_half / (1 + r_half)
    return 2 / math.pi * math.asin(min(1.0, r_full)), len(both)
