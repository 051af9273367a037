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
from nas.supernet.elastic import ElasticLayer, init_linear_, prefix


class _ElasticNormMixin:
    norm_weight: nn.Parameter
    norm_bias: nn.Parameter

    def _norm(self, d: int) -> dict[str, Tensor]:
        return {"norm.weight": prefix(self.norm_weight, d), "norm.bias": prefix(self.norm_bias, d)}


def _norm_params(dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    return nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))


class ElasticAttention(_ElasticNormMixin, ElasticLayer[MixerSpec]):
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
                "qkv.weight": prefix(self.qkv_weight, 3, d, d).reshape(3 * d, d),
                "qkv.bias": prefix(self.qkv_bias, 3, d).reshape(3 * d),
                "proj.weight": prefix(self.proj_weight, d, d),
                "proj.bias": prefix(self.proj_bias, d)}

    def kernel_options(self, spec: MixerSpec) -> dict[str, Any]:
        return {"head_dim": spec.head_dim, "causal": spec.causal}


class ElasticGLUMLP(_ElasticNormMixin, ElasticLayer[MixerSpec]):
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
                "gate_up.weight": prefix(self.gate_up_weight, 2, h, d).reshape(2 * h, d),
                "down.weight": prefix(self.down_weight, d, h)}


class ElasticConv(_ElasticNormMixin, ElasticLayer[MixerSpec]):
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
            dw = prefix(self.dw_weight, d)[:, :, lo:lo + k, lo:lo + k] if k < kmax else prefix(
                self.dw_weight, d)  # centre k x k taps
        else:
            dw = prefix(self.dw_weight, d)[:, :, kmax - k:]  # the k most recent taps
        return {**self._norm(d), "dw.weight": dw, "dw.bias": prefix(self.dw_bias, d),
                "pw.weight": prefix(self.pw_weight, d, d), "pw.bias": prefix(self.pw_bias, d)}

    def kernel_options(self, spec: MixerSpec) -> dict[str, Any]:
        return {"grid": spec.grid}


class ElasticSSM(_ElasticNormMixin, ElasticLayer[MixerSpec]):
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
                "x_proj.weight": prefix(self.x_proj_weight, d, d),
                "z_proj.weight": prefix(self.z_proj_weight, d, d),
                "bc_proj.weight": prefix(self.bc_proj_weight, 2, n, d).reshape(2 * n, d),
                "dt_proj.weight": prefix(self.dt_proj_weight, h, d),
                "dt_proj.bias": prefix(self.dt_proj_bias, h),
                "a_log": prefix(self.a_log, h), "d_skip": prefix(self.d_skip, h),
                "out_proj.weight": prefix(self.out_proj_weight, d, d)}

    def kernel_options(self, spec: MixerSpec) -> dict[str, Any]:
        return {"head_dim": spec.head_dim, "bidirectional": not spec.causal}
