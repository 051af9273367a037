"""Pareto utilities against brute force on random point sets with duplicates and ties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.search.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_improvements,
    knee_point,
    non_dominated_mask,
    non_dominated_sort,
    normalise,
    reference_point,
)


def random_points(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """Integer-valued points (many ties) with some exact duplicates."""
    p = rng.integers(0, 6, size=(n, m)).astype(float)
    dup = rng.integers(0, n, size=n // 5)
    p[rng.integers(0, n, size=len(dup))] = p[dup]
    return p


def brute_ranks(p: np.ndarray) -> np.ndarray:
    ranks = np.full(len(p), -1)
    left = set(range(len(p)))
    rank = 0
    while left:
        front = {i for i in left if not any(dominates(p[j], p[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def brute_hypervolume(p: np.ndarray, ref: np.ndarray) -> float:
    """Union of boxes [p, ref] by coordinate compression: exact, independent of the sweep."""
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    axes = [np.unique(np.r_[p[:, j], ref[j]]) for j in range(p.shape[1])]
    total = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        lower = np.array([a[i] for a, i in zip(axes, cell)])
        if np.any(np.all(p <= lower, axis=1)):
            total += float(np.prod([a[i + 1] - a[i] for a, i in zip(axes, cell)]))
    return total


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_non_dominated_sort_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    for n in (1, 2, 7, 40):
        for _ in range(5):
            p = random_points(rng, n, m)
            expected = brute_ranks(p)
            np.testing.assert_array_equal(non_dominated_sort(p), expected)
            np.testing.assert_array_equal(non_dominated_mask(p), expected == 0)


def test_duplicates_share_a_rank_and_max_rank_stops_early() -> None:
    p = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0], [4.0, 4.0]])
    np.testing.assert_array_equal(non_dominated_sort(p), [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(non_dominated_sort(p, max_rank=0), [0, 0, 0, 1, 1])


def test_large_2d_front_matches_general_path() -> None:
    from nas.search.pareto import _dominated_general

    rng = np.random.default_rng(0)
    p = np.round(rng.random((3000, 2)) * 50) / 50
    np.testing.assert_array_equal(non_dominated_mask(p), ~_dominated_general(p))


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    for n in (1, 3, 12, 30):
        for _ in range(4):
            p = random_points(rng, n, m)
            ref = np.full(m, 5.5)
            assert hypervolume(p, ref) == pytest.approx(brute_hypervolume(p, ref), rel=1e-12)
            q = rng.random((n, m))  # continuous values, no ties
            assert hypervolume(q, np.full(m, 1.0)) == pytest.approx(
                brute_hypervolume(q, np.full(m, 1.0)), rel=1e-9)


def test_hypervolume_matches_optuna() -> None:
    optuna_hv = pytest.importorskip("optuna._hypervolume").compute_hypervolume
    rng = np.random.default_rng(3)
    for m in (2, 3):
        p = rng.random((60, m))
        ref = np.full(m, 1.1)
        assert hypervolume(p, ref) == pytest.approx(optuna_hv(p, ref), rel=1e-9)


def test_points_outside_the_reference_box_add_nothing() -> None:
    ref = np.array([1.0, 1.0])
    assert hypervolume(np.array([[1.0, 0.0], [0.5, 2.0]]), ref) == 0.0
    assert hypervolume(np.zeros((0, 2)), ref) == 0.0
    assert hypervolume(np.array([[0.5, 0.5]]), ref) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="ref"):
        hypervolume(np.array([[0.5, 0.5]]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        hypervolume(np.array([[np.nan, 0.5]]), ref)


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_improvements_are_differences(m: int) -> None:
    rng = np.random.default_rng(5)
    for n_front in (0, 1, 6):
        front = np.round(rng.random((n_front, m)) * 4) / 4
        cands = np.vstack([np.round(rng.random((30, m)) * 4) / 4, front[:2], [[1.2] * m]])
        ref = np.full(m, 1.1)
        base = hypervolume(front, ref)
        gains = hypervolume_improvements(front, cands, ref)
        expected = [hypervolume(np.vstack([front, c]), ref) - base for c in cands]
        np.testing.assert_allclose(gains, expected, atol=1e-12)
        assert np.all(gains >= -1e-12)


def test_crowding_distance() -> None:
    p = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(p)
    assert np.isinf(d[0]) and np.isinf(d[3])
    np.testing.assert_allclose(d[1:3], [3 / 4 + 3 / 4, 3 / 4 + 3 / 4])
    assert np.all(np.isinf(crowding_distance(p[:2])))


def test_normalise_reference_and_knee() -> None:
    front = np.array([[0.0, 10.0], [1.0, 2.0], [2.0, 1.0], [10.0, 0.0], [11.0, 11.0]])
    ideal, nadir = np.array([0.0, 0.0]), np.array([10.0, 10.0])
    np.testing.assert_allclose(normalise(front, ideal, nadir)[1], [0.1, 0.2])
    np.testing.assert_allclose(reference_point(ideal, nadir), [11.0, 11.0])
    np.testing.assert_allclose(normalise(np.array([[3.0, 3.0]]), ideal, ideal), [[3.0, 3.0]])
    assert knee_point(front) in (1, 2)
    assert knee_point(np.array([[0.0, 1.0], [0.2, 0.2], [1.0, 0.0]])) == 1
