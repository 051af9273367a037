"""Timing harness and device fingerprint: positive medians and spreads, fresh non-zero inputs,
input rotation, fixed threads, and clear errors for impossible modes."""

from __future__ import annotations

import pytest
import torch

from kernels import (
    DeviceFingerprint,
    HeadSpec,
    MixerSpec,
    StemSpec,
    TimingConfig,
    device_fingerprint,
    measure_latency,
    measure_layers,
    measure_model,
)
from kernels.timing import _input_count, fixed_threads, layer_input

FAST = TimingConfig(warmup=1, repeats=5, min_sample_ms=0.5)
SPECS = [
    StemSpec("image", 16, 16, (4, 4), in_channels=3, patch_size=4, resolution=16),
    MixerSpec("glu_mlp", 16, 16, (4, 4), hidden=32),
    MixerSpec("attention", 16, 16, (4, 4), head_dim=16),
    MixerSpec("conv", 16, 16, (4, 4), kernel_size=3),
    HeadSpec("image", 16, 16, 10, (4, 4)),
]


def test_measure_latency_positive_median_and_spread():
    layer = torch.nn.Linear(64, 64)
    g = torch.Generator().manual_seed(0)
    m = measure_latency(layer, lambda: torch.randn(8, 64, generator=g), threads=1,
                        config=FAST)
    assert m.median_ms > 0 and m.spread_ms > 0
    assert m.repeats == 5 and m.calls_per_sample >= 1


def test_rounds_continue_until_the_minimum_wall_time():
    """``min_total_s`` spreads a block's rounds over time (a slow phase of a shared machine
    then hits few of them), capped by ``max_repeats``; bad values are refused."""
    layer = torch.nn.Linear(16, 16)
    g = torch.Generator().manual_seed(0)
    config = TimingConfig(warmup=1, repeats=3, min_sample_ms=1.0, min_total_s=0.2,
                          max_repeats=500)
    m = measure_latency(layer, lambda: torch.randn(4, 16, generator=g), threads=1,
                        config=config)
    assert 3 < m.repeats <= 500
    capped = TimingConfig(warmup=1, repeats=3, min_sample_ms=1.0, min_total_s=60.0,
                          max_repeats=4)
    assert measure_latency(layer, lambda: torch.randn(4, 16, generator=g), threads=1,
                           config=capped).repeats == 4
    with pytest.raises(ValueError, match="min_total_s"):
        TimingConfig(repeats=5, max_repeats=4)


def test_measure_layers_interleaved_one_result_per_spec():
    results = measure_layers(SPECS, batch_size=2, threads=1, config=FAST)
    assert len(results) == len(SPECS)
    assert all(r.median_ms > 0 and r.spread_ms >= 0 for r in results)
    whole = measure_model(SPECS, batch_size=2, threads=1, config=FAST)
    assert whole.median_ms > 0


def test_inputs_are_fresh_and_never_zero():
    g = torch.Generator().manual_seed(0)
    a = layer_input(SPECS[1], 2, generator=g)
    b = layer_input(SPECS[1], 2, generator=g)
    assert a.shape == (2, 16, 16) and (a != 0).all() and not torch.equal(a, b)
    img = layer_input(SPECS[0], 2, generator=g)
    assert img.shape == (2, 3, 16, 16)
    ids = layer_input(StemSpec("sequence", 16, 32, vocab_size=50), 3, generator=g)
    assert ids.shape == (3, 32) and ids.dtype == torch.int64
    assert 0 <= int(ids.min()) and int(ids.max()) < 50 and ids.unique().numel() > 1


def test_small_inputs_rotate_large_ones_do_not():
    config = TimingConfig(cache_bytes=1 << 20, max_inputs=4)
    assert _input_count(torch.zeros(16, 16), config) == 4
    assert _input_count(torch.zeros(1 << 20), config) == 1


def test_fixed_threads_holds_and_restores():
    before = torch.get_num_threads()
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with fixed_threads(0):
            pass


def test_cuda_graph_mode_needs_cuda():
    with pytest.raises(ValueError, match="cuda_graph"):
        measure_latency(torch.nn.Identity(), lambda: torch.ones(1), mode="cuda_graph")
    with pytest.raises(ValueError, match="mode"):
        measure_latency(torch.nn.Identity(), lambda: torch.ones(1), mode="turbo")


def test_fingerprint_fields_and_stable_id():
    fp = device_fingerprint(device="cpu", batch_size=4, mode="eager", threads=2)
    assert fp.device_type == "cpu" and fp.threads == 2 and fp.torch == torch.__version__
    assert fp.dtype == "float32" and fp.batch_size == 4 and fp.mode == "eager"
    again = device_fingerprint(device="cpu", batch_size=4, mode="eager", threads=2)
    assert fp.id == again.id and len(fp.id) == 16
    other = device_fingerprint(device="cpu", batch_size=8, mode="eager", threads=2)
    assert other.id != fp.id and any("batch_size" in d for d in fp.differences(other))
    assert DeviceFingerprint.from_dict(fp.to_dict()) == fp
    with pytest.raises(ValueError, match="cuda_graph"):
        device_fingerprint(device="cpu", batch_size=1, mode="cuda_graph")
    with pytest.raises(ValueError, match="dtype"):
        device_fingerprint(device="cpu", batch_size=1, dtype="int8")


@pytest.mark.gpu
def test_cuda_graph_and_eager_on_gpu():
    fp = device_fingerprint(device="cuda", batch_size=2, mode="cuda_graph")
    assert fp.device_type == "cuda" and fp.cuda
    for mode in ("eager", "cuda_graph"):
        results = measure_layers(SPECS, batch_size=2, device="cuda", mode=mode, config=FAST)
        assert all(r.median_ms > 0 for r in results)
        assert measure_model(SPECS, batch_size=2, device="cuda", mode=mode,
                             config=FAST).median_ms > 0
