"""Writing benchmark results: one JSON per benchmark, merged across devices.

``{"date", "device", "command", "metrics": {...}, "raw": {...}}``; a benchmark run on a
second device (the GPU box) merges its metrics and raw values into the same file and
records its own device / command under ``runs``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: str = "cpu") -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_result(name: str, *, metrics: dict[str, Any], raw: dict[str, Any], device: str,
                 command: str | None = None, out_dir: Path | None = None) -> Path:
    """Merge this run into ``results/<name>.json`` and return its path."""
    out_dir = out_dir or Path(os.environ.get("NAS_BENCH_RESULTS", RESULTS))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    command = command or "python " + " ".join(sys.argv)
    date = _dt.date.today().isoformat()
    old = json.loads(path.read_text()) if path.exists() else {}
    runs = [r for r in old.get("runs", []) if r.get("device") != device]
    runs.append({"date": date, "device": device, "command": command})
    result = {
        "date": date,
        "device": "; ".join(r["device"] for r in runs),
        "command": " ; ".join(r["command"] for r in runs),
        "runs": runs,
        "metrics": _merge(old.get("metrics", {}), metrics),
        "raw": _merge(old.get("raw", {}), raw),
    }
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return path


def kept_horizon(path: Path, *, key: dict[str, Any], probe: Callable[[], int]) -> int:
    """The schedule horizon (steps) a wall-clock-budgeted run trains to: ``probe()`` once,
    kept in ``path`` under ``key`` (the budget and device that set it).

    Why: a rerun after a crash must resume on the schedule it started with, whatever a new
    probe of the step speed would say; a run under another ``key`` probes anew."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("key") == key:
        return int(saved["steps"])
    steps = int(probe())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "steps": steps}))
    return steps
