"""Selective state-space scan (Mamba-2 / SSD): sequential reference and chunked kernel."""

from kernels.ssm.chunked import ssm_scan_chunked, ssm_scan_flops
from kernels.ssm.naive import ssm_scan_naive

__all__ = ["ssm_scan_chunked", "ssm_scan_flops", "ssm_scan_naive"]
