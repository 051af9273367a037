"""A small `nas tune` run (Ray Tune + OptunaSearch + ASHA) that stores its trials."""

from __future__ import annotations

import math

import pytest

from nas.distributed import best_recipe, run_tune
from nas.storage import open_store
from nas.study import DataConfig, Study, TrainConfig

TINY_SPACE = dict(in_channels=1, num_classes=10, resolutions=(8,), patch_size=2,
                  widths=((16,), (16, 32)), depths=((1,), (1, 2)), head_dim=8)

pytestmark = pytest.mark.slow


def tiny_study() -> Study:
    return Study(name="tiny_tune", space="hybrid_vit_tiny", space_overrides=dict(TINY_SPACE),
                 data=DataConfig(source="digits"),
                 training=TrainConfig(steps=200, batch_size=64, warmup_steps=10,
                                      eval_batches=2, panel_size=1))


def test_tune_stores_its_trials_and_the_best_recipe_trains(ray_cluster, tmp_path):
    with open_store(f"sqlite:///{tmp_path}/nas.db") as store:
        ended = []
        summary = run_tune(study=tiny_study(), trials=3, trial_steps=8, reports=2, workers=2,
                           store=store, out_dir=tmp_path / "tune", seed=0,
                           on_trial_end=lambda *args: ended.append(args))
        trials = store.list_trials(study="tiny_tune")
        assert sorted(e[0] for e in ended) == [0, 1, 2]
        assert [t.number for t in trials] == [0, 1, 2]
        assert summary.trials == trials
        assert {t.status for t in trials} <= {"done", "stopped"}
        assert any(t.status == "done" for t in trials)
        for t in trials:
            assert math.isfinite(t.score)
            assert t.config["metric"] == "loss" and t.config["trial_steps"] == 8
            TrainConfig().with_overrides(**t.config["recipe"])  # every stored recipe is valid
        # the study's own recipe was tried (first point to evaluate)
        assert any(t.config["recipe"]["lr"] == pytest.approx(2e-3) for t in trials)
        best = best_recipe(store=store, study="tiny_tune", steps=400)
        done = [t for t in trials if t.status == "done"]
        winner = min(done, key=lambda t: t.score)
        assert summary.best == winner.config["recipe"]
        assert best["warmup_steps"] == round(winner.config["params"]["warmup_fraction"] * 400)
        assert tiny_study().training.with_overrides(**best).lr == winner.config["recipe"]["lr"]


def test_best_recipe_without_trials_and_bad_arguments_are_clear_errors(tmp_path):
    with open_store(f"sqlite:///{tmp_path}/nas.db") as store:
        store.create_or_get_study(name="empty", space="hybrid_vit_tiny")
        with pytest.raises(ValueError, match="no finished tuning trial"):
            best_recipe(store=store, study="empty")
        with pytest.raises(ValueError, match="metric"):
            run_tune(study=tiny_study(), metric="f1", store=store)
        with pytest.raises(ValueError, match="exactly one"):
            run_tune(store=store)
