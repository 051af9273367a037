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

import pytest

# the tiny space, its supernet and archs, one torch thread (shared with evaluation_tests)
from supernet_fixtures import (  # noqa: F401
    digits,
    one_torch_thread,
    tiny_archs,
    tiny_space,
    tiny_supernet,
)

TARGET_RESOURCE = "target_device"


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
