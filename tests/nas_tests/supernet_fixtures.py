"""Fixtures of the evaluator and pool tests: a tiny image space, its (untrained) supernet,
16 of its archs and the digits data, with one torch intra-op thread. Imported by the
`conftest.py` of `distributed_tests` and `evaluation_tests`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

TINY_SPACE = dict(in_channels=1, num_classes=10, resolutions=(8,), patch_size=2,
                  widths=((16,), (16, 32)), depths=((1,), (1, 2)), head_dim=8)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as each pool actor has: tiny models gain nothing from two, and
    on a shared 2-core machine two spinning threads run up to 30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_space():
    from search_spaces import get_space

    return get_space("hybrid_vit_tiny", **TINY_SPACE)


@pytest.fixture(scope="module")
def digits():
    from nas.data import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def tiny_supernet(tiny_space):
    from nas.supernet import Supernet

    torch.manual_seed(0)
    return Supernet(tiny_space).eval()


@pytest.fixture
def tiny_archs(tiny_space):
    rng = np.random.default_rng(3)
    return [tiny_space.sample(rng) for _ in range(16)]
