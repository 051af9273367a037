"""Pieces every front-vs-baselines benchmark shares (`vs_baselines`, `lm_gpu`).

- `log`: a timestamped line, flushed (the device call returns the output's tail).
- `kept_supernet`: the trained supernet with the weights `nas run` keeps (`best.pt` when
  training kept one, else the last checkpoint), in eval mode.
- `CachedEvaluator`: the search's ``evaluate(archs)``: inherited-weight metrics on one split,
  each arch labelled once however many searches ask for it.
- `calibrated_table`: a latency table of the space built with the project's harness, then
  calibrated and validated on whole models.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import Tensor

from kernels.timing import TimingConfig
from nas.evaluation import evaluate_many
from nas.latency.profile import MeasureConfig, build_table, calibrate_and_validate
from nas.supernet import Supernet
from nas.training import TrainResult, load_checkpoint
from search_spaces import Arch, SearchSpace


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def kept_supernet(space: SearchSpace, result: TrainResult, device: str) -> tuple[Supernet, int]:
    """(supernet in eval mode, step of the weights loaded)."""
    net = Supernet(space).to(device)
    state = load_checkpoint(result.best or result.checkpoint,
                            space_fingerprint=net.fingerprint(), map_location=device)
    net.load_state_dict(state["model"])
    return net.eval(), int(state["step"])


class CachedEvaluator:
    """``evaluate(archs) -> [{"val_loss", "val_accuracy"}]`` on ``split = (x, y)``."""

    def __init__(self, net: Supernet, split: tuple[Tensor, Tensor], *, batch_size: int,
                 device: str) -> None:
        self.net, self.split, self.batch_size, self.device = net, split, batch_size, device
        self.cache: dict[str, dict[str, float]] = {}

    def __call__(self, archs: list[Arch]) -> list[dict[str, float]]:
        todo = [a for a in archs if a.key() not in self.cache]
        if todo:
            for a, res in zip(todo, evaluate_many(self.net, todo, *self.split,
                                                  batch_size=self.batch_size,
                                                  device=self.device)):
                self.cache[a.key()] = {"val_loss": res.loss, "val_accuracy": res.accuracy}
        return [dict(self.cache[a.key()]) for a in archs]

    def __len__(self) -> int:
        return len(self.cache)


def calibrated_table(space: SearchSpace, *, device: str, batch: int, mode: str,
                     layer_timing: TimingConfig, model_timing: TimingConfig, out: Path,
                     n_calibration: int = 10, n_validation: int = 30) -> tuple[Any, dict]:
    """(table, its validation) for ``device`` / ``batch`` / ``mode`` (CPU: one thread)."""
    config = MeasureConfig(device=device, mode=mode, batch_size=batch,
                           threads=1 if device == "cpu" else None, layer_timing=layer_timing,
                           model_timing=model_timing)
    table = build_table(space, config=config, out=out, show_progress=False)
    validation = calibrate_and_validate(table, space, config=config,
                                        n_calibration=n_calibration,
                                        n_validation=n_validation, show_progress=False)
    table.save(out)
    return table, validation
