"""Triton SSD scan (`kernels.ssm.triton_ssd`) against the sequential reference, and the switch.

- GPU (marked ``gpu``; skipped without CUDA or Triton): forward and every gradient (x, dt, A,
  B, C) against `ssm_scan_naive` in float64 at T = 1, 63, 500, 4097, head dims 32 / 64, state
  16 / 64, float32 and bfloat16, both scan directions; the layers with the kernels against the
  same layers with the reference forced.
- CPU: the kernels under ``TRITON_INTERPRET=1`` at tiny sizes (skipped where Triton is absent,
  as in CI), the switch (`use_reference_scan`, ``NAS_SSM_REFERENCE``) with a stand-in kernel,
  and the `benchmarks/mixer_kernels.py --smoke` run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from kernels import MixerSpec, build_layer
from kernels.ssm import HAS_TRITON, ssm_scan, ssm_scan_naive, use_reference_scan
from kernels.ssm import scan as scan_module

REPO = Path(__file__).resolve().parents[1]
NAMES = ("y", "x", "dt", "A", "B", "C")
# max |out - ref| / max |ref|: float32 inputs get exact float32 dots ("ieee"), so float32 is
# close to the float64 reference; bfloat16 inputs get TF32 tensor-core dots by default (10-bit
# mantissa, float32 accumulation; NAS_SSM_TRITON_DOT=ieee | 16bit picks exact float32 or bf16
# dots), and every output is rounded to bf16 (~4e-3 each)
TOLERANCE = {torch.float32: 2e-4, torch.bfloat16: 3e-2}


def make_inputs(batch: int, T: int, H: int, P: int, N: int, *, seed: int,
                device: str = "cpu") -> list[Tensor]:
    """Float64 inputs like the layer's: dt = softplus(randn - 1), A = -exp(randn)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    x, B, C = randn(batch, T, H, P), randn(batch, T, N), randn(batch, T, N)
    dt = F.softplus(randn(batch, T, H) - 1.0)
    A = -torch.exp(randn(H))
    return [t.to(device) for t in (x, dt, A, B, C)]


def rel_err(out: Tensor, ref: Tensor) -> float:
    diff = (out.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    return 0.0 if diff == 0.0 else diff / max(scale, 1e-30)


def values_and_grads(fn, inputs: list[Tensor], cotangent: Tensor) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    y = fn(*leaves)
    return [y.detach(), *torch.autograd.grad(y, leaves, cotangent.to(y.dtype))]


def naive_scan(reverse: bool):
    """`ssm_scan_naive`, or its time-reversed scan (flip, scan, flip back)."""
    if not reverse:
        return ssm_scan_naive
    return lambda x, dt, A, B, C: ssm_scan_naive(
        x.flip(1), dt.flip(1), A, B.flip(1), C.flip(1)).flip(1)


needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="needs triton")


@pytest.fixture(autouse=True)
def _triton_opted_in(monkeypatch) -> None:
    """Every test here runs with ``NAS_SSM_TRITON=1`` (the default, spelled out, so that a
    ``NAS_SSM_TRITON=0`` in the caller's shell cannot turn the kernels off), except
    `test_triton_scan_is_the_default_and_can_be_turned_off`, which sets it itself."""
    monkeypatch.setenv(scan_module.TRITON_ENV, "1")


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("reverse", [False, True], ids=["causal", "reverse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("P", "N"), [(32, 16), (64, 64), (32, 64), (64, 16)])
@pytest.mark.parametrize("T", [1, 63, 500, 4097])
def test_triton_matches_naive_values_and_grads(T: int, P: int, N: int, dtype: torch.dtype,
                                               reverse: bool) -> None:
    from kernels.ssm import ssm_scan_triton

    inputs = make_inputs(2, T, 3, P, N, seed=T + P + N, device="cuda")
    low = [t.to(dtype) for t in inputs]  # the kernel's inputs, rounded to dtype
    cot = torch.randn(2, T, 3, P, generator=torch.Generator().manual_seed(1),
                      dtype=torch.float64).cuda()
    out = values_and_grads(lambda *a: ssm_scan_triton(*a, reverse=reverse), low, cot)
    ref = values_and_grads(naive_scan(reverse), [t.double() for t in low], cot)
    for name, o, r in zip(NAMES, out, ref):
        assert o.shape == r.shape and o.dtype == dtype, name
        assert torch.isfinite(o).all(), name
        assert rel_err(o, r) <= TOLERANCE[dtype], f"{name}: rel err {rel_err(o, r):.2e}"


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("reverse", [False, True], ids=["causal", "reverse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("P", "N"), [(32, 16), (64, 64)])
@pytest.mark.parametrize("T", [63, 4097])
def test_fused_backward_matches_naive_grads(T: int, P: int, N: int, dtype: torch.dtype,
                                            reverse: bool, monkeypatch) -> None:
    """The fused backward (``NAS_SSM_TRITON_BWD=fused``, the A/B reference of the default
    split one) at a partial chunk and at many chunks, with the fused skip term."""
    from kernels.ssm import ssm_scan_triton

    monkeypatch.setenv("NAS_SSM_TRITON_BWD", "fused")
    inputs = make_inputs(2, T, 3, P, N, seed=T + P + N + 7, device="cuda")
    D = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, device="cuda")
    low = [t.to(dtype) for t in (*inputs, D)]
    cot = torch.randn(2, T, 3, P, generator=torch.Generator().manual_seed(1),
                      dtype=torch.float64).cuda()

    def with_skip(scan):
        return lambda x, dt, A, B, C, D: scan(x, dt, A, B, C) + D[:, None] * x

    out = values_and_grads(lambda *a: ssm_scan_triton(*a[:5], reverse=reverse, D=a[5]),
                           low, cot)
    ref = values_and_grads(with_skip(naive_scan(reverse)), [t.double() for t in low], cot)
    for name, o, r in zip((*NAMES, "D"), out, ref):
        assert torch.isfinite(o).all(), name
        assert rel_err(o, r) <= TOLERANCE[dtype], f"{name}: rel err {rel_err(o, r):.2e}"


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("bwd", ["split", "fused"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("T", "P", "N", "reverse"), [(1, 32, 16, False), (500, 64, 64, True),
                                                      (4097, 64, 16, False)])
def test_atomic_dbc_backward_matches_naive_grads(T: int, P: int, N: int, reverse: bool,
                                                 dtype: torch.dtype, bwd: str,
                                                 monkeypatch) -> None:
    """dB and dC summed over the heads by float32 atomics (``NAS_SSM_TRITON_DBC=atomic``)
    give the reference's gradients, with either backward's chunk kernels."""
    from kernels.ssm import ssm_scan_triton

    monkeypatch.setenv("NAS_SSM_TRITON_DBC", "atomic")
    monkeypatch.setenv("NAS_SSM_TRITON_BWD", bwd)
    inputs = make_inputs(2, T, 3, P, N, seed=T + P + N + 11, device="cuda")
    low = [t.to(dtype) for t in inputs]
    cot = torch.randn(2, T, 3, P, generator=torch.Generator().manual_seed(2),
                      dtype=torch.float64).cuda()
    out = values_and_grads(lambda *a: ssm_scan_triton(*a, reverse=reverse), low, cot)
    ref = values_and_grads(naive_scan(reverse), [t.double() for t in low], cot)
    for name, o, r in zip(NAMES, out, ref):
        assert torch.isfinite(o).all(), name
        assert rel_err(o, r) <= TOLERANCE[dtype], f"{name}: rel err {rel_err(o, r):.2e}"


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("reverse", [False, True], ids=["causal", "reverse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("T", [1, 63, 500])
def test_triton_fused_skip_matches_naive_plus_skip(T: int, dtype: torch.dtype,
                                                   reverse: bool) -> None:
    """``ssm_scan_triton(..., D=D)`` (the skip term added in the output kernel) against
    ``naive + D * x``: the value and the gradients of x, dt, A, B, C and D."""
    from kernels.ssm import ssm_scan_triton

    x, dt, A, B, C = make_inputs(2, T, 3, 64, 64, seed=T + 7, device="cuda")
    D = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64, device="cuda")
    low = [t.to(dtype) for t in (x, dt, A, B, C)] + [D.float()]
    cot = torch.randn(2, T, 3, 64, generator=torch.Generator().manual_seed(2),
                      dtype=torch.float64).cuda()

    def fused(x, dt, A, B, C, D):
        return ssm_scan_triton(x, dt, A, B, C, reverse=reverse, D=D)

    def reference(x, dt, A, B, C, D):
        return naive_scan(reverse)(x, dt, A, B, C) + D[:, None] * x

    out = values_and_grads(fused, low, cot)
    ref = values_and_grads(reference, [t.double() for t in low], cot)
    for name, o, r in zip((*NAMES, "D"), out, ref):
        assert o.shape == r.shape, name
        assert torch.isfinite(o).all(), name
        assert rel_err(o, r) <= TOLERANCE[dtype], f"{name}: rel err {rel_err(o, r):.2e}"


def test_reference_skip_term_and_its_shape_check() -> None:
    """On the reference path ``D`` adds ``D[h] * x`` after the scan; a D of the wrong shape is
    refused with a message naming it."""
    x, dt, A, B, C = make_inputs(1, 10, 2, 4, 3, seed=0)
    D = torch.tensor([0.5, -1.0], dtype=torch.float64)
    with use_reference_scan():
        for reverse in (False, True):
            plain = ssm_scan(x, dt, A, B, C, reverse=reverse)
            torch.testing.assert_close(ssm_scan(x, dt, A, B, C, reverse=reverse, D=D),
                                       plain + D[:, None] * x)
        with pytest.raises(ValueError, match="D: expected shape \\(2,\\)"):
            ssm_scan(x, dt, A, B, C, D=torch.ones(3, dtype=torch.float64))


@pytest.mark.gpu
@needs_triton
def test_triton_strong_and_weak_decay_and_strided_inputs() -> None:
    """Per-step log decays from -1e3 (underflow) to -1e-3 (long memory) in one call, inputs
    as strided views of one projection (as the layer passes them), float32."""
    from kernels.ssm import ssm_scan_triton

    batch, T, H, P, N = 2, 700, 4, 64, 64
    g = torch.Generator().manual_seed(5)
    proj = torch.randn(batch, T, H * P + 2 * N + H, generator=g).cuda()  # (batch, T, width)
    x = proj[..., :H * P].view(batch, T, H, P)
    B, C = proj[..., H * P:H * P + N], proj[..., H * P + N:H * P + 2 * N]
    dt = F.softplus(proj[..., -H:] + torch.tensor([4.0, 0.0, -4.0, -8.0], device="cuda"))
    A = -torch.tensor([200.0, 1.0, 0.1, 0.01], device="cuda")
    inputs = [x, dt, A, B, C]
    assert not inputs[0].is_contiguous() and not inputs[3].is_contiguous()
    cot = torch.randn(batch, T, H, P, generator=g, dtype=torch.float64).cuda()
    out = values_and_grads(ssm_scan_triton, inputs, cot)
    ref = values_and_grads(ssm_scan_naive, [t.double() for t in inputs], cot)
    for name, o, r in zip(NAMES, out, ref):
        assert torch.isfinite(o).all(), name
        assert rel_err(o, r) <= 2e-4, f"{name}: rel err {rel_err(o, r):.2e}"


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("spec", [
    MixerSpec("ssm", 256, 300, None, head_dim=64, state_size=64),
    MixerSpec("ssm", 128, 256, (16, 16), head_dim=32, state_size=16),
], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_layer_with_kernels_equals_layer_with_reference(spec: MixerSpec,
                                                        dtype: torch.dtype) -> None:
    """The switch on the GPU: same layer, same weights, Triton scan vs the forced reference;
    the output and every parameter gradient agree."""
    torch.manual_seed(0)
    layer = build_layer(spec).to("cuda", dtype)
    x = torch.randn(3, spec.tokens, spec.dim, device="cuda", dtype=dtype)
    assert scan_module.uses_triton_scan(x)
    results = []
    for force in (False, True):
        with use_reference_scan(force):
            assert scan_module.uses_triton_scan(x) is not force
            layer.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            y = layer(xg)
            y.float().square().mean().backward()
            results.append([y.detach(), xg.grad, *(p.grad for p in layer.parameters())])
    tol = TOLERANCE[dtype] * (1 if dtype == torch.float32 else 2)
    for i, (fast, ref) in enumerate(zip(*results)):
        assert rel_err(fast, ref) <= tol, f"tensor {i}: rel err {rel_err(fast, ref):.2e}"


@pytest.mark.gpu
@needs_triton
def test_layer_under_bf16_autocast_matches_reference_and_keeps_float32_residual() -> None:
    """Training runs the layers under bf16 autocast: the fast path (split projection with its
    autocast-aware backward, fused gate, Triton scan) gives the reference's output and
    gradients, and the float32 residual stream stays float32."""
    torch.manual_seed(0)
    spec = MixerSpec("ssm", 256, 300, None, head_dim=64, state_size=64)
    layer = build_layer(spec).cuda()
    x = torch.randn(2, spec.tokens, spec.dim, device="cuda")
    results = []
    for force in (False, True):
        with use_reference_scan(force), torch.autocast("cuda", dtype=torch.bfloat16):
            layer.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            y = layer(xg)
            assert y.dtype == torch.float32
            y.float().square().mean().backward()
        results.append([y.detach(), xg.grad, *(p.grad for p in layer.parameters())])
    for i, (fast, ref) in enumerate(zip(*results)):
        assert fast.dtype == ref.dtype, i
        assert rel_err(fast, ref) <= 2 * TOLERANCE[torch.bfloat16], f"tensor {i}"


# --- CPU ---------------------------------------------------------------------------------

INTERPRETER_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import triton.runtime.interpreter as interp

    # triton 3.6's interpreter turns scalar kernel arguments into 1-element arrays that
    # numpy >= 2.3 refuses to int(); patch its __index__ (test-only shim)
    _patch = interp._patch_lang_tensor
    def _patched(tensor, scope):
        _patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))
    interp._patch_lang_tensor = _patched

    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    from test_ssm_triton import make_inputs, naive_scan, rel_err, values_and_grads, NAMES
    from kernels import MixerSpec, build_layer
    from kernels.ssm import ssm_scan, ssm_scan_triton, use_reference_scan, uses_triton_scan

    # three chunks (the last one partial), head dim 8 and state 4 padded to tl.dot's 16;
    # a reversed scan over 18 chunks (more than the 16 of one step of the pass over chunks);
    # bf16 over two chunks; a single step
    cases = [(2, 150, 8, 4, False, torch.float32), (1, 1090, 8, 4, True, torch.float32),
             (1, 70, 16, 16, True, torch.bfloat16), (2, 1, 8, 4, False, torch.bfloat16)]
    import os
    for bwd, (batch, T, P, N, reverse, dtype) in [(b, c) for b in ("fused", "split")
                                                   for c in cases]:
        os.environ["NAS_SSM_TRITON_BWD"] = bwd  # read on every backward
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        inputs = make_inputs(batch, T, 2, P, N, seed=T)
        cot = torch.randn(batch, T, 2, P, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
        low = [t.to(dtype) for t in inputs]
        out = values_and_grads(lambda *a: ssm_scan_triton(*a, reverse=reverse), low, cot)
        ref = values_and_grads(naive_scan(reverse), [t.double() for t in low], cot)
        for name, o, r in zip(NAMES, out, ref):
            assert o.dtype == dtype, (name, o.dtype)
            err = rel_err(o, r)
            assert err <= tol, (bwd, T, P, N, reverse, str(dtype), name, err)
    os.environ.pop("NAS_SSM_TRITON_BWD")

    # the opt-in 16-bit tensor-core branch (DOT = bf16) of the same kernels, with the
    # interpreter's bf16 dot fixed (it multiplies the bit patterns): the kernels' source is
    # right there; at T = 1, head dim 32, state 64 the H200 gave dB rel err 0.49 (#18)
    import numpy as np
    import triton.language as tl
    from kernels.ssm import triton_ssd

    _dot = interp.InterpreterBuilder.create_dot
    def _upcast(h):
        if h.dtype.scalar != tl.bfloat16:
            return h
        return interp.TensorHandle((h.data.astype(np.uint32) << 16).view(np.float32),
                                   tl.float32)
    interp.InterpreterBuilder.create_dot = lambda self, a, b, d, *args: _dot(
        self, _upcast(a), _upcast(b), d, *args)
    dot_kind = triton_ssd._dot_kind
    triton_ssd._dot_kind = lambda *tensors: triton_ssd._DOT_BF16
    for batch, T in [(2, 1), (1, 70)]:
        inputs = make_inputs(batch, T, 3, 32, 64, seed=T + 96)
        cot = torch.randn(batch, T, 3, 32, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
        low = [t.to(torch.bfloat16) for t in inputs]
        out = values_and_grads(ssm_scan_triton, low, cot)
        ref = values_and_grads(naive_scan(False), [t.double() for t in low], cot)
        for name, o, r in zip(NAMES, out, ref):
            assert rel_err(o, r) <= 3e-2, ("tensor cores", T, name, rel_err(o, r))
    triton_ssd._dot_kind = dot_kind
    interp.InterpreterBuilder.create_dot = _dot

    # dB / dC summed over the heads by atomics, both backward kinds
    os.environ["NAS_SSM_TRITON_DBC"] = "atomic"
    for bwd in ("fused", "split"):
        os.environ["NAS_SSM_TRITON_BWD"] = bwd
        inputs = make_inputs(2, 150, 3, 8, 4, seed=9)
        cot = torch.randn(2, 150, 3, 8, generator=torch.Generator().manual_seed(3),
                          dtype=torch.float64)
        low = [t.float() for t in inputs]
        out = values_and_grads(lambda *a: ssm_scan_triton(*a, reverse=True), low, cot)
        ref = values_and_grads(naive_scan(True), inputs, cot)
        for name, o, r in zip(NAMES, out, ref):
            assert rel_err(o, r) <= 1e-4, ("atomic", bwd, name, rel_err(o, r))
    os.environ["NAS_SSM_TRITON_DBC"] = "heads"

    # the layer (strided views of one projection; bidirectional) through ssm_scan, the fused
    # gate and the split projection, forward and every gradient, against the reference path
    torch.manual_seed(0)
    spec = MixerSpec("ssm", 32, 20, (4, 5), head_dim=16, state_size=8)
    layer = build_layer(spec)
    x = torch.randn(1, 20, 32)
    cot = torch.randn(1, 20, 32)
    assert uses_triton_scan(x)
    results = []
    for force in (False, True):
        with use_reference_scan(force):
            assert uses_triton_scan(x) is not force
            layer.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            y = layer(xg)
            y.backward(cot)
            results.append([y.detach(), xg.grad, *(p.grad for p in layer.parameters())])
    for i, (fast, ref) in enumerate(zip(*results)):
        assert rel_err(fast, ref) <= 1e-5, ("layer", i, rel_err(fast, ref))
    print("ok")
""")


@pytest.mark.slow  # minutes: the interpreter runs every program of every kernel in numpy
@needs_triton
def test_kernels_under_triton_interpreter(tmp_path) -> None:
    """The real kernels on the CPU (TRITON_INTERPRET=1, a fresh process: the flag is read when
    the kernels are defined) at tiny sizes, forward and gradients, fp32 and bf16."""
    if importlib.util.find_spec("numpy") is None:
        pytest.skip("the interpreter needs numpy")
    script = tmp_path / "interp.py"
    script.write_text(INTERPRETER_SCRIPT)
    env = {**os.environ, "TRITON_INTERPRET": "1", "NAS_SSM_REFERENCE": "", "NAS_SSM_TRITON": "1"}
    proc = subprocess.run([sys.executable, str(script), str(REPO), str(Path(__file__).parent)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_dot_kind_is_tf32_for_16bit_inputs_unless_another_is_chosen(monkeypatch) -> None:
    """16-bit inputs get TF32 tensor-core dots by default (the 16-bit tensor-core dots gave a
    wrong bf16 dB and illegal memory accesses on the H200, #18); exact and 16-bit dots are
    chosen with ``NAS_SSM_TRITON_DOT``; float32 inputs always get exact dots."""
    from kernels.ssm import triton_ssd

    bf16, fp16, fp32 = (torch.zeros(1, dtype=d) for d in (torch.bfloat16, torch.float16,
                                                          torch.float32))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(triton_ssd.DOT_ENV, raising=False)
    assert triton_ssd._dot_kind(bf16, bf16, bf16) == triton_ssd._DOT_TF32
    assert triton_ssd._dot_kind(fp16, fp16, fp16) == triton_ssd._DOT_TF32
    assert triton_ssd._dot_kind(fp32, fp32, fp32) == triton_ssd._DOT_FP32
    monkeypatch.setenv(triton_ssd.DOT_ENV, "16bit")
    assert triton_ssd._dot_kind(bf16, bf16, bf16) == triton_ssd._DOT_BF16
    assert triton_ssd._dot_kind(fp16, fp16, fp16) == triton_ssd._DOT_FP16
    assert triton_ssd._dot_kind(bf16, fp32, bf16) == triton_ssd._DOT_FP32
    monkeypatch.setenv(triton_ssd.DOT_ENV, "TF32")
    assert triton_ssd._dot_kind(bf16, bf16, bf16) == triton_ssd._DOT_TF32
    assert triton_ssd._dot_kind(fp32, fp32, fp32) == triton_ssd._DOT_FP32
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter's bf16 dot is broken
    assert triton_ssd._dot_kind(bf16, bf16, bf16) == triton_ssd._DOT_FP32
    monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.setenv(triton_ssd.DOT_ENV, "ieee")
    assert triton_ssd._dot_kind(bf16, bf16, bf16) == triton_ssd._DOT_FP32
    monkeypatch.setenv(triton_ssd.DOT_ENV, "fast")
    with pytest.raises(ValueError, match="NAS_SSM_TRITON_DOT='fast'"):
        triton_ssd._dot_kind(bf16, bf16, bf16)


class _Spy:
    """Stand-in for the Triton scan: records calls, returns the reference result."""

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def __call__(self, x, dt, A, B, C, *, reverse=False, D=None):
        self.calls.append(reverse)
        y = naive_scan(reverse)(x, dt, A, B, C)
        return y if D is None else y + D[:, None] * x


@pytest.fixture
def spy(monkeypatch) -> _Spy:
    """Pretend Triton and a kernel device are present, with `_Spy` as the kernel."""
    fake = _Spy()
    monkeypatch.setattr(scan_module, "HAS_TRITON", True)
    monkeypatch.setattr(scan_module, "_triton_device", lambda x: True)
    monkeypatch.setattr(scan_module, "ssm_scan_triton", fake)
    monkeypatch.delenv(scan_module.REFERENCE_ENV, raising=False)
    return fake


def test_switch_forces_the_reference(spy: _Spy, monkeypatch) -> None:
    x, dt, A, B, C = (t.float() for t in make_inputs(1, 20, 2, 4, 4, seed=1))
    ssm_scan(x, dt, A, B, C)
    assert spy.calls == [False]
    with use_reference_scan():
        y_ref = ssm_scan(x, dt, A, B, C)
        with use_reference_scan(False):  # an inner block lifts the forcing
            ssm_scan(x, dt, A, B, C, reverse=True)
        ssm_scan(x, dt, A, B, C)
    assert spy.calls == [False, True]
    assert rel_err(y_ref, ssm_scan_naive(x, dt, A, B, C)) <= 1e-5
    for value in ("1", "true"):
        monkeypatch.setenv(scan_module.REFERENCE_ENV, value)
        assert scan_module.reference_forced()
        ssm_scan(x, dt, A, B, C)
        with use_reference_scan(False):  # the environment wins
            ssm_scan(x, dt, A, B, C)
    assert spy.calls == [False, True]
    monkeypatch.setenv(scan_module.REFERENCE_ENV, "0")
    ssm_scan(x, dt, A, B, C)
    assert spy.calls == [False, True, False]


def test_reverse_reference_is_the_flipped_scan() -> None:
    x, dt, A, B, C = (t.float() for t in make_inputs(2, 90, 2, 4, 5, seed=2))
    with use_reference_scan():
        y = ssm_scan(x, dt, A, B, C, reverse=True, chunk_size=16)
    assert rel_err(y, naive_scan(True)(x, dt, A, B, C)) <= 1e-5


@pytest.mark.parametrize(("grid", "calls"), [(None, [False]), ((4, 5), [False, True])],
                         ids=["causal", "bidirectional"])
def test_layer_calls_the_fast_scan_and_matches_reference(spy: _Spy, grid, calls) -> None:
    """The SSM layer goes through `ssm_scan` (one call per direction), and its fused input
    projection equals separate projections (the state dict keeps its layout)."""
    torch.manual_seed(0)
    spec = MixerSpec("ssm", 32, 20, grid, head_dim=8, state_size=4)
    layer = build_layer(spec)
    assert {k for k in layer.state_dict()} == {
        "norm.weight", "norm.bias", "x_proj.weight", "z_proj.weight", "bc_proj.weight",
        "dt_proj.weight", "dt_proj.bias", "a_log", "d_skip", "out_proj.weight"}
    x = torch.randn(2, 20, 32)
    y = layer(x)
    assert spy.calls == calls

    # the layer written out with one projection each, as before the fusion
    h = F.layer_norm(x, (32,), layer.norm.weight, layer.norm.bias)
    xs = layer.x_proj(h).view(2, 20, 4, 8)
    z = layer.z_proj(h)
    b, c = layer.bc_proj(h).chunk(2, dim=-1)
    dt = F.softplus(layer.dt_proj(h))
    a = -torch.exp(layer.a_log)
    ys = ssm_scan_naive(xs, dt, a, b, c)
    if grid is not None:
        ys = ys + naive_scan(True)(xs, dt, a, b, c)
    ref = x + layer.out_proj((ys + layer.d_skip[:, None] * xs).reshape(2, 20, 32) * F.silu(z))
    assert rel_err(y, ref) <= 1e-5


def test_benchmark_smoke_writes_the_goal_metrics(tmp_path) -> None:
    """`benchmarks/mixer_kernels.py --smoke` (tiny shapes on CPU) runs and writes the keys."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mixer_kernels.py"), "--smoke",
         "--out-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "mixer_kernels_smoke.json").read_text())
    for path in ("ssm", "ssm_fused", "ssm_reference"):
        for goal in ("fwdbwd_2048", "fwdbwd_8192", "fwd_1024"):
            assert result["metrics"][f"{path}_vs_attention_{goal}"] > 0
    variants = {row["variant"] for row in result["raw"]["rows"]}
    assert variants == {"attention", "glu_mlp", "conv", "ssm", "ssm_fused", "ssm_reference"}
    # redrawing the figure needs a CUDA run's graph rows: a smoke result or no file is an
    # error that names the file and writes nothing
    figure = tmp_path / "figure.png"
    for source, words in ((tmp_path / "mixer_kernels_smoke.json", "no CUDA-graph rows"),
                          (tmp_path / "missing.json", "no such file")):
        proc = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "mixer_kernels.py"), "--figure-from",
             str(source), "--figure", str(figure)], env=env, capture_output=True, text=True,
            timeout=120)
        assert proc.returncode == 2 and words in proc.stderr and str(source) in proc.stderr
        assert not figure.exists()


def test_layer_ablation_smoke_checks_every_variant_against_the_layer(tmp_path) -> None:
    """`benchmarks/ssm_layer_ablation.py --smoke` (torch paths on the CPU) rebuilds the layer
    from its pieces: every variant equals the layer, and the result holds the ratio keys."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(REPO / "benchmarks" / "ssm_layer_ablation.py")
    proc = subprocess.run([sys.executable, script, "--smoke", "--out-dir", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "ssm_layer_ablation_smoke.json").read_text())
    for shape, rows in result["raw"]["shapes"].items():
        assert set(rows) == {"attention", "layer", "layer+atomic", "plain", "plain+split",
                             "plain+gate", "plain+addmm"}, shape
        for name, row in rows.items():
            assert row["max_rel_err_vs_layer"] <= 1e-5, (shape, name)
            assert row["fwdbwd"] > 0 and row["fwd"] > 0
        key = shape.replace(" ", "_")
        assert result["metrics"][f"{key}_fwdbwd_layer_vs_plain"] > 0
    proc = subprocess.run([sys.executable, script, "--repeats", "0", "--device", "cpu",
                           "--out-dir", str(tmp_path / "bad")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--repeats >= 1" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_triton_scan_is_the_default_and_can_be_turned_off(spy: _Spy, monkeypatch) -> None:
    """Without ``NAS_SSM_TRITON`` the kernels run where they can (the default since a GPU
    training run went through them, #18); ``NAS_SSM_TRITON=0`` or ``use_triton_scan(False)``
    turns them off, and ``use_triton_scan(True)`` on again inside a block."""
    from kernels.ssm import use_triton_scan

    x, dt, A, B, C = (t.float() for t in make_inputs(1, 20, 2, 4, 4, seed=3))
    monkeypatch.delenv(scan_module.TRITON_ENV, raising=False)
    assert scan_module.triton_enabled()
    assert scan_module.uses_triton_scan(x)  # the spy fixture stands in for Triton and CUDA
    y = ssm_scan(x, dt, A, B, C)
    assert spy.calls == [False]
    spy.calls.clear()
    for off in ("0", "false", "No"):
        monkeypatch.setenv(scan_module.TRITON_ENV, off)
        assert not scan_module.triton_enabled() and not scan_module.uses_triton_scan(x)
        y = ssm_scan(x, dt, A, B, C)
        assert spy.calls == []
        assert rel_err(y, ssm_scan_naive(x, dt, A, B, C)) <= 1e-5
        with use_triton_scan():
            assert scan_module.triton_enabled()
            ssm_scan(x, dt, A, B, C)
        assert spy.calls == [False]
        spy.calls.clear()
    monkeypatch.delenv(scan_module.TRITON_ENV)
    with use_triton_scan(False):
        assert not scan_module.triton_enabled()
        ssm_scan(x, dt, A, B, C)
    assert spy.calls == []


def test_kernels_run_only_on_gpus_they_were_built_for(monkeypatch) -> None:
    """CUDA tensors take the kernels on an NVIDIA GPU of compute capability >= 8.0 (TF32 dots)
    only: an older GPU or a ROCm build gets the torch reference instead of a compile error."""
    from types import SimpleNamespace

    gpu = SimpleNamespace(is_cuda=True, device=SimpleNamespace(index=0))
    monkeypatch.setattr(torch.version, "hip", None)
    for capability, expected in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
        scan_module._capable.cache_clear()  # the answer is cached per device
        assert scan_module._triton_device(gpu) is expected, capability  # type: ignore[arg-type]
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert not scan_module._triton_device(gpu)  # type: ignore[arg-type]
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not scan_module._triton_device(torch.zeros(1))
    scan_module._capable.cache_clear()


@pytest.mark.parametrize(("env", "kind", "default", "other", "bad"), [
    ("NAS_SSM_TRITON_BWD", "_bwd_kind", "split", "fused", "both"),
    ("NAS_SSM_TRITON_DBC", "_dbc_kind", "heads", "atomic", "sum"),
], ids=["backward", "dbc"])
def test_kernel_switches_default_and_name_their_choices(env, kind, default, other, bad,
                                                        monkeypatch) -> None:
    """``NAS_SSM_TRITON_BWD`` picks the backward's chunk kernels, ``NAS_SSM_TRITON_DBC`` how
    dB / dC are summed over heads; a bad value names the choices (each kind's gradients are
    compared with the reference under the interpreter and on the GPU)."""
    from kernels.ssm import triton_ssd

    pick = getattr(triton_ssd, kind)
    monkeypatch.delenv(env, raising=False)
    assert pick() == default
    monkeypatch.setenv(env, f" {other.title()} ")
    assert pick() == other
    monkeypatch.setenv(env, bad)
    with pytest.raises(ValueError, match=rf"{env}='{bad}': expected one of"):
        pick()


@pytest.mark.gpu
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("M", "E"), [(1, 16), (300, 768), (8193, 130)])
def test_fused_gate_matches_reference(M: int, E: int, dtype: torch.dtype) -> None:
    """The fused ``y * silu(z)`` kernels (forward and both gradients) against plain torch in
    float64, with ``z`` a row-strided column slice of a wider matrix (as the layer passes it)
    and sizes that are not multiples of the kernels' tile."""
    from kernels.ssm.gate import silu_gate, silu_gate_reference

    g = torch.Generator().manual_seed(M + E)
    y = torch.randn(M, E, generator=g, dtype=torch.float64)
    wide = torch.randn(M, E + 40, generator=g, dtype=torch.float64)
    cot = torch.randn(M, E, generator=g, dtype=torch.float64)
    low = [y.to("cuda", dtype), wide.to("cuda", dtype)]
    assert scan_module.uses_triton_scan(low[0])
    out = values_and_grads(lambda a, w: silu_gate(a, w[:, 20:20 + E]), low, cot.cuda())
    ref = values_and_grads(lambda a, w: silu_gate_reference(a, w[:, 20:20 + E]),
                           [t.double() for t in low], cot.cuda())
    tol = {torch.float32: 1e-5, torch.bfloat16: 8e-3}[dtype]
    for name, o, r in zip(("out", "y", "z"), out, ref):
        assert o.dtype == dtype, name
        assert rel_err(o, r) <= tol, f"{name}: rel err {rel_err(o, r):.2e}"


def test_gate_is_plain_torch_off_the_fast_path_and_checks_shapes() -> None:
    """On the CPU (no Triton scan) `silu_gate` is the reference; mismatched or non-2-D inputs
    get one error naming both shapes."""
    from kernels.ssm.gate import silu_gate, silu_gate_reference

    g = torch.Generator().manual_seed(0)
    y, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    torch.testing.assert_close(silu_gate(y, z), y * F.silu(z), rtol=0, atol=0)
    torch.testing.assert_close(silu_gate_reference(y, z), y * F.silu(z), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"silu_gate: y and z .* \(5, 7\) and \(5, 6\)"):
        silu_gate(y, z[:, :6])
    with pytest.raises(ValueError, match=r"must be \(M, E\)"):
        silu_gate(y[None], z[None])


@pytest.mark.parametrize("pad", [0, 3])
def test_split_projection_equals_linear_slice_split(pad: int) -> None:
    """`_SplitProjection` (one concatenation in its backward) gives the values and the
    gradients of ``F.linear(h, w)[:, :width].split(sizes)``, with zero rows padding ``w`` and
    with a piece that gets no gradient."""
    from kernels.ssm.layer import _SplitProjection

    g = torch.Generator().manual_seed(pad)
    sizes = (6, 6, 3, 3, 2)
    h = torch.randn(11, 8, generator=g, dtype=torch.float64)
    w = torch.cat([torch.randn(sum(sizes), 8, generator=g, dtype=torch.float64),
                   torch.zeros(pad, 8, dtype=torch.float64)])
    cots = [torch.randn(11, n, generator=g, dtype=torch.float64) for n in sizes]
    results = []
    for split in (lambda a, b: _SplitProjection.apply(a, b, sizes),
                  lambda a, b: F.linear(a, b)[:, :sum(sizes)].split(list(sizes), dim=-1)):
        hg, wg = h.clone().requires_grad_(), w.clone().requires_grad_()
        pieces = split(hg, wg)
        loss = sum((p * c).sum() for i, (p, c) in enumerate(zip(pieces, cots)) if i != 3)
        loss.backward()
        results.append([*(p.detach() for p in pieces), hg.grad, wg.grad])
    for fast, ref in zip(*results):
        torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)


def test_split_projection_under_autocast_matches_the_autocast_linear() -> None:
    """Under bf16 autocast `_SplitProjection` computes the autocast linear's bf16 values and
    returns float32 gradients for the float32 inputs, on any device (here the CPU)."""
    from kernels.ssm.layer import _SplitProjection

    g = torch.Generator().manual_seed(3)
    sizes = (16, 16, 4, 4, 2)
    h0 = torch.randn(9, 24, generator=g)
    w0 = torch.cat([torch.randn(sum(sizes), 24, generator=g), torch.zeros(6, 24)])
    results = []
    for split in (lambda a, b: _SplitProjection.apply(a, b, sizes),
                  lambda a, b: F.linear(a, b)[:, :sum(sizes)].split(list(sizes), dim=-1)):
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pieces = split(h, w)
            assert all(p.dtype == torch.bfloat16 for p in pieces)
            loss = sum((p.float() * (i + 1)).sum() for i, p in enumerate(pieces))
        loss.backward()
        assert h.grad.dtype == w.grad.dtype == torch.float32
        results.append([*(p.detach() for p in pieces), h.grad, w.grad])
    for fast, ref in zip(*results):
        torch.testing.assert_close(fast.float(), ref.float(), rtol=1e-2, atol=1e-2)
