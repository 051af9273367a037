"""Latency profiling sent to the Ray node that is the target device; the table comes back.

A target joins the cluster with a custom resource naming it (``ray start --address HEAD:6379
--resources '{"jetson": 1}'``); `profile_on_node` runs `nas.latency.profile`'s table build,
calibration and validation there (so the device fingerprint is the target's), and the
driver saves the table file and stores it centrally. Why Ray and not ssh: the target needs
no inbound access, only this project installed and a connection to the head.

Example::

    result = profile_on_node(space=space, resource="jetson", address="HEAD:6379",
                             out="tables/jetson.json", store=store)
    result.table.predict(space.layers(arch))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernels.latency_table import LatencyTable
from nas.distributed.runtime import node_id, ray_session
from nas.latency.store import store_table
from nas.storage import LatencyTableRecord, Store
from search_spaces import SearchSpace


@dataclass
class RemoteProfile:
    """The table measured on the target, which node measured it, and where it was kept."""

    table: LatencyTable
    node_id: str
    hostname: str
    path: Path | None
    record: LatencyTableRecord | None


def _profile_here(space: SearchSpace, config: Any, n_calibration: int, n_validation: int,
                  seed: int) -> dict[str, Any]:
    """Runs on the target node: build, calibrate and validate the table of ``space``."""
    import socket

    import torch

    from nas.latency.profile import build_table, calibrate_and_validate

    if config.threads:
        torch.set_num_threads(config.threads)
    table = build_table(space, config=config, show_progress=False)
    calibrate_and_validate(table, space, config=config, n_calibration=n_calibration,
                           n_validation=n_validation, seed=seed, show_progress=False)
    return {"table": table.to_dict(), "node_id": node_id(), "hostname": socket.gethostname()}


def store_latency_table(*, store: Store, table: LatencyTable,
                        space: str = "") -> LatencyTableRecord:
    """Save ``table`` (entries, calibration, validation and meta) in the store under its
    device fingerprint, as `nas.latency.store.store_table` does for a study's profile stage
    (so `load_stored_table` reads it back whole); ``space`` "" marks a table shared by every
    space."""
    return store_table(store, table, space=space)


def profile_on_node(*, space: SearchSpace, resource: str, config: Any | None = None,
                    n_calibration: int = 10, n_validation: int = 30, seed: int = 0,
                    num_cpus: float = 1.0, address: str | None = None,
                    out: str | Path | None = None,
                    store: Store | None = None) -> RemoteProfile:
    """Measure the latency table of ``space`` on a node offering custom resource
    ``resource`` (one unit is taken, so two profiles never share a target).

    ``config`` is a `nas.latency.profile.MeasureConfig` (default: CPU, eager, batch 1). The table
    is written to ``out`` (JSON) and saved in ``store`` when given. Raises ValueError when
    no node of the cluster offers ``resource``.
    """
    import ray

    from nas.latency.profile import MeasureConfig

    config = config or MeasureConfig()
    if not resource:
        raise ValueError("resource: name the custom resource of the target node")
    with ray_session(address=address):
        offered = ray.cluster_resources().get(resource, 0.0)
        if offered < 1:
            raise ValueError(f"no node of the Ray cluster offers resource {resource!r} "
                             f"(start the target with ray start --resources "
                             f"'{{\"{resource}\": 1}}')")
        task = ray.remote(_profile_here).options(num_cpus=num_cpus, resources={resource: 1},
                                                 max_retries=1)
        reply = ray.get(task.remote(space, config, n_calibration, n_validation, seed))
    table = LatencyTable.from_dict(reply["table"])
    path = None if out is None else table.save(out)
    record = None if store is None else store_latency_table(store=store, table=table,
                                                            space=space.name)
    return RemoteProfile(table=table, node_id=reply["node_id"], hostname=reply["hostname"],
                         path=path, record=record)
