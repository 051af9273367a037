"""Data for NAS runs: in-memory train / val / test splits of images or byte sequences.

Built-in sources (`DataConfig.source`): scikit-learn ``digits`` (bundled), ``mnist`` (IDX or
convnetjs PNG strips), ``cifar10_subset`` (convnetjs PNG strips) and ``text`` (any file, or
the embedded standard-library corpus). `from_dataset` wraps any ``torch`` Dataset.

Images come as float32 ``(N, C, H, W)`` normalised by the train split's channel stats with
int64 labels ``(N,)``; sequences as int64 ``(N, T)`` token ids with next-token targets
``(N, T)`` (text also as a `TextStream` of the train region, for random-offset training
windows: `DataSplits.train_source`). Needs torch, numpy, Pillow and scikit-learn only.
"""

from __future__ import annotations

from nas.data.config import SOURCES, DataConfig, default_data_root, from_dataset, load_data
from nas.data.images import load_cifar10_subset, load_digits, load_mnist
from nas.data.splits import DataError, DataSplits, TensorSplit, TextStream
from nas.data.text import load_text

__all__ = [
    "SOURCES",
    "DataConfig",
    "DataError",
    "DataSplits",
    "TensorSplit",
    "TextStream",
    "default_data_root",
    "from_dataset",
    "load_cifar10_subset",
    "load_data",
    "load_digits",
    "load_mnist",
    "load_text",
]
