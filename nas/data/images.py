"""Image data sets: scikit-learn digits, MNIST (IDX or convnetjs PNG strips), CIFAR-10 subset.

Every loader returns `DataSplits` with ``x`` float32 ``(N, C, H, W)`` normalised by the
train split's per-channel mean / std and ``y`` int64 ``(N,)``. Pixels are scaled to
``[0, 1]`` first. Validation is a stratified hold-out of train chosen by ``seed``.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.data.splits import DataError, DataSplits, holdout, image_splits

__all__ = ["load_cifar10_subset", "load_digits", "load_mnist", "read_idx", "read_labels_js"]

PathLike = str | os.PathLike[str]

MNIST_IDX = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_PNG_TRAIN = 20  # convnetjs: mnist_batch_0..19 are train, mnist_batch_20 is test 0..2999
MNIST_EXPECTED = ("expected IDX files (train-images-idx3-ubyte[.gz], "
                  "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
                  "t10k-labels-idx1-ubyte[.gz]) or convnetjs PNG strips (mnist_batch_0.png .. "
                  "mnist_batch_20.png + mnist_labels.js, optionally in convnetjs_png/)")
CIFAR_EXPECTED = ("expected convnetjs CIFAR-10 PNG strips (cifar10_batch_<k>.png, 1024x1000 "
                  "RGB, k < 50 train, 50 test) + cifar10_labels.js, optionally in "
                  "cifar10_convnetjs/")
CIFAR_ROWS, CIFAR_TEST_BATCH = 1000, 50


def load_digits(*, seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.15) -> DataSplits:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download).

    Values 0..16 are scaled to [0, 1], then normalised. Returns ``x`` ``(N, 1, 8, 8)``; test
    and val are stratified random hold-outs (``round(1797 * fraction)`` each) drawn with
    ``numpy.random.default_rng(seed)``.
    """
    from sklearn.datasets import load_digits as sk_digits

    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need val_fraction, test_fraction >= 0 summing below 1, got "
                         f"{val_fraction}, {test_fraction}")
    bunch = sk_digits()
    x = bunch.images.astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    n, rng = len(y), np.random.default_rng(seed)
    rest, test = holdout(n, round(n * test_fraction), rng, labels=y)
    keep, val = holdout(len(rest), round(n * val_fraction), rng, labels=y[rest])
    train, val = rest[keep], rest[val]
    return image_splits("digits", [(x[i], y[i]) for i in (train, val, test)],
                        num_classes=10, scale=1 / 16)


def load_mnist(path: PathLike, *, seed: int = 0, val_size: int = 5000) -> DataSplits:
    """MNIST from ``path``: IDX files (raw or .gz) or convnetjs PNG strips, detected.

    Train is ``train-images-idx3-ubyte[.gz]`` or, failing that, PNG strips
    ``mnist_batch_0..19.png`` (60,000 images) in ``path`` or ``path/convnetjs_png``; train
    labels come from ``train-labels-idx1-ubyte[.gz]`` or ``mnist_labels.js``. Test is the
    t10k IDX pair (10,000) or, failing that, ``mnist_batch_20.png`` (test 0..2,999).
    ``val_size`` examples are held out of train (stratified, by ``seed``).
    Returns ``x`` ``(N, 1, 28, 28)``.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"MNIST not found at {root}: {MNIST_EXPECTED}")
    dirs = [root, root / "convnetjs_png"]
    idx = {key: _find(dirs, [name, name + ".gz", name.replace("-idx", ".idx"),
                             name.replace("-idx", ".idx") + ".gz"])
           for key, name in MNIST_IDX.items()}
    png_dir = next((d for d in dirs if (d / "mnist_batch_0.png").is_file()), None)
    labels_js = _find(dirs, ["mnist_labels.js"])

    if idx["train_images"] is not None:
        x_train = read_idx(idx["train_images"], ndim=3)
    elif png_dir is not None:
        strips = [png_dir / f"mnist_batch_{k}.png" for k in range(MNIST_PNG_TRAIN)]
        x_train = np.concatenate([_read_strip(p, "L", 28 * 28, MNIST_EXPECTED) for p in strips])
        x_train = x_train.reshape(-1, 28, 28)
    else:
        raise DataError(f"MNIST not found at {root}: {MNIST_EXPECTED}")
    n_train = len(x_train)
    js = read_labels_js(labels_js) if labels_js is not None else None
    if idx["train_labels"] is not None:
        y_train = _labels_for(read_idx(idx["train_labels"], ndim=1), n_train, idx["train_labels"])
    elif js is not None:
        y_train = _labels_for(js[:n_train], n_train, labels_js)
    else:
        raise DataError(f"MNIST train labels not found at {root}: {MNIST_EXPECTED}")

    if idx["test_images"] is not None and idx["test_labels"] is not None:
        x_test = read_idx(idx["test_images"], ndim=3)
        y_test = _labels_for(read_idx(idx["test_labels"], ndim=1), len(x_test),
                             idx["test_labels"])
    elif png_dir is not None and (png_dir / "mnist_batch_20.png").is_file() and (
            idx["test_labels"] is not None or js is not None):
        x_test = _read_strip(png_dir / "mnist_batch_20.png", "L", 28 * 28, MNIST_EXPECTED)
        x_test = x_test.reshape(-1, 28, 28)
        if idx["test_labels"] is not None:
            y_test = read_idx(idx["test_labels"], ndim=1)[:len(x_test)]
            source = idx["test_labels"]
        else:
            assert js is not None and labels_js is not None
            y_test, source = js[n_train:n_train + len(x_test)], labels_js
        y_test = _labels_for(y_test, len(x_test), source)
    else:
        raise DataError(f"MNIST test set not found at {root}: {MNIST_EXPECTED}")
    if x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(f"MNIST at {root}: train images are {x_train.shape[1:]} but test "
                        f"images are {x_test.shape[1:]}")
    if not 0 <= val_size < n_train:
        raise ValueError(f"val_size must be in [0, {n_train}), got {val_size}")
    keep, val = holdout(n_train, val_size, np.random.default_rng(seed), labels=y_train)
    x_train, x_test = x_train[:, None], x_test[:, None]
    parts = [(x_train[keep], y_train[keep]), (x_train[val], y_train[val]), (x_test, y_test)]
    return image_splits("mnist", parts, num_classes=10, scale=1 / 255)


def load_cifar10_subset(path: PathLike, *, seed: int = 0, val_size: int = 500) -> DataSplits:
    """CIFAR-10 from convnetjs PNG strips in ``path`` (or ``path/cifar10_convnetjs``).

    Each ``cifar10_batch_<k>.png`` (1024 wide x 1000 high RGB) holds images
    ``k*1000 .. k*1000+999``; batches ``k < 50`` present form train (labels
    ``cifar10_labels.js[k*1000 ...]``), batch 50 is test (labels from offset 50,000). With the
    shared files: 4,000 train (batches 0..3), 1,000 test. ``val_size`` is held out of train.
    Returns ``x`` ``(N, 3, 32, 32)``.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"CIFAR-10 not found at {root}: {CIFAR_EXPECTED}")
    folder = next((d for d in (root, root / "cifar10_convnetjs")
                   if (d / "cifar10_labels.js").is_file()), None)
    if folder is None:
        raise DataError(f"CIFAR-10 not found at {root}: {CIFAR_EXPECTED}")
    labels = read_labels_js(folder / "cifar10_labels.js")
    train_batches = [k for k in range(CIFAR_TEST_BATCH) if (folder / f"cifar10_batch_{k}.png")
                     .is_file()]
    test_png = folder / f"cifar10_batch_{CIFAR_TEST_BATCH}.png"
    if not train_batches or not test_png.is_file():
        raise DataError(f"CIFAR-10 strips missing at {folder} (train batches {train_batches}, "
                        f"test batch present: {test_png.is_file()}): {CIFAR_EXPECTED}")

    def strip(k: int) -> tuple[np.ndarray, np.ndarray]:
        png = folder / f"cifar10_batch_{k}.png"
        x = _read_strip(png, "RGB", 32 * 32, CIFAR_EXPECTED)
        if len(x) != CIFAR_ROWS:
            raise DataError(f"{png}: {len(x)} rows, {CIFAR_EXPECTED}")
        y = labels[k * CIFAR_ROWS:(k + 1) * CIFAR_ROWS]
        y = _labels_for(y, CIFAR_ROWS, folder / "cifar10_labels.js")
        return x.reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2), y

    train = [strip(k) for k in train_batches]
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    x_test, y_test = strip(CIFAR_TEST_BATCH)
    if not 0 <= val_size < len(y_train):
        raise ValueError(f"val_size must be in [0, {len(y_train)}), got {val_size}")
    keep, val = holdout(len(y_train), val_size, np.random.default_rng(seed), labels=y_train)
    parts = [(x_train[keep], y_train[keep]), (x_train[val], y_train[val]), (x_test, y_test)]
    return image_splits("cifar10_subset", parts, num_classes=10, scale=1 / 255)


def read_idx(path: PathLike, *, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (raw or gzip), checking header and size.

    Returns a uint8 array of ``ndim`` dims, e.g. ``(N, 28, 28)`` images or ``(N,)`` labels.
    """
    path = Path(path)
    expected = f"expected an IDX file of uint8 with {ndim} dim(s)"
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); {expected}") from None
    if len(raw) < 4 + 4 * ndim or raw[0:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(f"{path}: bad IDX header {raw[:4].hex() or '(empty file)'}; {expected} "
                        f"(magic 0x0000080{ndim})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims)):,} bytes of data, "
                        f"file has {len(raw) - start:,} (truncated or wrong size); {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims).copy()


def read_labels_js(path: PathLike) -> np.ndarray:
    """Parse a convnetjs ``var labels=[5, 0, 4, ...];`` file into an int64 array ``(N,)``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc}); expected 'var labels=[...];'") from None
    match = re.search(r"labels\s*=\s*\[([^\]]*)\]", text)
    try:
        if match is None:
            raise ValueError("no 'labels=[...]' array")
        values = [int(t) for t in match.group(1).split(",") if t.strip()]
    except ValueError as exc:
        raise DataError(f"{path}: malformed labels file ({exc}); expected "
                        f"'var labels=[int, int, ...];'") from None
    return np.asarray(values, dtype=np.int64)


def _find(dirs: Sequence[Path], names: Sequence[str]) -> Path | None:
    """The first ``dir / name`` that is a file, trying each dir with every name in turn."""
    return next((d / n for d in dirs for n in names if (d / n).is_file()), None)


def _labels_for(labels: np.ndarray, count: int, source: Path | None) -> np.ndarray:
    """``labels`` as int64 after checking there is exactly one per image."""
    if len(labels) != count:
        raise DataError(f"{source}: {len(labels):,} labels for {count:,} images "
                        f"(label and image counts must match)")
    return labels.astype(np.int64)


def _read_strip(path: Path, mode: str, row_pixels: int, expected: str) -> np.ndarray:
    """Decode a PNG strip, one image per row: ``(rows, row_pixels[, 3])`` uint8."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"{path}: missing; {expected}")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.array(im if im.mode == mode else im.convert(mode))  # writable copy
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode PNG ({exc}); {expected}") from None
    if arr.shape[1] != row_pixels:
        raise DataError(f"{path}: strip is {arr.shape[1]} pixels wide, expected {row_pixels} "
                        f"(one flattened image per row); {expected}")
    return arr
