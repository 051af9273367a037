"""Chunked SSD scan against the sequential reference: values, gradients, causality, FLOPs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from kernels.ssm import ssm_scan_chunked, ssm_scan_flops, ssm_scan_naive

NAMES = ("x", "dt", "A", "B", "C")


def make_inputs(
    batch: int, T: int, H: int, P: int, N: int, *, seed: int, dtype: torch.dtype = torch.float32,
    log_a_shift: float = 0.0, dt_shift: float = 0.0,
) -> list[Tensor]:
    """Realistic inputs: dt = softplus(randn + dt_shift), A = -exp(randn + log_a_shift)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x, B, C = randn(batch, T, H, P), randn(batch, T, N), randn(batch, T, N)
    dt = F.softplus(randn(batch, T, H) + dt_shift)
    A = -torch.exp(randn(H) + log_a_shift)
    return [t.to(dtype) for t in (x, dt, A, B, C)]


def rel_err(out: Tensor, ref: Tensor) -> float:
    """max |out - ref| / max |ref| (0 when both are exactly zero, e.g. dA at T = 1)."""
    diff = (out.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    return 0.0 if diff == 0.0 else diff / max(scale, 1e-30)


def values_and_grads(fn, inputs: list[Tensor], cotangent: Tensor) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    y = fn(*leaves)
    return [y.detach(), *torch.autograd.grad(y, leaves, cotangent)]


@pytest.mark.parametrize("T", [1, 63, 500])
@pytest.mark.parametrize("chunk_size", [16, 64])
def test_chunked_matches_naive_fp32_values_and_grads(T: int, chunk_size: int) -> None:
    inputs = make_inputs(2, T, 3, 5, 7, seed=T)
    cot = torch.randn(2, T, 3, 5, generator=torch.Generator().manual_seed(1))
    ref = values_and_grads(ssm_scan_naive, inputs, cot)
    out = values_and_grads(lambda *a: ssm_scan_chunked(*a, chunk_size=chunk_size), inputs, cot)
    for name, o, r in zip(("y", *NAMES), out, ref):
        assert o.shape == r.shape and o.dtype == torch.float32, name
        assert rel_err(o, r) <= 1e-4, f"{name}: rel err {rel_err(o, r):.2e}"


def test_chunked_matches_naive_fp64_tightly() -> None:
    inputs = make_inputs(2, 100, 2, 3, 4, seed=3, dtype=torch.float64)
    out = ssm_scan_chunked(*inputs, chunk_size=32)
    assert out.dtype == torch.float64
    assert rel_err(out, ssm_scan_naive(*inputs)) <= 1e-12


@pytest.mark.parametrize("t", [1, 10, 15, 16, 17, 40, 49])
def test_causal(t: int) -> None:
    """Changing any input at positions >= t leaves outputs < t unchanged (chunk_size 16)."""
    T = 50
    inputs = make_inputs(2, T, 3, 4, 5, seed=4)
    other = make_inputs(2, T, 3, 4, 5, seed=5)
    changed = [a.clone() for a in inputs]
    for k in (0, 1, 3, 4):  # x, dt, B, C: time is dim 1
        changed[k][:, t:] = other[k][:, t:]
    y0 = ssm_scan_chunked(*inputs, chunk_size=16)
    y1 = ssm_scan_chunked(*changed, chunk_size=16)
    torch.testing.assert_close(y1[:, :t], y0[:, :t], rtol=0.0, atol=1e-6)
    assert (y1[:, t:] - y0[:, t:]).abs().max() > 1e-3  # the change does reach later outputs

    leaves = [a.clone().requires_grad_() for a in inputs]
    ssm_scan_chunked(*leaves, chunk_size=16)[:, :t].sum().backward()
    for k in (0, 1, 3, 4):  # no gradient flows from the past to the future inputs
        assert torch.count_nonzero(leaves[k].grad[:, t:]) == 0, NAMES[k]
        assert torch.count_nonzero(leaves[k].grad[:, :t]) > 0, NAMES[k]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_forward_close_to_fp32_naive(dtype: torch.dtype) -> None:
    """Inputs rounded to 16 bits (A as well), computed in fp32 inside, output rounded back.

    Tolerance 3e-2 relative: bf16 has 8 mantissa bits (~4e-3 per rounding), and the rounded
    x, dt, A, B, C and y each add their share.
    """
    inputs = make_inputs(2, 300, 4, 8, 16, seed=6)
    ref = ssm_scan_naive(*inputs)
    out = ssm_scan_chunked(*[t.to(dtype) for t in inputs])
    assert out.dtype == dtype
    assert rel_err(out, ref) <= 3e-2


@pytest.mark.parametrize(("log_a_shift", "dt_shift"), [(3.0, 2.0), (-6.0, -4.0), (0.0, 0.0)])
def test_long_sequence_strong_and_weak_decay(log_a_shift: float, dt_shift: float) -> None:
    """T = 2000: (3, 2) has per-step log decays of -1e2 .. -1e3 (exp underflows), (-6, -4)
    keeps decays within 1e-2 of 1 (long memory), (0, 0) is in between: values and gradients
    finite and within 1e-4 of the reference."""
    inputs = make_inputs(1, 2000, 4, 4, 8, seed=7, log_a_shift=log_a_shift, dt_shift=dt_shift)
    cot = torch.randn(1, 2000, 4, 4, generator=torch.Generator().manual_seed(8))
    out = values_and_grads(ssm_scan_chunked, inputs, cot)
    ref = values_and_grads(ssm_scan_naive, inputs, cot)
    for name, o, r in zip(("y", *NAMES), out, ref):
        assert torch.isfinite(o).all(), name
        assert rel_err(o, r) <= 1e-4, f"{name}: rel err {rel_err(o, r):.2e}"


@pytest.mark.parametrize("T", [1, 7, 64, 65, 500])
@pytest.mark.parametrize("chunk_size", [16, 64])
def test_flops_formula_matches_flop_counter(T: int, chunk_size: int) -> None:
    H, P, N = 3, 5, 7
    inputs = make_inputs(1, T, H, P, N, seed=9)
    with FlopCounterMode(display=False) as counter:
        ssm_scan_chunked(*inputs, chunk_size=chunk_size)
    expected = ssm_scan_flops(tokens=T, heads=H, head_dim=P, state_size=N, chunk_size=chunk_size)
    assert counter.get_total_flops() == expected


def test_flops_formula_size_one_dims() -> None:
    for T, H, P, N, Q in [(1, 1, 1, 1, 1), (5, 1, 1, 1, 1), (9, 2, 1, 3, 4), (3, 1, 4, 1, 2)]:
        with FlopCounterMode(display=False) as counter:
            ssm_scan_chunked(*make_inputs(1, T, H, P, N, seed=10), chunk_size=Q)
        flops = ssm_scan_flops(tokens=T, heads=H, head_dim=P, state_size=N, chunk_size=Q)
        assert counter.get_total_flops() == flops, (T, H, P, N, Q)
    assert ssm_scan_flops(tokens=1, heads=3, head_dim=5, state_size=7) == 2 * (7 + 15 + 210)


def _bad(name: str) -> tuple[list[Tensor], int]:
    x, dt, A, B, C = make_inputs(2, 10, 3, 4, 5, seed=11)
    bad = {
        "x": [x[0], dt, A, B, C],
        "x_empty": [x[:, :0], dt[:, :0], A, B[:, :0], C[:, :0]],
        "dt_T": [x, dt[:, :9], A, B, C],
        "dt_H": [x, dt[..., :2], A, B, C],
        "A_2d": [x, dt, A[None], B, C],
        "A_size": [x, dt, A[:2], B, C],
        "B_batch": [x, dt, A, B[:1], C],
        "C_T": [x, dt, A, B, C[:, :9]],
        "B_and_C_N": [x, dt, A, B, C[..., :4]],
    }
    return (bad[name], 16) if name != "chunk_size" else ([x, dt, A, B, C], 0)


@pytest.mark.parametrize(("case", "pattern"), [
    ("x", r"^x must"), ("x_empty", r"^x must"), ("dt_T", r"^dt must"), ("dt_H", r"^dt must"),
    ("A_2d", r"^A must"), ("A_size", r"^A must"), ("B_batch", r"^B must"), ("C_T", r"^C must"),
    ("B_and_C_N", r"^B and C must"), ("chunk_size", r"^chunk_size must"),
])
def test_bad_shapes_raise(case: str, pattern: str) -> None:
    args, chunk_size = _bad(case)
    with pytest.raises(ValueError, match=pattern):
        ssm_scan_chunked(*args, chunk_size=chunk_size)


def test_flops_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"^tokens must"):
        ssm_scan_flops(tokens=0, heads=1, head_dim=1, state_size=1)
    with pytest.raises(ValueError, match=r"^chunk_size must"):
        ssm_scan_flops(tokens=4, heads=1, head_dim=1, state_size=1, chunk_size=0)
