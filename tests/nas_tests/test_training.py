"""Supernet training: resume equals uninterrupted, inherited equals exported, logs, errors."""

from __future__ import annotations

import json

import pytest
import torch

from nas import export_subnet
from nas.evaluation import evaluate, evaluate_model
from nas.training import (
    CheckpointError,
    TrainConfig,
    alpha_divergence,
    distillation_loss,
    load_checkpoint,
    lr_factor,
    train_supernet,
)
from search_spaces import get_space


def tiny_space(**kw):
    base = dict(in_channels=1, num_classes=4, resolutions=(8,), patch_size=2,
                widths=((16,), (16, 32)), depths=((1,), (1, 2)), head_dim=8)
    return get_space("hybrid_vit_tiny", **{**base, **kw})


def synthetic(n: int, seed: int):
    """Images whose class sets which quadrant is bright: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for c in range(4):
        r, col = divmod(c, 2)
        x[y == c, :, 4 * r:4 * r + 4, 4 * col:4 * col + 4] += 1.0
    return x, y


CONFIG = TrainConfig(steps=12, batch_size=16, lr=3e-3, warmup_steps=2, eval_every=4,
                     eval_batches=2, eval_batch_size=32, panel_size=1, checkpoint_every=3,
                     num_random=1, bins=3, seed=3)


def _train(tmp, **kw):
    return train_supernet(space=tiny_space(), train=synthetic(96, 0), val=synthetic(64, 1),
                          config=kw.pop("config", CONFIG), out_dir=tmp, progress=False, **kw)


@pytest.mark.parametrize("sampler", ["complexity_aware", "uniform"])
def test_resume_equals_uninterrupted(tmp_path, sampler):
    config = CONFIG.with_overrides(sampler=sampler)
    straight = _train(tmp_path / "a", config=config, stop_at=10)
    _train(tmp_path / "b", config=config, stop_at=7)
    resumed = _train(tmp_path / "b", config=config, stop_at=10, resume=True)
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    train_a = [json.loads(line) for line in log_a if '"train"' in line]
    train_b = [json.loads(line) for line in log_b if '"train"' in line]
    assert [r["step"] for r in train_b] == list(range(1, 11))
    assert [r["archs"] for r in train_a] == [r["archs"] for r in train_b]
    assert [r["loss"] for r in train_a] == [r["loss"] for r in train_b]


def test_time_limit_stops_with_checkpoint_and_panel(tmp_path):
    result = _train(tmp_path, time_limit_s=0.0)
    assert result.step == 1
    assert load_checkpoint(result.checkpoint)["step"] == 1
    assert result.panel and result.panel[0]["role"] == "largest"
    resumed = _train(tmp_path, resume=True, stop_at=3)
    assert resumed.step == 3


def test_crashed_run_log_is_trimmed_to_the_checkpoint(tmp_path):
    _train(tmp_path, stop_at=4)  # checkpoint at step 4
    log = tmp_path / "metrics.jsonl"
    log.write_text(log.read_text() + json.dumps({"kind": "train", "step": 5}) + "\n")
    _train(tmp_path, stop_at=6, resume=True)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()
             if '"train"' in line]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_training_learns_and_logs(tmp_path):
    config = CONFIG.with_overrides(steps=40, eval_every=40)
    result = _train(tmp_path, config=config)
    assert result.step == 40
    records = [json.loads(line) for line in result.metrics_log.read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    assert len(train) == 40 and len(val) == 1
    first = train[0]
    assert {"step", "lr", "loss", "losses", "samples_per_s", "archs"} <= set(first)
    roles = [a["role"] for a in first["archs"]]
    assert roles[:2] == ["largest", "smallest"]
    assert all(a["flops"] > 0 and len(a["key"]) == 16 for a in first["archs"])
    largest = next(p for p in result.panel if p["role"] == "largest")
    assert largest["accuracy"] > 0.6  # chance is 0.25
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 40


def test_inherited_equals_exported_evaluation(tmp_path):
    result = _train(tmp_path, stop_at=6)
    net = result.supernet
    x, y = synthetic(50, 9)
    for arch in (net.space.largest(), net.space.smallest()):
        inherited = evaluate(net, arch, x, y, batch_size=16)
        exported = evaluate_model(export_subnet(net, arch), x, y, batch_size=16)
        assert inherited == exported
        assert inherited.count == 50


def test_refuses_existing_checkpoint_and_other_space(tmp_path):
    _train(tmp_path, stop_at=3)
    with pytest.raises(ValueError, match="exists"):
        _train(tmp_path, stop_at=3)
    with pytest.raises(CheckpointError, match="fingerprint"):
        train_supernet(space=tiny_space(num_classes=5), train=synthetic(96, 0),
                       val=synthetic(64, 1), config=CONFIG, out_dir=tmp_path, resume=True,
                       progress=False)
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(bad)


def test_resume_refuses_other_training_data_and_keeps_the_checkpoint(tmp_path):
    """A checkpoint resumed on other training data (another split, seed or data set) would
    train on silently: one error naming the data, the checkpoint left as it was; the same
    data resumes, and a checkpoint from before the fingerprint was kept is not refused."""
    from nas.training.checkpoint import data_fingerprint

    _train(tmp_path, stop_at=3)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    other = synthetic(96, 5)
    assert data_fingerprint(other) != data_fingerprint(synthetic(96, 0))
    assert data_fingerprint(synthetic(96, 0)) == data_fingerprint(synthetic(96, 0))
    with pytest.raises(CheckpointError, match=r"trained on other training data \(data "
                                              r"fingerprint [0-9a-f]{16}, this run's"):
        train_supernet(space=tiny_space(), train=other, val=synthetic(64, 1), config=CONFIG,
                       out_dir=tmp_path, progress=False, resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    # the panel's split is not training data: another val split resumes
    resumed = train_supernet(space=tiny_space(), train=synthetic(96, 0), val=synthetic(32, 7),
                             config=CONFIG, out_dir=tmp_path, progress=False, resume=True,
                             stop_at=4)
    assert resumed.step == 4
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["train_data"]  # as written before the fingerprint
    torch.save(state, tmp_path / "checkpoint.pt")
    resumed = train_supernet(space=tiny_space(), train=other, val=synthetic(64, 1),
                             config=CONFIG, out_dir=tmp_path, progress=False, resume=True,
                             stop_at=5)
    assert resumed.step == 5


def test_resume_refuses_another_recipe_and_keeps_the_checkpoint(tmp_path):
    """A resumed run under another horizon (or lr, seed, ...) would mix two schedules: one
    error naming the changed fields, and the checkpoint is left as it was."""
    _train(tmp_path, stop_at=3)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"another recipe \(lr: 0.003 -> 0.001; steps: "
                                              r"12 -> 20\)"):
        _train(tmp_path, config=CONFIG.with_overrides(steps=20, lr=1e-3), resume=True)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    # where and how often it evaluates or checkpoints is not part of the recipe
    resumed = _train(tmp_path, config=CONFIG.with_overrides(eval_every=6, checkpoint_every=2),
                     resume=True, stop_at=4)
    assert resumed.step == 4
    # a checkpoint older than a field is compared against that field's default
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["config"]["smallest"]
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="smallest: 'flops' -> 'per_mixer'"):
        _train(tmp_path, config=CONFIG.with_overrides(smallest="per_mixer"), resume=True,
               stop_at=6)


def test_a_finished_checkpoint_is_read_under_another_recipe(tmp_path):
    """At or past the stop step nothing more is trained, so nothing mixes: `nas train
    --recipe best` then `nas run` reads those weights as they are."""
    done = _train(tmp_path)
    again = _train(tmp_path, config=CONFIG.with_overrides(lr=1e-3), resume=True)
    assert again.step == done.step == CONFIG.steps
    a, b = done.supernet.state_dict(), again.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_schedule_and_config_checks():
    config = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(9, config) == pytest.approx(1.0)
    assert lr_factor(99, config) == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ValueError, match="training.sampler"):
        TrainConfig(sampler="greedy")
    with pytest.raises(ValueError, match="training.batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown option"):
        TrainConfig.from_dict({"stepz": 3})


def test_distillation_losses():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 10, generator=g)
    s = torch.randn(8, 10, generator=g)
    assert distillation_loss(t, t).abs() < 1e-6
    assert distillation_loss(s, t) > 0
    for alpha in (-1.0, 0.5, 2.0):
        assert alpha_divergence(t, t, alpha=alpha).abs() < 1e-6
        assert alpha_divergence(s, t, alpha=alpha) > 0
    assert distillation_loss(s, t, kind="alpha") > 0
    seq_s, seq_t = torch.randn(2, 5, 7, generator=g), torch.randn(2, 9, 7, generator=g)
    assert distillation_loss(seq_s, seq_t) > 0  # teacher saw a longer context


REGULARIZED = CONFIG.with_overrides(augment="translate", augment_pad=1, label_smoothing=0.1,
                                    drop_path=0.2, dropout=0.1)


@pytest.mark.parametrize("sampler", ["complexity_aware", "uniform"])
def test_regularized_resume_equals_uninterrupted(tmp_path, sampler):
    """Augmentation, stochastic depth and dropout are drawn per (seed, step): a resumed run
    ends with bit-identical weights, and the regularized run differs from a plain one."""
    config = REGULARIZED.with_overrides(sampler=sampler)
    straight = _train(tmp_path / "a", config=config, stop_at=10)
    _train(tmp_path / "b", config=config, stop_at=7)
    resumed = _train(tmp_path / "b", config=config, stop_at=10, resume=True)
    plain = _train(tmp_path / "c", config=CONFIG.with_overrides(sampler=sampler), stop_at=10)
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], plain.supernet.state_dict()[k]) for k in a)


def test_regularized_supernet_still_exports_exactly(tmp_path):
    """Regularization is training-only: in eval mode the exported subnet equals the supernet."""
    result = _train(tmp_path, config=REGULARIZED)
    net = result.supernet.eval()
    x, _ = synthetic(8, 5)
    for arch in (net.space.largest(), net.space.smallest()):
        with torch.no_grad():
            assert (net(x, arch) - export_subnet(net, arch)(x)).abs().max() <= 1e-5


def test_regularizer_masks_follow_the_rates():
    from nas.supernet import Regularizer, step_generator

    g = step_generator(0, 0, 2)
    x = torch.zeros(4000, 1, 8)
    y = torch.ones(4000, 1, 8)
    reg = Regularizer(drop_path=0.5, dropout=0.0, generator=g)
    out = reg.branch(x, y, index=1, layers=2)  # the last layer: rate 0.5
    kept = (out[:, 0, 0] > 0).float().mean().item()
    assert 0.45 < kept < 0.55
    assert torch.allclose(out[out > 0], torch.full_like(out[out > 0], 2.0))  # rescaled
    first = Regularizer(drop_path=0.5, dropout=0.0, generator=step_generator(0, 0, 2))
    kept_first = (first.branch(x, y, index=0, layers=2)[:, 0, 0] > 0).float().mean().item()
    assert 0.7 < kept_first < 0.8  # rate 0.25 at the first of two layers
    drop = Regularizer(drop_path=0.0, dropout=0.25, generator=step_generator(0, 0, 2))
    assert 0.72 < (drop.embed(y) > 0).float().mean().item() < 0.78
    with pytest.raises(ValueError, match="dropout"):
        Regularizer(drop_path=0.0, dropout=1.0, generator=g)


def test_augmentation_shifts_and_flips_deterministically():
    from nas.training.augment import augment_images, augment_params

    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    params = torch.tensor([[1, -2, 0], [0, 0, 1]])
    out = augment_images(x, params, pad=2)
    # sample 0 shifted by (dy, dx) = (1, -2): out[i, j] = x[i + 1, j - 2] inside the image
    assert torch.equal(out[0, 0, :4, 2:], x[0, 0, 1:, :3])
    assert torch.equal(out[0, 0, 4], out[0, 0, 3])  # replicated border row
    assert torch.equal(out[1], x[1].flip(-1))  # no shift, mirrored
    a = augment_params(64, kind="crop_flip", pad=4, seed=1, step=5)
    assert torch.equal(a, augment_params(64, kind="crop_flip", pad=4, seed=1, step=5))
    assert not torch.equal(a, augment_params(64, kind="crop_flip", pad=4, seed=1, step=6))
    assert a[:, :2].abs().max() <= 4 and set(a[:, 2].tolist()) == {0, 1}
    t = augment_params(64, kind="translate", pad=2, seed=1, step=5)
    assert (t[:, 2] == 0).all()
    with pytest.raises(ValueError, match="training.augment"):
        TrainConfig(augment="mixup")
    with pytest.raises(ValueError, match="training.label_smoothing"):
        TrainConfig(label_smoothing=1.5)


def test_best_checkpoint_is_kept_and_survives_resume(tmp_path):
    result = _train(tmp_path, stop_at=8)
    assert result.best is not None and result.best.exists()
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    panels = {r["step"]: sum(p["loss"] for p in r["panel"]) / len(r["panel"])
              for r in log if r["kind"] == "val"}
    best_step = min(panels, key=panels.get)
    assert result.best_step == best_step
    assert abs(result.best_loss - panels[best_step]) < 1e-9
    state = load_checkpoint(result.best, space_fingerprint=result.supernet.fingerprint())
    assert state["step"] == best_step
    resumed = _train(tmp_path, resume=True)
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    panels = {r["step"]: sum(p["loss"] for p in r["panel"]) / len(r["panel"])
              for r in log if r["kind"] == "val"}
    assert resumed.best_step == min(panels, key=panels.get)


def test_steps_for_budget_sizes_the_schedule_from_measured_speed():
    from nas.training import steps_for_budget

    kw = dict(space=tiny_space(), train=synthetic(96, 0), val=synthetic(64, 1), config=CONFIG,
              probe_steps=6, warmup_steps=2)
    short = steps_for_budget(seconds=2.0, min_steps=1, **kw)
    long = steps_for_budget(seconds=16.0, min_steps=1, **kw)
    assert 1 <= short < long
    assert 3 < long / max(short, 1) < 20  # proportional to the budget, up to timing noise
    assert steps_for_budget(seconds=0.001, **kw) == 10  # never below min_steps
    with pytest.raises(ValueError, match="seconds"):
        steps_for_budget(seconds=0, **kw)


def test_largest_first_trains_the_largest_alone_then_samples(tmp_path):
    """``largest_first=0.5`` of 12 steps: steps 1-6 train only the largest; from step 7 the
    sampler's subnets, in the very sequence a run without the phase starts with."""
    config = CONFIG.with_overrides(largest_first=0.5)
    assert config.largest_first_steps == 6
    _train(tmp_path / "lf", config=config)
    _train(tmp_path / "plain", config=CONFIG)

    def train_rows(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["kind"] == "train"]

    lf, plain = train_rows("lf"), train_rows("plain")
    largest = tiny_space().largest().key()
    assert [len(r["archs"]) for r in lf[:6]] == [1] * 6
    assert all(r["archs"][0] == {**r["archs"][0], "key": largest, "role": "largest"}
               for r in lf[:6])
    assert [[a["key"] for a in r["archs"]] for r in lf[6:]] == \
        [[a["key"] for a in r["archs"]] for r in plain[:6]]


def test_largest_first_resume_across_the_phase_equals_uninterrupted(tmp_path):
    config = CONFIG.with_overrides(largest_first=0.5)
    straight = _train(tmp_path / "a", config=config, stop_at=10)
    _train(tmp_path / "b", config=config, stop_at=4)  # inside the largest-alone phase
    resumed = _train(tmp_path / "b", config=config, stop_at=10, resume=True)
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "half"])
def test_largest_first_must_be_a_fraction(bad):
    with pytest.raises(ValueError, match="training.largest_first"):
        TrainConfig(largest_first=bad)


def test_per_mixer_smallest_trains_each_mixers_corner_in_turn(tmp_path):
    """``smallest="per_mixer"``: the run's "smallest" subnets rotate over
    `smallest_per_mixer()`; a bad rule is refused naming the field."""
    config = CONFIG.with_overrides(smallest="per_mixer")
    _train(tmp_path / "pm", config=config)
    lines = (tmp_path / "pm" / "metrics.jsonl").read_text().splitlines()
    rows = [r for r in map(json.loads, lines) if r["kind"] == "train"]
    corners = [a.key() for a in tiny_space().smallest_per_mixer()]
    assert len(corners) >= 2
    bottoms = [next(a["key"] for a in r["archs"] if a["role"] == "smallest") for r in rows]
    assert bottoms == [corners[i % len(corners)] for i in range(len(rows))]
    with pytest.raises(ValueError, match="training.smallest"):
        TrainConfig(smallest="fastest")


def test_steps_for_budget_weights_the_largest_alone_and_sampled_phases(monkeypatch):
    """The two phases are probed apart and weighted by their shares of the schedule: with a
    fake clock where a largest-alone step takes 1 s, a sampled step 3 s and the final panel
    evaluation 10 s, ``largest_first=0.5`` prices a step at 0.5 * 1 + 0.5 * 3 = 2 s."""
    from nas.training import horizon

    clock = [0.0]

    def fake_train(*, config, on_step, **kw):
        step_s = 1.0 if config.largest_first == 1 else 3.0
        for step in range(1, config.steps + 1):
            clock[0] += step_s + (10.0 if step == config.steps else 0.0)
            on_step(step, {})

    monkeypatch.setattr(horizon, "train_supernet", fake_train)
    monkeypatch.setattr(horizon.time, "perf_counter", lambda: clock[0])
    kw = dict(space=tiny_space(), train=synthetic(96, 0), val=synthetic(64, 1),
              probe_steps=6, warmup_steps=2, margin=1.0, min_steps=1)
    config = CONFIG.with_overrides(eval_every=1000)  # 10 s per 1,000 steps of evaluation
    per_step = {0.0: 3.0, 0.5: 2.0, 1.0: 1.0}
    for share, step_s in per_step.items():
        steps = horizon.steps_for_budget(config=config.with_overrides(largest_first=share),
                                         seconds=1000.0, **kw)
        assert steps == int(1000.0 / (step_s + 10.0 / 1000)), share
    # a fixed count of evaluations (the caller sizes eval_every from the horizon): their
    # time comes off the budget once, whatever the horizon
    steps = horizon.steps_for_budget(config=config, seconds=1000.0, evaluations=6, **kw)
    assert steps == int((1000.0 - 6 * 10.0) / 3.0)
    assert horizon.steps_for_budget(config=config, seconds=50.0, evaluations=6, **kw) == 1
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="evaluations"):
            horizon.steps_for_budget(config=config, seconds=10.0, evaluations=bad, **kw)
