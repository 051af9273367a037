"""`nas train`: load a study, apply command-line overrides, train, print the panel."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nas.study import load_study
from nas.training import TrainResult, train_data_parallel, train_supernet


def default_run_dir(study_name: str) -> Path:
    return Path("runs") / study_name / "supernet"


def run_training(*, study_file: Path, sampler: str | None = None, steps: int | None = None,
                 epochs: float | None = None, device: str | None = None, resume: bool = False,
                 out: Path | None = None, progress: bool = True,
                 recipe: dict | None = None, nproc: int = 1) -> TrainResult:
    """``recipe``: `TrainConfig` overrides (e.g. the best `nas tune` trial) applied first.
    ``nproc`` > 1: data-parallel over that many ranks (GPUs, or gloo processes on CPU) with
    the study's ``batch_size`` as the global batch (`nas.training.train_data_parallel`)."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"--nproc: must be an int >= 1, got {nproc!r}")
    study = load_study(study_file)
    space = study.build_space()
    config = study.training.with_overrides(**(recipe or {}))
    config = config.with_overrides(sampler=sampler, device=device)
    data = study.load_data()
    if steps is not None and epochs is not None:
        raise ValueError("give --steps or --epochs, not both")
    if epochs is not None:
        steps = max(1, math.ceil(epochs * len(data.train) / config.batch_size))
    if steps is not None and steps > config.steps:
        config = config.with_overrides(steps=steps)
    out = out or default_run_dir(study.name)
    console = Console()
    console.print(f"study {study.name}: space {space.name} ({space.size():.3g} archs), "
                  f"data {data.describe()}, sampler {config.sampler}, device {config.device}")
    if nproc > 1:
        console.print(f"data-parallel: {nproc} ranks sharing each global batch of "
                      f"{config.batch_size}")
        result = train_data_parallel(
            nproc=nproc, space_factory=study.build_space,
            train=data.train_source(), val=(data.val.x, data.val.y), config=config,
            out_dir=out, resume=resume, stop_at=steps, progress=progress)
    else:
        result = train_supernet(space=space, train=data.train_source(),
                                val=(data.val.x, data.val.y), config=config, out_dir=out,
                                resume=resume, stop_at=steps, progress=progress)
    table = Table(title=f"validation panel at step {result.step}")
    for col in ("role", "key", "MFLOPs", "val loss", "val acc %"):
        table.add_column(col)
    for row in result.panel:
        table.add_row(row["role"], row["key"], f"{row['flops'] / 1e6:.2f}", f"{row['loss']:.4f}",
                      f"{100 * row['accuracy']:.2f}")
    console.print(table)
    console.print(f"checkpoint: {result.checkpoint}")
    return result
