"""Evaluate subnets with inherited weights (or any model) on a data split.

Images: accuracy and cross-entropy. Sequences: next-token accuracy and loss in nats per
token (bits per char = loss / ln 2, perplexity = exp(loss)); a subnet with context ``T``
is scored on the first ``T`` positions of each window, exactly as its exported model sees
them. `evaluate_many` moves each batch once and runs every arch on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from nas.supernet import Supernet
from search_spaces import Arch


@contextmanager
def device_kernels(device: str | torch.device) -> Iterator[None]:
    """Kernel choices for running a supernet on ``device``.

    On CUDA: cuDNN off (the only convolutions left are depthwise, which have native
    kernels) and attention without the cuDNN SDPA backend. Why: cuDNN builds an execution
    plan for every new input shape (0.05-3 s of CPU each, measured on an H100) and a
    supernet meets hundreds of shapes, which made early training ~15x slower.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with torch.backends.cudnn.flags(enabled=False), sdpa_kernel(backends):
        yield


@dataclass(frozen=True)
class EvalResult:
    """Mean loss (nats per sample or per token), accuracy in [0, 1], and the count."""

    loss: float
    accuracy: float
    count: int

    @property
    def bits_per_token(self) -> float:
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def task_loss(logits: Tensor, y: Tensor, *, reduction: str = "mean",
              label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of (B, C) logits vs (B,) labels, or of (B, T, V) logits vs the first T
    targets of (B, T') next tokens (``label_smoothing`` for training losses only)."""
    if logits.dim() == 3:
        t = logits.shape[1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                               y[:, :t].reshape(-1), reduction=reduction,
                               label_smoothing=label_smoothing)
    return F.cross_entropy(logits.float(), y, reduction=reduction,
                           label_smoothing=label_smoothing)


def _correct(logits: Tensor, y: Tensor) -> tuple[int, int]:
    if logits.dim() == 3:
        t = logits.shape[1]
        target = y[:, :t]
        return int((logits.argmax(-1) == target).sum()), target.numel()
    return int((logits.argmax(-1) == y).sum()), y.numel()


def _batches(x: Tensor, y: Tensor, batch_size: int, max_batches: int | None):
    n = x.shape[0]
    for i, start in enumerate(range(0, n, batch_size)):
        if max_batches is not None and i >= max_batches:
            return
        yield x[start:start + batch_size], y[start:start + batch_size]


@torch.no_grad()
def evaluate_many_models(models: Sequence[Callable[[Tensor], Tensor]], x: Tensor, y: Tensor, *,
                         batch_size: int = 256, device: str | torch.device = "cpu",
                         max_batches: int | None = None) -> list[EvalResult]:
    """Score each callable ``x (B, ...) -> logits`` on the same batches of (x, y)."""
    sums = [[0.0, 0, 0] for _ in models]  # loss sum, correct, count
    with device_kernels(device):
        _accumulate(models, sums, x, y, batch_size=batch_size, device=device,
                    max_batches=max_batches)
    if not sums or sums[0][2] == 0:
        raise ValueError("evaluation split is empty")
    return [EvalResult(loss=s[0] / s[2], accuracy=s[1] / s[2], count=int(s[2])) for s in sums]


def _accumulate(models, sums, x, y, *, batch_size, device, max_batches) -> None:
    for xb, yb in _batches(x, y, batch_size, max_batches):
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        for acc, model in zip(sums, models):
            logits = model(xb)
            acc[0] += float(task_loss(logits, yb, reduction="sum"))
            correct, count = _correct(logits, yb)
            acc[1] += correct
            acc[2] += count


def evaluate_model(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *,
                   batch_size: int = 256, device: str | torch.device = "cpu",
                   max_batches: int | None = None) -> EvalResult:
    """Score one model (an exported subnet, say) on (x, y)."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        return evaluate_many_models([model], x, y, batch_size=batch_size, device=device,
                                    max_batches=max_batches)[0]
    finally:
        if was_training:  # then it is a torch module
            cast(torch.nn.Module, model).train()


def evaluate_many(supernet: Supernet, archs: Sequence[Arch], x: Tensor, y: Tensor, *,
                  batch_size: int = 256, device: str | torch.device | None = None,
                  max_batches: int | None = None) -> list[EvalResult]:
    """Inherited-weight results of several archs; each batch is moved to the device once."""
    for arch in archs:
        supernet.space.validate(arch)
    device = device or next(supernet.parameters()).device
    was_training = supernet.training
    supernet.eval()
    try:
        models = [lambda xb, a=arch: supernet(xb, a) for arch in archs]
        return evaluate_many_models(models, x, y, batch_size=batch_size, device=device,
                                    max_batches=max_batches)
    finally:
        supernet.train(was_training)


def evaluate(supernet: Supernet, arch: Arch, x: Tensor, y: Tensor, *, batch_size: int = 256,
             device: str | torch.device | None = None,
             max_batches: int | None = None) -> EvalResult:
    """Inherited-weight accuracy and loss of one arch (equal to its exported model's)."""
    return evaluate_many(supernet, [arch], x, y, batch_size=batch_size, device=device,
                         max_batches=max_batches)[0]


@dataclass(frozen=True)
class SplitHalfResult:
    """One arch scored on two disjoint halves of a split and on their union."""

    full: EvalResult
    half_a: EvalResult
    half_b: EvalResult


def _combine(a: EvalResult, b: EvalResult) -> EvalResult:
    n = a.count + b.count
    return EvalResult(loss=(a.loss * a.count + b.loss * b.count) / n,
                      accuracy=(a.accuracy * a.count + b.accuracy * b.count) / n, count=n)


def evaluate_split_halves(supernet: Supernet, archs: Sequence[Arch], x: Tensor, y: Tensor, *,
                          batch_size: int = 256, device: str | torch.device | None = None
                          ) -> list[SplitHalfResult]:
    """Score archs on the first and second half of (x, y) and on the whole: the two halves
    give the split-half reliability (the noise ceiling of any ranking of these labels)."""
    half = x.shape[0] // 2
    if half < 1:
        raise ValueError("the split needs at least 2 examples to be halved")
    a = evaluate_many(supernet, archs, x[:half], y[:half], batch_size=batch_size, device=device)
    b = evaluate_many(supernet, archs, x[half:], y[half:], batch_size=batch_size, device=device)
    return [SplitHalfResult(_combine(ra, rb), ra, rb) for ra, rb in zip(a, b)]
