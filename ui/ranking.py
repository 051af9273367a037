"""Rank agreement between sources of the same metric: predictor or supernet against
supernet or standalone labels, and the split-half noise ceiling."""

from __future__ import annotations

import math

import pandas as pd


def paired(frame: pd.DataFrame, *, metric: str, source_a: str, source_b: str) -> pd.DataFrame:
    """Arch key, value from ``source_a``, value from ``source_b`` (latest of each) for the
    archs that have ``metric`` from both sources."""
    part = frame[frame["metric"] == metric]
    a = part[part["source"] == source_a].groupby("arch_key")["value"].last()
    b = part[part["source"] == source_b].groupby("arch_key")["value"].last()
    both = pd.concat([a.rename(source_a), b.rename(source_b)], axis=1, join="inner")
    return both.reset_index()


def tau(a, b) -> float:
    """Kendall tau-b, `predictors.metrics.kendall_tau` (NaN for fewer than two archs)."""
    from predictors.metrics import kendall_tau

    if len(a) < 2:
        return math.nan
    return kendall_tau(list(a), list(b))


def noise_ceiling(frame: pd.DataFrame) -> tuple[float, int]:
    """Agreement of the supernet losses on the two validation halves, corrected to
    full-size labels (`predictors.metrics.noise_ceiling_tau`), and the number of archs it is
    measured on (NaN below three)."""
    from predictors.metrics import noise_ceiling_tau

    supernet = frame[frame["source"] == "supernet"]
    halves = [supernet[supernet["metric"] == m].groupby("arch_key")["value"].last().rename(m)
              for m in ("val_loss_a", "val_loss_b")]
    both = pd.concat(halves, axis=1, join="inner")
    if len(both) < 3:
        return math.nan, len(both)
    return noise_ceiling_tau(both["val_loss_a"].to_numpy(), both["val_loss_b"].to_numpy()), \
        len(both)
