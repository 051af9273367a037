"""Build any predictor by name and load any saved one: the entry point `nas` uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from predictors.baselines import BASELINES, FlatPredictor
from predictors.gnn import GNNPredictor
from predictors.persistence import read_config
from search_spaces import SearchSpace

Predictor = Union[GNNPredictor, FlatPredictor]
PREDICTORS: dict[str, type[GNNPredictor] | type[FlatPredictor]] = {
    GNNPredictor.kind: GNNPredictor, **BASELINES}


def list_predictors() -> list[str]:
    """Registered names: ``gnn`` and the baselines."""
    return list(PREDICTORS)


def make_predictor(name: str, space: SearchSpace | None = None, **options: Any) -> Predictor:
    """An unfitted predictor by name; ``options`` go to its constructor (for ``gnn``, the
    `GNNConfig` fields). ``None`` options are dropped, so CLI defaults pass through.

    Example::

        predictor = make_predictor("gnn", space, ensemble=5, seed=0).fit(archs, losses)
    """
    if name not in PREDICTORS:
        raise ValueError(f"unknown predictor {name!r}; registered: {list_predictors()}")
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return PREDICTORS[name](space, **options)
    except TypeError as exc:  # an option the constructor does not take
        raise ValueError(f"predictor {name!r}: {exc}") from None


def load_predictor(path: str | Path, *, space: SearchSpace | None = None) -> Predictor:
    """Load whatever predictor `save` wrote at ``path`` (the kind is read from its config)."""
    document, _ = read_config(path)
    kind = document.get("kind")
    if kind not in PREDICTORS:
        raise ValueError(f"{path}: unknown predictor kind {kind!r}")
    return PREDICTORS[kind].load(path, space=space)


__all__ = ["PREDICTORS", "Predictor", "list_predictors", "load_predictor", "make_predictor"]
