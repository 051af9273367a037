"""The Ray evaluation pool on a real two-node cluster: placement, equality with the
in-process evaluator, and an actor killed mid-batch."""

from __future__ import annotations

import os
import signal

import pytest

from nas.distributed import EvaluationPool
from nas.evaluation import InProcessEvaluator
from nas.storage import open_store

pytestmark = pytest.mark.slow


@pytest.fixture
def store(tmp_path, tiny_space):
    with open_store(f"sqlite:///{tmp_path}/nas.db") as store:
        store.create_or_get_study(name="tiny", space=tiny_space.name)
        yield store


@pytest.fixture
def reference(tiny_supernet, tiny_archs, digits):
    return InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y,
                              threads=1)(tiny_archs)


def assert_each_arch_stored_once(store, archs):
    unique = sorted({a.key() for a in archs})
    for metric in ("val_loss", "val_accuracy"):
        rows = store.get_evaluations(study="tiny", metric=metric)
        assert sorted(r.arch_key for r in rows) == unique


def test_pool_spreads_over_both_nodes_and_equals_in_process(ray_cluster, store, tiny_supernet,
                                                           tiny_archs, digits, reference):
    reports = []
    with EvaluationPool(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, workers=2,
                        archs_per_task=2, store=store, study="tiny",
                        on_batch=reports.append) as pool:
        assert {w["node_id"] for w in pool.workers} == {ray_cluster.head_node_id,
                                                        ray_cluster.target_node_id}
        results = pool(tiny_archs)
    assert results == reference  # same numbers, same order: --workers never changes a front
    assert {r.node_id for r in reports} == {ray_cluster.head_node_id,
                                            ray_cluster.target_node_id}
    assert sum(len(r.arch_keys) for r in reports) == len({a.key() for a in tiny_archs})
    assert_each_arch_stored_once(store, tiny_archs)


def test_pool_split_halves_equal_in_process(ray_cluster, tiny_supernet, tiny_archs, digits):
    """`nas predict --workers N` labels subnets with the split-half losses too (the noise
    ceiling); the actors compute exactly what the in-process evaluator does."""
    want = InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y,
                              threads=1, halves=True)(tiny_archs[:6])
    with EvaluationPool(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, workers=2,
                        archs_per_task=2, halves=True) as pool:
        got = pool(tiny_archs[:6])
    assert got == want
    assert set(got[0]) == {"arch_key", "val_loss", "val_accuracy", "val_loss_a", "val_loss_b"}


def test_actor_killed_mid_batch_is_restarted_and_nothing_is_lost(ray_cluster, store,
                                                                 tiny_supernet, tiny_archs,
                                                                 digits):
    # a larger split makes each batch take ~0.1 s, so the victim is busy when it dies
    x, y = digits.val.x.repeat(8, 1, 1, 1), digits.val.y.repeat(8)
    reference = InProcessEvaluator(supernet=tiny_supernet, x=x, y=y, threads=1)(tiny_archs)
    killed: list[int] = []
    reports = []
    pool = EvaluationPool(supernet=tiny_supernet, x=x, y=y, workers=2, archs_per_task=2,
                          store=store, study="tiny")
    try:
        before = {w["pid"] for w in pool.workers}

        def kill_the_other_worker(report):
            reports.append(report)
            if not killed:  # the other actor holds two batches: one running, one queued
                victim = next(w["pid"] for w in pool.workers if w["pid"] != report.pid)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        pool.on_batch = kill_the_other_worker
        results = pool(tiny_archs)
        after = {w["pid"] for w in pool.worker_info()}
    finally:
        pool.close()
    assert killed and killed[0] not in after and len(after) == 2  # restarted in a new process
    restarted = after - before
    assert len(restarted) == 1
    assert any(r.pid in restarted for r in reports)  # ... and it took its batches back
    assert results == reference
    assert_each_arch_stored_once(store, tiny_archs)


def test_a_worker_that_stays_dead_hands_its_batches_to_the_others(ray_cluster, store,
                                                                  tiny_supernet, tiny_archs,
                                                                  digits, reference):
    killed: list[int] = []
    pool = EvaluationPool(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, workers=2,
                          archs_per_task=1, max_restarts=0, store=store, study="tiny")
    try:
        def kill_the_other_worker(report):
            if not killed:
                victim = next(w["pid"] for w in pool.workers if w["pid"] != report.pid)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        pool.on_batch = kill_the_other_worker
        results = pool(tiny_archs)
        assert pool.alive.count(True) == 1 and len(pool.worker_info()) == 1
    finally:
        pool.close()
    assert results == reference
    assert_each_arch_stored_once(store, tiny_archs)


def test_workers_the_cluster_cannot_place_are_one_clear_error(ray_cluster, tiny_supernet,
                                                               digits):
    with pytest.raises(RuntimeError, match="could not all start"):
        EvaluationPool(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, workers=1,
                       resources={"tpu_v9": 1}, startup_timeout_s=3)
