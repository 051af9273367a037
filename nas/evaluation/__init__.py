"""Evaluation: score subnets with inherited weights (or any model) on a data split, and the
evaluators the search and the pipeline call.

- `nas.evaluation.scoring`: `evaluate`, `evaluate_many`, `evaluate_model`,
  `evaluate_split_halves`, `task_loss`, `device_kernels` (torch only; loaded here eagerly);
- `nas.evaluation.evaluator`: the evaluator interface `StoringEvaluator` (``evaluate(archs)
  -> [metrics]``, writing to the store as results arrive) and `InProcessEvaluator`; the Ray
  `EvaluationPool` implements the same interface in `nas.distributed`, and
  `nas.distributed.make_evaluator` picks one of the two. These names load lazily (PEP 562):
  the evaluator needs the store (SQLAlchemy), training on a bare GPU box does not.
"""

from __future__ import annotations

from typing import Any

from nas.evaluation.scoring import (
    EvalResult,
    SplitHalfResult,
    device_kernels,
    evaluate,
    evaluate_many,
    evaluate_many_models,
    evaluate_model,
    evaluate_split_halves,
    task_loss,
)
from nas.lazy import lazy_attribute

_LAZY = {
    "BatchReport": "nas.evaluation.evaluator",
    "InProcessEvaluator": "nas.evaluation.evaluator",
    "StoringEvaluator": "nas.evaluation.evaluator",
}

__all__ = ["BatchReport", "EvalResult", "InProcessEvaluator", "SplitHalfResult",
           "StoringEvaluator", "device_kernels", "evaluate", "evaluate_many",
           "evaluate_many_models", "evaluate_model", "evaluate_split_halves", "task_loss"]


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return __all__
