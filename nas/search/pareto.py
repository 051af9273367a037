"""Pareto utilities over objective vectors, every objective minimised.

Points are ``(n, m)`` float arrays (one row per arch, one column per objective; the
objective layer negates what is maximised, such as accuracy). Point ``a`` dominates ``b``
when ``a <= b`` in every objective and ``a < b`` in at least one; equal points do not
dominate each other, so duplicates share a rank.

- `non_dominated_mask`, `non_dominated_sort` (rank 0 is the Pareto front), `crowding_distance`
  (NSGA-II's diversity measure within one front);
- `hypervolume`: exact, by slicing along the last objective down to an exact 2-D sweep
  (O(n log n) in 2-D, O(n^2 log n) in 3-D); points not strictly better than the reference
  point in every objective add nothing;
- `normalise` by an ideal and a nadir point, `reference_point` (nadir + margin of the range),
  `knee_point`.

Example::

    ranks = non_dominated_sort(points)
    front = points[ranks == 0]
    ideal, nadir = front.min(0), front.max(0)
    hv = hypervolume(normalise(front, ideal, nadir), np.full(2, 1.1))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_CHUNK = 1 << 22  # comparisons per block of the quadratic dominance checks


def as_points(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """``points`` as a finite (n, m) float64 array; ValueError otherwise."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"points: expected an (n, m) array, got shape {arr.shape}")
    if arr.shape[0] and arr.shape[1] < 1:
        raise ValueError("points: need at least one objective")
    if not np.all(np.isfinite(arr)):
        raise ValueError("points: every objective value must be finite")
    return arr


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether point ``a`` (m,) dominates point ``b`` (m,)."""
    return bool(np.all(a <= b) and np.any(a < b))


def _dominated_2d(p: np.ndarray) -> np.ndarray:
    """(n,) bool: dominated by another point, by one sort (2 objectives)."""
    order = np.lexsort((p[:, 1], p[:, 0]))  # by f0, then f1
    f0, f1 = p[order, 0], p[order, 1]
    starts = np.flatnonzero(np.r_[True, f0[1:] != f0[:-1]])  # first index of each f0 group
    group = np.cumsum(np.r_[False, f0[1:] != f0[:-1]])  # (n,) group id of each sorted point
    group_min = f1[starts]  # sorted within a group, so the first is the min
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]  # best f1 at smaller f0
    dominated_sorted = (f1 > group_min[group]) | (before[group] <= f1)
    out = np.empty(len(p), dtype=bool)
    out[order] = dominated_sorted
    return out


def _dominated_general(p: np.ndarray) -> np.ndarray:
    n, m = p.shape
    out = np.zeros(n, dtype=bool)
    rows = max(1, _CHUNK // max(1, n * m))
    for start in range(0, n, rows):
        block = p[start:start + rows, None, :]  # (b, 1, m)
        le = np.all(p[None, :, :] <= block, axis=2)  # (b, n): p_j <= p_i everywhere
        lt = np.any(p[None, :, :] < block, axis=2)  # (b, n): strictly better somewhere
        out[start:start + rows] = np.any(le & lt, axis=1)
    return out


def non_dominated_mask(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(n,) bool, True for the points no other point dominates (the Pareto front)."""
    p = as_points(points)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    if p.shape[1] == 1:
        return p[:, 0] == p[:, 0].min()
    dominated = _dominated_2d(p) if p.shape[1] == 2 else _dominated_general(p)
    return ~dominated


def non_dominated_sort(points: np.ndarray | Sequence[Sequence[float]], *,
                       max_rank: int | None = None) -> np.ndarray:
    """(n,) int ranks: 0 for the Pareto front, 1 for the front of the rest, and so on.

    With ``max_rank``, peeling stops after that rank and the points left get
    ``max_rank + 1`` (enough for a survival step that needs only the first fronts).
    """
    p = as_points(points)
    ranks = np.full(len(p), -1, dtype=np.int64)
    left = np.arange(len(p))
    rank = 0
    while len(left):
        if max_rank is not None and rank > max_rank:
            ranks[left] = rank
            break
        mask = non_dominated_mask(p[left])
        ranks[left[mask]] = rank
        left = left[~mask]
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(n,) NSGA-II crowding distance of points of one front: the extremes of every
    objective get ``inf``; the others the sum over objectives of the normalised gap
    between their two neighbours. An objective with no spread adds nothing."""
    p = as_points(points)
    n, m = p.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(p[:, j], kind="stable")
        values = p[order, j]
        span = values[-1] - values[0]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (values[2:] - values[:-2]) / span
    return dist


def _hv_2d(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of points already strictly inside the reference box."""
    order = np.lexsort((p[:, 1], p[:, 0]))
    x, y = p[order, 0], p[order, 1]
    best_y = np.minimum.accumulate(y)  # lowest f1 among points at or left of x
    widths = np.r_[x[1:], ref[0]] - x
    return float(np.sum(widths * (ref[1] - best_y)))


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    m = p.shape[1]
    if len(p) == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        return _hv_2d(p, ref)
    p = p[non_dominated_mask(p)]
    order = np.argsort(p[:, -1], kind="stable")
    p = p[order]
    z = np.r_[p[:, -1], ref[-1]]
    total = 0.0
    for k in range(len(p)):  # slab between z_k and z_{k+1}: points with f_last <= z_k
        height = z[k + 1] - z[k]
        if height > 0:
            total += height * _hv(p[:k + 1, :-1], ref[:-1])
    return total


def hypervolume(points: np.ndarray | Sequence[Sequence[float]],
                ref: np.ndarray | Sequence[float]) -> float:
    """Exact volume dominated by ``points`` (n, m) and bounded by ``ref`` (m,).

    Points that are not strictly better than ``ref`` in every objective add nothing.
    Exact in any dimension (slicing); meant for m <= 3, fine for small sets beyond.
    """
    p = as_points(points)
    ref = np.asarray(ref, dtype=np.float64)
    if len(p) == 0:
        return 0.0
    if ref.shape != (p.shape[1],) or not np.all(np.isfinite(ref)):
        raise ValueError(f"ref: expected {p.shape[1]} finite values, got {ref!r}")
    inside = np.all(p < ref, axis=1)
    return _hv(p[inside], ref)


def _improvements_2d(front: np.ndarray, cand: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact 2-D improvements of many candidates at once: the area between each candidate's
    box and the front's staircase, integrated over the staircase's steps."""
    front = front[np.all(front < ref, axis=1)]
    if len(front):
        front = front[non_dominated_mask(front)]
        front = front[np.lexsort((front[:, 1], front[:, 0]))]
    # steps: on [edges[i], edges[i + 1]) the front covers everything above heights[i]
    edges = np.r_[-np.inf, front[:, 0], ref[0]]  # (s + 1,)
    heights = np.r_[ref[1], front[:, 1]]  # (s,)
    lo = np.maximum(edges[None, :-1], cand[:, :1])  # (c, s) overlap of [cx, ref_x) with a step
    width = np.clip(edges[None, 1:] - lo, 0.0, None)
    depth = np.clip(heights[None, :] - cand[:, 1:2], 0.0, None)
    gains = (width * depth).sum(axis=1)
    return np.where(np.all(cand < ref, axis=1), gains, 0.0)


def hypervolume_improvements(front: np.ndarray, candidates: np.ndarray,
                             ref: np.ndarray) -> np.ndarray:
    """(c,) hypervolume each candidate row would add to ``front`` (k, m) on its own."""
    candidates = as_points(candidates)
    ref = np.asarray(ref, dtype=np.float64)
    front = as_points(front) if len(front) else np.zeros((0, candidates.shape[1]))
    if candidates.shape[1] == 2:
        return _improvements_2d(front, candidates, ref)
    base = hypervolume(front, ref)
    return np.array([hypervolume(np.vstack([front, c[None]]), ref) - base
                     for c in candidates])


def normalise(points: np.ndarray, ideal: np.ndarray, nadir: np.ndarray) -> np.ndarray:
    """``(points - ideal) / (nadir - ideal)``; an objective with no range is only shifted."""
    ideal, nadir = np.asarray(ideal, dtype=np.float64), np.asarray(nadir, dtype=np.float64)
    span = nadir - ideal
    span = np.where(span > 0, span, 1.0)
    return (np.asarray(points, dtype=np.float64) - ideal) / span


def reference_point(ideal: np.ndarray, nadir: np.ndarray, *, margin: float = 0.1) -> np.ndarray:
    """``nadir + margin * (nadir - ideal)``: the reference point in raw units (in normalised
    units it is ``1 + margin`` in every objective)."""
    ideal, nadir = np.asarray(ideal, dtype=np.float64), np.asarray(nadir, dtype=np.float64)
    span = nadir - ideal
    return nadir + margin * np.where(span > 0, span, 1.0)


def knee_point(points: np.ndarray | Sequence[Sequence[float]]) -> int:
    """Index of the knee of the Pareto front of ``points`` (every objective minimised).

    After normalising the front by its ideal and nadir, the knee is the front point with the
    smallest sum of objectives (in 2-D the one farthest below the line through the two
    extremes: the best trade-off). Ties go to the one closest to the ideal point, then to
    the best value of the first objective, then of the next ones, then the lowest index, so
    the answer does not depend on the order of the rows. A front of one point is that
    point; of two, the one better in the first objective (both extremes tie on the sum).
    """
    p = as_points(points)
    if len(p) == 0:
        raise ValueError("knee_point: no points")
    idx = np.flatnonzero(non_dominated_mask(p))
    front = p[idx]
    z = normalise(front, front.min(0), front.max(0))
    keys = (idx, *(front[:, j] for j in reversed(range(front.shape[1]))),
            np.round(np.linalg.norm(z, axis=1), 12), np.round(z.sum(axis=1), 12))
    return int(idx[np.lexsort(keys)[0]])


__all__ = [
    "as_points", "crowding_distance", "dominates", "hypervolume", "hypervolume_improvements",
    "knee_point", "non_dominated_mask", "non_dominated_sort", "normalise", "reference_point",
]
