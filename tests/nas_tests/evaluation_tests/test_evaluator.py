"""The in-process evaluator (no Ray): order, de-duplication, the store, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nas.distributed import make_evaluator
from nas.evaluation import InProcessEvaluator, evaluate_many
from nas.storage import open_store


@pytest.fixture
def store(tmp_path, tiny_space):
    with open_store(f"sqlite:///{tmp_path}/nas.db") as store:
        store.create_or_get_study(name="tiny", space=tiny_space.name)
        yield store


def test_results_follow_arch_order_and_match_evaluate_many(tiny_supernet, tiny_archs, digits):
    archs = tiny_archs + tiny_archs[:3]  # repeats come back too, computed once
    evaluate = InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y,
                                  archs_per_batch=5)
    got = evaluate(archs)
    want = evaluate_many(tiny_supernet, archs, digits.val.x, digits.val.y)
    assert [g["arch_key"] for g in got] == [a.key() for a in archs]
    assert [(g["val_loss"], g["val_accuracy"]) for g in got] == [(w.loss, w.accuracy)
                                                                 for w in want]
    assert evaluate.evaluated == len({a.key() for a in archs})


def test_split_halves_match_evaluate_split_halves(tiny_supernet, tiny_archs, digits):
    from nas.evaluation import evaluate_split_halves

    got = InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y,
                             archs_per_batch=3, halves=True)(tiny_archs[:5])
    want = evaluate_split_halves(tiny_supernet, tiny_archs[:5], digits.val.x, digits.val.y)
    assert [(g["val_loss"], g["val_accuracy"], g["val_loss_a"], g["val_loss_b"])
            for g in got] == [(w.full.loss, w.full.accuracy, w.half_a.loss, w.half_b.loss)
                              for w in want]
    with pytest.raises(ValueError, match="halves"):
        InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y,
                           max_batches=2, halves=True)


def test_results_are_stored_once_and_reused(store, tiny_supernet, tiny_archs, digits):
    reports = []
    kwargs = dict(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, store=store,
                  study="tiny", on_batch=reports.append, archs_per_batch=4)
    first = InProcessEvaluator(**kwargs)(tiny_archs)
    unique = {a.key() for a in tiny_archs}
    for metric in ("val_loss", "val_accuracy"):
        rows = store.get_evaluations(study="tiny", metric=metric)
        assert sorted(r.arch_key for r in rows) == sorted(unique)
        assert {r.fidelity for r in rows} == {f"val={len(digits.val)}"}
    assert sum(len(r.arch_keys) for r in reports) == len(unique)
    again = InProcessEvaluator(**kwargs)
    assert again(tiny_archs) == first
    assert again.evaluated == 0  # everything came from the store
    assert len(store.get_evaluations(study="tiny", metric="val_loss")) == len(unique)


def test_bad_input_is_refused_before_anything_is_stored(store, tiny_supernet, digits,
                                                        tiny_archs):
    from search_spaces import get_space

    with pytest.raises(ValueError, match="store and study"):
        InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, store=store)
    with pytest.raises(ValueError, match="workers"):
        make_evaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y, workers=0)
    other = get_space("hybrid_vit_tiny").largest()  # widths outside the tiny space
    evaluate = InProcessEvaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y,
                                  store=store, study="tiny")
    with pytest.raises(ValueError):
        evaluate(tiny_archs[:2] + [other])
    assert store.get_evaluations(study="tiny") == []


def test_one_worker_stays_in_process_and_nas_never_imports_ray(tiny_supernet, digits,
                                                               monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    evaluate = make_evaluator(supernet=tiny_supernet, x=digits.val.x, y=digits.val.y)
    assert isinstance(evaluate, InProcessEvaluator)
    code = ("import sys, nas, nas.distributed, nas.distributed.pool, nas.evaluation, "
            "nas.evaluation.evaluator, "
            "nas.distributed.tune; assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
