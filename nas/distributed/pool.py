"""`EvaluationPool`: Ray actors that each load the supernet once and evaluate archs in batches.

The weights (with the space) and the evaluation split are put in the object store once;
every actor fetches them by reference when it starts (and again when it is restarted), so
no task ever carries weights. Batches of archs go to the least-loaded live actor, two in
flight per actor so it never waits for the driver; each result is written to the store by
the driver as it arrives (idempotent upserts). An actor whose process dies is restarted by
Ray (``max_restarts``) and the calls it held are retried (``max_task_retries``); an actor
that stays dead is dropped and its batches go to the others (``max_batch_retries``). Each
batch comes back with the node id and process id that computed it (`BatchReport`).

Example::

    with EvaluationPool(supernet=net, x=val.x, y=val.y, workers=2) as evaluate:
        results = evaluate(archs)  # same list as InProcessEvaluator(...)(archs)
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from nas.distributed.runtime import cluster_cpus, connect_ray
from nas.evaluation.evaluator import BatchReport, InProcessEvaluator, StoringEvaluator
from nas.storage import Store
from nas.supernet import Supernet
from search_spaces import Arch

INFLIGHT_PER_WORKER = 2  # one batch running, one queued: an actor never waits for the driver


class EvaluationWorker:
    """The actor: one supernet (weights from the object store) and the evaluation split.

    ``device`` None picks CUDA when Ray gave this actor a GPU (fractions included), else CPU.
    """

    def __init__(self, payload_ref: list[Any], *, batch_size: int, max_batches: int | None,
                 threads: int, device: str | None, halves: bool = False) -> None:
        import ray

        from nas.evaluation.evaluator import evaluation_values

        # the reference comes wrapped in a list so Ray hands it over unresolved; fetching it
        # here reads the object the driver put once (and keeps alive for restarts)
        payload = ray.get(payload_ref[0])
        torch.set_num_threads(threads)
        if device is None:
            device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.net = Supernet(payload["space"])
        self.net.load_state_dict(payload["state"])
        self.net.to(device).eval()
        self.x, self.y = payload["x"], payload["y"]
        self.batch_size, self.max_batches, self.device = batch_size, max_batches, device
        self.halves, self._values = halves, evaluation_values
        self.node_id = ray.get_runtime_context().get_node_id()

    def info(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "pid": os.getpid(), "device": self.device,
                "threads": torch.get_num_threads()}

    def evaluate(self, arch_jsons: list[str]) -> dict[str, Any]:
        """(loss, accuracy[, loss_a, loss_b]) of each arch (JSON), with where and how long
        it took."""
        t0, c0 = time.perf_counter(), time.process_time()
        archs = [Arch.from_json(text) for text in arch_jsons]
        values = self._values(self.net, archs, self.x, self.y, batch_size=self.batch_size,
                              device=self.device, max_batches=self.max_batches,
                              halves=self.halves)
        return {"values": values, "node_id": self.node_id,
                "pid": os.getpid(), "seconds": time.perf_counter() - t0,
                "cpu_seconds": time.process_time() - c0}


class EvaluationPool(StoringEvaluator):
    """``workers`` Ray actors evaluating archs with inherited weights; see the module doc.

    Ray: local by default, or the cluster at ``address`` / ``$RAY_ADDRESS``; a connection
    already open in this process is used as is. ``cpus_per_worker`` defaults to an equal
    share of the cluster's CPUs (at most 1), ``threads`` (torch intra-op threads per actor)
    to ``max(1, floor(cpus_per_worker))``; ``gpus_per_worker`` may be a fraction (0.25:
    four actors share a GPU). ``resources`` asks for custom node resources per actor.
    Workers that cannot all be placed within ``startup_timeout_s`` (the cluster lacks the
    CPUs, GPUs or resources asked for) are one clear RuntimeError.
    Store arguments and the result format: `StoringEvaluator`.
    """

    def __init__(self, *, supernet: Supernet, x: Tensor, y: Tensor, workers: int = 2,
                 batch_size: int = 256, max_batches: int | None = None,
                 archs_per_task: int = 4, address: str | None = None,
                 cpus_per_worker: float | None = None, gpus_per_worker: float = 0.0,
                 threads: int | None = None, device: str | None = None,
                 resources: dict[str, float] | None = None, max_restarts: int = 3,
                 max_task_retries: int = 3, max_batch_retries: int = 3,
                 startup_timeout_s: float = 300.0, store: Store | None = None,
                 study: str | None = None, checkpoint_sha256: str = "", fidelity: str | None = None,
                 split: str = "val", reuse_stored: bool = True,
                 on_batch: Callable[[BatchReport], None] | None = None,
                 halves: bool = False) -> None:
        if workers < 1 or archs_per_task < 1 or batch_size < 1:
            raise ValueError("workers, archs_per_task and batch_size must be >= 1")
        if gpus_per_worker < 0 or (cpus_per_worker is not None and cpus_per_worker <= 0):
            raise ValueError("cpus_per_worker must be > 0 and gpus_per_worker >= 0")
        if min(max_restarts, max_task_retries, max_batch_retries) < 0:
            raise ValueError("max_restarts, max_task_retries, max_batch_retries must be >= 0")
        super().__init__(space=supernet.space, n_examples=int(x.shape[0]), store=store,
                         study=study, checkpoint_sha256=checkpoint_sha256, fidelity=fidelity,
                         split=split, max_batches=max_batches, reuse_stored=reuse_stored,
                         on_batch=on_batch, halves=halves)
        import ray

        self.archs_per_task, self.max_batch_retries = archs_per_task, max_batch_retries
        self._started_ray = connect_ray(address=address)
        self.actors: list[Any] = []
        try:
            cpus = cpus_per_worker or min(1.0, max(cluster_cpus(), 1.0) / workers)
            state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
            # one object for every actor, fetched by reference (again on a restart)
            self._payload = ray.put({"space": supernet.space, "state": state,
                                     "x": x.detach().cpu(), "y": y.detach().cpu()})
            actor_class = ray.remote(EvaluationWorker).options(
                num_cpus=cpus, num_gpus=gpus_per_worker, resources=resources or {},
                max_restarts=max_restarts, max_task_retries=max_task_retries,
                scheduling_strategy="SPREAD")
            self.actors = [actor_class.remote(
                [self._payload], batch_size=batch_size, max_batches=max_batches,
                threads=threads or max(1, math.floor(cpus)), device=device, halves=halves)
                for _ in range(workers)]
            try:
                self.workers = ray.get([a.info.remote() for a in self.actors],
                                       timeout=startup_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise RuntimeError(
                    f"{workers} evaluation workers ({cpus:g} CPU, {gpus_per_worker:g} GPU"
                    f"{', ' + str(resources) if resources else ''} each) could not all start "
                    f"within {startup_timeout_s:g} s: the cluster offers "
                    f"{ray.cluster_resources()}; ask for fewer workers") from None
        except BaseException:
            self.close()
            raise
        self.alive = [True] * workers
        self.retried_batches = 0

    def worker_info(self) -> list[dict[str, Any]]:
        """``{"node_id", "pid", "device", "threads"}`` of each live actor (waits for it)."""
        import ray

        return ray.get([a.info.remote() for a, ok in zip(self.actors, self.alive) if ok])

    def _evaluate(self, archs: list[Arch]):
        import ray
        from ray.exceptions import ActorDiedError, RayActorError

        k = self.archs_per_task
        batches = [archs[i:i + k] for i in range(0, len(archs), k)]
        pending = deque(range(len(batches)))
        attempts = [0] * len(batches)
        inflight: dict[Any, tuple[int, int]] = {}  # ref -> (batch, actor)
        load = [0] * len(self.actors)
        while pending or inflight:
            while pending:
                free = [i for i, ok in enumerate(self.alive)
                        if ok and load[i] < INFLIGHT_PER_WORKER]
                if not free:
                    break
                actor = min(free, key=lambda i: load[i])
                b = pending.popleft()
                ref = self.actors[actor].evaluate.remote([a.to_json() for a in batches[b]])
                inflight[ref], load[actor] = (b, actor), load[actor] + 1
            if not inflight:
                raise RuntimeError("every evaluation worker died; no batch can run")
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            b, actor = inflight.pop(ref)
            load[actor] -= 1
            try:
                out = ray.get(ref)
            except RayActorError as exc:
                if isinstance(exc, ActorDiedError):  # restarts used up: drop it
                    self.alive[actor] = False
                attempts[b] += 1
                self.retried_batches += 1
                if attempts[b] > self.max_batch_retries:
                    raise RuntimeError(f"a batch of {len(batches[b])} archs failed "
                                       f"{attempts[b]} times: {exc}") from None
                pending.appendleft(b)
                continue
            report = BatchReport(tuple(a.key() for a in batches[b]), out["node_id"],
                                 out["pid"], out["seconds"], out["cpu_seconds"], attempts[b])
            yield batches[b], out["values"], report

    def close(self) -> None:
        """Stop the actors, and Ray itself if this pool started it."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


def make_evaluator(*, supernet: Supernet, x: Tensor, y: Tensor, workers: int = 1,
                   address: str | None = None, **kwargs: Any) -> StoringEvaluator:
    """`InProcessEvaluator` for one worker and no cluster (the default), else an
    `EvaluationPool` of ``workers`` actors (local Ray, or the cluster at ``address`` /
    ``$RAY_ADDRESS``). ``kwargs`` go to either (``batch_size``, ``max_batches``, ``store``,
    ``study``, ``checkpoint``, ``fidelity``, ``split``, ``reuse_stored``, ``on_batch``,
    ``halves``)."""
    if workers < 1:
        raise ValueError(f"workers: expected >= 1, got {workers}")
    if workers == 1 and address is None and not os.environ.get("RAY_ADDRESS"):
        return InProcessEvaluator(supernet=supernet, x=x, y=y, **kwargs)
    return EvaluationPool(supernet=supernet, x=x, y=y, workers=workers, address=address,
                          **kwargs)
