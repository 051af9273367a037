"""Stand-alone trainings of an audit as Ray tasks, results yielded as each one finishes.

The space and the data splits are put in the object store once; each task trains one
(arch, seed) with `nas.audit.standalone.train_standalone` and returns its result. At most
``workers`` tasks are in flight, so an interrupted audit loses at most that many runs,
and the driver stores each result as it arrives. A task whose worker dies is retried by
Ray (``max_retries``); one that raises is one `RuntimeError` naming the arch and seed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from nas.audit.config import StandaloneRecipe
from nas.audit.standalone import StandaloneJob, StandaloneResult, train_standalone
from nas.data.splits import TextStream
from nas.distributed.runtime import cluster_cpus, cluster_gpus, connect_ray
from search_spaces import SearchSpace


def _train_task(payload: dict[str, Any], job: StandaloneJob, recipe: StandaloneRecipe,
                device: str | None, threads: int) -> StandaloneResult:
    import ray

    torch.set_num_threads(threads)
    if device is None:
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    return train_standalone(space=payload["space"], arch=job.arch, seed=job.seed,
                            recipe=recipe, train=payload["train"], test=payload["test"],
                            device=device)


def run_on_ray(jobs: Iterable[StandaloneJob], *, space: SearchSpace, recipe: StandaloneRecipe,
               train: tuple[Tensor, Tensor] | TextStream, test: tuple[Tensor, Tensor],
               workers: int,
               device: str = "cpu", address: str | None = None,
               max_retries: int = 2) -> Iterator[StandaloneResult]:
    """Train ``jobs`` on ``workers`` Ray tasks at a time (local Ray, or the cluster at
    ``address`` / ``$RAY_ADDRESS``); yields results in the order they finish.

    Each task asks for an equal share of the cluster's CPUs (at most 1) and, when
    ``device`` is ``cuda``, an equal share of one GPU (several trainings of small subnets
    share a GPU well: each is bound by kernel launches, not by the GPU).
    """
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    import ray

    jobs = list(jobs)
    if not jobs:
        return
    started = connect_ray(address=address)
    inflight: dict[Any, StandaloneJob] = {}
    try:
        cpus = min(1.0, max(cluster_cpus(), 1.0) / workers)
        gpus = 0.0
        if device.startswith("cuda"):
            if cluster_gpus() < 1:
                raise ValueError("stand-alone training on cuda, but the Ray cluster has no GPU")
            gpus = 1.0 / workers
        cpu_train = (train.to("cpu") if isinstance(train, TextStream)
                     else (train[0].cpu(), train[1].cpu()))
        payload = ray.put({"space": space, "train": cpu_train,
                           "test": (test[0].cpu(), test[1].cpu())})
        task = ray.remote(_train_task).options(num_cpus=cpus, num_gpus=gpus,
                                               max_retries=max_retries)
        threads = max(1, math.floor(cpus))
        pending = deque(jobs)
        while pending or inflight:
            while pending and len(inflight) < workers:
                job = pending.popleft()
                inflight[task.remote(payload, job, recipe, None if gpus else device,
                                     threads)] = job
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            job = inflight.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise RuntimeError(f"stand-alone training of arch {job.arch.key()} seed "
                                   f"{job.seed} failed: {exc}") from None
            yield result
    finally:
        for ref in inflight:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
