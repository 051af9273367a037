"""``x + h @ W^T`` with the residual add inside the GEMM where that is the same sum.

Every residual layer ends in an output projection and an add. ``torch.addmm`` (beta = 1)
does both in one GEMM: one op and one pass over (B, T, D) fewer, which at the batch-1 sizes of
the image spaces is dispatch time, not arithmetic (#15, `benchmarks/image_layers_ab.py`).
It is taken only where it computes the plain sum's value up to float rounding (one
rounding of the sum instead of two: 3e-5 apart at K = 3,072 in float32, a few bf16 ulps):
one dtype and no autocast. Under
bf16 autocast (GPU training) ``addmm`` would round the residual stream itself to bf16,
where ``x + linear(h)`` keeps it in ``x``'s float32 (the GEMM alone runs in bf16), so there
the plain sum is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def add_linear(x: Tensor, h: Tensor, weight: Tensor) -> Tensor:
    """x: (B, T, D), h: (B, T, E), weight: (D, E) -> (B, T, D) ``x + h @ weight^T``."""
    if x.dtype == h.dtype == weight.dtype and not torch.is_autocast_enabled(x.device.type):
        B, T, D = x.shape
        return torch.addmm(x.reshape(B * T, D), h.reshape(B * T, h.shape[-1]),
                           weight.t()).view(B, T, D)
    return x + F.linear(h, weight)
