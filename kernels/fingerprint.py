"""Device fingerprint: what a latency measurement was taken on, and how.

A latency table holds for exactly one fingerprint: the same layer on another CPU, another
GPU driver, another torch version, another dtype, batch size or execution mode takes a
different time, so a table is never used outside the fingerprint it was measured on. The
layers' own code is part of it too (``kernels``: `KERNELS_VERSION`): a table measured
before a layer's implementation changed (on 2026-12-07 the CPU conv stem left im2col for
conv2d, on 2026-12-08 the SSM layer's gate and projection were fused) would otherwise be
resumed or read under the new code and mix old and new timings silently.

Example::

    fp = device_fingerprint(device="cpu", batch_size=1, mode="eager", threads=2)
    fp.id  # '3f0c9a...' (16 hex chars), identical on every run of the same box and settings
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

MODES: tuple[str, ...] = ("eager", "cuda_graph")
#: the version of the layers' implementations (every file of `kernels` but this one): bump it
#: whenever a change there can change a measured time; `tests/kernels_tests/test_fingerprint_
#: kernels.py` holds the source hash of each version and fails until both are updated
KERNELS_VERSION = "2026-12-08"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def dtype_name(dtype: torch.dtype | str) -> str:
    """``torch.float32`` or ``"float32"`` -> ``"float32"``; clear error for anything else."""
    name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
    return name


@dataclass(frozen=True)
class DeviceFingerprint:
    """Hardware, software and measurement settings a latency belongs to.

    ``device_type`` is ``"cpu"`` or ``"cuda"``; ``device_name`` the CPU model or GPU name;
    ``threads`` the torch intra-op thread count (CPU; 0 on GPU); ``driver`` and ``cuda`` the
    GPU driver and CUDA runtime versions (empty on CPU); ``kernels`` the `KERNELS_VERSION` of
    the layers measured ("" for tables written before the field existed: they keep their id,
    and match no fingerprint of the current code).
    """

    device_type: str
    device_name: str
    threads: int
    driver: str
    cuda: str
    torch: str
    dtype: str
    batch_size: int
    mode: str
    kernels: str = ""

    def __post_init__(self) -> None:
        if self.device_type not in ("cpu", "cuda"):
            raise ValueError(f"device_type: expected 'cpu' or 'cuda', got {self.device_type!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if self.mode == "cuda_graph" and self.device_type != "cuda":
            raise ValueError("mode 'cuda_graph' needs a CUDA device")
        dtype_name(self.dtype)
        if not isinstance(self.batch_size, int) or self.batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive int, got {self.batch_size!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.kernels:  # written before the field existed: as it was then
            del out["kernels"]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> DeviceFingerprint:
        names = sorted(f.name for f in fields(cls))
        older = sorted(n for n in names if n != "kernels")  # tables from before `kernels`
        if not isinstance(data, dict) or sorted(data) not in (names, older):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"fingerprint: expected fields {names}, got {got}")
        return cls(**data)

    @property
    def id(self) -> str:
        """Hash of every field (16 hex chars): the key a table is stored under (a fingerprint
        without ``kernels``, from before the field, keeps the id it was stored under)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def differences(self, other: DeviceFingerprint) -> list[str]:
        """Readable ``field: self vs other`` for every field that differs."""
        return [f"{f.name}: {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def describe(self) -> str:
        """One line for people, e.g. ``AMD EPYC (2 threads), torch 2.13.0, float32, b1, eager``."""
        where = (f"{self.device_name} ({self.threads} threads)" if self.device_type == "cpu"
                 else f"{self.device_name} (driver {self.driver}, CUDA {self.cuda})")
        kernels = f", kernels {self.kernels}" if self.kernels else ", kernels unversioned"
        return (f"{where}, torch {self.torch}, {self.dtype}, b{self.batch_size}, {self.mode}"
                f"{kernels}")


def cpu_model_name() -> str:
    """The CPU model as the OS reports it (``/proc/cpuinfo`` on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def gpu_driver_version() -> str:
    """The NVIDIA driver version (``nvidia-smi``), else the CUDA driver API version."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True)
        first = out.stdout.strip().splitlines()
        if first:
            return first[0].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    return f"cuda-api-{getter()}" if getter is not None else "unknown"


def device_fingerprint(*, device: str | torch.device = "cpu", batch_size: int,
                       mode: str = "eager", dtype: torch.dtype | str = torch.float32,
                       threads: int | None = None) -> DeviceFingerprint:
    """Fingerprint of this machine for measurements at ``batch_size`` in ``mode``.

    ``threads`` (CPU) defaults to the current ``torch.get_num_threads()``; the timing harness
    sets exactly this many threads while it measures.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return DeviceFingerprint(
            device_type="cuda", device_name=torch.cuda.get_device_name(index), threads=0,
            driver=gpu_driver_version(), cuda=torch.version.cuda or "", torch=torch.__version__,
            dtype=dtype_name(dtype), batch_size=batch_size, mode=mode, kernels=KERNELS_VERSION)
    if dev.type != "cpu":
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    n = torch.get_num_threads() if threads is None else threads
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"threads: expected a positive int, got {threads!r}")
    return DeviceFingerprint(
        device_type="cpu", device_name=cpu_model_name(), threads=n, driver="", cuda="",
        torch=torch.__version__, dtype=dtype_name(dtype), batch_size=batch_size, mode=mode,
        kernels=KERNELS_VERSION)
