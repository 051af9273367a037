"""Reference selective state-space scan: the plain sequential recurrence, one step per token.

Slow (a Python loop over time) but obviously right; `kernels.ssm.chunked` is checked against it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ssm_scan_naive(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Selective scan by the recurrence (Mamba-2 / SSD: scalar decay per head, one B/C group).

    Args:
        x: (batch, T, H, P) inputs, ``H`` heads of size ``P``.
        dt: (batch, T, H) positive step sizes.
        A: (H,) negative decay rates, so the per-step decay ``exp(dt * A)`` is in (0, 1).
        B: (batch, T, N) input projection of the state, shared by all heads.
        C: (batch, T, N) output projection of the state, shared by all heads.

    Returns:
        y: (batch, T, H, P) in the dtype of ``x``, where with ``h_0 = 0``::

            h_t = exp(dt_t * A) * h_{t-1} + (dt_t * x_t) outer B_t    # (batch, H, P, N)
            y_t = h_t @ C_t                                           # (batch, H, P)

    Everything is computed in float32 (float64 if ``x`` is float64) and cast back at the end,
    so the state is accumulated in at least float32 whatever the input dtype.
    """
    out_dtype = x.dtype
    f = torch.promote_types(x.dtype, torch.float32)
    x, dt, A, B, C = (t.to(f) for t in (x, dt, A, B, C))
    batch, T, H, P = x.shape
    N = B.shape[-1]

    h = x.new_zeros(batch, H, P, N)  # (batch, H, P, N)
    ys = []
    for t in range(T):
        decay = torch.exp(dt[:, t] * A)  # (batch, H)
        dx = dt[:, t, :, None] * x[:, t]  # (batch, H, P)
        h = decay[:, :, None, None] * h + dx[..., None] * B[:, t, None, None, :]  # (batch, H, P, N)
        ys.append((h * C[:, t, None, None, :]).sum(-1))  # (batch, H, P)
    if not ys:
        return x.new_zeros(batch, 0, H, P).to(out_dtype)
    return torch.stack(ys, dim=1).to(out_dtype)  # (batch, T, H, P)
