"""The SSM layer's output gate ``y * silu(z)``: one Triton kernel each way on the fast path.

In eager torch the gate is two kernels forward (``silu(z)``, then the product, keeping
``silu(z)`` for the backward) and three backward (both factors of the product, then silu's
derivative): eight passes over (tokens, width) tensors where one fused kernel each way needs
three forward (read y, z; write out) and five backward (read the gradient, y, z; write dy, dz).
At 8,192 tokens of width 768 in bf16 that is about 80 MB of memory traffic a layer call (#18).

`silu_gate` takes the fused kernels where `kernels.ssm.uses_triton_scan` says the Triton
scan runs (same switch: ``use_reference_scan``, ``NAS_SSM_REFERENCE``, ``NAS_SSM_TRITON``), and
`silu_gate_reference` (plain torch) elsewhere. The kernel computes in float32 and rounds once;
the reference rounds ``silu(z)`` to the input dtype first, so bf16 results differ in the last
bit, not more.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels.ssm.scan import uses_triton_scan
from kernels.ssm.triton_ssd import HAS_TRITON

if HAS_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _tile(M, E, BM: tl.constexpr, BE: tl.constexpr):
        rows = tl.program_id(0) * BM + tl.arange(0, BM)
        cols = tl.program_id(1) * BE + tl.arange(0, BE)
        mask = (rows[:, None] < M) & (cols[None, :] < E)
        return rows.to(tl.int64)[:, None], cols[None, :], mask

    @triton.jit
    def _gate_fwd_kernel(y_ptr, z_ptr, out_ptr, M, E, s_y, s_z, s_out,
                         BM: tl.constexpr, BE: tl.constexpr):
        """out = y * z * sigmoid(z) on one (BM, BE) tile of (M, E) row-strided matrices."""
        r, c, mask = _tile(M, E, BM, BE)
        y = tl.load(y_ptr + r * s_y + c, mask=mask, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + r * s_z + c, mask=mask, other=0.0).to(tl.float32)
        out = y * z * tl.sigmoid(z)
        tl.store(out_ptr + r * s_out + c, out.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _gate_bwd_kernel(g_ptr, y_ptr, z_ptr, dy_ptr, dz_ptr, M, E,
                         s_g, s_y, s_z, s_dy, s_dz, BM: tl.constexpr, BE: tl.constexpr):
        """dy = g silu(z), dz = g y silu'(z) with silu'(z) = s (1 + z (1 - s)), s = sigmoid(z)."""
        r, c, mask = _tile(M, E, BM, BE)
        g = tl.load(g_ptr + r * s_g + c, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + r * s_y + c, mask=mask, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + r * s_z + c, mask=mask, other=0.0).to(tl.float32)
        s = tl.sigmoid(z)
        tl.store(dy_ptr + r * s_dy + c, (g * z * s).to(dy_ptr.dtype.element_ty), mask=mask)
        dz = g * y * s * (1.0 + z * (1.0 - s))
        tl.store(dz_ptr + r * s_dz + c, dz.to(dz_ptr.dtype.element_ty), mask=mask)

_BM, _BE = 32, 128  # tile of the gate kernels: 4,096 elements, 16 per thread at 4 warps


def _grid(M: int, E: int) -> tuple[int, int]:
    return (triton.cdiv(M, _BM), triton.cdiv(E, _BE))


def _rows(t: Tensor) -> Tensor:
    """``t`` with unit column stride (a row-strided view is kept; anything else is copied)."""
    return t if t.stride(1) == 1 else t.contiguous()


class _SiluGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, z: Tensor) -> Tensor:  # type: ignore[override]
        y, z = _rows(y), _rows(z)
        M, E = y.shape
        out = y.new_empty(M, E)
        with torch.cuda.device(y.device) if y.is_cuda else nullcontext():
            _gate_fwd_kernel[_grid(M, E)](y, z, out, M, E, y.stride(0), z.stride(0),
                                          out.stride(0), BM=_BM, BE=_BE, num_warps=4)
        ctx.save_for_backward(y, z)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):  # type: ignore[override]
        y, z = ctx.saved_tensors
        g = _rows(g)
        M, E = y.shape
        dy, dz = y.new_empty(M, E), z.new_empty(M, E)
        with torch.cuda.device(y.device) if y.is_cuda else nullcontext():
            _gate_bwd_kernel[_grid(M, E)](g, y, z, dy, dz, M, E, g.stride(0), y.stride(0),
                                          z.stride(0), dy.stride(0), dz.stride(0),
                                          BM=_BM, BE=_BE, num_warps=4)
        return dy, dz


def silu_gate_reference(y: Tensor, z: Tensor) -> Tensor:
    """``y * silu(z)`` in plain torch (the reference of `silu_gate`)."""
    return y * F.silu(z)


def silu_gate(y: Tensor, z: Tensor) -> Tensor:
    """y, z: (M, E) on one device, z may be a row-strided view -> (M, E) ``y * silu(z)``.

    The fused Triton kernels where Triton is importable, y and z share a dtype and the SSM
    fast path runs (`uses_triton_scan`), else `silu_gate_reference` (which promotes mixed
    dtypes as torch does). Differentiable in both inputs.
    """
    if y.shape != z.shape or y.dim() != 2:
        raise ValueError(f"silu_gate: y and z must be (M, E) of one shape, got {tuple(y.shape)} "
                         f"and {tuple(z.shape)}")
    if HAS_TRITON and y.dtype == z.dtype and uses_triton_scan(y):
        return _SiluGate.apply(y, z)
    return silu_gate_reference(y, z)
