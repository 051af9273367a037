"""A tiny study file and a runner for the `nas` CLI, shared by the pipeline tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY_OVERRIDES = dict(in_channels=1, num_classes=10, resolutions=(8,), patch_size=2,
                      widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8)

TINY_STUDY = '''
from nas.study import (AuditConfig, DataConfig, EvaluationConfig, PredictorConfig,
                       ProfilingConfig, SearchConfig, Study, TrainConfig)

study = Study(
    name="{name}",
    space="hybrid_vit_tiny",
    space_overrides={overrides!r},
    data=DataConfig(source="digits"),
    training=TrainConfig(steps={steps}, batch_size=32, warmup_steps=2, eval_every=10,
                         eval_batches=2, checkpoint_every=3, panel_size=1, num_random=1, bins=3),
    evaluation=EvaluationConfig(n_archs=24, batch_size=256),
    profiling=ProfilingConfig(n_calibration=3, n_validation=4, min_block_s=0),
    search=SearchConfig(budget=12, population=4, pool_factor=4, seed=0),{extra}
)
'''


def write_study(directory: Path, *, name: str = "tiny", steps: int = 12, extra: str = "") -> Path:
    """``directory/<name>.py``: the tiny study; ``extra`` adds fields to its `Study(...)`
    (for example ``"predictor=PredictorConfig(kind='ridge'),"``)."""
    path = directory / f"{name}.py"
    path.write_text(TINY_STUDY.format(name=name, steps=steps, overrides=TINY_OVERRIDES,
                                      extra=f"\n    {extra}" if extra else ""))
    return path


def nas(*args: str, cwd: Path, check: bool = True, timeout: float = 600):
    out = subprocess.run([sys.executable, "-m", "nas.cli", *args], cwd=cwd, capture_output=True,
                         text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"nas {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out
