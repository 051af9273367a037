"""A real two-node Ray cluster on this machine (one CPU per node; the second node offers the
custom resource ``target_device``), shared by the distributed tests of one session.

Ray 2.60 turns token auth on and writes ``~/.ray/auth_token`` unless ``RAY_AUTH_MODE`` is
``disabled``; its unix sockets live under ``RAY_TMPDIR``, which must stay short (paths are
limited to 107 characters). Ray runs workers at nice 15 unless ``RAY_worker_niceness`` says
otherwise; 0 keeps the tests' workers at the priority of the test process itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

TARGET_RESOURCE = "target_device"
TINY_SPACE = dict(in_channels=1, num_classes=10, resolutions=(8,), patch_size=2,
                  widths=((16,), (16, 32)), depths=((1,), (1, 2)), head_dim=8)


@dataclass
class TwoNodeCluster:
    address: str
    head_node_id: str
    target_node_id: str


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[TwoNodeCluster]:
    names = ("RAY_AUTH_MODE", "RAY_TMPDIR", "RAY_ADDRESS", "RAY_worker_niceness")
    saved = {k: os.environ.get(k) for k in names}
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_TMPDIR=tmp, RAY_worker_niceness="0")
    os.environ.pop("RAY_ADDRESS", None)
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1, resources={TARGET_RESOURCE: 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
        nodes = [n for n in ray.nodes() if n["Alive"]]
        target = next(n["NodeID"] for n in nodes if TARGET_RESOURCE in n["Resources"])
        head = next(n["NodeID"] for n in nodes if n["NodeID"] != target)
        yield TwoNodeCluster(cluster.address, head, target)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
