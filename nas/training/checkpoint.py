"""Atomic training checkpoints that only load into the space they were trained on."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or from another space."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + rename): a crash mid-write
    leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="ckpt-", suffix=".tmp.pt", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, *, space_fingerprint: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (``weights_only=True``); with ``space_fingerprint`` refuse one that
    was trained on another space."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one clear error
        raise CheckpointError(f"checkpoint {path} is unreadable: {exc}") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a nas supernet checkpoint (format "
                              f"{FORMAT_VERSION})")
    if space_fingerprint is not None and state.get("space_fingerprint") != space_fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was trained on space {state.get('space', {}).get('name')!r} "
            f"with fingerprint {state.get('space_fingerprint')}, not this space "
            f"({space_fingerprint}): its widths, depths or mixers differ")
    return state
