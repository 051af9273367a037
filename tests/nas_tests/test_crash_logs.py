"""Logs and hashes that survive crashes: the metrics log is cut back to the checkpoint on
every (re)start and read tolerantly; checkpoint files hash the same for the same content."""

from __future__ import annotations

import json

import pytest
import torch

from nas.training import TrainConfig, train_supernet
from nas.training.checkpoint import content_sha256, save_checkpoint
from nas.training.metrics_log import MetricsLogError, read_log, truncate_log
from search_spaces import get_space


def _line(step: int, kind: str = "train") -> str:
    return json.dumps({"kind": kind, "step": step, "loss": 1.0 / (step + 1)}) + "\n"


def test_torn_last_line_is_dropped(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text(_line(1) + _line(2) + '{"kind": "train", "step": 3, "lo')
    assert [r["step"] for r in read_log(log)] == [1, 2]
    assert truncate_log(log, step=10) == 2
    assert log.read_text() == _line(1) + _line(2)


def test_bad_middle_line_names_the_file_and_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text(_line(1) + "garbage\n" + _line(2))
    with pytest.raises(MetricsLogError, match=rf"{log.name}:2: not JSON"):
        read_log(log)
    log.write_text(_line(1) + json.dumps({"kind": "train", "step": "7"}) + "\n")
    with pytest.raises(MetricsLogError, match=r":2: expected an object with an integer 'step'"):
        truncate_log(log, step=5)
    assert "step\": \"7\"" in log.read_text()  # nothing rewritten


def test_truncate_keeps_only_steps_up_to_the_checkpoint(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(_line(s) for s in range(1, 8)) + _line(6, "val"))
    assert truncate_log(log, step=4) == 4
    assert [r["step"] for r in read_log(log)] == [1, 2, 3, 4]
    assert truncate_log(log, step=0) == 0
    assert log.read_text() == ""
    assert truncate_log(tmp_path / "missing.jsonl", step=3) == 0
    assert not (tmp_path / "missing.jsonl").exists()


def _tiny_space():
    return get_space("hybrid_vit_tiny", in_channels=1, num_classes=4, resolutions=(8,),
                     patch_size=2, widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8)


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


CONFIG = TrainConfig(steps=6, batch_size=16, lr=3e-3, warmup_steps=1, eval_every=3,
                     eval_batches=1, eval_batch_size=32, panel_size=1, checkpoint_every=3,
                     num_random=1, bins=3, seed=5)


def _train(out, **kw):
    return train_supernet(space=_tiny_space(), train=_data(64, 0), val=_data(32, 1),
                          config=CONFIG, out_dir=out, progress=False, **kw)


def test_restart_before_the_first_checkpoint_truncates_the_log(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # a run killed before its first checkpoint left lines (and a torn one) behind
    (out / "metrics.jsonl").write_text(_line(1) + _line(2) + '{"kind": "tr')
    _train(out, resume=True)
    steps = [(r["kind"], r["step"]) for r in read_log(out / "metrics.jsonl")]
    assert steps.count(("train", 1)) == 1
    assert [s for k, s in steps if k == "train"] == list(range(1, 7))


def test_resumed_checkpoint_hash_reproduces_the_straight_run(tmp_path):
    straight = _train(tmp_path / "a")
    _train(tmp_path / "b", stop_at=3)
    (tmp_path / "b" / "metrics.jsonl").open("a").write(_line(4) + '{"kind"')  # killed at 4
    resumed = _train(tmp_path / "b", resume=True)
    assert content_sha256(straight.checkpoint) == content_sha256(resumed.checkpoint)
    a = [r for r in read_log(tmp_path / "a" / "metrics.jsonl") if r["kind"] == "train"]
    b = [r for r in read_log(tmp_path / "b" / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_checkpoint_bytes_depend_only_on_content(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": 4}
    save_checkpoint(tmp_path / "x" / "checkpoint.pt", state)
    save_checkpoint(tmp_path / "y" / "other-name.pt", state)
    assert (content_sha256(tmp_path / "x" / "checkpoint.pt")
            == content_sha256(tmp_path / "y" / "other-name.pt"))
    assert not list((tmp_path / "x").glob("*.tmp.pt"))


def test_resuming_a_finished_run_does_not_log_its_panel_twice(tmp_path):
    """Killed after the final checkpoint (before the stage was recorded done): the rerun
    resumes at the last step, reuses the logged panel and writes no second val line (the
    chaos campaign on PostgreSQL found the duplicate)."""
    first = _train(tmp_path / "run")
    again = _train(tmp_path / "run", resume=True)
    records = read_log(tmp_path / "run" / "metrics.jsonl")
    vals = [(r["kind"], r["step"]) for r in records if r["kind"] == "val"]
    assert len(vals) == len(set(vals))
    assert again.step == first.step and again.panel == first.panel
