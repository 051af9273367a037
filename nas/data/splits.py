"""In-memory split containers plus the shared helpers every loader uses.

A `TensorSplit` holds one split as two tensors and yields batches by indexing them (no
per-item collate), so a training loop on two CPU cores is never data bound. `DataSplits`
bundles train / val / test with what a model needs to know about them.

Conventions (all loaders follow them):

- images: ``x`` float32 ``(N, C, H, W)`` normalised with the per-channel mean / std of the
  train split, ``y`` int64 ``(N,)`` class ids in ``[0, num_outputs)``;
- sequences: ``x`` int64 ``(N, T)`` token ids, ``y`` int64 ``(N, T)`` the next tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DataError", "DataSplits", "TensorSplit", "TextStream", "holdout",
           "normalise_images", "window_offsets"]

MODALITIES = ("image", "sequence")


class DataError(ValueError):
    """A data source that is missing, malformed or truncated; the message names the path
    and the format that was expected there."""


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """One split held in memory: ``x`` of shape ``(N, ...)`` and ``y`` of shape ``(N, ...)``."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"TensorSplit: x has {self.x.shape[0]} rows but y has "
                             f"{self.y.shape[0]}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def num_batches(self, batch_size: int, *, drop_last: bool = False) -> int:
        """How many batches `batches` yields for this ``batch_size``."""
        n = len(self)
        return n // batch_size if drop_last else -(-n // batch_size)

    def batches(self, batch_size: int, *, generator: torch.Generator | None = None,
                shuffle: bool, drop_last: bool = False,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches of ``batch_size`` rows covering every row once.

        With ``shuffle`` the order is ``torch.randperm`` drawn from ``generator`` (the global
        RNG when None), so a seeded generator reproduces the epoch exactly. Without it the
        batches are views in storage order. ``drop_last`` drops a final short batch.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        stop = n - n % batch_size if drop_last else n
        if not shuffle:
            for start in range(0, stop, batch_size):
                yield self.x[start:start + batch_size], self.y[start:start + batch_size]
            return
        order = torch.randperm(n, generator=generator).to(self.x.device)
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield self.x.index_select(0, idx), self.y.index_select(0, idx.to(self.y.device))

    def to(self, device: torch.device | str) -> TensorSplit:
        """This split with both tensors moved to ``device``."""
        return TensorSplit(self.x.to(device), self.y.to(device))


_OFFSET_STREAM = 104_723  # keeps the offsets' draws apart from any other (seed, step) stream


def window_offsets(step: int, batch_size: int, *, seed: int, high: int) -> torch.Tensor:
    """The ``(batch_size,)`` int64 window offsets of global batch ``step``: uniform in
    ``[0, high)``, drawn from a generator seeded by ``(seed, step)`` only (no state carried
    from step to step, so a resumed run draws exactly what a straight run drew)."""
    for name, value, low in (("step", step, 0), ("batch_size", batch_size, 1),
                             ("seed", seed, 0), ("high", high, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"window_offsets: {name} must be an int >= {low}, got {value!r}")
    rng = np.random.default_rng([int(seed), int(step), _OFFSET_STREAM])
    return torch.from_numpy(rng.integers(0, high, size=batch_size, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class TextStream:
    """A token stream ``tokens`` ``(L,)`` read as random-offset training windows.

    Window ``o`` is ``tokens[o : o + seq_len + 1]``: ``x = w[:-1]``, ``y = w[1:]``, so every
    ``o`` in ``[0, L - seq_len)`` is a distinct window (`num_windows`). Batches are drawn by
    `offsets` (a function of ``(seed, step)`` alone) and gathered by `take`; a data-parallel
    rank shards the global offsets before gathering, so its rows are its slice of the
    one-process batch. Tokens are any integer dtype (``uint8`` bytes keep it small).
    """

    tokens: torch.Tensor
    seq_len: int

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, torch.Tensor) or self.tokens.dim() != 1:
            raise ValueError("TextStream.tokens: expected a 1-D tensor of token ids, got "
                             f"{getattr(self.tokens, 'shape', type(self.tokens).__name__)}")
        if self.tokens.dtype.is_floating_point or self.tokens.dtype == torch.bool:
            raise ValueError(f"TextStream.tokens: token ids must be integers, got "
                             f"{self.tokens.dtype}")
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or (
                self.seq_len < 1):
            raise ValueError(f"TextStream.seq_len: must be an int >= 1, got {self.seq_len!r}")
        if len(self.tokens) < self.seq_len + 1:
            raise DataError(f"TextStream: {len(self.tokens):,} tokens hold no window of "
                            f"seq_len + 1 = {self.seq_len + 1}")

    @property
    def num_windows(self) -> int:
        """Distinct windows (offsets) in the stream: ``L - seq_len``."""
        return len(self.tokens) - self.seq_len

    def __len__(self) -> int:
        return self.num_windows

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def offsets(self, step: int, batch_size: int, *, seed: int) -> torch.Tensor:
        """The ``(batch_size,)`` int64 CPU offsets of global batch ``step`` (`window_offsets`)."""
        return window_offsets(step, batch_size, seed=seed, high=self.num_windows)

    def take(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows at ``offsets`` ``(B,)``: ``x``, ``y`` int64 ``(B, seq_len)`` on the
        stream's device, ``y[:, t] == x[:, t + 1]``."""
        if offsets.dim() != 1:
            raise ValueError(f"TextStream.take: offsets must be (B,), got {tuple(offsets.shape)}")
        span = torch.arange(self.seq_len + 1, device=self.tokens.device)
        w = self.tokens[offsets.to(self.tokens.device).unsqueeze(1) + span].long()
        return w[:, :-1], w[:, 1:]

    def batch(self, step: int, batch_size: int, *, seed: int, rank: int = 0,
              world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Rank ``rank``'s contiguous ``batch_size / world_size`` rows of global batch
        ``step``: ``x``, ``y`` int64 ``(batch_size / world_size, seq_len)``."""
        if world_size < 1 or not 0 <= rank < world_size or batch_size % world_size:
            raise ValueError(f"TextStream.batch: need 0 <= rank < world_size dividing "
                             f"batch_size, got rank {rank}, world_size {world_size}, "
                             f"batch_size {batch_size}")
        n = batch_size // world_size
        return self.take(self.offsets(step, batch_size, seed=seed)[rank * n:(rank + 1) * n])

    def to(self, device: torch.device | str) -> TextStream:
        """This stream with its tokens on ``device``."""
        return TextStream(self.tokens.to(device), self.seq_len)


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train / val / test splits of one data set, plus what a model needs to know.

    ``input_shape`` is ``(C, H, W)`` for images and ``(T,)`` for sequences; ``num_outputs``
    is the number of classes (images) or the vocabulary size (sequences). ``mean`` / ``std``
    are the per-channel statistics images were normalised with (empty for sequences).
    ``stream`` (sequences only, optional): the train region as one `TextStream`; when set,
    training draws random-offset windows from it (`train_source`) instead of ``train``'s
    fixed windows, which stay for checks, stand-alone baselines and epoch counting.
    """

    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    modality: str
    num_outputs: int
    input_shape: tuple[int, ...]
    name: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    stream: TextStream | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.num_outputs < 1:
            raise ValueError(f"num_outputs must be >= 1, got {self.num_outputs}")
        want = 3 if self.modality == "image" else 1
        if len(self.input_shape) != want:
            raise ValueError(f"{self.modality} input_shape must have {want} dims, "
                             f"got {self.input_shape}")
        for part in ("train", "val", "test"):
            split = getattr(self, part)
            if tuple(split.x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(f"{self.name}: {part}.x rows have shape "
                                 f"{tuple(split.x.shape[1:])}, expected {self.input_shape}")
        if self.stream is not None:
            if not isinstance(self.stream, TextStream) or self.modality != "sequence":
                raise ValueError(f"{self.name}: stream must be a TextStream of sequence data")
            if (self.stream.seq_len,) != tuple(self.input_shape):
                raise ValueError(f"{self.name}: stream windows are {self.stream.seq_len} "
                                 f"tokens, expected {self.input_shape[0]}")

    def train_source(self) -> tuple[torch.Tensor, torch.Tensor] | TextStream:
        """What a training loop draws its batches from: ``stream`` when set (random-offset
        windows), else the fixed ``(train.x, train.y)``."""
        return self.stream if self.stream is not None else (self.train.x, self.train.y)

    def describe(self) -> str:
        """One line for logs, e.g. ``mnist: image (1, 28, 28), 10 classes, 55,000/...``."""
        outputs = (f"{self.num_outputs} classes" if self.modality == "image"
                   else f"vocab {self.num_outputs}")
        windows = ("" if self.stream is None
                   else f" (random windows over {len(self.stream.tokens):,} tokens)")
        return (f"{self.name}: {self.modality} {self.input_shape}, {outputs}, "
                f"train {len(self.train):,}{windows} / val {len(self.val):,} / test "
                f"{len(self.test):,}")


def holdout(n: int, size: int, rng: np.random.Generator, labels: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into sorted ``(kept, held)`` index arrays with ``len(held) == size``.

    With ``labels`` (shape ``(n,)``) the held-out set is stratified: each class gives its
    share, rounded by largest remainder so the total is exact. Deterministic given ``rng``.
    """
    if not 0 <= size <= n:
        raise ValueError(f"cannot hold out {size} of {n} examples")
    if labels is None:
        held = np.sort(rng.permutation(n)[:size])
    else:
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        exact = size * counts / n
        quota = np.floor(exact).astype(np.int64)
        extra = np.argsort(-(exact - quota), kind="stable")[:size - int(quota.sum())]
        quota[extra] += 1
        parts = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quota)]
        held = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of ``x`` ``(N, C, H, W)``, each ``(C,)`` float64.

    Two passes over chunks in float64, so no full-size float64 copy is ever made. A channel
    with zero spread gets std 1 (normalising it only centres it).
    """
    n, c = x.shape[0], x.shape[1]
    count = n * x[0, 0].numel()
    total = torch.zeros(c, dtype=torch.float64)
    for start in range(0, n, chunk):
        total += x[start:start + chunk].double().sum(dim=(0, 2, 3))
    mean = total / max(count, 1)
    sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, n, chunk):
        sq += (x[start:start + chunk].double() - mean.view(1, c, 1, 1)).square().sum(dim=(0, 2, 3))
    std = (sq / max(count, 1)).sqrt()
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def to_float_images(x: np.ndarray | torch.Tensor, scale: float) -> torch.Tensor:
    """``(N, C, H, W)`` array of any numeric dtype -> float32 tensor multiplied by ``scale``."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    t = t.to(torch.float32, copy=True)  # never normalise a caller's tensor in place
    return t.mul_(scale) if scale != 1.0 else t


def normalise_images(train: torch.Tensor, others: Sequence[torch.Tensor],
                     ) -> tuple[torch.Tensor, list[torch.Tensor], tuple[float, ...],
                                tuple[float, ...]]:
    """Normalise float32 ``(N, C, H, W)`` tensors in place with ``train``'s channel stats.

    Returns ``(train, others, mean, std)``; ``mean`` / ``std`` are tuples of length ``C``.
    """
    mean, std = channel_stats(train)
    m = mean.to(torch.float32).view(1, -1, 1, 1)
    s = std.to(torch.float32).view(1, -1, 1, 1)
    out = [t.sub_(m).div_(s) for t in (train, *others)]
    return out[0], out[1:], tuple(mean.tolist()), tuple(std.tolist())


def image_splits(name: str,
                 parts: Sequence[tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
                 num_classes: int, scale: float, normalise: bool = True) -> DataSplits:
    """Build image `DataSplits` from three ``(x, y)`` parts (train, val, test).

    ``x`` is ``(N, C, H, W)`` (any numeric dtype, multiplied by ``scale``), ``y`` is ``(N,)``
    integer class ids checked to lie in ``[0, num_classes)``.
    """
    xs = [to_float_images(x, scale) for x, _ in parts]
    ys = [torch.as_tensor(y).to(torch.int64) for _, y in parts]
    for part, y in zip(("train", "val", "test"), ys):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise DataError(f"{name}: {part} labels span [{int(y.min())}, {int(y.max())}], "
                            f"expected class ids in [0, {num_classes})")
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    if normalise:
        xs[0], rest, mean, std = normalise_images(xs[0], xs[1:])
        xs[1:] = rest
    train, val, test = (TensorSplit(x, y) for x, y in zip(xs, ys))
    return DataSplits(train=train, val=val, test=test, modality="image",
                      num_outputs=num_classes, input_shape=tuple(xs[0].shape[1:]), name=name,
                      mean=mean, std=std)
