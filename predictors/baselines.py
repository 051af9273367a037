"""Baseline predictors on the flat encoding, behind the `GNNPredictor` interface.

``fit(archs, y)``, ``predict(archs) -> (mean, std)``, ``update(archs, y)``,
``save(path)`` / ``load(path)``. Features are `archs_to_matrix` columns standardised with
training statistics; targets are standardised too. ``save`` writes the options and the
training set as JSON and ``load`` refits (every model is deterministic given its seed), so
no estimator is ever pickled.

- ``random_forest``: mean and spread over the trees.
- ``gradient_boosting``: five stochastic boosted ensembles (subsample 0.8, seeds differ);
  mean and spread over them.
- ``gaussian_process``: Matern-5/2 + white noise, hyper-parameters by marginal likelihood.
- ``ridge``: Bayesian ridge (ridge regression with the penalty set by evidence
  maximisation), which also gives a predictive std.
- ``flops``: the floor. Labels against log FLOPs by least squares, i.e. rank by FLOPs with
  the direction learned; std is the residual spread.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import BayesianRidge

from predictors.encoding import ArchBatchEncoder, archs_to_matrix
from predictors.metrics import Floats
from predictors.persistence import (
    check_labels,
    items_from_json,
    items_to_json,
    read_config,
    space_from_description,
    write_config,
)
from search_spaces import Arch, SearchSpace


class FlatPredictor(ABC):
    """Shared plumbing: encoding, standardisation, labels, persistence, update.

    Subclasses set ``kind`` and implement ``_fit_model(x, y)`` and ``_predict_model(x)``
    on standardised arrays (x: (B, D), y: (B,)) returning standardised (mean, std).
    """

    kind: ClassVar[str] = ""

    def __init__(self, space: SearchSpace | None, *, seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space: expected a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = seed
        self._encoder = ArchBatchEncoder(space)
        self._train_items: list[Arch] = []
        self._train_y = np.zeros(0)
        self._x_mean = self._x_std = np.zeros(0)
        self._y_mean, self._y_std = 0.0, 1.0
        self._fitted = False

    def options(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-ready); `load` rebuilds from them."""
        return {"seed": self.seed}

    def _matrix(self, items: Sequence[Any]) -> np.ndarray:
        items = list(items)
        if not items:
            raise ValueError("items: empty")
        for i, item in enumerate(items):
            if not isinstance(item, Arch):
                raise ValueError(f"items[{i}]: {self.kind} predictor takes Arch objects, got "
                                 f"{type(item).__name__} (use GNNPredictor for graphs)")
        return archs_to_matrix(self.space, items, encoder=self._encoder)

    def fit(self, items: Sequence[Arch], y: Floats) -> FlatPredictor:
        """Fit on archs and labels (B,); returns self."""
        y_arr = check_labels(items, y)
        x = self._matrix(items)
        self._x_mean = x.mean(0)
        self._x_std = np.where(x.std(0) > 1e-12, x.std(0), 1.0)
        self._y_mean = float(y_arr.mean())
        self._y_std = float(y_arr.std()) or 1.0
        self._fit_model((x - self._x_mean) / self._x_std, (y_arr - self._y_mean) / self._y_std)
        self._train_items, self._train_y = list(items), y_arr
        self._fitted = True
        return self

    def update(self, items: Sequence[Arch], y: Floats) -> FlatPredictor:
        """Add labelled archs and refit on everything."""
        y_arr = check_labels(items, y)
        return self.fit(self._train_items + list(items), np.concatenate([self._train_y, y_arr]))

    def predict(self, items: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std, (B,) float64 each, in label units."""
        if not self._fitted:
            raise ValueError("predictor is not fitted: call fit() first")
        x = (self._matrix(items) - self._x_mean) / self._x_std
        mean, std = self._predict_model(x)
        return mean * self._y_std + self._y_mean, std * self._y_std

    def save(self, path: str | Path) -> Path:
        """Write ``path/config.json`` (options, space, training set); returns ``path``."""
        if not self._fitted:
            raise ValueError("predictor is not fitted: nothing to save")
        payload = {"options": self.options(),
                   "train": {"items": items_to_json(self._train_items),
                             "y": self._train_y.tolist()}}
        return write_config(path, kind=self.kind, space=self.space, payload=payload)

    @classmethod
    def load(cls, path: str | Path, *, space: SearchSpace | None = None) -> FlatPredictor:
        """Rebuild from `save`'s JSON by refitting on the stored training set."""
        document, description = read_config(path, kind=cls.kind)
        space = space_from_description(description, space)
        predictor = cls(space, **document["options"])
        return predictor.fit(items_from_json(document["train"]["items"]), document["train"]["y"])

    @abstractmethod
    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit on standardised features (B, D) and targets (B,)."""

    @abstractmethod
    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised (mean, std), (B,) each."""


class RandomForestPredictor(FlatPredictor):
    kind = "random_forest"

    def __init__(self, space: SearchSpace | None, *, seed: int = 0, n_estimators: int = 300,
                 max_features: float = 0.5) -> None:
        super().__init__(space, seed=seed)
        self.n_estimators, self.max_features = n_estimators, max_features

    def options(self) -> dict[str, Any]:
        return {**super().options(), "n_estimators": self.n_estimators,
                "max_features": self.max_features}

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        self._model = RandomForestRegressor(n_estimators=self.n_estimators,
                                            max_features=self.max_features,
                                            random_state=self.seed, n_jobs=1).fit(x, y)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_tree = np.stack([tree.predict(x) for tree in self._model.estimators_])  # (T, B)
        return per_tree.mean(0), per_tree.std(0)


class GradientBoostingPredictor(FlatPredictor):
    kind = "gradient_boosting"

    def __init__(self, space: SearchSpace | None, *, seed: int = 0, n_estimators: int = 300,
                 learning_rate: float = 0.05, max_depth: int = 3, members: int = 5) -> None:
        super().__init__(space, seed=seed)
        self.n_estimators, self.learning_rate = n_estimators, learning_rate
        self.max_depth, self.members = max_depth, members

    def options(self) -> dict[str, Any]:
        return {**super().options(), "n_estimators": self.n_estimators,
                "learning_rate": self.learning_rate, "max_depth": self.max_depth,
                "members": self.members}

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        self._models = [
            GradientBoostingRegressor(n_estimators=self.n_estimators,
                                      learning_rate=self.learning_rate, max_depth=self.max_depth,
                                      subsample=0.8, random_state=self.seed * 1000 + i).fit(x, y)
            for i in range(self.members)]

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = np.stack([m.predict(x) for m in self._models])  # (members, B)
        return preds.mean(0), preds.std(0)


class GaussianProcessPredictor(FlatPredictor):
    kind = "gaussian_process"

    def __init__(self, space: SearchSpace | None, *, seed: int = 0, restarts: int = 2) -> None:
        super().__init__(space, seed=seed)
        self.restarts = restarts

    def options(self) -> dict[str, Any]:
        return {**super().options(), "restarts": self.restarts}

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        kernel = (ConstantKernel(1.0, (1e-2, 1e2))
                  * Matern(length_scale=np.sqrt(x.shape[1]), length_scale_bounds=(1e-1, 1e3),
                           nu=2.5)
                  + WhiteKernel(0.1, (1e-5, 1.0)))
        self._model = GaussianProcessRegressor(kernel=kernel, normalize_y=False,
                                               n_restarts_optimizer=self.restarts,
                                               random_state=self.seed)
        with warnings.catch_warnings():  # a bound reached is fine for a baseline
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model.fit(x, y)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._model.predict(x, return_std=True)
        return mean, std


class RidgePredictor(FlatPredictor):
    kind = "ridge"

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        self._model = BayesianRidge().fit(x, y)

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._model.predict(x, return_std=True)
        return mean, std


class FlopsPredictor(FlatPredictor):
    """Rank by FLOPs: ``y ~ a + b log(FLOPs)`` (the floor every predictor must beat)."""

    kind = "flops"

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        log_flops = x[:, -2]  # standardised log FLOPs column of archs_to_matrix
        self._slope, self._intercept = np.polyfit(log_flops, y, 1)
        self._residual = float(np.std(y - (self._slope * log_flops + self._intercept)))

    def _predict_model(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = self._slope * x[:, -2] + self._intercept
        return mean, np.full(len(mean), self._residual)


BASELINES: dict[str, type[FlatPredictor]] = {
    cls.kind: cls for cls in (RandomForestPredictor, GradientBoostingPredictor,
                              GaussianProcessPredictor, RidgePredictor, FlopsPredictor)}

__all__ = ["BASELINES", "FlatPredictor", "FlopsPredictor", "GaussianProcessPredictor",
           "GradientBoostingPredictor", "RandomForestPredictor", "RidgePredictor"]
