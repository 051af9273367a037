"""Stems (input -> tokens), stage transitions and heads, in their static form.

Image stems: resize to the arch's resolution, then either non-overlapping patches plus a
learned positional term at this grid (the supernet interpolates its max-grid table; the
exported stem stores the interpolated one), or an overlapping 3x3 convolution with a stride
choice and GELU (ResNet / ConvNeXt-style; no positional table). Sequence stem: byte /
token embedding plus learned positions (the first ``T`` of them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels.specs import DownsampleSpec, Grid, HeadSpec, StemSpec


def resize_images(x: Tensor, resolution: int) -> Tensor:
    """x: (B, C, H, W) -> (B, C, resolution, resolution), bilinear; identity if already there."""
    if x.shape[-2] == resolution and x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def image_stem_forward(x: Tensor, patch_weight: Tensor, patch_bias: Tensor | None,
                       pos_embed: Tensor, *, resolution: int) -> Tensor:
    """x: (B, C, H, W) -> (B, G*G, D); patch_weight (D, C, p, p); pos_embed (1, G*G, D)."""
    x = resize_images(x, resolution)
    B, C, H, W = x.shape
    p = patch_weight.shape[-1]
    # a stride-p p x p convolution is a matmul on the patches: one GEMM on every device,
    # no per-shape convolution plans
    patches = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)  # (B,G,G,C,p,p)
    patches = patches.reshape(B, (H // p) * (W // p), C * p * p)  # (B, T, C*p*p)
    h = F.linear(patches, patch_weight.reshape(patch_weight.shape[0], -1), patch_bias)
    return h + pos_embed  # (B, T, D)


def patches3x3(x: Tensor, stride: int) -> Tensor:
    """x: (B, C, H, W) -> (B, H'*W', C*9): the 3x3 windows (padding 1) of a stride-``stride``
    convolution, in ``F.unfold``'s column order (C, kh, kw), so ``cols @ w.reshape(D, -1).T``
    is the convolution. Built from strided views and one copy: ``F.unfold`` launches one
    im2col kernel per image on CUDA (256 launches at batch 256) and loops on the CPU."""
    B, C, H, W = x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    if torch.onnx.is_in_onnx_export():
        return _patches3x3_sliced(xp, stride)
    win = xp.unfold(2, 3, stride).unfold(3, 3, stride)  # (B, C, H', W', 3, 3) view
    h, w = win.shape[2], win.shape[3]
    return win.permute(0, 2, 3, 1, 4, 5).reshape(B, h * w, C * 9)


def _patches3x3_sliced(xp: Tensor, stride: int) -> Tensor:
    """`patches3x3` of the padded ``xp`` (B, C, H+2, W+2) from nine strided slices: the form
    the ONNX exporter accepts (it has no ``Tensor.unfold`` with a symbolic batch)."""
    B, C = xp.shape[0], xp.shape[1]
    h, w = (xp.shape[2] - 3) // stride + 1, (xp.shape[3] - 3) // stride + 1
    taps = [xp[:, :, i:i + stride * (h - 1) + 1:stride, j:j + stride * (w - 1) + 1:stride]
            for i in range(3) for j in range(3)]  # 9 x (B, C, h, w)
    cols = torch.stack(taps, dim=2)  # (B, C, 9, h, w)
    return cols.permute(0, 3, 4, 1, 2).reshape(B, h * w, C * 9)


def conv_stem_forward(x: Tensor, conv_weight: Tensor, conv_bias: Tensor | None, *,
                      resolution: int, stride: int) -> Tensor:
    """x: (B, C, H, W) -> (B, G*G, D) with G = ceil(resolution / stride); conv_weight (D, C, 3, 3).

    Overlapping 3x3 windows keep the fine strokes that a 4x4 patch stem averages away."""
    x = resize_images(x, resolution)
    return F.gelu(conv3x3_tokens(x, conv_weight, conv_bias, stride=stride))


def conv3x3_tokens(x: Tensor, weight: Tensor, bias: Tensor | None, *, stride: int,
                   im2col: bool | None = None) -> Tensor:
    """x: (B, C, H, W), weight (D, C, 3, 3) -> (B, H'*W', D): a padding-1 3x3 convolution
    laid out as tokens.

    Two paths with the same values (float rounding apart): im2col + one GEMM (`patches3x3`,
    the reference, and the CUDA path: no per-shape convolution plans while an elastic
    supernet meets every resolution x stride x width) and ``F.conv2d`` (``im2col=False``,
    the CPU default: oneDNN's direct convolution skips the pad, the window copy and the
    reshape; whole small MNIST subnets run 1.07x faster at batch 1 and 1.41x at batch 256
    on one core, BENCHMARKS.md). ``im2col=None`` picks by ``x``'s device."""
    if im2col is None:
        im2col = x.device.type != "cpu"
    if im2col:
        cols = patches3x3(x, stride)  # (B, T', C*9)
        return F.linear(cols, weight.reshape(weight.shape[0], -1), bias)
    return F.conv2d(x, weight, bias, stride=stride, padding=1).flatten(2).transpose(1, 2)


def sequence_stem_forward(ids: Tensor, embed_weight: Tensor, pos_embed: Tensor) -> Tensor:
    """ids: (B, T) int64 with T <= len(pos_embed) -> (B, T, D)."""
    t = ids.shape[1]
    return F.embedding(ids, embed_weight) + pos_embed[:t]


def downsample_forward(x: Tensor, norm_weight: Tensor, norm_bias: Tensor, proj_weight: Tensor,
                       proj_bias: Tensor | None, *, grid: Grid) -> Tensor:
    """(B, T, Din) -> (B, T', Dout): 3x3 stride-2 conv over the grid, or a linear map.

    proj_weight: (Dout, Din, 3, 3) for a grid, (Dout, Din) for sequences. On a grid the tokens
    enter the convolution as a (B, Din, H, W) view of their own memory (channels-last
    strides, as in `kernels.conv.conv_forward`), not a transposed copy; the channels-last
    output of ``F.conv2d`` is then already (B, T', Dout) in memory."""
    B, T, D = x.shape
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    if grid is None:
        return F.linear(h, proj_weight, proj_bias)
    h = h.view(B, grid[0], grid[1], D).permute(0, 3, 1, 2)  # (B, Din, H, W), a view
    return conv3x3_tokens(h, proj_weight, proj_bias, stride=2)  # (B, T', Dout)


def head_forward(x: Tensor, norm_weight: Tensor, norm_bias: Tensor, fc_weight: Tensor,
                 fc_bias: Tensor, *, pool: bool) -> Tensor:
    """(B, T, D) -> (B, out) with mean pooling (images) or (B, T, out) per token (sequences)."""
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    if pool:
        h = h.mean(dim=1)  # (B, D)
    return F.linear(h, fc_weight, fc_bias)


class ImageStem(nn.Module):
    def __init__(self, spec: StemSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        p = spec.patch_size
        self.patch = nn.Conv2d(spec.in_channels, spec.dim, p, stride=p, **kw)
        self.pos_embed = nn.Parameter(torch.zeros(1, spec.tokens, spec.dim, **kw))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return image_stem_forward(x, self.patch.weight, self.patch.bias, self.pos_embed,
                                  resolution=self.spec.resolution)


class ConvStem(nn.Module):
    """Static overlapping convolutional stem of one ``StemSpec(stem="conv")``."""

    def __init__(self, spec: StemSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        self.conv = nn.Conv2d(spec.in_channels, spec.dim, 3, stride=spec.stride, padding=1,
                              device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return conv_stem_forward(x, self.conv.weight, self.conv.bias,
                                 resolution=self.spec.resolution, stride=self.spec.stride)


class SequenceStem(nn.Module):
    def __init__(self, spec: StemSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        self.embed = nn.Embedding(spec.vocab_size, spec.dim, **kw)
        self.pos_embed = nn.Parameter(torch.zeros(spec.tokens, spec.dim, **kw))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:
        return sequence_stem_forward(ids[:, : self.spec.tokens], self.embed.weight,
                                     self.pos_embed)


class Downsample(nn.Module):
    def __init__(self, spec: DownsampleSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(spec.in_dim, **kw)
        if spec.grid is None:
            self.proj: nn.Linear | nn.Conv2d = nn.Linear(spec.in_dim, spec.out_dim, **kw)
        else:
            self.proj = nn.Conv2d(spec.in_dim, spec.out_dim, 3, stride=2, padding=1, **kw)

    def forward(self, x: Tensor) -> Tensor:
        return downsample_forward(x, self.norm.weight, self.norm.bias, self.proj.weight,
                                  self.proj.bias, grid=self.spec.grid)


class Head(nn.Module):
    def __init__(self, spec: HeadSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(spec.dim, **kw)
        self.fc = nn.Linear(spec.dim, spec.num_outputs, **kw)

    def forward(self, x: Tensor) -> Tensor:
        return head_forward(x, self.norm.weight, self.norm.bias, self.fc.weight, self.fc.bias,
                            pool=self.spec.modality == "image")


def stem_params(spec: StemSpec) -> int:
    if spec.modality == "image" and spec.stem == "conv":
        return spec.dim * spec.in_channels * 9 + spec.dim
    if spec.modality == "image":
        return spec.dim * spec.in_channels * spec.patch_size**2 + spec.dim + spec.tokens * spec.dim
    return spec.vocab_size * spec.dim + spec.tokens * spec.dim


def stem_flops(spec: StemSpec) -> int:
    if spec.modality == "image" and spec.stem == "conv":
        return 2 * spec.tokens * spec.dim * spec.in_channels * 9
    if spec.modality == "image":
        return 2 * spec.tokens * spec.dim * spec.in_channels * spec.patch_size**2
    return 0  # an embedding lookup is a gather, not a matmul


def downsample_params(spec: DownsampleSpec) -> int:
    taps = 1 if spec.grid is None else 9
    return 2 * spec.in_dim + spec.in_dim * spec.out_dim * taps + spec.out_dim


def downsample_flops(spec: DownsampleSpec) -> int:
    taps = 1 if spec.grid is None else 9
    return 2 * spec.out_tokens * spec.in_dim * spec.out_dim * taps


def head_params(spec: HeadSpec) -> int:
    return 2 * spec.dim + spec.dim * spec.num_outputs + spec.num_outputs


def head_flops(spec: HeadSpec) -> int:
    rows = 1 if spec.modality == "image" else spec.tokens
    return 2 * rows * spec.dim * spec.num_outputs
