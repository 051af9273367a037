"""Fit a predictor the honest way: ranking metrics on a held-out part of the labels (against
the split-half noise ceiling), then a refit on all labels. The predict stage of `nas` runs
this on the evaluated subnets; the app and the benchmarks can run it on any labels.

Example::

    fit = fit_with_holdout("gnn", space, archs, losses, sampled=sampled, holdout=0.2,
                           seed=0, halves=(losses_a, losses_b))
    fit.metrics["kendall_tau"], fit.model.predict(candidates)

Only the held-out metrics and the split need numpy / scipy; `fit_with_holdout` builds the
predictor by name (`make_predictor`), which loads torch-geometric for the GNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from predictors.metrics import (
    Floats,
    kendall_tau,
    noise_ceiling_tau,
    spearman_rho,
    top_k_precision,
)
from search_spaces import Arch, SearchSpace

if TYPE_CHECKING:
    from predictors.registry import Predictor

MIN_HOLDOUT = 4  # held-out labels at least, however small ``holdout``


def holdout_split(n: int, sampled: Sequence[int] | np.ndarray, *, holdout: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into ``n`` labels: the test part is ``holdout`` (at least
    `MIN_HOLDOUT`) of the ``sampled`` indices, drawn with ``seed``; every other label trains.

    Only unbiased labels should be ``sampled`` (the evaluate stage's random sample, not the
    search's evaluations, which lean towards the front)."""
    sampled = np.asarray(sampled, dtype=int)
    n_test = max(MIN_HOLDOUT, int(round(holdout * len(sampled))))
    test = np.random.default_rng([seed, 15485863]).permutation(sampled)[:n_test]
    train = np.setdiff1d(np.arange(n), test)
    return train, test


def holdout_metrics(pred: Floats, true: Floats, *, n_train: int,
                    halves: tuple[Sequence[float | None], Sequence[float | None]] | None = None
                    ) -> dict[str, Any]:
    """Kendall tau, Spearman rho and top-5 % precision of ``pred`` against ``true`` (the
    held-out labels), with ``n_train`` / ``n_test``; with ``halves`` (the same archs' losses
    on two halves of the split, all present) also ``noise_ceiling_tau``."""
    true = np.asarray(true, dtype=np.float64)
    metrics: dict[str, Any] = {
        "kendall_tau": kendall_tau(pred, true), "spearman": spearman_rho(pred, true),
        "top5pct_precision": top_k_precision(pred, true, fraction=0.05),
        "n_train": int(n_train), "n_test": int(len(true))}
    if halves is not None:
        half_a, half_b = list(halves[0]), list(halves[1])
        if all(v is not None for v in half_a + half_b):
            metrics["noise_ceiling_tau"] = noise_ceiling_tau(
                [float(v) for v in half_a if v is not None],
                [float(v) for v in half_b if v is not None])
    return metrics


@dataclass(frozen=True)
class HoldoutFit:
    """What `fit_with_holdout` returns: the held-out ``metrics``, the ``test`` indices and
    the held-out ``predictions`` (in ``test`` order) of the model fitted without them, and
    ``model``, refitted on every label."""

    metrics: dict[str, Any]
    test: np.ndarray
    predictions: np.ndarray
    model: Predictor


def fit_with_holdout(kind: str, space: SearchSpace, archs: Sequence[Arch], y: Floats, *,
                     sampled: Sequence[int] | np.ndarray, holdout: float, seed: int,
                     halves: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
                     options: dict[str, Any] | None = None) -> HoldoutFit:
    """Fit a ``kind`` predictor (`make_predictor` with ``seed`` and ``options``) on all
    labels but a held-out part of ``sampled`` (`holdout_split`), score it there
    (`holdout_metrics`), then refit a fresh one on every label.

    ``halves``: per arch (aligned with ``archs``), its losses on the two halves of the
    split, or None where unknown; the noise ceiling is measured on the held-out archs."""
    from predictors.registry import make_predictor

    archs, y = list(archs), np.asarray(y, dtype=np.float64)
    options = dict(options or {})
    train, test = holdout_split(len(archs), sampled, holdout=holdout, seed=seed)
    model = make_predictor(kind, space, seed=seed, **options)
    model.fit([archs[i] for i in train], y[train])
    mean, _ = model.predict([archs[i] for i in test])
    held = None if halves is None else ([halves[0][i] for i in test],
                                        [halves[1][i] for i in test])
    metrics = holdout_metrics(mean, y[test], n_train=len(train), halves=held)
    final = make_predictor(kind, space, seed=seed, **options).fit(archs, y)
    return HoldoutFit(metrics=metrics, test=test, predictions=np.asarray(mean), model=final)


__all__ = ["MIN_HOLDOUT", "HoldoutFit", "fit_with_holdout", "holdout_metrics", "holdout_split"]
