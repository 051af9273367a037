"""A tiny study file and a runner for the `nas` CLI, shared by the pipeline tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY_OVERRIDES = dict(in_channels=1, num_outputs=10, resolutions=(8,), patch_size=2,
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
    search=SearchConfig(budget=12, population=4, pool_factor=4, seed=0,
                        predictor_options={search_gnn!r}),{predictor}{extra}
)
'''

# The study's GNN predictor, smaller than the defaults (an ensemble of 5 x 500 steps, fitted
# twice: about 11 s of every `nas run` on a quiet 2-core CPU); the predict stage, the stored
# predictor and the search's screening still run it for real.
PREDICT_GNN = dict(ensemble=2, steps=100)
SEARCH_GNN = dict(ensemble=2, steps=50)
PREDICTOR = "\n    predictor=PredictorConfig(kind=\"gnn\", options={options!r}),"


def write_study(directory: Path, *, name: str = "tiny", steps: int = 12, extra: str = "") -> Path:
    """``directory/<name>.py``: the tiny study; ``extra`` adds fields to its `Study(...)`
    (for example ``"predictor=PredictorConfig(kind='ridge'),"``, which replaces the small
    GNN predictor)."""
    path = directory / f"{name}.py"
    predictor = "" if "predictor=" in extra else PREDICTOR.format(options=PREDICT_GNN)
    path.write_text(TINY_STUDY.format(name=name, steps=steps, overrides=TINY_OVERRIDES,
                                      search_gnn=SEARCH_GNN, predictor=predictor,
                                      extra=f"\n    {extra}" if extra else ""))
    return path


def nas(*args: str, cwd: Path, check: bool = True, timeout: float = 600):
    out = subprocess.run([sys.executable, "-m", "nas.cli", *args], cwd=cwd, capture_output=True,
                         text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"nas {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out
