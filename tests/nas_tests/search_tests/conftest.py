"""A tiny space, a synthetic latency table and a cheap, deterministic, counting evaluator."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from kernels import layer_flops, signature
from kernels.fingerprint import device_fingerprint
from kernels.latency_table import LatencyEntry, LatencyTable
from search_spaces import Arch, SearchSpace, get_space


def tiny_space() -> SearchSpace:
    """1,152 archs: 1 resolution, stage 0 one layer, stage 1 one or two layers, 2 widths."""
    return get_space("hybrid_vit_tiny", in_channels=1, num_classes=4, resolutions=(8,),
                     patch_size=4, widths=((16,), (16, 32)), depths=((1,), (1, 2)),
                     head_dim=8, stems=())  # patch stem only: the search tests' fixed space


def synthetic_table(space: SearchSpace) -> LatencyTable:
    """Every layer slot of ``space`` with a latency growing with its FLOPs (uncalibrated)."""
    table = LatencyTable(device_fingerprint(device="cpu", batch_size=1, threads=1))
    for _, spec in space.layer_slots():
        table.entries[signature(spec)] = LatencyEntry(
            median_ms=0.01 + layer_flops(spec) / 1e6, spread_ms=0.0, repeats=1)
    return table


class CountingEvaluator:
    """Accuracy as a smooth function of size plus a fixed per-arch offset; records calls."""

    def __init__(self, space: SearchSpace, *, fail_after: int | None = None) -> None:
        self.space = space
        self.calls: list[list[str]] = []
        self.fail_after = fail_after

    @property
    def evaluated(self) -> list[str]:
        return [k for call in self.calls for k in call]

    def __call__(self, archs: Sequence[Arch]) -> list[dict[str, float]]:
        if self.fail_after is not None and len(self.evaluated) + len(archs) > self.fail_after:
            raise RuntimeError("evaluator died (simulated)")
        self.calls.append([a.key() for a in archs])
        out = []
        for arch in archs:
            jitter = int(hashlib.sha256(arch.key().encode()).hexdigest()[:8], 16) / 2**32
            size = self.space.params(arch) / 1e4
            mixers = sum(layer.mixer in ("attention", "ssm") for s in arch.stages
                         for layer in s.layers)
            acc = 0.5 + 0.3 * np.tanh(size) + 0.05 * mixers + 0.04 * jitter
            out.append({"val_accuracy": float(acc), "val_loss": float(1.5 - acc),
                        "note": "ignored"})
        return out


@pytest.fixture
def space() -> SearchSpace:
    return tiny_space()


@pytest.fixture
def table(space: SearchSpace) -> LatencyTable:
    return synthetic_table(space)


@pytest.fixture
def make_evaluator():
    """The `CountingEvaluator` class (test modules cannot import conftest by name)."""
    return CountingEvaluator
