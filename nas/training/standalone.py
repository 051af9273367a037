"""Stand-alone training of any `nn.Module` with the supernet's recipe family.

One loop for everything that is trained from scratch beside the supernet (an audited
subnet, a hand-designed baseline), so "same data, same budget, same recipe" holds by
construction: AdamW (no decay on norms and biases), linear warm-up then cosine to
``min_lr_ratio``, gradient clipping, bf16 autocast on CUDA, the same per-(seed, step)
augmentation as the supernet, label-smoothed cross-entropy. Torch only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nas.evaluation import task_loss
from nas.training.augment import augment_images, augment_params
from nas.training.config import TrainConfig
from nas.training.trainer import lr_factor


@dataclass(frozen=True)
class FitRecipe:
    """The recipe of one stand-alone run (see the module docstring)."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    augment: str = "none"
    augment_pad: int = 2
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        # the supernet recipe's checks name the same fields
        TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                    weight_decay=self.weight_decay, warmup_steps=self.warmup_steps,
                    min_lr_ratio=self.min_lr_ratio, grad_clip=self.grad_clip,
                    augment=self.augment, augment_pad=self.augment_pad,
                    label_smoothing=self.label_smoothing)

    @classmethod
    def from_training(cls, training: TrainConfig, *, steps: int | None = None) -> FitRecipe:
        """``training``'s recipe over ``steps`` (default its horizon); the warm-up keeps its
        share of the schedule."""
        steps = training.steps if steps is None else steps
        warmup = min(steps, int(round(training.warmup_steps * steps / training.steps)))
        return cls(steps=steps, batch_size=training.batch_size, lr=training.lr,
                   weight_decay=training.weight_decay, warmup_steps=warmup,
                   min_lr_ratio=training.min_lr_ratio, grad_clip=training.grad_clip,
                   augment=training.augment, augment_pad=training.augment_pad,
                   label_smoothing=training.label_smoothing)


def fit_model(model: nn.Module, *, train: tuple[Tensor, Tensor], recipe: FitRecipe, seed: int,
              device: str | torch.device = "cpu",
              on_step: Callable[[int, Tensor], None] | None = None) -> nn.Module:
    """Train ``model`` in place on ``train = (x (N, ...), y (N, ...))`` for ``recipe.steps``.

    ``seed`` draws the per-epoch data order and the augmentation; ``on_step(step, loss)``
    gets the detached 0-dim loss after each step (no host sync unless it reads it).
    Returns the model in eval mode, on ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("stand-alone training on 'cuda' but no CUDA device is available")
    model = model.to(device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr)
    schedule = TrainConfig(steps=recipe.steps, warmup_steps=recipe.warmup_steps,
                           min_lr_ratio=recipe.min_lr_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, schedule))
    x, y = train[0].to(device), train[1].to(device)
    n = x.shape[0]
    if n < recipe.batch_size:
        raise ValueError(f"training split has {n} examples, fewer than batch_size "
                         f"{recipe.batch_size}")
    per_epoch = n // recipe.batch_size
    gen = torch.Generator().manual_seed(seed)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())
    augment = recipe.augment != "none" and x.dim() == 4
    order = torch.empty(0, dtype=torch.long)
    # cuDNN stays on: a stand-alone model meets one input shape, so its plans are built once
    for step in range(recipe.steps):
        offset = step % per_epoch
        if offset == 0:  # a new epoch: a fresh permutation (drop_last)
            order = torch.randperm(n, generator=gen).to(device)
        idx = order[offset * recipe.batch_size:(offset + 1) * recipe.batch_size]
        xb = x[idx]
        if augment:
            params = augment_params(recipe.batch_size, kind=recipe.augment,
                                    pad=recipe.augment_pad, seed=seed, step=step)
            xb = augment_images(xb, params, pad=recipe.augment_pad)
        with autocast:
            loss = task_loss(model(xb), y[idx], label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        sched.step()
        if on_step is not None:
            on_step(step + 1, loss.detach())
    return model.eval()


__all__ = ["FitRecipe", "fit_model"]
