"""Connecting to Ray: a local instance by default, an existing cluster when asked.

`ray_session` starts a quiet local Ray (this machine's CPUs and GPUs, no dashboard, warnings
only) unless ``address`` or ``$RAY_ADDRESS`` names a cluster to join; an instance already
running in this process is reused and left running. Why one place: every Ray entry point of
`nas` (evaluation pool, remote profiling, tuning) connects the same way, so ``--address``
means the same thing everywhere.

To use a cluster, start it with ``ray start`` (every node needs this project installed)::

    ray start --head --port 6379 --num-cpus 8                 # on the head node
    ray start --address HEAD:6379 --resources '{"jetson": 1}'  # on a target device
    nas search studies/quickstart.py --workers 8 --address HEAD:6379

Ray runs its workers at nice 15; on nodes shared with other work, start them with
``RAY_worker_niceness=0`` so the evaluation workers get a fair share of the cores (a local
instance started here does that itself).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ADDRESS_ENV = "RAY_ADDRESS"


class RayConnectionError(RuntimeError):
    """Ray could not be started or the cluster at the given address could not be joined."""


def resolve_address(address: str | None) -> str | None:
    """``address``, else ``$RAY_ADDRESS``, else None (start a local instance)."""
    address = address or os.environ.get(ADDRESS_ENV) or None
    if address is not None and not address.strip():
        raise ValueError("ray address: empty string")
    return address


def connect_ray(*, address: str | None = None, num_cpus: int | None = None,
                num_gpus: int | None = None, verbose: bool = False) -> bool:
    """Make sure this process is connected to Ray; returns True if this call started it.

    Local by default (``num_cpus`` / ``num_gpus`` default to what this machine has);
    ``address`` (or ``$RAY_ADDRESS``) joins an existing cluster instead, whose resources
    are its own (``num_cpus`` / ``num_gpus`` must then be None).
    """
    import ray

    if ray.is_initialized():
        return False
    address = resolve_address(address)
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=verbose,
        logging_level=logging.INFO if verbose else logging.WARNING)
    if address is None:
        # Ray runs its workers at nice 15 by default; here they are the work itself (an
        # in-process evaluator would run at the user's priority), so they keep nice 0
        kwargs.update(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                      _system_config={"worker_niceness": 0})
    elif num_cpus is not None or num_gpus is not None:
        raise ValueError("num_cpus / num_gpus describe a local Ray instance; a cluster at "
                         f"{address} brings its own resources")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayConnectionError(f"could not connect to {where}: {exc}") from None
    return True


@contextmanager
def ray_session(*, address: str | None = None, num_cpus: int | None = None,
                num_gpus: int | None = None, verbose: bool = False) -> Iterator[None]:
    """`connect_ray` for the duration of a block; shuts Ray down only if it started it."""
    import ray

    started = connect_ray(address=address, num_cpus=num_cpus, num_gpus=num_gpus,
                          verbose=verbose)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def cluster_cpus() -> float:
    """CPUs the connected Ray cluster offers in total."""
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def node_id() -> str:
    """Id of the Ray node this code runs on (driver or worker)."""
    import ray

    return ray.get_runtime_context().get_node_id()
