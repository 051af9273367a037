"""Training-time regularization inside the supernet forward: stochastic depth and dropout.

Drawn from explicit generators seeded by ``(seed, step)`` (`step_generator`), so a resumed
run sees the very same masks as a straight run, and a data-parallel rank sees its slice of
the one-process run's per-sample draws. Nothing here changes a weight's shape or the
eval-mode forward: the exported model equals the supernet in eval mode whatever was used in
training. Stochastic depth drops a residual branch ``x + f(x)`` per sample with a rate
rising linearly to ``drop_path`` at the last layer (DeiT / ConvNeXt); dropout zeroes branch
elements and the stem's output (token / patch embeddings); both rescale by the keep rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

STREAM_AUGMENT, STREAM_DROP, STREAM_SAMPLE_DROP = 1, 2, 3


def step_generator(seed: int, step: int, stream: int, device: torch.device | str = "cpu",
                   ) -> torch.Generator:
    """A generator seeded by ``(seed, step, stream)`` on ``device``: the same draws for the
    same step whenever it runs (straight, resumed, or on another rank)."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + int(step)) * 16 + stream)
    return g


@dataclass
class Regularizer:
    """Training-time stochastic depth and dropout of one subnet forward.

    ``drop_path``: the per-sample drop rate of the last mixer layer (rates rise linearly
    from ``drop_path / L`` at the first of the arch's ``L`` layers); ``dropout``: the
    element drop rate of every residual branch and of the stem output. ``generator`` is on
    the activations' device; ``offset`` / ``global_batch`` place this rank's rows in the
    global batch, so per-sample masks equal the one-process run's.
    """

    drop_path: float
    dropout: float
    generator: torch.Generator
    sample_generator: torch.Generator | None = None
    offset: int = 0
    global_batch: int | None = None

    def __post_init__(self) -> None:
        for name in ("drop_path", "dropout"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"training.{name}: must be in [0, 1), got {value!r}")

    @property
    def active(self) -> bool:
        return self.drop_path > 0 or self.dropout > 0

    def _dropout(self, h: Tensor) -> Tensor:
        if self.dropout == 0:
            return h
        keep = 1.0 - self.dropout
        mask = torch.rand(h.shape, generator=self.generator, device=h.device) < keep
        return h * mask.to(h.dtype) / keep

    def embed(self, h: Tensor) -> Tensor:
        """Stem output (B, T, D): dropout."""
        return self._dropout(h)

    def branch(self, x: Tensor, y: Tensor, *, index: int, layers: int) -> Tensor:
        """Residual layer output ``y = x + f(x)`` -> ``x + mask * f(x)`` (B, T, D), with
        layer ``index`` of ``layers`` setting the stochastic-depth rate."""
        h = self._dropout(y - x)
        rate = self.drop_path * (index + 1) / layers
        if rate > 0:
            B = x.shape[0]
            g = self.sample_generator or self.generator
            n = self.global_batch or B
            draws = torch.rand(n, generator=g, device=g.device)  # one per global sample
            keep = (draws[self.offset:self.offset + B] >= rate).to(device=h.device,
                                                                   dtype=h.dtype)
            h = h * keep.view(B, *([1] * (h.dim() - 1))) / (1.0 - rate)
        return x + h


__all__ = ["STREAM_AUGMENT", "STREAM_DROP", "STREAM_SAMPLE_DROP", "Regularizer",
           "step_generator"]
