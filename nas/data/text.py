"""Byte-level language-modelling data: any text file, or an embedded default corpus.

The byte stream (vocabulary 256) is split contiguously into train / val / test regions, in
that order, and each region is cut into non-overlapping windows of ``seq_len + 1`` bytes:
``x = w[:-1]``, ``y = w[1:]``. No window crosses a region boundary, so nothing leaks.

Training reads the train region as language models are trained (``windows="random"``, the
default): a `TextStream` over the whole region, each batch ``seq_len + 1``-byte windows at
uniformly random offsets drawn from a generator seeded by ``(seed, step)`` alone, so step
``s`` sees the same batch in a straight run, a resumed run and on every data-parallel rank
(each rank takes its contiguous slice of the global batch). Validation and test always use
the fixed non-overlapping windows.

The default corpus needs no download: the source of a fixed, sorted list of standard
library modules read from ``sysconfig.get_paths()["stdlib"]`` (about 2 MB; the exact bytes
depend on the Python version, and are the same on every run with one interpreter).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import numpy as np
import torch

from nas.data.splits import DataError, DataSplits, TensorSplit, TextStream

__all__ = ["STDLIB_MODULES", "WINDOWS", "TextStream", "load_text", "split_regions",
           "stdlib_corpus", "windows"]

WINDOWS = ("random", "fixed")

PathLike = str | os.PathLike[str]
VOCAB = 256
DEFAULT_CORPUS_BYTES = 3 * 2**20
STDLIB_MODULES = (
    "_pydecimal.py", "argparse.py", "ast.py", "bisect.py", "calendar.py", "collections/__init__.py",
    "configparser.py", "csv.py", "dataclasses.py", "datetime.py", "difflib.py", "email/message.py",
    "enum.py", "fractions.py", "functools.py", "heapq.py", "http/client.py", "inspect.py",
    "json/__init__.py", "json/decoder.py", "json/encoder.py", "logging/__init__.py",
    "pathlib.py", "pickle.py", "pprint.py", "random.py", "re/_parser.py", "shutil.py",
    "statistics.py", "string.py", "subprocess.py", "tarfile.py", "textwrap.py", "threading.py",
    "tokenize.py", "typing.py", "unittest/case.py", "urllib/parse.py", "zipfile.py",
)


def stdlib_corpus(max_bytes: int | None = DEFAULT_CORPUS_BYTES) -> bytes:
    """The embedded default corpus: `STDLIB_MODULES` sources in order, joined by newlines,
    cut at ``max_bytes``. Modules missing from this interpreter are skipped."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks: list[bytes] = []
    size = 0
    for name in STDLIB_MODULES:
        file = root / name
        if not file.is_file():
            continue
        chunks.append(file.read_bytes() + b"\n")
        size += len(chunks[-1])
        if max_bytes is not None and size >= max_bytes:
            break
    data = b"".join(chunks)
    if not data:
        raise DataError(f"no standard-library sources found under {root}: expected the .py "
                        f"files of {', '.join(STDLIB_MODULES[:3])}, ... (pass a text file)")
    return data if max_bytes is None else data[:max_bytes]


def split_regions(n_bytes: int, val_fraction: float, test_fraction: float,
                  ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(start, stop)`` byte ranges of the train, val and test regions, in stream order.

    val and test get ``int(n_bytes * fraction)`` bytes each; train gets the rest, first.
    """
    n_val, n_test = int(n_bytes * val_fraction), int(n_bytes * test_fraction)
    a = n_bytes - n_val - n_test
    return (0, a), (a, a + n_val), (a + n_val, n_bytes)


def windows(region: np.ndarray, seq_len: int) -> TensorSplit:
    """Cut a uint8 byte region ``(L,)`` into ``L // (seq_len + 1)`` non-overlapping windows.

    Returns a `TensorSplit` with ``x``, ``y`` int64 ``(N, seq_len)``, ``y[:, t] == x[:, t+1]``
    for ``t < seq_len - 1``. A trailing remainder shorter than a window is dropped.
    """
    n = len(region) // (seq_len + 1)
    w = torch.from_numpy(np.ascontiguousarray(region[:n * (seq_len + 1)]).astype(np.int64))
    w = w.view(n, seq_len + 1)
    return TensorSplit(w[:, :-1].contiguous(), w[:, 1:].contiguous())


def load_text(path: PathLike | None = None, *, seq_len: int = 256, seed: int = 0,
              val_fraction: float = 0.05, test_fraction: float = 0.05,
              max_bytes: int | None = None, windows: str = "random") -> DataSplits:
    """Byte-level next-token data from the text file at ``path`` (or the stdlib corpus).

    ``max_bytes`` keeps only the first bytes of the file. Returns `DataSplits` with modality
    ``"sequence"``, ``num_outputs=256``, ``input_shape=(seq_len,)``, ``x`` / ``y`` int64
    ``(N, seq_len)``. ``windows="random"`` (default) also sets ``stream``, the train region
    as a `TextStream` that trainers draw random-offset windows from; ``"fixed"`` trains on
    the fixed windows of ``train``. ``seed`` is accepted for a uniform loader signature;
    the split is deterministic, and the training loop seeds the window offsets.
    """
    del seed  # nothing random here: contiguous regions; the trainer seeds the offsets
    if windows not in WINDOWS:
        raise ValueError(f"windows: expected one of {WINDOWS}, got {windows!r}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"need val_fraction, test_fraction >= 0 summing below 1, got "
                         f"{val_fraction}, {test_fraction}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1 or None, got {max_bytes}")
    if path is None:
        data = stdlib_corpus(DEFAULT_CORPUS_BYTES if max_bytes is None else max_bytes)
        name, where = "text:stdlib", "the standard-library corpus"
    else:
        file = Path(path)
        expected = "expected a text file (any encoding; read as raw bytes)"
        if not file.is_file():
            raise DataError(f"text not found at {file}: {expected}")
        try:
            with open(file, "rb") as f:
                data = f.read() if max_bytes is None else f.read(max_bytes)
        except OSError as exc:
            raise DataError(f"{file}: cannot read ({exc}); {expected}") from None
        name, where = f"text:{file.name}", str(file)
    stream = np.frombuffer(data, dtype=np.uint8)
    regions = split_regions(len(stream), val_fraction, test_fraction)
    parts = [_windows(stream[a:b], seq_len) for a, b in regions]
    for part, split, frac in zip(("train", "val", "test"), parts, (1.0, val_fraction,
                                                                     test_fraction)):
        if frac > 0 and len(split) == 0:
            raise DataError(f"{where}: {len(stream):,} bytes is too short: the {part} region "
                            f"holds no window of seq_len + 1 = {seq_len + 1} bytes (lower "
                            f"seq_len or use a longer text)")
    train_stream = None
    if windows == "random":
        a, b = regions[0]
        train_stream = TextStream(torch.from_numpy(stream[a:b].copy()), seq_len)
    return DataSplits(train=parts[0], val=parts[1], test=parts[2], modality="sequence",
                      num_outputs=VOCAB, input_shape=(seq_len,), name=name,
                      stream=train_stream)


_windows = windows  # load_text's ``windows`` argument shadows the function
