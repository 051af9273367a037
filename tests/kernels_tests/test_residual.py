"""`kernels.residual.add_linear`: the residual add inside the GEMM only where it is the same sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels import MixerSpec, build_layer
from kernels.residual import add_linear


def _inputs(dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, generator=g, dtype=dtype)
    h = torch.randn(2, 5, 12, generator=g, dtype=dtype)
    w = torch.randn(8, 12, generator=g, dtype=dtype)
    return x, h, w


def test_add_linear_equals_the_plain_sum_with_gradients() -> None:
    x, h, w = (t.double().requires_grad_() for t in _inputs())
    out = add_linear(x, h, w)
    ref = x + F.linear(h, w)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    grads = torch.autograd.grad(out, (x, h, w), cot)
    grads_ref = torch.autograd.grad(ref, (x, h, w), cot)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a non-contiguous residual (a transposed view) gives the same result
    xt = x.detach().transpose(0, 1).contiguous().transpose(0, 1)
    torch.testing.assert_close(add_linear(xt, h.detach(), w.detach()), ref.detach())


def test_under_autocast_the_residual_stream_keeps_its_dtype() -> None:
    """Under bf16 autocast the GEMM runs in bf16 but the float32 residual stays float32, as in
    ``x + linear(h)`` (a fused ``addmm`` would round the stream itself to bf16)."""
    x, h, w = _inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = add_linear(x, h, w)
        ref = x + F.linear(h, w)
    assert out.dtype == ref.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # mixed dtypes outside autocast: the plain (promoting) sum
    mixed = add_linear(x, h.bfloat16(), w.bfloat16())
    torch.testing.assert_close(mixed, x + F.linear(h.bfloat16(), w.bfloat16()), rtol=0, atol=0)


def test_layers_under_autocast_keep_a_float32_residual() -> None:
    """GLU-MLP and SSM layers (which end in `add_linear`) return float32 from a float32 input
    under CPU bf16 autocast, as the attention and conv layers do."""
    torch.manual_seed(0)
    x = torch.randn(2, 16, 32)
    for spec in (MixerSpec("glu_mlp", 32, 16, None, hidden=64),
                 MixerSpec("ssm", 32, 16, None, head_dim=8, state_size=4),
                 MixerSpec("attention", 32, 16, None, head_dim=8)):
        layer = build_layer(spec)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(x).dtype == torch.float32, spec.mixer
