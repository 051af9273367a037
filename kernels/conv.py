"""Depthwise-conv token mixer: ``x + pointwise(gelu(dwconv(norm(x))))``.

Images: 2-D depthwise conv over the token grid ("same" padding). Sequences: causal 1-D
depthwise conv (left padding ``k - 1``), so position t only sees tokens <= t.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kernels.specs import Grid, MixerSpec


def conv_forward(
    x: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    dw_weight: Tensor,
    dw_bias: Tensor | None,
    pw_weight: Tensor,
    pw_bias: Tensor,
    *,
    grid: Grid,
) -> Tensor:
    """x: (B, T, D) -> (B, T, D). dw_weight: (D, 1, k, k) for a grid, (D, 1, k) causal.

    On a grid the tokens go into the depthwise conv as a (B, D, H, W) view of their own
    memory (channels-last strides) and come out the same way, so no copy is made on either
    side. The earlier ``flatten(2)`` of the channels-last output copied it: on 2026-12-07 the
    quickstart space's 51 conv entries of a CPU latency table (one thread, batch 1) took a
    median 0.80x and 0.90x the earlier layer's time, in two runs interleaved with it.
    """
    B, T, D = x.shape
    k = dw_weight.shape[-1]
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)  # (B, T, D)
    if grid is not None:
        h = h.view(B, grid[0], grid[1], D).permute(0, 3, 1, 2)  # (B, D, H, W), a view
        h = F.conv2d(h, dw_weight, dw_bias, padding=k // 2, groups=D)  # channels-last out
        h = h.permute(0, 2, 3, 1).reshape(B, T, D)  # (B, T, D), a view where channels-last
    else:
        h = F.conv1d(F.pad(h.transpose(1, 2), (k - 1, 0)), dw_weight, dw_bias, groups=D)
        h = h.transpose(1, 2)  # (B, T, D)
    return x + F.linear(F.gelu(h), pw_weight, pw_bias)


class ConvLayer(nn.Module):
    """Static depthwise-conv layer of one `MixerSpec`."""

    def __init__(self, spec: MixerSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        if spec.mixer != "conv":
            raise ValueError(f"ConvLayer needs a conv spec, got {spec.mixer!r}")
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        d, k = spec.dim, spec.kernel_size
        self.norm = nn.LayerNorm(d, **kw)
        if spec.grid is not None:
            self.dw: nn.Conv2d | nn.Conv1d = nn.Conv2d(d, d, k, padding=k // 2, groups=d, **kw)
        else:
            self.dw = nn.Conv1d(d, d, k, groups=d, **kw)
        self.pw = nn.Linear(d, d, **kw)

    def forward(self, x: Tensor) -> Tensor:
        return conv_forward(x, self.norm.weight, self.norm.bias, self.dw.weight, self.dw.bias,
                            self.pw.weight, self.pw.bias, grid=self.spec.grid)


def _taps(spec: MixerSpec) -> int:
    return spec.kernel_size ** (2 if spec.grid is not None else 1)


def conv_params(spec: MixerSpec) -> int:
    d = spec.dim
    return 2 * d + (d * _taps(spec) + d) + (d * d + d)


def conv_flops(spec: MixerSpec) -> int:
    d, t = spec.dim, spec.tokens
    return 2 * t * d * _taps(spec) + 2 * t * d * d
