"""nas.data: loaders, split invariants, format detection, errors and batching."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from nas.data import (
    SOURCES,
    DataConfig,
    DataError,
    DataSplits,
    TensorSplit,
    from_dataset,
    load_cifar10_subset,
    load_data,
    load_digits,
    load_mnist,
    load_text,
)
from nas.data.images import read_idx
from nas.data.splits import holdout
from nas.data.text import STDLIB_MODULES, split_regions, stdlib_corpus

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NAS_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set NAS_SHARED_DATA)")
    return path


def pixels(split: TensorSplit, data: DataSplits, scale: float) -> np.ndarray:
    """Undo the normalisation: the original integer pixel values, ``(N, C, H, W)``."""
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return ((split.x * std + mean) / scale).round().to(torch.int64).numpy()


def write_idx(path: Path, arr: np.ndarray) -> None:
    raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw += arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


@pytest.fixture(scope="module")
def mnist() -> DataSplits:
    return load_mnist(shared("images/mnist"), seed=0)


@pytest.fixture(scope="module")
def cifar() -> DataSplits:
    return load_cifar10_subset(shared("images/cifar10_convnetjs"), seed=0)


# ---------------------------------------------------------------- digits and splitting


def test_digits_sizes_partition_and_normalisation():
    from sklearn.datasets import load_digits as sk_digits

    data = load_digits(seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (1257, 270, 270)
    assert data.modality == "image" and data.num_outputs == 10
    assert data.input_shape == (1, 8, 8) and data.train.x.dtype == torch.float32
    assert data.train.y.dtype == torch.int64
    assert abs(float(data.train.x.mean())) < 1e-4 and abs(float(data.train.x.std()) - 1) < 1e-3
    # the three splits together are exactly the 1,797 originals (as a multiset of rows)
    rows = np.concatenate([
        np.concatenate([pixels(s, data, 1 / 16).reshape(len(s), -1), s.y[:, None].numpy()], 1)
        for s in (data.train, data.val, data.test)])
    bunch = sk_digits()
    want = np.concatenate([bunch.images.reshape(-1, 64), bunch.target[:, None]], 1)
    assert np.array_equal(np.unique(rows, axis=0, return_counts=True)[1],
                          np.unique(want, axis=0, return_counts=True)[1])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(want, axis=0))
    # stratified-ish: each class's share of val is within 2 examples of its share overall
    counts = np.bincount(bunch.target, minlength=10) * 270 / 1797
    assert np.abs(np.bincount(data.val.y.numpy(), minlength=10) - counts).max() < 2
    assert "digits" in data.describe() and "1,257" in data.describe()


def test_digits_deterministic_by_seed():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(a, part).x, getattr(b, part).x)
        assert torch.equal(getattr(a, part).y, getattr(b, part).y)
    assert not torch.equal(a.val.x, c.val.x)


def test_holdout_disjoint_exact_and_stratified():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep, held = holdout(100, 17, np.random.default_rng(0), labels=labels)
    assert len(held) == 17 and len(keep) == 83
    assert not set(keep) & set(held) and set(keep) | set(held) == set(range(100))
    assert np.bincount(labels[held]).tolist() in ([9, 5, 3], [8, 5, 4], [8, 6, 3])
    keep2, held2 = holdout(100, 17, np.random.default_rng(0))
    assert len(set(held2)) == 17 and not set(keep2) & set(held2)


# ---------------------------------------------------------------- MNIST


def test_mnist_shared(mnist: DataSplits):
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (55_000, 5_000, 10_000)
    assert mnist.input_shape == (1, 28, 28)
    assert mnist.train.x.shape == (55_000, 1, 28, 28) and mnist.test.y.shape == (10_000,)
    for split in (mnist.train, mnist.val, mnist.test):
        assert split.y.dtype == torch.int64 and 0 <= int(split.y.min()) <= int(split.y.max()) <= 9
    assert int(mnist.test.y[0]) == 7
    assert abs(mnist.mean[0] - 0.1307) < 1e-3 and abs(mnist.std[0] - 0.3081) < 1e-3
    assert abs(float(mnist.train.x.mean())) < 1e-3


def test_mnist_png_matches_idx_test_images():
    root = shared("images/mnist")
    png = np.asarray(Image.open(root / "convnetjs_png" / "mnist_batch_20.png")).reshape(-1, 28, 28)
    idx = read_idx(root / "t10k-images-idx3-ubyte.gz", ndim=3)
    assert png.shape == (3000, 28, 28) and np.array_equal(png, idx[:3000])


def test_mnist_png_only_folder(tmp_path: Path, mnist: DataSplits):
    """Only the PNG strips + labels.js (no IDX): detected, test = batch 20 (3,000 images)."""
    src = shared("images/mnist/convnetjs_png")
    (tmp_path / "convnetjs_png").mkdir()
    for f in src.iterdir():
        (tmp_path / "convnetjs_png" / f.name).symlink_to(f)
    data = load_mnist(tmp_path, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (55_000, 5_000, 3_000)
    assert torch.equal(data.test.x, mnist.test.x[:3000])  # same train stats, same pixels
    assert torch.equal(data.test.y, mnist.test.y[:3000])
    assert torch.equal(data.val.y, mnist.val.y)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_synthetic_idx(tmp_path: Path, gz: bool):
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    x_tr, y_tr = rng.integers(0, 256, (60, 28, 28)), np.arange(60) % 10
    x_te, y_te = rng.integers(0, 256, (20, 28, 28)), (np.arange(20) * 3) % 10
    write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", x_tr)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{ext}", y_tr)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", x_te)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", y_te)
    data = load_mnist(tmp_path, seed=3, val_size=10)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 20)
    assert np.array_equal(pixels(data.test, data, 1 / 255)[:, 0], x_te)
    assert data.test.y.tolist() == y_te.tolist()
    assert np.bincount(data.val.y.numpy(), minlength=10).tolist() == [1] * 10  # stratified
    got = np.concatenate([pixels(s, data, 1 / 255)[:, 0] for s in (data.train, data.val)])
    assert sorted(map(bytes, got.astype(np.uint8))) == sorted(map(bytes, x_tr.astype(np.uint8)))


def test_mnist_synthetic_png_strips(tmp_path: Path):
    rng = np.random.default_rng(1)
    strips = rng.integers(0, 256, (21, 3, 784)).astype(np.uint8)
    folder = tmp_path / "convnetjs_png"
    folder.mkdir()
    for k, strip in enumerate(strips):
        Image.fromarray(strip, mode="L").save(folder / f"mnist_batch_{k}.png")
    labels = np.arange(63) % 10
    (folder / "mnist_labels.js").write_text(f"var labels=[{', '.join(map(str, labels))}];\n")
    data = load_mnist(tmp_path, val_size=10)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 10, 3)
    assert np.array_equal(pixels(data.test, data, 1 / 255).reshape(3, 784), strips[20])
    assert data.test.y.tolist() == labels[60:].tolist()


# ---------------------------------------------------------------- CIFAR-10


def test_cifar_subset(cifar: DataSplits):
    assert (len(cifar.train), len(cifar.val), len(cifar.test)) == (3_500, 500, 1_000)
    assert cifar.input_shape == (3, 32, 32) and cifar.train.x.shape == (3_500, 3, 32, 32)
    assert cifar.test.y[:8].tolist() == [3, 8, 8, 0, 6, 6, 1, 6]
    assert int(cifar.train.y.min()) == 0 and int(cifar.train.y.max()) == 9
    assert len(cifar.mean) == 3 and all(0.3 < m < 0.6 for m in cifar.mean)
    channel_means = cifar.train.x.mean(dim=(0, 2, 3))
    assert torch.allclose(channel_means, torch.zeros(3), atol=1e-4)


# ---------------------------------------------------------------- text


def check_windows(data: DataSplits, raw: bytes, val_fraction: float, test_fraction: float):
    """y is x shifted, and every window sits at its slot inside its own region."""
    t = data.input_shape[0]
    stream = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).astype(np.int64))
    regions = split_regions(len(raw), val_fraction, test_fraction)
    for split, (a, b) in zip((data.train, data.val, data.test), regions):
        assert split.x.dtype == torch.int64 and split.x.shape == split.y.shape
        assert torch.equal(split.x[:, 1:], split.y[:, :-1])
        assert len(split) == (b - a) // (t + 1) and len(split) > 0
        expect = stream[a:a + len(split) * (t + 1)].view(len(split), t + 1)
        assert torch.equal(split.x, expect[:, :-1]) and torch.equal(split.y, expect[:, 1:])
        assert a + len(split) * (t + 1) <= b  # no window crosses into the next region


def test_text_tinyshakespeare():
    path = shared("text/tinyshakespeare_input.txt")
    data = load_text(path, seq_len=128)
    assert data.modality == "sequence" and data.num_outputs == 256
    assert data.input_shape == (128,) and data.name == "text:tinyshakespeare_input.txt"
    check_windows(data, path.read_bytes(), 0.05, 0.05)


def test_text_default_corpus_and_max_bytes():
    assert list(STDLIB_MODULES) == sorted(STDLIB_MODULES)
    a, b = load_text(seq_len=64, val_fraction=0.1, test_fraction=0.1), load_text(seq_len=64)
    assert torch.equal(a.train.x[:100], b.train.x[:100])
    raw = stdlib_corpus()
    assert 1_000_000 < len(raw) <= 3 * 2**20
    check_windows(a, raw, 0.1, 0.1)
    small = load_text(seq_len=32, max_bytes=10_000)
    check_windows(small, raw[:10_000], 0.05, 0.05)
    assert len(small.train) == 9_000 // 33


# ---------------------------------------------------------------- errors


def test_missing_paths_raise_data_error(tmp_path: Path):
    missing = tmp_path / "nope"
    for fn in (load_mnist, load_cifar10_subset, load_text):
        with pytest.raises(DataError, match=str(missing)):
            fn(missing)
    with pytest.raises(DataError, match=r"MNIST not found at .*expected IDX files.*PNG strips"):
        load_mnist(tmp_path)  # a directory without any known files
    with pytest.raises(DataError, match="CIFAR-10 not found"):
        load_data(DataConfig(source="cifar10_subset", path=str(tmp_path)))


def test_malformed_files_raise_data_error(tmp_path: Path):
    imgs, lbls = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    write_idx(imgs, np.zeros((10, 28, 28)))
    imgs.write_bytes(imgs.read_bytes()[:-100])  # truncated
    write_idx(lbls, np.zeros(10))
    with pytest.raises(DataError, match=f"{imgs}.*truncated"):
        load_mnist(tmp_path)
    imgs.write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match=f"{imgs}.*bad IDX header"):
        load_mnist(tmp_path)
    imgs.unlink()
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\0" * 5000)[:40])  # truncated gzip stream
    with pytest.raises(DataError, match=str(gz)):
        load_mnist(tmp_path)
    write_idx(gz, np.zeros((12, 28, 28)))  # 12 images but 10 labels
    with pytest.raises(DataError, match=f"{lbls}.*10 labels for 12 images"):
        load_mnist(tmp_path)


def test_malformed_png_and_labels(tmp_path: Path):
    folder = tmp_path / "convnetjs_png"
    folder.mkdir()
    (folder / "mnist_batch_0.png").write_bytes(b"\x89PNG garbage")
    (folder / "mnist_labels.js").write_text("var labels=[1, 2, x];")
    with pytest.raises(DataError, match="mnist_batch_0.png.*cannot decode"):
        load_mnist(tmp_path)
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    (cifar / "cifar10_labels.js").write_text("var labels=[1, 2, x];")
    with pytest.raises(DataError, match="cifar10_labels.js.*malformed"):
        load_cifar10_subset(cifar)
    text = tmp_path / "tiny.txt"
    text.write_text("too short")
    with pytest.raises(DataError, match=f"{text}.*too short"):
        load_text(text, seq_len=64)


# ---------------------------------------------------------------- batching


def test_batches_cover_epoch_and_reproduce():
    split = TensorSplit(torch.arange(103).float().view(103, 1), torch.arange(103))
    seen = torch.cat([y for _, y in split.batches(10, shuffle=True)])
    assert sorted(seen.tolist()) == list(range(103))
    for x, y in split.batches(10, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert torch.equal(x[:, 0].long(), y)  # rows stay paired
    sizes = [len(y) for _, y in split.batches(10, shuffle=False, drop_last=True)]
    assert sizes == [10] * 10 and split.num_batches(10, drop_last=True) == 10
    assert split.num_batches(10) == 11
    ordered = torch.cat([y for _, y in split.batches(16, shuffle=False)])
    assert torch.equal(ordered, torch.arange(103))

    def epoch(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in split.batches(8, generator=g, shuffle=True)]).tolist()

    assert epoch(5) == epoch(5) and epoch(5) != epoch(6)


# ---------------------------------------------------------------- config and custom data


def test_config_validation_and_dispatch():
    with pytest.raises(ValueError, match="valid sources: " + ", ".join(SOURCES)):
        DataConfig(source="imagenet")
    with pytest.raises(ValueError, match="val_size not used by source 'digits'"):
        DataConfig(source="digits", val_size=10)
    with pytest.raises(ValueError, match="seq_len"):
        DataConfig(source="mnist", seq_len=64)
    data = load_data(DataConfig(source="digits", seed=2, val_fraction=0.2))
    assert len(data.val) == round(1797 * 0.2) and len(data.test) == 270
    text = load_data(DataConfig(source="text", seq_len=16, max_bytes=20_000))
    assert text.input_shape == (16,) and len(text.train) == 18_000 // 17
    assert DataConfig(source="text").to_dict()["seq_len"] == 256


class PairList(Dataset):
    def __init__(self, items: list[tuple[torch.Tensor, int]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.items[i]


def test_from_dataset_images_and_sequences():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (200, 12, 12), dtype=torch.uint8, generator=g)
    y = torch.arange(200) % 4
    data = from_dataset(TensorDataset(x, y), num_outputs=4, seed=1)
    assert (len(data.train), len(data.val), len(data.test)) == (160, 20, 20)
    assert data.input_shape == (1, 12, 12) and data.train.x.dtype == torch.float32
    assert abs(float(data.train.x.mean())) < 1e-4 and x.dtype == torch.uint8  # input untouched
    again = from_dataset(TensorDataset(x, y), num_outputs=4, seed=1)
    assert torch.equal(again.val.x, data.val.x)

    val = PairList([(torch.rand(3, 8, 8), i % 3) for i in range(9)])
    data = from_dataset(PairList([(torch.rand(3, 8, 8), i % 3) for i in range(30)]), val=val,
                        num_outputs=3, test_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (24, 9, 6)

    tokens = torch.randint(0, 50, (40, 17), generator=g)
    seq = from_dataset(TensorDataset(tokens[:, :-1], tokens[:, 1:]), modality="sequence",
                       num_outputs=50)
    assert seq.input_shape == (16,) and len(seq.train) == 32
    with pytest.raises(DataError, match="token ids span"):
        from_dataset(TensorDataset(tokens[:, :-1], tokens[:, 1:]), modality="sequence",
                     num_outputs=10)
    with pytest.raises(DataError, match="labels"):
        from_dataset(TensorDataset(x, y), num_outputs=3)


def test_import_is_light():
    code = ("import sys, nas.data; bad = [m for m in ('ray', 'optuna', 'sqlalchemy', "
            "'streamlit', 'sklearn') if m in sys.modules]; assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
