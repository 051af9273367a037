"""Shared fixtures: fixed seeds, the repo root, and a GPU marker that skips without CUDA.

Every test process runs torch on one intra-op thread, and so does every process a test
starts (`nas` commands, spawned ranks, the Streamlit server: ``OMP_NUM_THREADS=1``, unless
set): the models are tiny and gain nothing from two, while two spinning OpenMP threads on a
2-core machine that also runs a subprocess, a Ray worker or a browser make a step up to ~4x
slower (measured: the UI fixture study builds in 10 s on one thread, 36 s on two).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NAS_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set NAS_SHARED_DATA)")
    return SHARED_DATA
