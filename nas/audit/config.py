"""`AuditConfig` (a study's audit settings) and `StandaloneRecipe` (how one subnet is
trained from scratch), both validated once. Torch-free."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from nas.training.config import TrainConfig


@dataclass(frozen=True)
class AuditConfig:
    """The `nas audit` settings of a study.

    The stand-alone recipe is the study's supernet recipe (optimizer, LR, weight decay,
    warm-up + cosine schedule, batch size, gradient clipping) trained on labels alone for
    ``budget`` x the supernet's schedule horizon (``training.steps``), or for ``steps``
    when given. ``seed`` seeds the selection of archs; stand-alone seeds are
    ``0 .. seeds-1``. Rankings are compared by Kendall tau, Spearman rho and the recall of
    the stand-alone top ``top_k_fraction`` (at least 1 arch), with percentile bootstrap
    intervals over archs (``bootstrap`` resamples drawn from ``bootstrap_seed``).
    """

    budget: float = 1.0
    steps: int | None = None
    seed: int = 0
    top_k_fraction: float = 0.25
    bootstrap: int = 1000
    bootstrap_seed: int = 0
    level: float = 0.95
    front_share: float = 1 / 3
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        if not (isinstance(self.budget, (int, float)) and 0 < self.budget <= 100):
            raise ValueError(f"audit.budget: expected a number in (0, 100], got {self.budget!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or
                                       not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"audit.steps: expected an int >= 1 or None, got {self.steps!r}")
        if not 0 < self.top_k_fraction <= 1:
            raise ValueError(f"audit.top_k_fraction: expected (0, 1], got {self.top_k_fraction}")
        if not isinstance(self.bootstrap, int) or self.bootstrap < 10:
            raise ValueError(f"audit.bootstrap: expected an int >= 10, got {self.bootstrap!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"audit.level: expected a value in (0, 1), got {self.level}")
        if not 0 <= self.front_share <= 1:
            raise ValueError(f"audit.front_share: expected [0, 1], got {self.front_share}")
        if self.eval_batch_size < 1:
            raise ValueError("audit.eval_batch_size: must be >= 1")

    def top_k(self, n: int) -> int:
        """How many archs the top-k recall looks at among ``n``."""
        return max(1, min(n, int(math.floor(self.top_k_fraction * n + 0.5))))

    def recipe(self, training: TrainConfig, *, steps: int | None = None,
               budget: float | None = None) -> StandaloneRecipe:
        """The stand-alone recipe for a study trained with ``training``; ``steps`` or
        ``budget`` (command-line overrides) replace this config's."""
        if steps is None and budget is None:
            steps, budget = self.steps, self.budget
        return StandaloneRecipe.from_training(training, budget=budget or self.budget,
                                              steps=steps,
                                              eval_batch_size=self.eval_batch_size)


@dataclass(frozen=True)
class StandaloneRecipe:
    """How one subnet is trained from scratch: AdamW (no decay on norms and biases), linear
    warm-up then cosine to ``min_lr_ratio`` over ``steps``, cross-entropy on labels (with
    ``label_smoothing``), the supernet's ``augment``, gradients clipped to ``grad_clip``;
    bf16 autocast on CUDA, as the supernet (`nas.training.standalone.fit_model`); the
    supernet's stochastic depth (``drop_path``) and dropout (``dropout``) when it has them,
    so a stand-alone run is regularized as the supernet's label-trained subnets are."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    min_lr_ratio: float
    grad_clip: float
    eval_batch_size: int = 512
    augment: str = "none"
    augment_pad: int = 2
    label_smoothing: float = 0.0
    drop_path: float = 0.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("drop_path", "dropout"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"recipe.{name}: must be in [0, 1), got {value!r}")
        for name in ("steps", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"recipe.{name}: must be an int >= 1, got {value!r}")
        if self.warmup_steps < 0 or self.warmup_steps > self.steps:
            raise ValueError(f"recipe.warmup_steps: must be in [0, steps], got "
                             f"{self.warmup_steps}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.grad_clip > 0
                and 0 <= self.min_lr_ratio <= 1):
            raise ValueError("recipe: lr and grad_clip must be > 0, weight_decay >= 0, "
                             "min_lr_ratio in [0, 1]")

    @classmethod
    def from_training(cls, training: TrainConfig, *, budget: float = 1.0,
                      steps: int | None = None, eval_batch_size: int = 512,
                      ) -> StandaloneRecipe:
        """The supernet recipe ``training`` with ``steps`` (default ``budget`` x its
        horizon); the warm-up keeps its share of the schedule."""
        if steps is None:
            if not budget > 0:
                raise ValueError(f"budget: expected > 0, got {budget}")
            steps = max(1, int(round(budget * training.steps)))
        warmup = min(steps, int(round(training.warmup_steps * steps / training.steps)))
        return cls(steps=steps, batch_size=training.batch_size, lr=training.lr,
                   weight_decay=training.weight_decay, warmup_steps=warmup,
                   min_lr_ratio=training.min_lr_ratio, grad_clip=training.grad_clip,
                   eval_batch_size=eval_batch_size, augment=training.augment,
                   augment_pad=training.augment_pad, label_smoothing=training.label_smoothing,
                   drop_path=training.drop_path, dropout=training.dropout)

    @property
    def regularized(self) -> bool:
        return self.drop_path > 0 or self.dropout > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        """Hash of what changes the result (not the evaluation batch size)."""
        fields = {k: v for k, v in self.to_dict().items() if k != "eval_batch_size"}
        for name in ("drop_path", "dropout"):  # unregularized recipes keep their older keys
            if fields[name] == 0:
                del fields[name]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]

    def fidelity(self, seed: int) -> str:
        """The store's ``fidelity`` of a run of this recipe with ``seed``."""
        return (f"standalone recipe={self.key()} steps={self.steps} batch={self.batch_size} "
                f"seed={seed}")

    def describe(self) -> str:
        return (f"{self.steps} steps x batch {self.batch_size}, AdamW lr {self.lr:g} "
                f"wd {self.weight_decay:g}, warm-up {self.warmup_steps} + cosine, "
                f"clip {self.grad_clip:g}"
                + (f", drop_path {self.drop_path:g}, dropout {self.dropout:g}"
                   if self.regularized else ""))
