"""Chunked (SSD) selective state-space scan: matmuls inside chunks, a short loop across them.

Same semantics as `kernels.ssm.naive.ssm_scan_naive`. With per-step log decay ``a_t = dt_t * A``
(<= 0), ``dx_t = dt_t * x_t`` and ``seg(i, j) = a_{j+1} + ... + a_i`` the recurrence unrolls to

    y_i = sum_{j <= i} exp(seg(i, j)) (C_i . B_j) dx_j.

Split time into chunks of ``Q`` steps. For ``i`` in a chunk, the ``j`` of the same chunk give the
intra-chunk term ``(L o C B^T) dx`` with ``L[i, j] = exp(seg(i, j))`` (0 above the diagonal);
earlier ``j`` reach ``i`` only through the state ``S`` carried into the chunk, giving the
inter-chunk term ``exp(seg(i, start - 1)) C_i . S``. The carried states come from a sequential
pass over chunks, ``S <- exp(sum of a over the chunk) S + sum_j exp(seg(end, j)) dx_j B_j^T``.

Stability: ``seg(i, j) = acum_i - acum_j`` with ``acum`` the cumsum of ``a`` inside the chunk,
kept in float64 (with strong decay the float32 differences lose digits, and their gradients,
which cancel, lost up to 40% of a small dA). Every exp goes through `_decay`, which clamps its
argument to ``[-80, 0]``: never exp of a positive number (the j > i entries are zeroed by the
causal mask on ``C B^T``), never the slow denormal path, and no NaN in values or gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_DECAY_MIN = -80.0  # decays below exp(-80) ~ 2e-35 are rounded up to it (see `_decay`)


def _check_args(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, T, H, P), got shape {tuple(x.shape)}")
    batch, T, H, _ = x.shape
    if T < 1:
        raise ValueError(f"x must hold at least one time step, got shape {tuple(x.shape)}")
    if dt.shape != (batch, T, H):
        raise ValueError(f"dt must be (batch, T, H) = {(batch, T, H)}, got {tuple(dt.shape)}")
    if A.shape != (H,):
        raise ValueError(f"A must be 1-D of size H = {H}, got shape {tuple(A.shape)}")
    for name, t in (("B", B), ("C", C)):
        if t.dim() != 3 or t.shape[:2] != (batch, T):
            raise ValueError(f"{name} must be (batch, T, N) with (batch, T) = {(batch, T)}, "
                             f"got shape {tuple(t.shape)}")
    if B.shape[2] != C.shape[2]:
        raise ValueError(f"B and C must share the state size N, got B {tuple(B.shape)} "
                         f"and C {tuple(C.shape)}")


def _decay(log_decay: Tensor, dtype: torch.dtype) -> Tensor:
    """exp of a log decay (<= 0) in ``dtype``, clamped to [LOG_DECAY_MIN, 0] first (same shape).

    The upper clamp keeps exp <= 1 (no overflow from the unused j > i entries of a difference
    matrix, which are masked afterwards); the lower one keeps float32 exp out of its very slow
    denormal / underflow path (30x slower on CPU) at a cost of at most exp(-80) ~ 2e-35.
    """
    return torch.exp(log_decay.to(dtype).clamp(LOG_DECAY_MIN, 0.0))


def ssm_scan_chunked(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, *, chunk_size: int = 64
) -> Tensor:
    """Selective scan by the chunked SSD algorithm; same result as `ssm_scan_naive`.

    Args:
        x: (batch, T, H, P); dt: (batch, T, H) > 0; A: (H,) < 0; B, C: (batch, T, N).
        chunk_size: chunk length; ``Q = min(chunk_size, T)`` and T is zero-padded to a multiple
            of Q (padding has dt = 0: decay 1, no input), then the padding is cut off.

    Returns:
        y: (batch, T, H, P) in the dtype of ``x``; computed in float32 (float64 for float64).

    Four matmuls do all the arithmetic (see `ssm_scan_flops`); the rest is element-wise.
    Raises ValueError on inconsistent shapes or ``chunk_size < 1``.
    """
    _check_args(x, dt, A, B, C, chunk_size)
    out_dtype = x.dtype
    f = torch.promote_types(x.dtype, torch.float32)
    x, dt, A, B, C = (t.to(f) for t in (x, dt, A, B, C))
    batch, T, H, P = x.shape
    N = B.shape[-1]
    Q = min(chunk_size, T)
    c = (T + Q - 1) // Q  # number of chunks
    pad = c * Q - T
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))  # (batch, c*Q, H, P)
        dt = F.pad(dt, (0, 0, 0, pad))  # (batch, c*Q, H)
        B = F.pad(B, (0, 0, 0, pad))  # (batch, c*Q, N)
        C = F.pad(C, (0, 0, 0, pad))  # (batch, c*Q, N)
    dx = (x * dt[..., None]).view(batch, c, Q, H, P)  # (batch, c, Q, H, P)
    B = B.view(batch, c, Q, N)  # (batch, c, Q, N)
    C = C.view(batch, c, Q, N)  # (batch, c, Q, N)
    a = (dt * A).view(batch, c, Q, H).transpose(2, 3)  # (batch, c, H, Q) log decay per step
    # log decay from chunk start through step i, in float64 (where the device has it) so that
    # differences of it, and their gradients (which cancel), keep float32 accuracy
    acc = f if x.device.type == "mps" else torch.float64
    acum = a.to(acc).cumsum(dim=-1)  # (batch, c, H, Q)
    causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()  # (Q, Q), j <= i

    # intra-chunk: y_i += sum_{j <= i} exp(acum_i - acum_j) (C_i . B_j) dx_j
    L = _decay(acum[..., :, None] - acum[..., None, :], f)  # (batch, c, H, Q, Q)
    CB = (C @ B.transpose(-1, -2)) * causal  # (batch, c, Q, Q), zero above the diagonal
    y_diag = (L * CB[:, :, None]) @ dx.permute(0, 1, 3, 2, 4)  # (batch, c, H, Q, P)

    # chunk-end states from each chunk's own inputs: S = sum_j L[end, j] dx_j B_j^T
    to_end = _decay(acum[..., -1:] - acum, f).transpose(2, 3)  # (batch, c, Q, H)
    dx_w = dx * to_end[..., None]  # (batch, c, Q, H, P)
    S = dx_w.view(batch, c, Q, H * P).transpose(-1, -2) @ B  # (batch, c, H*P, N)
    S = S.view(batch, c, H, P, N)  # (batch, c, H, P, N)

    # sequential pass over chunks: the state entering each chunk (element-wise only)
    chunk_decay = _decay(acum[..., -1], f)[..., None, None]  # (batch, c, H, 1, 1)
    state = S.new_zeros(batch, H, P, N)  # (batch, H, P, N)
    states = []
    for k in range(c):
        states.append(state)
        state = chunk_decay[:, k] * state + S[:, k]  # (batch, H, P, N)
    S_in = torch.stack(states, dim=1).view(batch, c, H * P, N)  # (batch, c, H*P, N)

    # inter-chunk: y_i += exp(acum_i) C_i . S_in
    y_off = (C @ S_in.transpose(-1, -2)).view(batch, c, Q, H, P)  # (batch, c, Q, H, P)
    y_off = y_off * _decay(acum, f).transpose(2, 3)[..., None]  # (batch, c, Q, H, P)

    y = y_diag.permute(0, 1, 3, 2, 4) + y_off  # (batch, c, Q, H, P)
    return y.reshape(batch, c * Q, H, P)[:, :T].to(out_dtype)  # (batch, T, H, P)


def ssm_scan_flops(
    *, tokens: int, heads: int, head_dim: int, state_size: int, chunk_size: int = 64
) -> int:
    """FLOPs of one `ssm_scan_chunked` call with batch 1, as `FlopCounterMode` counts them.

    Only the four matmuls count (``2 m n k`` each); element-wise work counts 0. With
    ``Q = min(chunk_size, tokens)``, ``c = ceil(tokens / Q)`` chunks, H heads, P = head_dim,
    N = state_size, the matmuls are C B^T (Q x N x Q), (L o CB) dx (Q x Q x P per head),
    chunk states dx^T B (H*P x Q x N) and C S_in^T (Q x N x H*P), each once per chunk::

        flops = 2 c Q (Q N + H Q P + 2 H P N)

    Padding is counted: the matmuls run on ``c * Q >= tokens`` steps. A batch of b costs b times
    as much. E.g. tokens=1: Q=c=1 gives 2 (N + H P + 2 H P N).
    """
    for name, v in (("tokens", tokens), ("heads", heads), ("head_dim", head_dim),
                    ("state_size", state_size), ("chunk_size", chunk_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    Q = min(chunk_size, tokens)
    c = (tokens + Q - 1) // Q
    H, P, N = heads, head_dim, state_size
    return 2 * c * Q * (Q * N + H * Q * P + 2 * H * P * N)
