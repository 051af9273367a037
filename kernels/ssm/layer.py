"""Selective state-space mixer (Mamba-2 / SSD style) around the chunked scan.

``x + out(y * silu(z))`` with ``y = scan(xs, dt, A, B, C) + D * xs`` where ``xs = W_x norm(x)``
(heads of size ``head_dim``), ``z = W_z norm(x)`` the gate, ``B, C = W_bc norm(x)`` (one group
of ``state_size`` shared by all heads), ``dt = softplus(W_dt norm(x) + dt_bias)`` the
input-dependent step and ``A = -exp(A_log)`` per head, so the decay ``exp(dt * A)`` is in
(0, 1). Images scan the row-major token order both ways and add the two outputs (as Vision
Mamba does), with the same weights; sequences scan forwards only, so the layer is causal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels.residual import add_linear
from kernels.specs import MixerSpec
from kernels.ssm.chunked import ssm_scan_flops
from kernels.ssm.gate import silu_gate
from kernels.ssm.scan import ssm_scan, uses_triton_scan

CHUNK_SIZE = 64
_GEMM_ALIGN = 64  # output rows of the concatenated input projection, on CUDA


class _SplitProjection(torch.autograd.Function):
    """``h @ w^T`` returned as the views ``split(sizes)`` of its first ``sum(sizes)`` columns.

    Same values and gradients as ``F.linear(h, w)[:, :sum(sizes)].split(sizes, -1)``; the
    backward builds the output's gradient with one concatenation, where autograd's would
    concatenate the pieces' gradients, zero-fill a (M, W) buffer for the slice and copy them
    in (three passes over (M, W) more: about 85 MB at 8,192 tokens of the d = 768 layer, #18).
    Under autocast (any device) ``h`` and ``w`` are cast to the autocast dtype first, as
    ``F.linear`` would be, and those casts are what the backward keeps and multiplies.
    """

    @staticmethod
    def forward(ctx, h: Tensor, w: Tensor, sizes: tuple[int, ...]):  # type: ignore[override]
        device = h.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            h, w = h.to(dtype), w.to(dtype)
        with torch.autocast(device, enabled=False):
            out = F.linear(h, w)  # (M, W)
        ctx.save_for_backward(h, w)
        ctx.sizes = sizes
        return out[:, :sum(sizes)].split(list(sizes), dim=-1)

    @staticmethod
    def backward(ctx, *grads: Tensor | None):  # type: ignore[override]
        h, w = ctx.saved_tensors
        rows, sizes = h.shape[0], ctx.sizes
        pieces = [h.new_zeros(rows, n) if g is None else g.to(h.dtype)
                  for g, n in zip(grads, sizes)]
        if w.shape[0] > sum(sizes):  # the zero rows padding w: their outputs' gradient is 0
            pieces.append(h.new_zeros(rows, w.shape[0] - sum(sizes)))
        g_out = torch.cat(pieces, dim=-1)  # (M, W)
        with torch.autocast(h.device.type, enabled=False):
            return g_out @ w, g_out.t() @ h, None


def in_projection(h: Tensor, x_proj_weight: Tensor, z_proj_weight: Tensor,
                  bc_proj_weight: Tensor, dt_proj_weight: Tensor, *, split: bool,
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """h: (B, T, D) -> xs, z (B, T, E), B, C (B, T, N), dt (B, T, H) (before softplus): the four
    input projections as one GEMM of the concatenated weights, padded on CUDA to a multiple
    of 64 outputs (see `ssm_forward`). ``split``: through `_SplitProjection` (one
    concatenation in the backward), else the plain slice and split."""
    B, T, D = h.shape
    heads, inner = dt_proj_weight.shape[0], x_proj_weight.shape[0]
    n = bc_proj_weight.shape[0] // 2
    parts = [x_proj_weight, z_proj_weight, bc_proj_weight, dt_proj_weight]
    width = 2 * inner + 2 * n + heads
    if h.is_cuda and width % _GEMM_ALIGN:
        parts.append(x_proj_weight.new_zeros(_GEMM_ALIGN - width % _GEMM_ALIGN, D))
    w_in = torch.cat(parts)
    sizes = (inner, inner, n, n, heads)
    if split:
        views = _SplitProjection.apply(h.reshape(B * T, D), w_in, sizes)
        xs, z, b, c, dt = (v.view(B, T, v.shape[-1]) for v in views)
    else:
        xs, z, b, c, dt = F.linear(h, w_in)[..., :width].split(list(sizes), dim=-1)
    return xs, z, b, c, dt


def ssm_forward(
    x: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    x_proj_weight: Tensor,
    z_proj_weight: Tensor,
    bc_proj_weight: Tensor,
    dt_proj_weight: Tensor,
    dt_proj_bias: Tensor,
    a_log: Tensor,
    d_skip: Tensor,
    out_proj_weight: Tensor,
    *,
    head_dim: int,
    bidirectional: bool,
) -> Tensor:
    """x: (B, T, D) -> (B, T, D). x/z weights (E, D), bc (2N, D), dt (H, D), out (D, E).

    The four input projections run as one GEMM on the weights concatenated here (the parameters,
    and so the state dict, keep their separate layout); on CUDA the concatenation is padded with
    zero rows to a multiple of 64 outputs: for an output width such as 2 * 768 + 128 + 12 =
    1,676 cuBLAS picked an sm80 kernel that took 35 % of the layer's forward (110 us of 8,192 x
    768 tokens on an H100, 2026-12-07, #18). The residual add rides in the output GEMM where
    that is the same sum (`kernels.residual.add_linear`). Where the Triton scan runs
    (`uses_triton_scan`: the SSM fast path) the skip term ``D * xs`` is added inside the scan's
    output kernel, the gate ``y * silu(z)`` is one fused kernel each way (`kernels.ssm.gate`)
    and the projection's backward concatenates its pieces' gradients once
    (`_SplitProjection`); elsewhere (the reference) the skip is added after the scan and the
    gate and the split are plain torch, in the same order as before.
    """
    B, T, D = x.shape
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    heads, inner = dt_proj_weight.shape[0], x_proj_weight.shape[0]
    fast = uses_triton_scan(x)
    xs, z, b, c, dt = in_projection(h, x_proj_weight, z_proj_weight, bc_proj_weight,
                                    dt_proj_weight, split=fast)
    xs = xs.view(B, T, heads, head_dim)  # (B, T, H, P), a view: the scan reads it in place
    dt = F.softplus(dt + dt_proj_bias)  # (B, T, H)
    a = -torch.exp(a_log.float())  # (H,)
    y = ssm_scan(xs, dt, a, b, c, chunk_size=CHUNK_SIZE,
                 D=d_skip if fast else None)  # (B, T, H, P)
    if bidirectional:
        y = y + ssm_scan(xs, dt, a, b, c, chunk_size=CHUNK_SIZE, reverse=True)
    if not fast:
        y = y + d_skip[:, None] * xs
    gated = silu_gate(y.reshape(B * T, inner), z.reshape(B * T, inner))  # (B * T, E)
    return add_linear(x, gated.view(B, T, inner), out_proj_weight)


class SSMLayer(nn.Module):
    """Static selective-SSM layer of one `MixerSpec` (expansion 1: inner width = dim)."""

    def __init__(self, spec: MixerSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        if spec.mixer != "ssm":
            raise ValueError(f"SSMLayer needs an ssm spec, got {spec.mixer!r}")
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        d, n, heads = spec.dim, spec.state_size, spec.dim // spec.head_dim
        self.norm = nn.LayerNorm(d, **kw)
        self.x_proj = nn.Linear(d, d, bias=False, **kw)
        self.z_proj = nn.Linear(d, d, bias=False, **kw)
        self.bc_proj = nn.Linear(d, 2 * n, bias=False, **kw)
        self.dt_proj = nn.Linear(d, heads, **kw)
        self.a_log = nn.Parameter(torch.empty(heads, **kw))
        self.d_skip = nn.Parameter(torch.empty(heads, **kw))
        self.out_proj = nn.Linear(d, d, bias=False, **kw)
        init_ssm_parameters(self.a_log, self.d_skip, self.dt_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        return ssm_forward(
            x, self.norm.weight, self.norm.bias, self.x_proj.weight, self.z_proj.weight,
            self.bc_proj.weight, self.dt_proj.weight, self.dt_proj.bias, self.a_log,
            self.d_skip, self.out_proj.weight, head_dim=self.spec.head_dim,
            bidirectional=not self.spec.causal,
        )


@torch.no_grad()
def init_ssm_parameters(a_log: Tensor, d_skip: Tensor, dt_bias: Tensor) -> None:
    """Mamba's init: A in [1, 16], D = 1, dt = softplus(dt_bias) log-uniform in [1e-3, 1e-1]."""
    heads = a_log.shape[0]
    a_log.copy_(torch.log(torch.linspace(1.0, 16.0, heads, dtype=torch.float32)))
    d_skip.fill_(1.0)
    dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), heads))
    dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus


def ssm_params(spec: MixerSpec) -> int:
    d, n, heads = spec.dim, spec.state_size, spec.dim // spec.head_dim
    return 2 * d + 3 * d * d + 2 * n * d + (heads * d + heads) + 2 * heads


def ssm_flops(spec: MixerSpec) -> int:
    d, t, n, heads = spec.dim, spec.tokens, spec.state_size, spec.dim // spec.head_dim
    proj = 2 * t * d * (2 * d + 2 * n + heads) + 2 * t * d * d
    scan = ssm_scan_flops(tokens=t, heads=heads, head_dim=spec.head_dim, state_size=n,
                          chunk_size=CHUNK_SIZE)
    return proj + scan * (1 if spec.causal else 2)
