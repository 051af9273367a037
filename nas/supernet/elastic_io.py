"""Elastic stems, stage transitions and heads.

The image stem keeps one positional table at the largest grid and resizes it bilinearly
to the arch's grid (the exported stem stores the resized table); the sequence stem slices
the first ``T`` learned positions.
"""

from __future__ import annotations

from typing import Any, Callable, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels import (
    DownsampleSpec,
    HeadSpec,
    StemSpec,
    conv_stem_forward,
    downsample_forward,
    head_forward,
    image_stem_forward,
    sequence_stem_forward,
)
from nas.supernet.elastic import ElasticLayer, as_kwargs, init_linear_, prefix


def resize_positions(pos: Tensor, grid: tuple[int, int], out_grid: tuple[int, int]) -> Tensor:
    """pos: (1, H*W, D) on ``grid`` -> (1, H'*W', D) on ``out_grid`` (bilinear)."""
    if grid == out_grid:
        return pos
    d = pos.shape[-1]
    img = pos.reshape(1, grid[0], grid[1], d).permute(0, 3, 1, 2)  # (1, D, H, W)
    img = F.interpolate(img, size=out_grid, mode="bilinear", align_corners=False)
    return img.flatten(2).transpose(1, 2)  # (1, H'*W', D)


class ElasticImageStem(ElasticLayer[StemSpec]):
    """Patch stem and / or overlapping conv stem of an image space.

    The patch stem holds max-width patch weights and one positional table at the largest
    patch grid; the conv stem holds one max-width 3x3 kernel shared by every stride (a
    stride-2 stem runs the stride-1 stem's filters on every other position), as
    Once-for-All shares kernels across elastic choices."""

    kernel = staticmethod(image_stem_forward)

    def __init__(self, in_channels: int, patch_size: int, max_dim: int, max_side: int, *,
                 patch: bool = True, conv: bool = False) -> None:
        super().__init__()
        if not (patch or conv):
            raise ValueError("ElasticImageStem needs the patch stem, the conv stem or both")
        self.max_grid = (max_side, max_side)
        if patch:
            self.patch_weight = nn.Parameter(torch.empty(max_dim, in_channels, patch_size,
                                                         patch_size))
            self.patch_bias = nn.Parameter(torch.zeros(max_dim))
            self.pos_embed = nn.Parameter(torch.empty(1, max_side * max_side, max_dim))
            init_linear_(self.patch_weight)
            init_linear_(self.pos_embed)
        if conv:
            self.conv_weight = nn.Parameter(torch.empty(max_dim, in_channels, 3, 3))
            self.conv_bias = nn.Parameter(torch.zeros(max_dim))
            # fan-in init (as nn.Conv2d's default scale): a 1-channel 3x3 stem has fan-in 9
            nn.init.trunc_normal_(self.conv_weight, std=(in_channels * 9) ** -0.5)

    def active_weight(self, spec: StemSpec) -> dict[str, Tensor]:
        d = spec.dim
        if spec.stem == "conv":
            return {"conv.weight": prefix(self.conv_weight, d),
                    "conv.bias": prefix(self.conv_bias, d)}
        grid = cast("tuple[int, int]", spec.grid)  # an image StemSpec always has a grid
        return {"patch.weight": prefix(self.patch_weight, d),
                "patch.bias": prefix(self.patch_bias, d),
                "pos_embed": resize_positions(prefix(self.pos_embed, 1, self.pos_embed.shape[1], d),
                                              self.max_grid, grid)}

    def kernel_options(self, spec: StemSpec) -> dict[str, Any]:
        if spec.stem == "conv":
            return {"resolution": spec.resolution, "stride": spec.stride}
        return {"resolution": spec.resolution}

    def forward(self, x: Tensor, spec: StemSpec) -> Tensor:
        kernel: Callable[..., Tensor] = (conv_stem_forward if spec.stem == "conv"
                                         else image_stem_forward)
        return kernel(x, **as_kwargs(self.active_weight(spec)), **self.kernel_options(spec))


class ElasticSequenceStem(ElasticLayer[StemSpec]):
    kernel = staticmethod(sequence_stem_forward)

    def __init__(self, vocab_size: int, max_dim: int, max_tokens: int) -> None:
        super().__init__()
        self.embed_weight = nn.Parameter(torch.empty(vocab_size, max_dim))
        self.pos_embed = nn.Parameter(torch.empty(max_tokens, max_dim))
        init_linear_(self.embed_weight)
        init_linear_(self.pos_embed)

    def active_weight(self, spec: StemSpec) -> dict[str, Tensor]:
        d, t = spec.dim, spec.tokens
        return {"embed.weight": prefix(self.embed_weight, self.embed_weight.shape[0], d),
                "pos_embed": prefix(self.pos_embed, t, d)}

    def forward(self, x: Tensor, spec: StemSpec) -> Tensor:
        w = self.active_weight(spec)
        return sequence_stem_forward(x[:, : spec.tokens], w["embed.weight"], w["pos_embed"])


class ElasticDownsample(ElasticLayer[DownsampleSpec]):
    kernel = staticmethod(downsample_forward)

    def __init__(self, max_in: int, max_out: int, *, two_d: bool) -> None:
        super().__init__()
        self.norm_weight = nn.Parameter(torch.ones(max_in))
        self.norm_bias = nn.Parameter(torch.zeros(max_in))
        taps = (3, 3) if two_d else ()
        self.proj_weight = nn.Parameter(torch.empty(max_out, max_in, *taps))
        self.proj_bias = nn.Parameter(torch.zeros(max_out))
        init_linear_(self.proj_weight)

    def active_weight(self, spec: DownsampleSpec) -> dict[str, Tensor]:
        i, o = spec.in_dim, spec.out_dim
        return {"norm.weight": prefix(self.norm_weight, i), "norm.bias": prefix(self.norm_bias, i),
                "proj.weight": prefix(self.proj_weight, o, i),
                "proj.bias": prefix(self.proj_bias, o)}

    def kernel_options(self, spec: DownsampleSpec) -> dict[str, Any]:
        return {"grid": spec.grid}


class ElasticHead(ElasticLayer[HeadSpec]):
    kernel = staticmethod(head_forward)

    def __init__(self, max_dim: int, num_outputs: int) -> None:
        super().__init__()
        self.norm_weight = nn.Parameter(torch.ones(max_dim))
        self.norm_bias = nn.Parameter(torch.zeros(max_dim))
        self.fc_weight = nn.Parameter(torch.empty(num_outputs, max_dim))
        self.fc_bias = nn.Parameter(torch.zeros(num_outputs))
        init_linear_(self.fc_weight)

    def active_weight(self, spec: HeadSpec) -> dict[str, Tensor]:
        d = spec.dim
        return {"norm.weight": prefix(self.norm_weight, d), "norm.bias": prefix(self.norm_bias, d),
                "fc.weight": prefix(self.fc_weight, self.fc_weight.shape[0], d),
                "fc.bias": self.fc_bias}

    def kernel_options(self, spec: HeadSpec) -> dict[str, Any]:
        return {"pool": spec.modality == "image"}
