"""Performance predictors: architecture encodings, the GNN ensemble, sklearn baselines and
honest ranking metrics (labels are validation losses: lower is better).

Example::

    from predictors import make_predictor, kendall_tau
    predictor = make_predictor("gnn", space).fit(archs, val_losses)
    mean, std = predictor.predict(candidates)
"""

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
    "GaussianProcessPredictor", "GradientBoostingPredictor", "RandomForestPredictor",
    "RidgePredictor", "arch_to_graph", "arch_to_vector", "archs_to_matrix", "bootstrap_ci",
    "graph_to_data", "kendall_tau", "list_predictors", "load_predictor", "make_predictor",
    "noise_ceiling_tau", "spearman_rho", "top_k_precision", "truth_ceiling_tau",
]
