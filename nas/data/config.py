"""`DataConfig` + `load_data` (the built-in sources) and `from_dataset` (any user Dataset)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from nas.data.images import load_cifar10_subset, load_digits, load_mnist
from nas.data.splits import DataError, DataSplits, TensorSplit, holdout, image_splits
from nas.data.text import WINDOWS, load_text

__all__ = ["SOURCES", "DataConfig", "default_data_root", "from_dataset", "load_data"]

SOURCES = ("digits", "mnist", "cifar10_subset", "text")
# Options each source accepts besides source / path / seed (seq_len is for "text" only).
_OPTIONS = {
    "digits": {"val_fraction", "test_fraction"},
    "mnist": {"val_size"},
    "cifar10_subset": {"val_size"},
    "text": {"seq_len", "val_fraction", "test_fraction", "max_bytes", "windows"},
}
# Where the shared data lives when DataConfig.path is None for an image source.
_SHARED_SUBDIR = {"mnist": "images/mnist", "cifar10_subset": "images/cifar10_convnetjs"}


def default_data_root() -> Path:
    """``$NAS_SHARED_DATA``, else ``<repo>/../shared/data`` (the repo holding this package)."""
    env = os.environ.get("NAS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass(frozen=True)
class DataConfig:
    """Which data set to load and how to split it; validated on construction.

    ``source``: one of `SOURCES`. ``path``: the directory (mnist, cifar10_subset) or text
    file (text); None means the shared data dir (`default_data_root`) for images and the
    embedded stdlib corpus for text; digits needs none. Split options left at None use the
    loader's defaults; an option the source does not use is refused. ``windows`` (text):
    ``"random"`` trains on random-offset windows of the train stream (as language models
    are trained), ``"fixed"`` on its fixed non-overlapping windows.
    """

    source: str = "digits"
    path: str | None = None
    seq_len: int = 256
    seed: int = 0
    val_fraction: float | None = None
    test_fraction: float | None = None
    val_size: int | None = None
    max_bytes: int | None = None
    windows: str = "random"

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"DataConfig.source: unknown {self.source!r}; valid sources: "
                             f"{', '.join(SOURCES)}")
        if self.source == "digits" and self.path is not None:
            raise ValueError("DataConfig.path: the digits source is bundled with scikit-learn "
                             "and takes no path")
        unused = [f for f in ("val_fraction", "test_fraction", "val_size", "max_bytes")
                  if getattr(self, f) is not None and f not in _OPTIONS[self.source]]
        if self.seq_len != 256 and self.source != "text":
            unused.append("seq_len")
        if self.windows != "random" and self.source != "text":
            unused.append("windows")
        if unused:
            raise ValueError(f"DataConfig: {', '.join(unused)} not used by source "
                             f"{self.source!r} (it takes {sorted(_OPTIONS[self.source])})")
        if self.seq_len < 1:
            raise ValueError(f"DataConfig.seq_len must be >= 1, got {self.seq_len}")
        if self.windows not in WINDOWS:
            raise ValueError(f"DataConfig.windows: expected one of {WINDOWS}, got "
                             f"{self.windows!r}")
        for f in ("val_fraction", "test_fraction"):
            v = getattr(self, f)
            if v is not None and not 0 <= v < 1:
                raise ValueError(f"DataConfig.{f} must be in [0, 1), got {v}")
        for f in ("val_size", "max_bytes"):
            v = getattr(self, f)
            if v is not None and v < 0:
                raise ValueError(f"DataConfig.{f} must be >= 0, got {v}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def loader_kwargs(self) -> dict[str, Any]:
        """The keyword arguments `load_data` passes to this source's loader."""
        kwargs: dict[str, Any] = {"seed": self.seed}
        kwargs.update({k: getattr(self, k) for k in sorted(_OPTIONS[self.source])
                       if getattr(self, k) is not None})
        return kwargs


_IMAGE_LOADERS: dict[str, Callable[..., DataSplits]] = {
    "mnist": load_mnist, "cifar10_subset": load_cifar10_subset,
}


def load_data(config: DataConfig) -> DataSplits:
    """Load the splits ``config`` describes (see `DataConfig`); errors are `DataError`."""
    kwargs = config.loader_kwargs()
    if config.source == "text":
        return load_text(config.path, **kwargs)
    if config.source == "digits":
        return load_digits(**kwargs)
    if config.path is not None:
        path = Path(config.path)
    else:
        path = default_data_root() / _SHARED_SUBDIR[config.source]
    return _IMAGE_LOADERS[config.source](path, **kwargs)


def from_dataset(train: Dataset, *, val: Dataset | None = None, test: Dataset | None = None,
                 seed: int = 0, modality: str = "image", num_outputs: int,
                 name: str = "custom", val_fraction: float = 0.1, test_fraction: float = 0.1,
                 normalise: bool = True) -> DataSplits:
    """Wrap map-style Datasets of ``(x, y)`` pairs as `DataSplits` (materialised in memory).

    images: ``x`` ``(C, H, W)`` or ``(H, W)`` per item (uint8 is scaled by 1/255), ``y`` an
    integer class id; normalised with train's channel stats unless ``normalise=False``.
    sequences: ``x`` and ``y`` integer token ids ``(T,)`` each. A missing ``val`` / ``test``
    is held out of ``train`` (``round(len(train) * fraction)``, stratified by label for
    images) with ``numpy.random.default_rng(seed)``.
    """
    if modality not in ("image", "sequence"):
        raise ValueError(f"modality must be 'image' or 'sequence', got {modality!r}")
    x, y = _materialise(train, "train", modality)
    parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for part, ds in (("val", val), ("test", test)):
        if ds is not None:
            parts[part] = _materialise(ds, part, modality)
    rng, n_all = np.random.default_rng(seed), len(y)
    for part, frac in (("test", test_fraction), ("val", val_fraction)):
        if part in parts:
            continue
        if not 0 <= frac < 1:
            raise ValueError(f"{part}_fraction must be in [0, 1), got {frac}")
        labels = y.numpy() if modality == "image" else None
        keep, held = holdout(len(y), round(n_all * frac), rng, labels=labels)
        held_t, keep_t = torch.from_numpy(held), torch.from_numpy(keep)
        parts[part] = (x[held_t], y[held_t])
        x, y = x[keep_t], y[keep_t]
    if len(y) == 0:
        raise DataError(f"{name}: nothing left to train on after holding out val and test")
    ordered = [(x, y), parts["val"], parts["test"]]
    if modality == "image":
        scale = 1 / 255 if x.dtype == torch.uint8 else 1.0
        return image_splits(name, ordered, num_classes=num_outputs, scale=scale,
                            normalise=normalise)
    for part, (xs, ys) in zip(("train", "val", "test"), ordered):
        if xs.shape[1:] != x.shape[1:] or ys.shape != xs.shape:
            raise DataError(f"{name}: {part} has x {tuple(xs.shape)} and y {tuple(ys.shape)}; "
                            f"expected both (N, {x.shape[1]})")
        if xs.numel() == 0:
            continue
        lo, hi = int(torch.minimum(xs.min(), ys.min())), int(torch.maximum(xs.max(), ys.max()))
        if lo < 0 or hi >= num_outputs:
            raise DataError(f"{name}: {part} token ids span [{lo}, {hi}], expected "
                            f"[0, {num_outputs})")
    train_s, val_s, test_s = (TensorSplit(a, b) for a, b in ordered)
    return DataSplits(train=train_s, val=val_s, test=test_s, modality="sequence",
                      num_outputs=num_outputs, input_shape=(int(x.shape[1]),), name=name)


def _materialise(ds: Dataset, part: str, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a Dataset into ``(x, y)``: images ``(N, C, H, W)`` / ``(N,)`` int64, sequences
    ``(N, T)`` / ``(N, T)`` int64."""
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        x, y = ds.tensors
    else:
        try:
            n = len(ds)  # type: ignore[arg-type]
            items = [ds[i] for i in range(n)]
            x = torch.stack([torch.as_tensor(item[0]) for item in items])
            y = torch.stack([torch.as_tensor(item[1]) for item in items])
        except (TypeError, IndexError, RuntimeError, ValueError) as exc:
            raise DataError(f"{part} dataset: expected a map-style Dataset with len() whose "
                            f"items are (x, y) pairs of equal shapes ({exc})") from None
    if len(x) == 0:
        raise DataError(f"{part} dataset is empty")
    if modality == "image":
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or y.dim() != 1:
            raise DataError(f"{part} dataset: image items must be x (C, H, W) or (H, W) and a "
                            f"scalar label, got x {tuple(x.shape[1:])}, y {tuple(y.shape[1:])}")
    elif x.dim() != 2:
        raise DataError(f"{part} dataset: sequence items must be x (T,) token ids, got "
                        f"{tuple(x.shape[1:])}")
    if y.dtype.is_floating_point or (modality == "sequence" and x.dtype.is_floating_point):
        raise DataError(f"{part} dataset: labels / token ids must be integers, got "
                        f"{y.dtype if y.dtype.is_floating_point else x.dtype}")
    y = y.to(torch.int64)
    return (x.to(torch.int64) if modality == "sequence" else x), y
