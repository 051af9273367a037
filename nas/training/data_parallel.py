"""Data-parallel supernet training: one process per GPU (or CPU rank), one all-reduce a step.

Every rank builds the same supernet, optimizer and sampler from the config's seed, so all
ranks draw the same subnets every step with no communication. Each step's global batch of
``config.batch_size`` examples is the batch a one-process run would train on (the data order
is defined by the global batch); rank ``r`` of ``W`` trains on its ``r``-th contiguous
``batch_size / W`` slice. After the whole sandwich (every subnet's backward) the ranks
average their gradients in ONE all-reduce of a flat buffer, which also carries the subnets'
losses (for the log) and each rank's time-limit vote (so all ranks stop at the same step).
Every loss is a mean over its batch and the shards are equal, so the averaged gradient is
the gradient of the global batch: W ranks take the step one process would take on that
batch, up to fp32 summation order (~1e-7 relative per step; the gloo test checks 1e-5).

The all-reduce covers exactly the parameters that have a gradient this step: the subnets of
a step leave the other parameters' ``.grad`` at None on every rank alike (same subnets), and
AdamW skips those as it does in one process (a zero gradient would instead decay them and
their moments). DDP would need ``find_unused_parameters`` plus ``no_sync`` over all subnets
but the last, and was slower: on an H100 at world size 1 (`benchmarks/multigpu_scaling.py`,
BENCHMARKS.md) its steps took 5-17 % longer than the flat all-reduce's in every block timed
on the same steps (the step is launch-bound, and DDP's reducer hooks every gradient).

Rank 0 alone evaluates the panel, writes ``metrics.jsonl`` and the checkpoints, which are the
one-process format (replicated state, no world size in it), so a run resumes on any number
of ranks and continues the same global sequence of batches and subnets.

Example::

    result = train_data_parallel(nproc=2, space_factory=partial(get_space, "hybrid_vit_tiny"),
                                 train=(x, y), val=(xv, yv), config=config, out_dir="runs/a")
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nas.data.splits import TextStream
from nas.supernet import Supernet
from nas.training.checkpoint import (
    CHECKPOINT_NAME,
    data_fingerprint,
    load_checkpoint,
    refuse_other_data,
    refuse_other_recipe,
)
from nas.training.config import TrainConfig
from nas.training.replica import Replica
from nas.training.trainer import BEST_NAME, METRICS_NAME, TrainResult, train_supernet
from search_spaces import SearchSpace


def _rank_devices(device: str, nproc: int) -> list[str]:
    """One device per rank: ``cpu`` for all, or ``cuda:k + r`` from ``cuda`` / ``cuda:k``."""
    if device == "cpu":
        return ["cpu"] * nproc
    if not torch.cuda.is_available():
        raise ValueError("training.device is 'cuda' but no CUDA device is available")
    first = int(device.split(":", 1)[1]) if ":" in device else 0
    count = torch.cuda.device_count()
    if first + nproc > count:
        raise ValueError(f"--nproc {nproc} from {device} needs GPUs {first}..{first + nproc - 1}"
                         f" but this machine has {count}")
    return [f"cuda:{first + r}" for r in range(nproc)]


def _rank_main(rank: int, world_size: int, init_file: str, devices: list[str],
               space_factory: Callable[[], SearchSpace],
               train: tuple[torch.Tensor, torch.Tensor] | TextStream,
               val: tuple[torch.Tensor, torch.Tensor], config: TrainConfig, out_dir: str,
               resume: bool, stop_at: int | None, progress: bool, time_limit_s: float | None,
               threads: int) -> None:
    """One rank: join the group (NCCL on GPUs, gloo on CPU), train, leave."""
    device = torch.device(devices[rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if config.threads is None:
        torch.set_num_threads(threads)
    device_id: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=timedelta(minutes=10), **device_id)
    try:
        train_supernet(space=space_factory(), train=train, val=val, config=config,
                       out_dir=out_dir, resume=resume, stop_at=stop_at,
                       progress=progress and rank == 0, time_limit_s=time_limit_s,
                       replica=Replica(rank, world_size, device))
    finally:
        dist.destroy_process_group()


def train_data_parallel(
    *,
    nproc: int,
    space_factory: Callable[[], SearchSpace],
    train: tuple[torch.Tensor, torch.Tensor] | TextStream,
    val: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
) -> TrainResult:
    """`train_supernet` over ``nproc`` spawned ranks (one per GPU from ``config.device``, or
    ``nproc`` gloo ranks on CPU), with the same arguments and result.

    ``config.batch_size`` is the global batch (each rank trains on ``batch_size / nproc``);
    ``space_factory`` is a picklable zero-argument function building the space in each rank
    (e.g. ``functools.partial(get_space, name, **overrides)``). ``nproc=1`` runs the same
    path in one spawned rank (to measure its overhead against `train_supernet`).
    """
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"nproc: must be an int >= 1, got {nproc!r}")
    if config.batch_size % nproc:
        raise ValueError(f"training.batch_size {config.batch_size} (the global batch) does not "
                         f"split into {nproc} equal shards: use a multiple of {nproc}")
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT_NAME
    if ckpt_path.exists() and not resume:
        raise ValueError(f"{ckpt_path} exists: pass resume to continue it, or another out dir")
    stop = config.steps if stop_at is None else stop_at
    if stop > config.steps:
        raise ValueError(f"stop_at={stop} is past the schedule horizon steps={config.steps}")
    try:
        pickle.dumps(space_factory)
    except Exception as exc:
        raise ValueError(f"space_factory must be picklable to reach the ranks ({exc}): use "
                         f"functools.partial(get_space, name, **overrides)") from None
    space = space_factory()
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space_factory returned {type(space).__name__}, not a SearchSpace")
    if resume and ckpt_path.exists():  # a wrong checkpoint fails here, before any rank starts
        state = load_checkpoint(ckpt_path, space_fingerprint=Supernet(space).fingerprint())
        refuse_other_recipe(ckpt_path, state, config, stop=stop)
        refuse_other_data(ckpt_path, state, data_fingerprint(train), stop=stop)
    devices = _rank_devices(config.device, nproc)
    if isinstance(train, TextStream):  # random-offset windows: any batch size fits
        train = train.to("cpu")
    elif train[0].shape[0] < config.batch_size:
        raise ValueError(f"training split has {train[0].shape[0]} examples, fewer than "
                         f"batch_size {config.batch_size}")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    threads = max(1, cpus // nproc)
    if not isinstance(train, TextStream):
        train = (train[0].cpu(), train[1].cpu())
    val = (val[0].cpu(), val[1].cpu())
    rendezvous = tempfile.mkdtemp(prefix="nas-ddp-")
    try:
        mp.spawn(_rank_main, nprocs=nproc, join=True, args=(
            nproc, os.path.join(rendezvous, "init"), devices, space_factory, train, val,
            config, str(out), resume, stop_at, progress, time_limit_s, threads))
    except mp.ProcessRaisedException as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise RuntimeError(f"data-parallel training failed on a rank: {lines[-1]}") from None
    except mp.ProcessExitedException as exc:
        raise RuntimeError(f"data-parallel training: a rank died ({exc})") from None
    finally:
        shutil.rmtree(rendezvous, ignore_errors=True)
    return _result(space, out)


def _result(space: SearchSpace, out: Path) -> TrainResult:
    """The finished run as `train_supernet` returns it, read back from rank 0's files."""
    state = load_checkpoint(out / CHECKPOINT_NAME)
    net = Supernet(space)
    net.load_state_dict(state["model"])
    panel: list[dict[str, Any]] = []
    log_path = out / METRICS_NAME
    for line in log_path.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if record.get("kind") == "val":
            panel = record["panel"]
    best_path = out / BEST_NAME  # rank 0 kept the best validation-panel weights there
    best = load_checkpoint(best_path) if best_path.exists() else None
    return TrainResult(step=int(state["step"]), checkpoint=out / CHECKPOINT_NAME,
                       metrics_log=log_path, panel=panel, supernet=net.eval(),
                       best=best_path if best is not None else None,
                       best_step=None if best is None else int(best["step"]),
                       best_loss=None if best is None else best.get("panel_loss"))
