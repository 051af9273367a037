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

from kernels.specs import MixerSpec
from kernels.ssm.chunked import ssm_scan_flops
from kernels.ssm.scan import ssm_scan, uses_triton_scan

CHUNK_SIZE = 64
_GEMM_ALIGN = 64  # output rows of the concatenated input projection, on CUDA


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
    768 tokens on an H100, 2026-12-07, #18). The scan is `ssm_scan` (Triton kernels on CUDA when
    enabled, the chunked reference elsewhere); on the Triton path the skip term ``D * xs`` is
    added inside the scan's output kernel, elsewhere after the scan, in the same order as
    before.
    """
    B, T, D = x.shape
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    heads, inner = dt_proj_weight.shape[0], x_proj_weight.shape[0]
    n = bc_proj_weight.shape[0] // 2
    parts = [x_proj_weight, z_proj_weight, bc_proj_weight, dt_proj_weight]
    width = 2 * inner + 2 * n + heads
    if x.is_cuda and width % _GEMM_ALIGN:
        parts.append(x_proj_weight.new_zeros(_GEMM_ALIGN - width % _GEMM_ALIGN, D))
    w_in = torch.cat(parts)
    xs, z, b, c, dt = F.linear(h, w_in)[..., :width].split([inner, inner, n, n, heads], dim=-1)
    xs = xs.view(B, T, heads, head_dim)  # (B, T, H, P), a view: the scan reads it in place
    dt = F.softplus(dt + dt_proj_bias)  # (B, T, H)
    a = -torch.exp(a_log.float())  # (H,)
    fused_skip = uses_triton_scan(xs)
    y = ssm_scan(xs, dt, a, b, c, chunk_size=CHUNK_SIZE,
                 D=d_skip if fused_skip else None)  # (B, T, H, P)
    if bidirectional:
        y = y + ssm_scan(xs, dt, a, b, c, chunk_size=CHUNK_SIZE, reverse=True)
    if not fused_skip:
        y = y + d_skip[:, None] * xs
    y = y.reshape(B, T, inner)  # (B, T, E)
    return x + F.linear(y * F.silu(z), out_proj_weight)


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
