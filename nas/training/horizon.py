"""Schedule horizon from a wall-clock budget: measure the step speed, then size the run.

A cosine schedule stopped half-way leaves the weights at a high learning rate (the first
sampler ablation did exactly that). Any run that has a time budget instead of a step count
calls `steps_for_budget`: it trains a throw-away supernet for a few steps with the real
recipe on the real data and device, and returns how many steps fit in the budget, so the
real run completes its whole warm-up + cosine schedule inside it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from nas.training.config import TrainConfig
from nas.training.trainer import train_supernet
from search_spaces import SearchSpace


def steps_for_budget(*, space: SearchSpace, train: Any, val: Any, config: TrainConfig,
                     seconds: float, probe_steps: int = 24, warmup_steps: int = 4,
                     margin: float = 0.92, min_steps: int = 10,
                     evaluations: int | None = None) -> int:
    """Steps of ``config``'s recipe that fit in ``seconds`` on ``config.device``.

    Times ``probe_steps`` training steps after ``warmup_steps`` untimed ones (kernel
    selection, allocator warm-up), takes the median step time, adds the panel evaluations
    the real run will do (timed once): one every ``eval_every`` steps, or, where the caller
    sizes ``eval_every`` from the horizon itself (``steps // 6``, say), a fixed count
    ``evaluations`` whatever the horizon; and keeps ``margin`` of the budget for
    checkpoints and noise. With ``config.largest_first`` the largest-alone steps and the
    sampled steps are probed apart and weighted by their shares of the schedule. Returns at
    least ``min_steps``.
    """
    if seconds <= 0:
        raise ValueError(f"seconds: must be > 0, got {seconds!r}")
    if probe_steps < 2 or warmup_steps < 0:
        raise ValueError("probe_steps must be >= 2 and warmup_steps >= 0")
    if evaluations is not None and (isinstance(evaluations, bool)
                                    or not isinstance(evaluations, int) or evaluations < 0):
        raise ValueError(f"evaluations: must be an int >= 0 or None, got {evaluations!r}")
    total = warmup_steps + probe_steps

    def probe(largest_first: float) -> tuple[float, float]:
        """(median step seconds, one panel evaluation's seconds) of a throw-away run."""
        config_p = config.with_overrides(steps=total, eval_every=total, checkpoint_every=total,
                                         keep_best=False, largest_first=largest_first)
        stamps: list[float] = []

        def on_step(step: int, record: dict[str, Any]) -> None:
            stamps.append(time.perf_counter())

        with tempfile.TemporaryDirectory(prefix="nas-horizon-") as tmp:
            train_supernet(space=space, train=train, val=val, config=config_p, out_dir=tmp,
                           progress=False, on_step=on_step)
        gaps = [b - a for a, b in zip(stamps[warmup_steps:-2], stamps[warmup_steps + 1:-1])]
        step_s = statistics.median(gaps)
        # the last step's stamp includes the panel evaluation and the checkpoint
        return step_s, max(0.0, stamps[-1] - stamps[-2] - step_s)

    # the largest-alone phase (``largest_first``) and the sampled phase differ in speed:
    # each is probed on its own and weighted by its share of the schedule
    share = float(config.largest_first)
    sampled_s, eval_s = probe(0.0) if share < 1 else (0.0, 0.0)
    alone_s, alone_eval_s = probe(1.0) if share > 0 else (0.0, 0.0)
    step_s = share * alone_s + (1 - share) * sampled_s
    one_eval = max(eval_s, alone_eval_s)
    if evaluations is not None:  # a fixed number of panel evaluations, whatever the horizon
        return max(min_steps, int((seconds * margin - evaluations * one_eval) / step_s))
    per_step = step_s + one_eval / config.eval_every
    return max(min_steps, int(seconds * margin / per_step))

__all__ = ["steps_for_budget"]
