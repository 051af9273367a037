"""Language-model training on text: random-offset windows (deterministic per (seed, step),
bit-exact on resume, sharded like the one-process batch), regularized sequence training
that export drops, and the reference-size sequence space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas import export_subnet
from nas.data import DataConfig, DataError, TextStream, load_data, load_text
from nas.data.splits import window_offsets
from nas.training import TrainConfig, train_supernet
from search_spaces import get_space

CONFIG = TrainConfig(steps=12, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=4,
                     eval_batches=2, eval_batch_size=16, panel_size=1, checkpoint_every=3,
                     num_random=1, bins=3, seed=5)


def tiny_lm():
    return get_space("hybrid_lm_tiny", widths=((32,), (32,)), depths=((1, 2), (1,)),
                     context_lengths=(8, 16), kernel_sizes=(3,), head_dim=16)


@pytest.fixture(scope="module")
def data():
    return load_text(seq_len=16, max_bytes=30_000)


def _train(data, out, **kw):
    return train_supernet(space=tiny_lm(), train=kw.pop("train", data.train_source()),
                          val=(data.val.x, data.val.y), config=kw.pop("config", CONFIG),
                          out_dir=out, progress=False, **kw)


def test_stream_windows_are_deterministic_random_offsets(data):
    stream = data.stream
    assert isinstance(stream, TextStream) and stream.seq_len == 16
    assert data.train_source() is stream
    train_bytes = 30_000 - 2 * int(30_000 * 0.05)
    assert len(stream.tokens) == train_bytes and stream.num_windows == train_bytes - 16
    a = stream.offsets(7, 64, seed=3)
    assert torch.equal(a, stream.offsets(7, 64, seed=3))  # a function of (seed, step) only
    assert not torch.equal(a, stream.offsets(8, 64, seed=3))
    assert not torch.equal(a, stream.offsets(7, 64, seed=4))
    assert a.dtype == torch.int64 and 0 <= int(a.min()) and int(a.max()) < stream.num_windows
    x, y = stream.take(a)
    assert x.shape == y.shape == (64, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    for row, o in enumerate(a.tolist()):  # window o is tokens[o : o + 17]
        assert torch.equal(x[row], stream.tokens[o:o + 16].long())
        assert int(y[row, -1]) == int(stream.tokens[o + 16])
    # offsets cover the whole stream, not the 1/17 of it the fixed windows start at
    starts = torch.cat([stream.offsets(s, 64, seed=0) for s in range(200)])
    assert (starts % 17 != 0).float().mean() > 0.8
    # a data-parallel rank's rows are its contiguous slice of the one-process batch
    full = stream.batch(7, 64, seed=3)
    parts = [stream.batch(7, 64, seed=3, rank=r, world_size=4) for r in range(4)]
    assert torch.equal(torch.cat([p[0] for p in parts]), full[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), full[1])


def test_stream_and_windows_options_refuse_bad_input(data):
    with pytest.raises(ValueError, match="windows"):
        load_text(seq_len=16, max_bytes=30_000, windows="sliding")
    with pytest.raises(ValueError, match="DataConfig.windows"):
        DataConfig(source="text", windows="sliding")
    with pytest.raises(ValueError, match="windows not used by source 'digits'"):
        DataConfig(source="digits", windows="fixed")
    with pytest.raises(DataError, match="no window"):
        TextStream(torch.zeros(5, dtype=torch.uint8), 16)
    with pytest.raises(ValueError, match="integers"):
        TextStream(torch.zeros(50), 16)
    with pytest.raises(ValueError, match="rank"):
        data.stream.batch(0, 10, seed=0, rank=0, world_size=4)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        window_offsets(-1, 4, seed=0, high=10)
    with pytest.raises(ValueError, match="train: expected"):
        train_supernet(space=tiny_lm(), train="windows", val=(data.val.x, data.val.y),
                       config=CONFIG, out_dir="/nonexistent/never-written", progress=False)
    fixed = load_data(DataConfig(source="text", seq_len=16, max_bytes=30_000, windows="fixed"))
    assert fixed.stream is None and isinstance(fixed.train_source(), tuple)
    assert "random windows" in data.describe() and "random" not in fixed.describe()


def test_random_window_training_resumes_bit_exact(tmp_path, data):
    straight = _train(data, tmp_path / "a", stop_at=10)
    _train(data, tmp_path / "b", stop_at=7)
    resumed = _train(data, tmp_path / "b", stop_at=10, resume=True)
    fixed = _train(data, tmp_path / "c", stop_at=10, train=(data.train.x, data.train.y))
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], fixed.supernet.state_dict()[k]) for k in a)
    logs = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text()
             .splitlines() if '"train"' in line] for d in ("a", "b")]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]


def test_regularized_sequence_training_exports_exactly(tmp_path, data):
    """Dropout / stochastic depth of a sequence study train (and resume bit-exactly, masks
    drawn per (seed, step)), and are gone from the eval-mode model: export equals the
    supernet. (That they change the weights is tested on images in test_training.)"""
    config = CONFIG.with_overrides(dropout=0.2, drop_path=0.1, label_smoothing=0.05)
    regularized = _train(data, tmp_path / "r", config=config, stop_at=6)
    _train(data, tmp_path / "s", config=config, stop_at=4)
    resumed = _train(data, tmp_path / "s", config=config, stop_at=6, resume=True)
    a = regularized.supernet.state_dict()
    assert all(torch.equal(a[k], resumed.supernet.state_dict()[k]) for k in a)
    net = regularized.supernet.eval()
    x = data.val.x[:4]
    space = net.space
    for arch in (space.largest(), space.smallest(), space.sample(np.random.default_rng(0))):
        with torch.no_grad():
            out = net(x, arch)
            assert out.shape == (4, arch.resolution, 256)
            assert (out - export_subnet(net, arch)(x)).abs().max() <= 1e-5


def test_study_sets_sequence_regularization_and_random_windows():
    from pathlib import Path

    from nas.study import load_study

    study = load_study(Path(__file__).resolve().parents[2] / "studies" / "shakespeare_lm.py")
    assert study.space == "hybrid_lm_small" and study.data.windows == "random"
    assert study.training.dropout > 0 and study.training.keep_best
    assert study.search.objectives == ("loss", "latency_ms")
    space = study.build_space()
    assert list(space.resolution) == [256]
    assert max(space.stages[0].width) == 384 and max(space.stages[0].depth) == 8


def test_reference_size_space():
    space = get_space("hybrid_lm_small")
    assert space.modality == "sequence" and max(space.resolution) == 256
    largest = space.largest()
    assert [layer.mixer for layer in largest.stages[0].layers] == ["attention", "glu_mlp"] * 4
    assert 8e6 < space.params(largest) < 12e6  # nanoGPT's 6 x 384 has 10.8 M
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(50):
        seen |= {layer.mixer for layer in space.sample(rng).stages[0].layers}
    assert seen == {"attention", "glu_mlp", "ssm", "conv"}


@pytest.mark.slow  # two spawned ranks import torch
def test_two_ranks_on_random_windows_equal_one_process(tmp_path, data):
    """Each rank gathers its contiguous slice of the global offsets: two gloo ranks train
    what one process trains on the whole batch (within fp32 summation order)."""
    from functools import partial

    from nas.training import train_data_parallel

    factory = partial(get_space, "hybrid_lm_tiny", widths=((32,), (32,)),
                      depths=((1, 2), (1,)), context_lengths=(8, 16), kernel_sizes=(3,),
                      head_dim=16)
    one = _train(data, tmp_path / "one", stop_at=3)
    two = train_data_parallel(nproc=2, space_factory=factory, train=data.stream,
                              val=(data.val.x, data.val.y), config=CONFIG,
                              out_dir=tmp_path / "two", stop_at=3, progress=False)
    a, b = one.supernet.state_dict(), two.supernet.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
    assert two.best is not None and two.best_step == one.best_step  # rank 0 kept best.pt
    logs = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text()
             .splitlines() if '"train"' in line] for d in ("one", "two")]
    assert [r["world_size"] for r in logs[1]] == [2, 2, 2]
    for ra, rb in zip(*logs):
        assert ra["archs"] == rb["archs"]
        assert abs(ra["loss"] - rb["loss"]) <= 1e-5 * abs(ra["loss"]) + 1e-6
