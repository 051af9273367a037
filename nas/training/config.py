"""`TrainConfig`: the supernet training recipe, validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nas.training.augment import AUGMENTATIONS
from nas.training.distillation import DISTILL_LOSSES
from nas.training.samplers import SAMPLERS, SMALLEST_RULES

#: Fields a resumed run may change: where it runs and how often it evaluates and
#: checkpoints (the device can change float rounding, bf16 autocast on CUDA, not the
#: schedule). Every other field is part of the recipe.
RESUME_FREE_FIELDS: frozenset[str] = frozenset(
    {"device", "threads", "eval_every", "eval_batches", "eval_batch_size", "checkpoint_every"})


@dataclass(frozen=True)
class TrainConfig:
    """Recipe of one supernet training run.

    ``steps`` is the schedule horizon (warm-up + cosine over it); a run may stop earlier
    (``stop_at`` of `train_supernet`, ``--steps`` of the CLI) and resume later on the very
    same schedule, so an interrupted run ends with the same weights as a straight one.
    Each step trains the sampler's subnets on one batch: the largest on labels, the others
    distilled from its detached logits (``distill_weight`` mixes in the labels:
    ``w * KD + (1 - w) * CE``).

    ``largest_first``: the fraction of the schedule's first steps that train the largest
    subnet alone (on labels, regularized), before the sampler's subnets join; the others
    then start from a trained network, as Once-for-All's progressive shrinking does.
    ``0`` (the default) samples from the first step; ``1`` trains the largest only.

    ``smallest``: the sandwich's bottom subnet (`SamplerConfig.smallest`): ``"flops"`` the
    fewest-FLOPs arch every step, ``"per_mixer"`` each mixer family's cheapest arch in turn.
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    sampler: str = "complexity_aware"
    num_random: int = 2
    bins: int = 8
    distill: str = "kl"
    distill_weight: float = 1.0
    temperature: float = 1.0
    eval_every: int = 200
    eval_batches: int | None = 20
    eval_batch_size: int = 512
    panel_size: int = 3
    checkpoint_every: int = 100
    device: str = "cpu"
    seed: int = 0
    threads: int | None = None
    augment: str = "none"
    augment_pad: int = 2
    label_smoothing: float = 0.0
    drop_path: float = 0.0
    dropout: float = 0.0
    keep_best: bool = True
    largest_first: float = 0.0
    smallest: str = "flops"

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "num_random", "eval_every", "eval_batch_size",
                    "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"training.{name}: must be an int >= 1, got {value!r}")
        if self.bins < 2:
            raise ValueError(f"training.bins: must be >= 2, got {self.bins}")
        if self.warmup_steps < 0 or self.panel_size < 0:
            raise ValueError("training.warmup_steps and training.panel_size must be >= 0")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.grad_clip > 0):
            raise ValueError("training.lr and training.grad_clip must be > 0, "
                             "training.weight_decay >= 0")
        if not 0 <= self.min_lr_ratio <= 1 or not 0 <= self.distill_weight <= 1:
            raise ValueError("training.min_lr_ratio and training.distill_weight must be in "
                             "[0, 1]")
        if self.temperature <= 0:
            raise ValueError(f"training.temperature: must be > 0, got {self.temperature}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"training.sampler: {self.sampler!r} is not one of "
                             f"{SAMPLERS}")
        if self.smallest not in SMALLEST_RULES:
            raise ValueError(f"training.smallest: {self.smallest!r} is not one of "
                             f"{SMALLEST_RULES}")
        if self.distill not in DISTILL_LOSSES:
            raise ValueError(f"training.distill: {self.distill!r} is not one of "
                             f"{DISTILL_LOSSES}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"training.device: expected 'cpu' or 'cuda', got {self.device!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"training.augment: {self.augment!r} is not one of "
                             f"{AUGMENTATIONS}")
        if (not isinstance(self.augment_pad, int) or isinstance(self.augment_pad, bool)
                or not 0 <= self.augment_pad <= 16):
            raise ValueError(f"training.augment_pad: must be an int in 0..16, got "
                             f"{self.augment_pad!r}")
        for name in ("label_smoothing", "drop_path", "dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                    0 <= value < 1):
                raise ValueError(f"training.{name}: must be a number in [0, 1), got {value!r}")
        if (not isinstance(self.largest_first, (int, float)) or isinstance(self.largest_first, bool)
                or not 0 <= self.largest_first <= 1):
            raise ValueError(f"training.largest_first: must be a number in [0, 1], got "
                             f"{self.largest_first!r}")
        if self.eval_batches is not None and self.eval_batches < 1:
            raise ValueError("training.eval_batches: must be >= 1 or None (whole split)")

    @property
    def largest_first_steps(self) -> int:
        """Steps ``0 .. largest_first_steps - 1`` train the largest subnet alone."""
        return int(round(self.largest_first * self.steps))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"training: unknown option(s) {unknown}")
        return cls(**data)

    def recipe_changes(self, saved: dict[str, Any]) -> list[str]:
        """``"field: saved -> this"`` for each recipe field (not in `RESUME_FREE_FIELDS`)
        where ``saved`` (a checkpoint's ``config``) differs. A field ``saved`` lacks (a
        checkpoint older than the field) counts as its default: every field was added with
        the default that keeps the behaviour from before it.

        Why: resuming a checkpoint under another recipe (a new horizon, say) silently mixes
        two schedules, so `train_supernet` refuses it with these lines."""
        mine = self.to_dict()
        defaults = {f.name: f.default for f in fields(self)}
        return [f"{k}: {saved.get(k, defaults[k])!r} -> {mine[k]!r}" for k in sorted(mine)
                if k not in RESUME_FREE_FIELDS and saved.get(k, defaults[k]) != mine[k]]

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the non-None overrides applied (validated again)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
