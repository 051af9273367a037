"""A tiny sequence study through the pipeline in process: the train stage trains on
random-offset windows, the later stages use the best validation-panel checkpoint
(``best.pt``), and the store records which step that is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.pipeline import run_stage
from nas.storage import open_store
from nas.study_context import open_study, selected_checkpoint
from nas.training import load_checkpoint

# The validation text is one repeated byte that Python source rarely holds: as the model
# learns the training text the validation loss rises after the first panels, so the best
# panel is not the last step (a drifting run, as an over-fitting one would be).
SEQUENCE_STUDY = '''
import dataclasses

import torch

from nas.data import load_text
from nas.data.splits import TensorSplit
from nas.study import (AuditConfig, EvaluationConfig, ProfilingConfig, SearchConfig, Study,
                       TrainConfig)


def data():
    splits = load_text(seq_len=16, max_bytes=40_000)
    z = torch.full((32, 16), ord("~"), dtype=torch.int64)
    return dataclasses.replace(splits, val=TensorSplit(z, z.clone()))


study = Study(
    name="tiny_lm",
    space="hybrid_lm_tiny",
    space_overrides=dict(widths=((32,), (32,)), depths=((1, 2), (1, 2)),
                         context_lengths=(8, 16), kernel_sizes=(3,), head_dim=16),
    data=data,
    training=TrainConfig(steps=16, batch_size=16, lr=3e-3, warmup_steps=2, eval_every=4,
                         eval_batches=None, checkpoint_every=4, panel_size=1, num_random=1,
                         bins=3, dropout=0.1),
    evaluation=EvaluationConfig(n_archs=8, batch_size=64),
    profiling=ProfilingConfig(n_calibration=3, n_validation=4, min_block_s=0),
    search=SearchConfig(budget=8, population=4, pool_factor=4, seed=0),
    audit=AuditConfig(steps=6),
)
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    path = root / "tiny_lm.py"
    path.write_text(SEQUENCE_STUDY)
    store = open_store(f"sqlite:///{root / 'db.sqlite'}")
    ctx = open_study(path, store=store, runs_root=root / "runs")
    detail = run_stage(ctx, "train")
    run_stage(ctx, "evaluate")
    return ctx, detail


def test_stages_use_the_best_checkpoint_and_the_store_records_its_step(trained):
    ctx, detail = trained
    log = [json.loads(line) for line in (ctx.supernet_dir / "metrics.jsonl").read_text()
           .splitlines()]
    panels = {r["step"]: sum(p["loss"] for p in r["panel"]) / len(r["panel"])
              for r in log if r["kind"] == "val"}
    best_step = min(panels, key=panels.get)
    assert best_step < detail["step"] == 16  # the drifting run's best is not its end
    assert detail["selected"] == "best.pt" and detail["best_step"] == best_step
    assert abs(detail["best_panel_loss"] - panels[best_step]) < 1e-9
    assert selected_checkpoint(ctx.supernet_dir).name == "best.pt"
    [ckpt] = ctx.store.list_checkpoints(study=ctx.name)
    assert Path(ckpt.path).name == "best.pt" and ckpt.step == best_step
    # the loaded supernet holds best.pt's weights, not the last step's
    best = load_checkpoint(ctx.supernet_dir / "best.pt")["model"]
    last = load_checkpoint(ctx.supernet_dir / "checkpoint.pt")["model"]
    net = ctx.supernet().state_dict()
    assert all(torch.equal(net[k].cpu(), best[k]) for k in best)
    assert any(not torch.equal(best[k], last[k]) for k in best)
    # and the evaluate stage scored subnets with it
    assert ctx.checkpoint_sha() == ckpt.sha256
    evals = ctx.store.get_evaluations(study=ctx.name, metric="val_loss", source="supernet",
                                      checkpoint_sha256=ckpt.sha256)
    assert len({e.arch_key for e in evals}) >= 8
    # random-offset windows: the training log's batches are not the fixed windows' epochs
    data = ctx.data()
    assert data.stream is not None and "random windows" in data.describe()


def test_selected_checkpoint_falls_back_to_the_last(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert selected_checkpoint(tmp_path) == tmp_path / "checkpoint.pt"
    (tmp_path / "best.pt").write_bytes(b"x")
    assert selected_checkpoint(tmp_path) == tmp_path / "best.pt"


def test_audit_of_a_sequence_study_ranks_by_test_loss(trained):
    from nas.audit.study_audit import run_audit

    ctx, _ = trained
    outcome = run_audit(ctx, n=8, seeds=1, progress=False)
    report = outcome.report
    assert outcome.trained_now == 8 and report["metric"] == "test_loss"
    assert not report["higher_is_better"]
    rows = report["rows"]
    assert len(rows) == 8 and len({r["flops"] for r in rows}) >= 6  # across the FLOPs range
    for r in rows:  # losses in nats per byte, not accuracies
        assert 0.5 < r["standalone"] < 8 and 0.5 < r["supernet"] < 8
    gap = sum(r["supernet"] - r["standalone"] for r in rows) / len(rows)
    assert abs(report["mean_gap_inherited_vs_standalone"] - gap) < 1e-9
    tau = report["comparisons"]["supernet"]["kendall_tau"]
    assert -1 <= tau <= 1
    stored = ctx.store.get_evaluations(study=ctx.name, metric="test_loss", source="standalone",
                                       split="test")
    assert {e.arch_key for e in stored} == {r["arch_key"] for r in rows}
    again = run_audit(ctx, n=8, seeds=1, progress=False)  # resumes: nothing trained again
    assert again.trained_now == 0 and again.report["rows"] == rows
