"""Performance predictors: architecture encodings, the GNN ensemble, sklearn baselines and
honest ranking metrics (labels are validation losses: lower is better).

Example::

    from predictors import make_predictor, kendall_tau
    predictor = make_predictor("gnn", space).fit(archs, val_losses)
    mean, std = predictor.predict(candidates)

Public objects load lazily (PEP 562): `predictors.metrics` and the held-out split and
metrics of `predictors.holdout` (numpy / scipy) can be used, by the app for one, without
loading torch-geometric, which only the GNN and the graph encodings need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FlopsPredictor": "predictors.baselines",
    "GaussianProcessPredictor": "predictors.baselines",
    "GradientBoostingPredictor": "predictors.baselines",
    "RandomForestPredictor": "predictors.baselines",
    "RidgePredictor": "predictors.baselines",
    "ArchBatchEncoder": "predictors.encoding",
    "arch_to_graph": "predictors.encoding",
    "arch_to_vector": "predictors.encoding",
    "archs_to_matrix": "predictors.encoding",
    "graph_to_data": "predictors.encoding",
    "GNNConfig": "predictors.gnn",
    "GNNPredictor": "predictors.gnn",
    "HoldoutFit": "predictors.holdout",
    "fit_with_holdout": "predictors.holdout",
    "holdout_metrics": "predictors.holdout",
    "holdout_split": "predictors.holdout",
    "bootstrap_ci": "predictors.metrics",
    "kendall_tau": "predictors.metrics",
    "noise_ceiling_tau": "predictors.metrics",
    "spearman_rho": "predictors.metrics",
    "top_k_precision": "predictors.metrics",
    "truth_ceiling_tau": "predictors.metrics",
    "list_predictors": "predictors.registry",
    "load_predictor": "predictors.registry",
    "make_predictor": "predictors.registry",
}

if TYPE_CHECKING:
    from predictors.baselines import (
        FlopsPredictor,
        GaussianProcessPredictor,
        GradientBoostingPredictor,
        RandomForestPredictor,
        RidgePredictor,
    )
    from predictors.encoding import (
        ArchBatchEncoder,
        arch_to_graph,
        arch_to_vector,
        archs_to_matrix,
        graph_to_data,
    )
    from predictors.gnn import GNNConfig, GNNPredictor
    from predictors.holdout import HoldoutFit, fit_with_holdout, holdout_metrics, holdout_split
    from predictors.metrics import (
        bootstrap_ci,
        kendall_tau,
        noise_ceiling_tau,
        spearman_rho,
        top_k_precision,
        truth_ceiling_tau,
    )
    from predictors.registry import list_predictors, load_predictor, make_predictor

__all__ = [
    "ArchBatchEncoder", "FlopsPredictor", "GNNConfig", "GNNPredictor",
    "GaussianProcessPredictor", "GradientBoostingPredictor", "HoldoutFit",
    "RandomForestPredictor", "RidgePredictor", "arch_to_graph", "arch_to_vector",
    "archs_to_matrix", "bootstrap_ci", "fit_with_holdout", "graph_to_data", "holdout_metrics",
    "holdout_split", "kendall_tau", "list_predictors", "load_predictor", "make_predictor",
    "noise_ceiling_tau", "spearman_rho", "top_k_precision", "truth_ceiling_tau",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # the next access skips this hook
        return value
    raise AttributeError(f"module 'predictors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
