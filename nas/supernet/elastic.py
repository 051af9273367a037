"""Base of every elastic layer: max-size weights, a pure slice, and an export.

``active_weight(spec)`` returns the sliced tensors keyed exactly like the state dict of
``kernels.build_layer(spec)``; ``forward`` feeds those slices to the same functional
kernel the static layer uses, and ``export`` copies them into the static layer. So the
supernet and the exported model run the same maths on the same numbers.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, Callable, Generic, TypeVar

import torch
from torch import Tensor, nn

from kernels import LayerSpec, build_layer


def as_kwargs(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """State-dict keys (``norm.weight``) -> kernel argument names (``norm_weight``)."""
    return {k.replace(".", "_"): v for k, v in weights.items()}


def prefix(weight: Tensor, *sizes: int) -> Tensor:
    """``weight[:sizes[0], :sizes[1], ...]``, or ``weight`` itself when nothing is cut (so
    the max-size subnet records no slice in autograd)."""
    if all(s == n for s, n in zip(sizes, weight.shape)):
        return weight
    return weight[tuple(slice(0, s) for s in sizes)]


def init_linear_(weight: Tensor, std: float = 0.02) -> None:
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


#: the layer spec an elastic layer takes (a stem takes a StemSpec, a mixer a MixerSpec...)
SpecT = TypeVar("SpecT", bound=LayerSpec)


class ElasticLayer(nn.Module, Generic[SpecT], metaclass=ABCMeta):
    """Holds the max-size weights of one layer slot (or one mixer of a slot)."""

    kernel: Callable[..., Tensor]

    @abstractmethod
    def active_weight(self, spec: SpecT) -> dict[str, Tensor]:
        """Views of the max-size weights for ``spec``: pure, no copies, no side effects."""

    def kernel_options(self, spec: SpecT) -> dict[str, Any]:
        """Keyword arguments of ``kernel`` other than the weights (grid, head size...)."""
        return {}

    def forward(self, x: Tensor, spec: SpecT) -> Tensor:
        return type(self).kernel(x, **as_kwargs(self.active_weight(spec)),
                                 **self.kernel_options(spec))

    @torch.no_grad()
    def export(self, spec: SpecT) -> nn.Module:
        """A static `kernels` layer for ``spec`` holding copies of the active weights."""
        ref = next(self.parameters())
        layer = build_layer(spec, device=ref.device, dtype=ref.dtype)
        layer.load_state_dict({k: v.detach().clone() for k, v in
                               self.active_weight(spec).items()}, strict=True)
        return layer
