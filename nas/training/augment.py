"""Data augmentation of training batches, on device, deterministic per seed and step.

``translate`` (MNIST): shift each image by up to ``pad`` pixels. ``crop_flip`` (CIFAR): a
random crop of the image padded by ``pad`` plus a horizontal flip. Padding replicates the
border (images are normalised, so a zero fill would paint a grey frame around a digit).
The per-sample parameters of a step's global batch are drawn on the CPU from a generator
seeded by ``(seed, step)``, so a resumed run and every data-parallel rank see the same
batches.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nas.supernet.regularize import STREAM_AUGMENT, step_generator

AUGMENTATIONS: tuple[str, ...] = ("none", "translate", "crop_flip")


def augment_params(batch_size: int, *, kind: str, pad: int, seed: int, step: int,
                   ) -> Tensor:
    """(B, 3) int64 per-sample ``(dy, dx, flip)`` of the global batch at ``step``, drawn on
    the CPU (cheap; identical on every device and rank)."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"training.augment: {kind!r} is not one of {AUGMENTATIONS}")
    g = step_generator(seed, step, STREAM_AUGMENT)
    shifts = torch.randint(-pad, pad + 1, (batch_size, 2), generator=g)
    flips = torch.randint(0, 2, (batch_size, 1), generator=g)
    if kind != "crop_flip":
        flips.zero_()
    return torch.cat([shifts, flips], dim=1)


def augment_images(x: Tensor, params: Tensor, *, pad: int) -> Tensor:
    """x: (B, C, H, W) -> (B, C, H, W) shifted by ``params[:, :2]`` (a random crop of the
    image padded by ``pad``, border replicated) and mirrored where ``params[:, 2]`` is 1.

    One gather for the whole batch (no Python loop over samples)."""
    B, C, H, W = x.shape
    params = params.to(x.device)
    if pad == 0 and not bool(params[:, 2].any()):
        return x
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")  # (B,C,H+2p,W+2p)
    rows = torch.arange(H, device=x.device)[None, :] + pad + params[:, 0:1]  # (B, H)
    cols = torch.arange(W, device=x.device)[None, :] + pad + params[:, 1:2]  # (B, W)
    flip = params[:, 2:3].bool()
    cols = torch.where(flip, cols.flip(1), cols)  # mirror: read columns right to left
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


__all__ = ["AUGMENTATIONS", "augment_images", "augment_params"]
