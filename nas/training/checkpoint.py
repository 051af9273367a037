"""Atomic training checkpoints that only load into the space they were trained on."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.data.splits import TextStream

if TYPE_CHECKING:
    from nas.training.config import TrainConfig

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, from another space or another recipe."""


def refuse_other_recipe(path: Path, state: dict[str, Any], config: TrainConfig, *,
                        stop: int) -> None:
    """Raise `CheckpointError` when resuming ``state`` (a loaded checkpoint) up to step
    ``stop`` under ``config`` would train on under another recipe than it was trained with.

    A checkpoint already at or past ``stop`` trains nothing more, so it is not refused
    (``nas train --recipe best`` then ``nas run`` reads its weights as they are)."""
    if int(state.get("step", 0)) >= stop:
        return
    changes = config.recipe_changes(dict(state.get("config") or {}))
    if changes:
        raise CheckpointError(
            f"{path} was trained with another recipe ({'; '.join(changes)}) and is at step "
            f"{state.get('step')} of {stop}: resume it with its own recipe, or remove "
            f"{path.parent} (or train into another out dir) to start over")


#: values of each training tensor the data fingerprint reads (evenly strided)
_DATA_SAMPLE = 65536


def data_fingerprint(train: tuple[torch.Tensor, torch.Tensor] | TextStream) -> str:
    """sha256 (16 hex chars) of training data, ``(x, y)`` or a `TextStream`: every tensor's
    shape, dtype, float64 sum and `_DATA_SAMPLE` evenly strided values (all of a smaller
    tensor).

    Why: a checkpoint resumed on other data (another data set, split, seed or preprocessing)
    would train on silently; this tells them apart in milliseconds without hashing every
    byte of a 55,000-image split."""
    tensors = [train.tokens] if isinstance(train, TextStream) else list(train)
    digest = hashlib.sha256()
    for t in tensors:
        flat = t.detach().reshape(-1)
        stride = max(1, flat.numel() // _DATA_SAMPLE)
        sample = flat[::stride][:_DATA_SAMPLE].cpu().contiguous()
        total = float(flat.sum(dtype=torch.float64)) if flat.numel() else 0.0
        digest.update(f"{tuple(t.shape)}|{t.dtype}|{total!r}|".encode())
        digest.update(sample.numpy().tobytes() if sample.dtype != torch.bfloat16
                      else sample.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()[:16]


def refuse_other_data(path: Path, state: dict[str, Any], fingerprint: str, *,
                      stop: int) -> None:
    """Raise `CheckpointError` when resuming ``state`` up to step ``stop`` would train on
    other training data than it was trained on (`data_fingerprint`). A checkpoint at or past
    ``stop`` trains nothing more, and one from before the fingerprint was kept (no
    ``train_data`` entry) cannot be checked: neither is refused."""
    if int(state.get("step", 0)) >= stop:
        return
    saved = state.get("train_data")
    if saved is not None and saved != fingerprint:
        raise CheckpointError(
            f"{path} was trained on other training data (data fingerprint {saved}, this run's "
            f"{fingerprint}) and is at step {state.get('step')} of {stop}: resume it on its "
            f"own data, or remove {path.parent} (or train into another out dir) to start over")


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """The bytes `save_checkpoint` writes for ``state``: serialized in memory, so they depend
    only on the content (``torch.save`` to a file names its archive after the file, and the
    temporary file's random name made every checkpoint's sha256 unique)."""
    buffer = io.BytesIO()
    torch.save(_canonical({"format_version": FORMAT_VERSION, **state}), buffer)
    return buffer.getvalue()


def _canonical(value: Any) -> Any:
    """A copy of ``value`` whose pickle depends only on its content: pickle memoizes objects
    by identity, so two equal strings are written once or twice depending on whether they
    happen to be one object (a resumed optimizer's keys are not the straight run's). Every
    string is interned (equal strings: one object) and every container rebuilt (no
    accidental sharing); tensors are left as they are (torch writes each storage once)."""
    if isinstance(value, str):
        return sys.intern(str(value))
    if isinstance(value, OrderedDict):  # a module's state dict: keep its _metadata
        copy = OrderedDict((_canonical(k), _canonical(v)) for k, v in value.items())
        if hasattr(value, "_metadata"):
            copy._metadata = _canonical(value._metadata)  # type: ignore[attr-defined]
        return copy
    if isinstance(value, dict):
        return {_canonical(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(_canonical(v) for v in value)
    return value


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename): a crash
    mid-write leaves the previous checkpoint intact. The same state always gives the same
    bytes, so the file's sha256 reproduces."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = checkpoint_bytes(state)
    fd, tmp = tempfile.mkstemp(prefix="ckpt-", suffix=".tmp.pt", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def content_sha256(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file's bytes (reproducible: see `checkpoint_bytes`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike, *, space_fingerprint: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (``weights_only=True``); with ``space_fingerprint`` refuse one that
    was trained on another space."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated, foreign or crafted file: one clear line
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        if reason.startswith("Weights only load failed"):
            reason = ("it holds objects that weights_only=True refuses to unpickle (a foreign "
                      "or crafted file)")
        raise CheckpointError(f"checkpoint {path} is unreadable: {reason}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a nas supernet checkpoint (format "
                              f"{FORMAT_VERSION})")
    step = state.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {path}: step must be an int >= 0, got {step!r}")
    if "model" in state and not (isinstance(state["model"], dict) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in state["model"].items())):
        raise CheckpointError(f"checkpoint {path}: 'model' is not a state dict of tensors")
    if space_fingerprint is not None and state.get("space_fingerprint") != space_fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was trained on space {state.get('space', {}).get('name')!r} "
            f"with fingerprint {state.get('space_fingerprint')}, not this space "
            f"({space_fingerprint}): its widths, depths or mixers differ")
    return state
