"""Multi-head self-attention mixer: ``x + proj(sdpa(qkv(norm(x))))``.

Heads follow the width with a fixed head size (``heads = dim // head_dim``); causal in
sequence spaces. Position comes from the stem's learned positional term, which is
interpolated (images) or sliced (sequences), so attention works at every resolution.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kernels.specs import MixerSpec


def attention_forward(
    x: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    qkv_weight: Tensor,
    qkv_bias: Tensor,
    proj_weight: Tensor,
    proj_bias: Tensor,
    *,
    head_dim: int,
    causal: bool,
) -> Tensor:
    """x: (B, T, D) -> (B, T, D). qkv_weight: (3 * D, D) laid out as [q; k; v]."""
    B, T, D = x.shape
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    qkv = F.linear(h, qkv_weight, qkv_bias)  # (B, T, 3 * D)
    heads = qkv.shape[-1] // (3 * head_dim)
    q, k, v = qkv.view(B, T, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, T, hd)
    y = y.transpose(1, 2).reshape(B, T, heads * head_dim)  # (B, T, D)
    return x + F.linear(y, proj_weight, proj_bias)


class AttentionLayer(nn.Module):
    """Static attention layer of one `MixerSpec` (the deployment form)."""

    def __init__(self, spec: MixerSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        if spec.mixer != "attention":
            raise ValueError(f"AttentionLayer needs an attention spec, got {spec.mixer!r}")
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(spec.dim, **kw)
        self.qkv = nn.Linear(spec.dim, 3 * spec.dim, **kw)
        self.proj = nn.Linear(spec.dim, spec.dim, **kw)

    def forward(self, x: Tensor) -> Tensor:
        return attention_forward(
            x, self.norm.weight, self.norm.bias, self.qkv.weight, self.qkv.bias,
            self.proj.weight, self.proj.bias, head_dim=self.spec.head_dim, causal=self.spec.causal,
        )


def attention_params(spec: MixerSpec) -> int:
    d = spec.dim
    return 2 * d + (3 * d * d + 3 * d) + (d * d + d)


def attention_flops(spec: MixerSpec) -> int:
    """Per sample: qkv and proj matmuls plus the full T x T score and value matmuls."""
    d, t = spec.dim, spec.tokens
    return 2 * t * d * 3 * d + 2 * t * t * d * 2 + 2 * t * d * d


