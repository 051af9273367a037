"""Elastic versions of the four token mixers (prefix slices of max-size weights).

Width ``d`` takes the first ``d`` channels everywhere (so the first ``d / head_dim`` heads);
the GLU hidden size takes the first ``hidden`` units; the conv kernel takes the centre
``k x k`` taps of the max kernel (the last ``k`` taps for a causal 1-D kernel).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from kernels import MixerSpec, attention_forward, conv_forward, glu_mlp_forward, ssm_forward
from kernels.ssm.layer import init_ssm_parameters
from nas.supernet.elastic import ElasticLayer, init_linear_


class _ElasticNormMixin:
    norm_weight: nn.Parameter
    norm_bias: nn.Parameter

    def _norm(self, d: int) -> dict[str, Tensor]:
        return {"norm.weight": self.norm_weight[:d], "norm.bias": self.norm_bias[:d]}


def _norm_params(dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    return nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))


class ElasticAttention(_ElasticNormMixin, ElasticLayer):
    kernel = staticmethod(attention_forward)

    def __init__(self, max_dim: int) -> None:
        super().__init__()
        self.norm_weight, self.norm_bias = _norm_params(max_dim)
        self.qkv_weight = nn.Parameter(torch.empty(3, max_dim, max_dim))  # [q; k; v]
        self.qkv_bias = nn.Parameter(torch.zeros(3, max_dim))
        self.proj_weight = nn.Parameter(torch.empty(max_dim, max_dim))
        self.proj_bias = nn.Parameter(torch.zeros(max_dim))
        init_linear_(self.qkv_weight)
        init_linear_(self.proj_weight)

    def active_weight(self, spec: MixerSpec) -> dict[str, Tensor]:
        d = spec.dim
        return {**self._norm(d),
                "qkv.weight": self.qkv_weight[:, :d, :d].reshape(3 * d, d),
                "qkv.bias": self.qkv_bias[:, :d].reshape(3 * d),
                "proj.weight": self.proj_weight[:d, :d], "proj.bias": self.proj_bias[:d]}

    def kernel_options(self, spec: MixerSpec) -> dict[str, Any]:
        return {"head_dim": spec.head_dim, "causal": spec.causal}


class ElasticGLUMLP(_ElasticNormMixin, ElasticLayer):
    kernel = staticmethod(glu_mlp_forward)

    def __init__(self, max_dim: int, max_hidden: int) -> None:
        super().__init__()
        self.norm_weight, self.norm_bias = _norm_params(max_dim)
        self.gate_up_weight = nn.Parameter(torch.empty(2, max_hidden, max_dim))  # [gate; up]
        self.down_weight = nn.Parameter(torch.empty(max_dim, max_hidden))
        init_linear_(self.gate_up_weight)
        init_linear_(self.down_weight)

    def active_weight(self, spec: MixerSpec) -> dict[str, Tensor]:
        d, h = spec.dim, spec.hidden
        return {**self._norm(d),
                "gate_up.weight": self.gate_up_weight[:, :h, :d].reshape(2 * h, d),
                "down.weight": self.down_weight[:d, :h]}


class ElasticConv(_ElasticNormMixin, ElasticLayer):
    kernel = staticmethod(conv_forward)

    def __init__(self, max_dim: int, max_kernel: int, *, two_d: bool) -> None:
        super().__init__()
        self.two_d = two_d
        self.max_kernel = max_kernel
        taps = (max_kernel, max_kernel) if two_d else (max_kernel,)
        self.norm_weight, self.norm_bias = _norm_params(max_dim)
        self.dw_weight = nn.Parameter(torch.empty(max_dim, 1, *taps))
        self.dw_bias = nn.Parameter(torch.zeros(max_dim))
        self.pw_weight = nn.Parameter(torch.empty(max_dim, max_dim))
        self.pw_bias = nn.Parameter(torch.zeros(max_dim))
        init_linear_(self.dw_weight, std=max_kernel ** (-1.0 if two_d else -0.5))
        init_linear_(self.pw_weight)

    def active_weight(self, spec: MixerSpec) -> dict[str, Tensor]:
        d, k, kmax = spec.dim, spec.kernel_size, self.max_kernel
        if self.two_d:
            lo = (kmax - k) // 2
            dw = self.dw_weight[:d, :, lo:lo + k, lo:lo + k]  # centre k x k taps
        else:
            dw = self.dw_weight[:d, :, kmax - k:]  # the k most recent taps
        return {**self._norm(d), "dw.weight": dw, "dw.bias": self.dw_bias[:d],
                "pw.weight": self.pw_weight[:d, :d], "pw.bias": self.pw_bias[:d]}

    def kernel_options(self, spec: MixerSpec) -> dict[str, Any]:
        return {"grid": spec.grid}


class ElasticSSM(_ElasticNormMixin, ElasticLayer):
    kernel = staticmethod(ssm_forward)

    def __init__(self, max_dim: int, head_dim: int, state_size: int) -> None:
        super().__init__()
        heads = max_dim // head_dim
        self.norm_weight, self.norm_bias = _norm_params(max_dim)
        self.x_proj_weight = nn.Parameter(torch.empty(max_dim, max_dim))
        self.z_proj_weight = nn.Parameter(torch.empty(max_dim, max_dim))
        self.bc_proj_weight = nn.Parameter(torch.empty(2, state_size, max_dim))  # [B; C]
        self.dt_proj_weight = nn.Parameter(torch.empty(heads, max_dim))
        self.dt_proj_bias = nn.Parameter(torch.empty(heads))
        self.a_log = nn.Parameter(torch.empty(heads))
        self.d_skip = nn.Parameter(torch.empty(heads))
        self.out_proj_weight = nn.Parameter(torch.empty(max_dim, max_dim))
        for w in (self.x_proj_weight, self.z_proj_weight, self.bc_proj_weight,
                  self.dt_proj_weight, self.out_proj_weight):
            init_linear_(w)
        init_ssm_parameters(self.a_log, self.d_skip, self.dt_proj_bias)

    def active_weight(self, spec: MixerSpec) -> dict[str, Tensor]:
        d, n = spec.dim, spec.state_size
        h = d // spec.head_dim
        return {**self._norm(d),
                "x_proj.weight": self.x_proj_weight[:d, :d],
                "z_proj.weight": self.z_proj_weight[:d, :d],
                "bc_proj.weight": self.bc_proj_weight[:, :n, :d].reshape(2 * n, d),
                "dt_proj.weight": self.dt_proj_weight[:h, :d],
                "dt_proj.bias": self.dt_proj_bias[:h],
                "a_log": self.a_log[:h], "d_skip": self.d_skip[:h],
                "out_proj.weight": self.out_proj_weight[:d, :d]}

    def kernel_options(self, spec: MixerSpec) -> dict[str, Any]:
        return {"head_dim": spec.head_dim, "bidirectional": not spec.causal}
