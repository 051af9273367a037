"""SwiGLU channel MLP mixer: ``x + down(silu(gate(norm(x))) * up(norm(x)))``.

Token-wise, so it is the same for images and sequences; ``hidden`` is the elastic knob
(hidden ratio x width in the search spaces).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kernels.residual import add_linear
from kernels.specs import MixerSpec


def glu_mlp_forward(
    x: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    gate_up_weight: Tensor,
    down_weight: Tensor,
) -> Tensor:
    """x: (B, T, D) -> (B, T, D). gate_up_weight: (2 * hidden, D) laid out as [gate; up].

    The residual add rides in the down projection's GEMM where that is the same sum
    (`kernels.residual.add_linear`)."""
    h = F.layer_norm(x, norm_weight.shape, norm_weight, norm_bias)
    gate, up = F.linear(h, gate_up_weight).chunk(2, dim=-1)  # each (B, T, hidden)
    return add_linear(x, F.silu(gate) * up, down_weight)


class GLUMLPLayer(nn.Module):
    """Static SwiGLU layer of one `MixerSpec` (no biases in the projections, as in LLaMA)."""

    def __init__(self, spec: MixerSpec, *, device=None, dtype=None) -> None:
        super().__init__()
        if spec.mixer != "glu_mlp":
            raise ValueError(f"GLUMLPLayer needs a glu_mlp spec, got {spec.mixer!r}")
        self.spec = spec
        kw = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(spec.dim, **kw)
        self.gate_up = nn.Linear(spec.dim, 2 * spec.hidden, bias=False, **kw)
        self.down = nn.Linear(spec.hidden, spec.dim, bias=False, **kw)

    def forward(self, x: Tensor) -> Tensor:
        return glu_mlp_forward(x, self.norm.weight, self.norm.bias, self.gate_up.weight,
                               self.down.weight)


def glu_mlp_params(spec: MixerSpec) -> int:
    return 2 * spec.dim + 3 * spec.dim * spec.hidden


def glu_mlp_flops(spec: MixerSpec) -> int:
    return 2 * spec.tokens * spec.dim * spec.hidden * 3
