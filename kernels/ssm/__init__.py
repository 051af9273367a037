"""Selective state-space scan (Mamba-2 / SSD): sequential reference, chunked torch reference,
Triton kernels, and `ssm_scan`, which picks between them (see `kernels.ssm.scan`); the layer's
fused output gate `silu_gate` and its reference."""

from kernels.ssm.chunked import ssm_scan_chunked, ssm_scan_flops
from kernels.ssm.gate import silu_gate, silu_gate_reference
from kernels.ssm.naive import ssm_scan_naive
from kernels.ssm.scan import (
    reference_forced,
    ssm_scan,
    triton_enabled,
    use_reference_scan,
    use_triton_scan,
    uses_triton_scan,
)
from kernels.ssm.triton_ssd import HAS_TRITON, ssm_scan_triton

__all__ = ["HAS_TRITON", "reference_forced", "silu_gate", "silu_gate_reference", "ssm_scan",
           "ssm_scan_chunked", "ssm_scan_flops", "ssm_scan_naive", "ssm_scan_triton",
           "triton_enabled", "use_reference_scan", "use_triton_scan", "uses_triton_scan"]
