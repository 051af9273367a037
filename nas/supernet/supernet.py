"""`Supernet`: one set of weights for every arch of a space.

Layout: a stem, then per stage ``max_depth`` slots each holding one elastic layer per
allowed mixer (elastic depth runs the first ``depth`` slots), elastic transitions between
stages, and a head. ``forward(x, arch)`` walks the arch's layer specs (from
``space.layers(arch)``) through the matching elastic modules.
"""

from __future__ import annotations

import hashlib
import json
from typing import cast

from torch import Tensor, nn

from kernels import LayerSpec, MixerSpec, StemSpec, parse_stem
from nas.supernet.elastic import ElasticLayer
from nas.supernet.elastic_io import (
    ElasticDownsample,
    ElasticHead,
    ElasticImageStem,
    ElasticSequenceStem,
)
from nas.supernet.elastic_mixers import ElasticAttention, ElasticConv, ElasticGLUMLP, ElasticSSM
from nas.supernet.regularize import Regularizer
from search_spaces import Arch, SearchSpace, glu_hidden


def space_fingerprint(space: SearchSpace) -> str:
    """Hash of the space description: a checkpoint only loads into the same space."""
    return hashlib.sha256(json.dumps(space.describe(), sort_keys=True).encode()).hexdigest()[:16]


class Supernet(nn.Module):
    """Weight-sharing supernet of ``space``.

    Example::

        net = Supernet(get_space("hybrid_vit_tiny"))
        arch = net.space.sample(np.random.default_rng(0))
        logits = net(net.space.example_input(arch, 8), arch)  # (8, 10)
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        widths = [s.width.max for s in space.stages]
        if space.modality == "image":
            stems = [parse_stem(s or "patch")[0] for s in space.stems()]
            max_side = space.resolution.max // space.patch_size
            self.stem: ElasticLayer = ElasticImageStem(
                space.in_channels, space.patch_size, widths[0], max(max_side, 1),
                patch="patch" in stems, conv="conv" in stems)
        else:
            self.stem = ElasticSequenceStem(space.vocab_size, widths[0], space.resolution.max)
        two_d = space.modality == "image"
        self.downsamples = nn.ModuleList(
            ElasticDownsample(widths[i - 1], widths[i], two_d=two_d)
            for i in range(1, len(space.stages)))
        self.stages = nn.ModuleList()
        for stage, width in zip(space.stages, widths):
            slots = nn.ModuleList()
            for _ in range(stage.depth.max):
                slot = nn.ModuleDict()
                for mixer in stage.mixers:
                    if mixer == "attention":
                        slot[mixer] = ElasticAttention(width)
                    elif mixer == "glu_mlp":
                        slot[mixer] = ElasticGLUMLP(width, glu_hidden(width,
                                                                      stage.hidden_ratio.max))
                    elif mixer == "ssm":
                        slot[mixer] = ElasticSSM(width, space.ssm_head_dim, space.ssm_state_size)
                    else:
                        slot[mixer] = ElasticConv(width, stage.kernel_size.max, two_d=two_d)
                slots.append(slot)
            self.stages.append(slots)
        self.head = ElasticHead(widths[-1], space.num_outputs)

    def plan(self, arch: Arch) -> list[tuple[ElasticLayer, LayerSpec]]:
        """(elastic module, layer spec) pairs in execution order; validates ``arch``."""
        specs = self.space.layers(arch)
        modules: list[ElasticLayer] = [self.stem]
        for i, stage in enumerate(arch.stages):
            if i > 0:
                modules.append(cast(ElasticLayer, self.downsamples[i - 1]))
            slots = cast(nn.ModuleList, self.stages[i])  # one ModuleDict of mixers per slot
            modules += [cast(ElasticLayer, cast(nn.ModuleDict, slots[j])[layer.mixer])
                        for j, layer in enumerate(stage.layers)]
        modules.append(self.head)
        return list(zip(modules, specs))

    def forward(self, x: Tensor, arch: Arch, *, regularizer: Regularizer | None = None,
                ) -> Tensor:
        """x: images (B, C, H, W) (resized to the arch's resolution) or token ids (B, T)
        (the first ``arch.resolution`` used) -> logits (B, classes) or (B, T', vocab).

        ``regularizer`` (training only) applies dropout to the stem output and stochastic
        depth / dropout to every residual mixer branch; None is the plain forward that the
        exported model reproduces."""
        plan = self.plan(arch)
        if regularizer is None or not regularizer.active:
            for module, spec in plan:
                x = module(x, spec)
            return x
        layers = sum(isinstance(spec, MixerSpec) for _, spec in plan)
        index = 0
        for module, spec in plan:
            y = module(x, spec)
            if isinstance(spec, MixerSpec):
                y = regularizer.branch(x, y, index=index, layers=layers)
                index += 1
            elif isinstance(spec, StemSpec):
                y = regularizer.embed(y)
            x = y
        return x

    def fingerprint(self) -> str:
        return space_fingerprint(self.space)
