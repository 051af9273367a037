"""`ssm_scan`: the SSD scan the layers call; Triton kernels on CUDA, chunked torch elsewhere.

The Triton path (`kernels.ssm.triton_ssd`) is the **default on CUDA** since 2026-12-07. Its
first bf16 build (16-bit tensor-core dots) gave wrong dB gradients and illegal memory accesses
on the H200, and an audit whose training went through it scored NaN, so it was opt-in; with
TF32 dots for 16-bit inputs it passes every GPU test (2026-12-03, 4th session), and on
2026-12-07 a supernet trained through it (`shakespeare_lm`, 400 steps, H100) reached the same
validation losses as through the reference, 2.212 / 2.523 nats (largest / random mean)
against 2.231 / 2.530 (BENCHMARKS.md, #18).
Turn it off with ``NAS_SSM_TRITON=0`` or, for a block of code, ``use_triton_scan(False)``.
Where it is on, it runs when Triton is importable, the tensors are on an NVIDIA GPU of
compute capability 8.0 or newer (the TF32 dots; it has been tested on Hopper only) in
float32 / bfloat16 / float16, and the reference is not forced. Force the pure-torch
reference (to compare, to debug) with the environment variable ``NAS_SSM_REFERENCE=1`` or,
for a block of code::

    with use_reference_scan():
        y_ref = layer(x)

(the same kind of switch as timm's ``use_fused_attn()``). While tracing (``torch.jit.trace``,
used by the TorchScript export) the reference is used too, so exported graphs hold plain ops.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

from kernels.ssm.chunked import _check_args, ssm_scan_chunked
from kernels.ssm.triton_ssd import HAS_TRITON, ssm_scan_triton

REFERENCE_ENV = "NAS_SSM_REFERENCE"
TRITON_ENV = "NAS_SSM_TRITON"
_FORCE_REFERENCE: ContextVar[bool] = ContextVar("nas_ssm_force_reference", default=False)
_ENABLE_TRITON: ContextVar[bool | None] = ContextVar("nas_ssm_enable_triton", default=None)
_FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


_OFF_WORDS = ("0", "false", "no")


def _env_word(name: str) -> str:
    return os.environ.get(name, "").strip().lower()


def _truthy(name: str) -> bool:
    return _env_word(name) not in ("", *_OFF_WORDS)


def triton_enabled() -> bool:
    """Whether `ssm_scan` may take the Triton kernels: inside `use_triton_scan(enabled)` its
    ``enabled``; elsewhere True unless ``NAS_SSM_TRITON`` is "0", "false" or "no" (the Triton
    scan is the default, see the module doc)."""
    inside = _ENABLE_TRITON.get()
    if inside is not None:
        return inside
    return _env_word(TRITON_ENV) not in _OFF_WORDS


@contextmanager
def use_triton_scan(enabled: bool = True) -> Iterator[None]:
    """Inside the block, `ssm_scan` may take the Triton kernels (where they can run) when
    ``enabled``, and never when not, whatever ``NAS_SSM_TRITON`` says."""
    token = _ENABLE_TRITON.set(enabled)
    try:
        yield
    finally:
        _ENABLE_TRITON.reset(token)


def reference_forced() -> bool:
    """True when ``NAS_SSM_REFERENCE`` is set (to anything but "", "0", "false", "no") or the
    code runs inside `use_reference_scan`."""
    return _FORCE_REFERENCE.get() or _truthy(REFERENCE_ENV)


@contextmanager
def use_reference_scan(enabled: bool = True) -> Iterator[None]:
    """Inside the block, `ssm_scan` uses the pure-torch chunked reference (``enabled=False``
    lifts an outer block's forcing; the environment variable still wins)."""
    token = _FORCE_REFERENCE.set(enabled)
    try:
        yield
    finally:
        _FORCE_REFERENCE.reset(token)


#: the oldest NVIDIA compute capability the kernels run on (TF32 tensor-core dots: Ampere)
MIN_CAPABILITY = (8, 0)


@functools.cache
def _capable(index: int | None) -> bool:
    """Whether CUDA device ``index`` has `MIN_CAPABILITY` (cached: asked on every layer call)."""
    return torch.cuda.get_device_capability(index) >= MIN_CAPABILITY


def _triton_device(x: Tensor) -> bool:
    """CUDA tensors on an NVIDIA GPU of `MIN_CAPABILITY` or newer (not ROCm: untested there);
    CPU tensors too under ``TRITON_INTERPRET=1`` (Triton's slow interpreter, for debugging the
    kernels without a GPU)."""
    if x.is_cuda:
        return torch.version.hip is None and _capable(x.device.index)
    interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    return interpreting and x.device.type == "cpu"


def uses_triton_scan(x: Tensor) -> bool:
    """Whether `ssm_scan` of inputs like ``x`` runs the Triton kernels."""
    return (HAS_TRITON and triton_enabled() and _triton_device(x) and x.dtype in _FAST_DTYPES
            and not reference_forced() and not torch.jit.is_tracing())


def ssm_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, *, chunk_size: int = 64,
             reverse: bool = False, D: Tensor | None = None) -> Tensor:
    """Selective scan (Mamba-2 / SSD), the same result as `ssm_scan_naive` on every path.

    Args:
        x: (batch, T, H, P); dt: (batch, T, H) > 0; A: (H,) < 0; B, C: (batch, T, N).
        chunk_size: chunk length of the reference path (the Triton path uses chunks of 64;
            the chunking does not change the result).
        reverse: scan from the last step to the first (the scan of the time-flipped inputs,
            flipped back); the bidirectional image layers add both directions.
        D: optional (H,) skip weights: returns ``scan + D[h] * x`` (the Triton path adds it in
            its output kernel, the reference after the scan).

    Returns:
        y: (batch, T, H, P) in the dtype of ``x``.

    Example::

        y = ssm_scan(x, dt, A, B, C)             # chunked torch (Triton with use_triton_scan)
        with use_reference_scan():
            torch.testing.assert_close(ssm_scan(x, dt, A, B, C), y, rtol=1e-2, atol=1e-2)
    """
    _check_args(x, dt, A, B, C, chunk_size)
    if D is not None and D.shape != (x.shape[2],):
        raise ValueError(f"D: expected shape ({x.shape[2]},) (one skip weight a head), "
                         f"got {tuple(D.shape)}")
    if uses_triton_scan(x):
        return ssm_scan_triton(x, dt, A, B, C, reverse=reverse, D=D)
    if not reverse:
        y = ssm_scan_chunked(x, dt, A, B, C, chunk_size=chunk_size)
    else:
        flip = [1]
        y = ssm_scan_chunked(x.flip(flip), dt.flip(flip), A, B.flip(flip), C.flip(flip),
                             chunk_size=chunk_size).flip(flip)
    return y if D is None else y + D[:, None] * x
