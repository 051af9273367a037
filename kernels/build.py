"""Build, count and describe any layer spec: the one dispatch point over layer kinds."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from kernels.attention import AttentionLayer, attention_flops, attention_params
from kernels.conv import ConvLayer, conv_flops, conv_params
from kernels.glu_mlp import GLUMLPLayer, glu_mlp_flops, glu_mlp_params
from kernels.specs import DownsampleSpec, HeadSpec, LayerSpec, MixerSpec, StemSpec
from kernels.ssm.layer import SSMLayer, ssm_flops, ssm_params
from kernels.stem import (
    ConvStem,
    Downsample,
    Head,
    ImageStem,
    SequenceStem,
    downsample_flops,
    downsample_params,
    head_flops,
    head_params,
    stem_flops,
    stem_params,
)

# mixer name -> (static layer class, params formula, FLOPs formula)
MIXER_KERNELS: dict[str, tuple[type[nn.Module], Callable[[MixerSpec], int],
                               Callable[[MixerSpec], int]]] = {
    "attention": (AttentionLayer, attention_params, attention_flops),
    "glu_mlp": (GLUMLPLayer, glu_mlp_params, glu_mlp_flops),
    "ssm": (SSMLayer, ssm_params, ssm_flops),
    "conv": (ConvLayer, conv_params, conv_flops),
}


def build_layer(spec: LayerSpec, *, device=None, dtype=None) -> nn.Module:
    """The static `nn.Module` of one spec; shapes are documented on the spec classes."""
    kw = {"device": device, "dtype": dtype}
    if isinstance(spec, MixerSpec):
        return MIXER_KERNELS[spec.mixer][0](spec, **kw)
    if isinstance(spec, StemSpec):
        if spec.modality == "sequence":
            return SequenceStem(spec, **kw)
        return (ConvStem if spec.stem == "conv" else ImageStem)(spec, **kw)
    if isinstance(spec, DownsampleSpec):
        return Downsample(spec, **kw)
    if isinstance(spec, HeadSpec):
        return Head(spec, **kw)
    raise ValueError(f"not a layer spec: {spec!r}")


def layer_params(spec: LayerSpec) -> int:
    """Exact parameter count of `build_layer(spec)`."""
    if isinstance(spec, MixerSpec):
        return MIXER_KERNELS[spec.mixer][1](spec)
    if isinstance(spec, StemSpec):
        return stem_params(spec)
    if isinstance(spec, DownsampleSpec):
        return downsample_params(spec)
    if isinstance(spec, HeadSpec):
        return head_params(spec)
    raise ValueError(f"not a layer spec: {spec!r}")


def layer_flops(spec: LayerSpec) -> int:
    """FLOPs per sample as FlopCounterMode counts them (2 x MACs of matmuls/convs, SDPA math)."""
    if isinstance(spec, MixerSpec):
        return MIXER_KERNELS[spec.mixer][2](spec)
    if isinstance(spec, StemSpec):
        return stem_flops(spec)
    if isinstance(spec, DownsampleSpec):
        return downsample_flops(spec)
    if isinstance(spec, HeadSpec):
        return head_flops(spec)
    raise ValueError(f"not a layer spec: {spec!r}")


class StaticModel(nn.Module):
    """A chain of static layers: the exported, standalone form of one arch.

    ``forward(x)``: images (B, C, H, W) -> logits (B, classes); token ids (B, T) -> (B, T, V).
    """

    arch: Any  # the search_spaces Arch it was exported from, set by nas.export (not by kernels)

    def __init__(self, specs: list[LayerSpec], *, device=None, dtype=None) -> None:
        super().__init__()
        self.specs = list(specs)
        self.layers = nn.ModuleList(build_layer(s, device=device, dtype=dtype) for s in specs)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
