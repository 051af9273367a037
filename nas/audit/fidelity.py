"""Rank fidelity: how well a cheap proxy (inherited-weight accuracy, the predictor, FLOPs)
orders archs the way stand-alone training does, with bootstrap intervals and the
seed-to-seed agreement of stand-alone training itself as the noise ceiling. Torch-free.

Every score is oriented "higher is better" (accuracies, minus a predicted loss, FLOPs), so
a faithful proxy has a positive tau.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

METRICS = ("kendall_tau", "spearman_rho", "top_k_recall")


def batched_metrics(p: np.ndarray, t: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Kendall tau-b, Spearman rho and top-k recall of each row pair of ``p`` and ``t``
    (B, N), vectorised for bootstrap resamples; equal to `predictors.kendall_tau`,
    `spearman_rho` and `top_k_precision(lower_is_better=False)` row by row (0 where a row
    is constant; top-k ties broken by index)."""
    sp = np.sign(p[:, :, None] - p[:, None, :])  # (B, N, N)
    st = np.sign(t[:, :, None] - t[:, None, :])
    den = np.sqrt((sp * sp).sum((1, 2)) * (st * st).sum((1, 2)))
    tau = np.divide((sp * st).sum((1, 2)), den, out=np.zeros(len(p)), where=den > 0)
    rp, rt = stats.rankdata(p, axis=1), stats.rankdata(t, axis=1)
    rp, rt = rp - rp.mean(1, keepdims=True), rt - rt.mean(1, keepdims=True)
    den = np.sqrt((rp * rp).sum(1) * (rt * rt).sum(1))
    rho = np.divide((rp * rt).sum(1), den, out=np.zeros(len(p)), where=den > 0)
    top_p = np.argsort(-p, axis=1, kind="stable")[:, :k]
    top_t = np.argsort(-t, axis=1, kind="stable")[:, :k]
    recall = (top_p[:, :, None] == top_t[:, None, :]).any(2).sum(1) / k
    return {"kendall_tau": tau, "spearman_rho": rho, "top_k_recall": recall}


def seed_agreement(runs: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Mean over seed pairs of each metric between two seeds' accuracies; ``runs`` is
    (N, S) or a batch (B, N, S); returns (B,) arrays (B = 1 for one matrix)."""
    batch = runs[None] if runs.ndim == 2 else runs
    pairs = list(itertools.combinations(range(batch.shape[2]), 2))
    per_pair = [batched_metrics(batch[:, :, i], batch[:, :, j], k) for i, j in pairs]
    return {m: np.mean([d[m] for d in per_pair], axis=0) for m in METRICS}


def rank_fidelity(*, standalone: np.ndarray | Sequence[Sequence[float]],
                  proxies: Mapping[str, Sequence[float] | None], top_k: int,
                  reasons: Mapping[str, str] | None = None, resamples: int = 1000,
                  seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Compare each proxy's scores with the stand-alone accuracy (mean over seeds).

    ``standalone``: (N, S) accuracies of N archs under S seeds. ``proxies``: name -> N
    scores (higher is better), or None when that proxy is unavailable (``reasons[name]``
    says why). Percentile intervals resample archs with replacement (the same resamples
    for every proxy, so their intervals are comparable). Returns plain JSON data.
    """
    runs = np.asarray(standalone, dtype=np.float64)
    if runs.ndim != 2 or runs.shape[0] < 2 or runs.shape[1] < 1:
        raise ValueError(f"standalone: expected (N >= 2 archs, S >= 1 seeds), got "
                         f"shape {runs.shape}")
    if not np.all(np.isfinite(runs)):
        raise ValueError("standalone: contains NaN or inf")
    n, s = runs.shape
    if not 1 <= top_k <= n:
        raise ValueError(f"top_k: expected 1..{n}, got {top_k}")
    truth = runs.mean(axis=1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, (resamples, n))  # (R, N) resampled arch indices
    alpha = (1 - level) / 2
    reasons = dict(reasons or {})

    def summarise(point: dict[str, float], samples: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {"available": True}
        for name in METRICS:
            low, high = np.quantile(samples[name], [alpha, 1 - alpha])
            out[name], out[f"{name}_ci"] = point[name], [float(low), float(high)]
        return out

    comparisons: dict[str, Any] = {}
    for name, scores in proxies.items():
        if scores is None:
            comparisons[name] = {"available": False,
                                 "reason": reasons.get(name, "not available")}
            continue
        p = np.asarray(scores, dtype=np.float64)
        if p.shape != (n,) or not np.all(np.isfinite(p)):
            raise ValueError(f"proxy {name!r}: expected {n} finite scores, got {p.shape}")
        point = {m: float(v[0]) for m, v in batched_metrics(p[None], truth[None],
                                                            top_k).items()}
        comparisons[name] = summarise(point, batched_metrics(p[draws], truth[draws], top_k))
    if s >= 2:
        point = {m: float(v[0]) for m, v in seed_agreement(runs, top_k).items()}
        ceiling = summarise(point, seed_agreement(runs[draws], top_k))
        ceiling["seed_pairs"] = s * (s - 1) // 2
    else:
        ceiling = {"available": False, "reason": "n/a: needs --seeds >= 2"}
    return {"n_archs": n, "seeds": s, "top_k": top_k, "comparisons": comparisons,
            "noise_ceiling": ceiling,
            "bootstrap": {"resamples": resamples, "seed": seed, "level": level}}


def ranks(scores: Sequence[float]) -> list[int]:
    """Rank of each score, 1 = the highest (ties share the better rank)."""
    values = -np.asarray(scores, dtype=np.float64)
    return [int(r) for r in stats.rankdata(values, method="min")]


def disagreements(keys: Sequence[str], truth: Sequence[float], proxy: Sequence[float], *,
                  limit: int = 5) -> list[dict[str, Any]]:
    """The archs whose proxy rank is furthest from their stand-alone rank, worst first:
    ``{"arch_key", "standalone_rank", "proxy_rank", "shift"}`` (shift > 0: the proxy
    ranks it better than stand-alone training does)."""
    t, p = ranks(truth), ranks(proxy)
    pairs = sorted(((k, a, b) for k, a, b in zip(keys, t, p) if a != b),
                   key=lambda row: (-abs(row[1] - row[2]), row[0]))
    return [{"arch_key": k, "standalone_rank": a, "proxy_rank": b, "shift": a - b}
            for k, a, b in pairs[:limit]]
