"""Ray execution: an evaluation pool of supernet actors (`make_evaluator` picks it or the
in-process evaluator of `nas.evaluation`), remote latency profiling on a target node, and
AutoML of the training recipe with Ray Tune + Optuna.

Objects load lazily (PEP 562): importing `nas.distributed` does not import Ray; only
creating a pool, profiling remotely or tuning does.
"""

from __future__ import annotations

from typing import Any

from nas.lazy import lazy_attribute

_EXPORTS = {
    "EvaluationPool": "nas.distributed.pool",
    "make_evaluator": "nas.distributed.pool",
    "RayConnectionError": "nas.distributed.runtime",
    "connect_ray": "nas.distributed.runtime",
    "ray_session": "nas.distributed.runtime",
    "profile_on_node": "nas.distributed.remote_profile",
    "store_latency_table": "nas.distributed.remote_profile",
    "TuneSummary": "nas.distributed.tune",
    "best_recipe": "nas.distributed.tune",
    "run_tune": "nas.distributed.tune",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
