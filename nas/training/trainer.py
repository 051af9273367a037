"""Supernet training: sandwich steps with in-place distillation, resumable to the bit.

Per step, on one batch: the sampler's "largest" subnet is trained on labels and its
detached logits become the soft targets of the other subnets (KD or alpha-divergence);
during the first ``largest_first`` share of the schedule the largest trains alone;
gradients accumulate over the subnets, are clipped, and AdamW takes one step on a
warm-up + cosine schedule. The data order of every epoch is a permutation drawn from a
generator seeded by (seed, epoch) (or, for a `TextStream`, the window offsets of every step
are drawn from a generator seeded by (seed, step)), so a resumed run sees exactly the
batches the straight run would have, and the checkpoint carries model, optimizer,
scheduler and sampler states.

Run directory: ``checkpoint.pt`` (atomic, every ``checkpoint_every`` steps and at the end)
and ``metrics.jsonl`` (one ``{"kind": "train", ...}`` line per step and one
``{"kind": "val", ...}`` line per panel evaluation), which the store imports later.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from nas.data.splits import DataSplits, TensorSplit, TextStream
from nas.evaluation import device_kernels, evaluate_many, task_loss
from nas.progress import ProgressBar
from nas.supernet import Regularizer, Supernet, step_generator
from nas.supernet.regularize import STREAM_DROP, STREAM_SAMPLE_DROP
from nas.training.augment import augment_images, augment_params
from nas.training.checkpoint import (
    CHECKPOINT_NAME,
    data_fingerprint,
    load_checkpoint,
    refuse_other_data,
    refuse_other_recipe,
    save_checkpoint,
)
from nas.training.config import TrainConfig
from nas.training.distillation import distillation_loss
from nas.training.replica import Replica
from nas.training.samplers import SampledArch, SamplerConfig, make_sampler
from search_spaces import Arch, SearchSpace

METRICS_NAME = "metrics.jsonl"
BEST_NAME = "best.pt"
# the training bar's fields beside the ETA: the step's loss and throughput
TRAIN_COLUMNS = ("loss {task.fields[loss]:.4f}", "{task.fields[rate]:.0f} samples/s")


@dataclass(frozen=True)
class PanelArch:
    role: str
    arch: Arch


@dataclass
class TrainResult:
    """``checkpoint`` is the last step's (resumable) checkpoint; ``best`` the weights at the
    lowest validation-panel loss (``best_step``), None when ``keep_best`` is off."""

    step: int
    checkpoint: Path
    metrics_log: Path
    panel: list[dict[str, Any]]
    supernet: Supernet
    best: Path | None = None
    best_step: int | None = None
    best_loss: float | None = None


def validation_panel(space: SearchSpace, size: int, seed: int) -> list[PanelArch]:
    """Fixed subnets watched during training: largest, smallest and ``size`` random ones."""
    rng = np.random.default_rng([seed, 7919])
    panel = [PanelArch("largest", space.largest()), PanelArch("smallest", space.smallest())]
    panel += [PanelArch(f"random{i}", space.sample(rng)) for i in range(size)]
    return panel


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base LR at ``step`` (0-based): linear warm-up, then cosine."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine


def _optimizer(net: Supernet, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in net.parameters() if p.dim() >= 2]
    no_decay = [p for p in net.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def _stream_or_tensors(train: Any) -> TextStream | None:
    """``train`` as a `TextStream` (random-offset windows), None for ``(x, y)`` tensors;
    anything else is refused with one clear error."""
    if isinstance(train, TextStream):
        return train
    if (isinstance(train, (tuple, list)) and len(train) == 2
            and all(isinstance(t, torch.Tensor) for t in train)):
        return None
    raise ValueError(f"train: expected (x, y) tensors or a TextStream, got "
                     f"{type(train).__name__}")


class _EpochBatches:
    """Batch ``step`` of a deterministic, per-epoch shuffled order (drop_last)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < batch_size:
            raise ValueError(f"training split has {n} examples, fewer than batch_size "
                             f"{batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, offset = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[offset * self.batch_size:(offset + 1) * self.batch_size]


def subnet_loss(logits: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None, *,
                config: TrainConfig) -> torch.Tensor:
    """Loss of one subnet's (B, C) or (B, T, V) logits: cross-entropy on the labels (with
    ``config.label_smoothing``) without a teacher (the largest, or any subnet of a uniform
    step), else ``w * KD + (1 - w) * CE`` against the teacher's detached logits. A mean
    over the batch, so the mean of equal shards' losses is the loss of the whole batch."""
    smoothing = config.label_smoothing
    if teacher is None:
        return task_loss(logits, y, label_smoothing=smoothing)
    kd = distillation_loss(logits, teacher, kind=config.distill, temperature=config.temperature)
    if config.distill_weight == 1:
        return kd
    return (config.distill_weight * kd
            + (1 - config.distill_weight) * task_loss(logits, y, label_smoothing=smoothing))


def sandwich_backward(model: Callable[..., torch.Tensor],
                      subnets: list[SampledArch], xb: torch.Tensor, yb: torch.Tensor, *,
                      config: TrainConfig, autocast: Any,
                      no_sync: Callable[[], Any] | None = None,
                      regularizer: Regularizer | None = None) -> list[torch.Tensor]:
    """Forward + backward of every subnet of one step on the batch ``xb`` (B, ...), ``yb``;
    gradients accumulate in the parameters' ``.grad``. Returns the detached 0-dim loss of
    each subnet. ``no_sync`` (e.g. DDP's) wraps every subnet but the last, so a wrapper that
    reduces gradients in backward reduces them once per step. ``regularizer`` (stochastic
    depth / dropout) applies to the subnets trained on labels (no teacher yet)."""
    teacher, losses = None, []
    for i, sub in enumerate(subnets):
        guard = no_sync() if no_sync is not None and i < len(subnets) - 1 else nullcontext()
        with guard:
            with autocast:
                if regularizer is not None and teacher is None:
                    logits = model(xb, sub.arch, regularizer=regularizer)
                else:
                    logits = model(xb, sub.arch)
                loss = subnet_loss(logits, yb, teacher, config=config)
            loss.backward()
        if sub.role == "largest":
            teacher = logits.detach()
        losses.append(loss.detach())
    return losses


def apply_update(net: Supernet, opt: torch.optim.Optimizer,
                 sched: torch.optim.lr_scheduler.LRScheduler, config: TrainConfig) -> float:
    """Clip the accumulated gradients, take the AdamW step, advance the schedule; returns the
    LR the step used."""
    torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
    lr = opt.param_groups[0]["lr"]
    opt.step()
    sched.step()
    return lr


def _training_inputs(data: DataSplits | None, train: Any, val: Any,
                     ) -> tuple[tuple[torch.Tensor, torch.Tensor] | TextStream,
                                tuple[torch.Tensor, torch.Tensor]]:
    """``(train, val)`` from ``data`` (what `load_data` returns) or from the ``train`` /
    ``val`` arguments, where a `TensorSplit` stands for its ``(x, y)``."""
    if data is not None:
        if train is not None or val is not None:
            raise ValueError("train_supernet: pass data= (the DataSplits) or train= and val=, "
                             "not both")
        if not isinstance(data, DataSplits):
            raise ValueError(f"data: expected the DataSplits of load_data, got "
                             f"{type(data).__name__}")
        return data.train_source(), (data.val.x, data.val.y)
    if train is None or val is None:
        raise ValueError("train_supernet: pass data= (the DataSplits of load_data), or both "
                         "train= and val=")
    train = (train.x, train.y) if isinstance(train, TensorSplit) else train
    val = (val.x, val.y) if isinstance(val, TensorSplit) else val
    if not (isinstance(val, (tuple, list)) and len(val) == 2
            and all(isinstance(t, torch.Tensor) for t in val)):
        raise ValueError(f"val: expected (x, y) tensors or a TensorSplit, got "
                         f"{type(val).__name__}")
    return train, (val[0], val[1])


def train_supernet(
    *,
    space: SearchSpace,
    data: DataSplits | None = None,
    train: tuple[torch.Tensor, torch.Tensor] | TensorSplit | TextStream | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | TensorSplit | None = None,
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    time_limit_s: float | None = None,
    replica: Replica | None = None,
) -> TrainResult:
    """Train a supernet of ``space`` on ``train``, watching a panel on ``val``.

    ``data``: the `DataSplits` that `nas.data.load_data` (or `Study.load_data`) returns,
    standing for ``train=data.train_source()`` and ``val=data.val``. Otherwise ``train`` is
    ``(x (N, ...), y (N, ...))`` or a `TensorSplit` (per-epoch shuffled batches) or a
    `TextStream` (step ``s`` trains on ``config.batch_size`` windows at random offsets
    drawn from ``(config.seed, s)``: `DataSplits.train_source` gives the right one).

    ``stop_at`` ends the run early at that step (checkpointed), ``time_limit_s`` after that
    many seconds of this call (checkpointed at the step reached); ``resume`` continues from
    ``out_dir/checkpoint.pt``. Without ``resume`` an existing checkpoint is refused, so a
    finished run is never overwritten by accident.

    ``replica`` makes this process one rank of a data-parallel run (see
    `nas.training.data_parallel`): it trains on its shard of every global batch of
    ``config.batch_size``, gradients are averaged over the ranks once per step, and only
    rank 0 evaluates, logs and writes checkpoints, which are the same as a one-process run's.
    """
    train, val = _training_inputs(data, train, val)
    out = Path(out_dir)
    ckpt_path, log_path = out / CHECKPOINT_NAME, out / METRICS_NAME
    if ckpt_path.exists() and not resume:
        raise ValueError(f"{ckpt_path} exists: pass resume to continue it, or another out dir")
    stop = config.steps if stop_at is None else stop_at
    if stop > config.steps:
        raise ValueError(f"stop_at={stop} is past the schedule horizon steps={config.steps}")
    stream = _stream_or_tensors(train)  # a bad train argument is refused before any write
    train_data = data_fingerprint(train)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device) if replica is None else replica.device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("training.device is 'cuda' but no CUDA device is available")
    lead = replica is None or replica.rank == 0

    torch.manual_seed(config.seed)
    net = Supernet(space).to(device)
    opt = _optimizer(net, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    sampler = make_sampler(space, SamplerConfig(name=config.sampler, num_random=config.num_random,
                                                bins=config.bins, seed=config.seed,
                                                smallest=config.smallest))
    largest = space.largest()
    step = 0
    best: dict[str, Any] = {"step": None, "loss": None}
    best_path = out / BEST_NAME
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, space_fingerprint=net.fingerprint(),
                                map_location=device)
        refuse_other_recipe(ckpt_path, state, config, stop=stop)
        refuse_other_data(ckpt_path, state, train_data, stop=stop)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        sampler.load_state_dict(json.loads(state["sampler"]))
        step = int(state["step"])
        if "best" in state and best_path.exists():
            best = dict(json.loads(state["best"]))
    if lead:  # cut the log back to the checkpoint: to empty when starting from step 0
        from nas.training.metrics_log import logged_panel, truncate_log

        truncate_log(log_path, step=step)
    if replica is not None:
        replica.broadcast_parameters(net)

    if stream is not None:
        stream = stream.to(device)
    else:
        pair = cast("tuple[torch.Tensor, torch.Tensor]", train)  # stream is None: (x, y)
        x_train, y_train = pair[0].to(device), pair[1].to(device)
        batches = _EpochBatches(x_train.shape[0], config.batch_size, config.seed)

    def batch_at(step_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's rows of global batch ``step_index`` (its shard under a replica)."""
        if stream is not None:  # the global offsets: the same for any world size
            offsets = stream.offsets(step_index, config.batch_size, seed=config.seed)
            return stream.take(offsets if replica is None else replica.shard(offsets))
        idx = batches.indices(step_index)  # the global batch: the same for any world size
        if replica is not None:
            idx = replica.shard(idx)
        idx = idx.to(device)
        return x_train[idx], y_train[idx]

    x_val, y_val = val
    panel = validation_panel(space, config.panel_size, config.seed)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else nullcontext())
    world_size = 1 if replica is None else replica.world_size

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, {
            "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "sampler": json.dumps(sampler.state_dict()),
            "step": step, "config": config.to_dict(), "space": space.describe(),
            "space_fingerprint": net.fingerprint(), "best": json.dumps(best),
            "train_data": train_data})

    def keep_if_best(panel_rows: list[dict[str, Any]]) -> None:
        """Save the weights as ``best.pt`` when the panel's mean loss is the lowest yet."""
        if not config.keep_best or not panel_rows:
            return
        loss = float(np.mean([row["loss"] for row in panel_rows]))
        if best["loss"] is None or loss < best["loss"]:
            best.update(step=step, loss=loss)
            save_checkpoint(best_path, {
                "model": net.state_dict(), "step": step, "config": config.to_dict(),
                "space": space.describe(), "space_fingerprint": net.fingerprint(),
                "panel_loss": loss, "best": json.dumps(best), "train_data": train_data})

    image = space.modality == "image"

    def regularizer_at(step_index: int, rows: int) -> Regularizer | None:
        if config.drop_path == 0 and config.dropout == 0:
            return None
        offset = 0 if replica is None else replica.rank * rows
        return Regularizer(
            drop_path=config.drop_path, dropout=config.dropout,
            generator=step_generator(config.seed + 7919 * offset, step_index, STREAM_DROP,
                                     device),
            sample_generator=step_generator(config.seed, step_index, STREAM_SAMPLE_DROP),
            offset=offset, global_batch=config.batch_size)

    def evaluate_panel() -> list[dict[str, Any]]:
        with autocast:
            results = evaluate_many(net, [p.arch for p in panel], x_val, y_val,
                                    batch_size=config.eval_batch_size, device=device,
                                    max_batches=config.eval_batches)
        return [{"role": p.role, "key": p.arch.key(), "flops": space.flops(p.arch),
                 "loss": r.loss, "accuracy": r.accuracy} for p, r in zip(panel, results)]

    if lead:
        out.mkdir(parents=True, exist_ok=True)
    last_panel: list[dict[str, Any]] = []
    val_step, ckpt_step = -1, step
    if lead and (logged := logged_panel(log_path, step=step)) is not None:
        last_panel, val_step = logged, step  # resumed after the last panel: not logged twice
    bar = ProgressBar(total=stop, description="train", enabled=progress and lead,
                      completed=step, columns=TRAIN_COLUMNS,
                      fields={"loss": float("nan"), "rate": 0.0})
    started = time.perf_counter()
    with (bar, (log_path.open("a") if lead else _NullLog()) as log,
          device_kernels(device)):
        net.train()
        while step < stop:
            t0 = time.perf_counter()
            xb, yb = batch_at(step)
            rows = xb.shape[0]
            if image and config.augment != "none":  # the global batch's draws, this shard's rows
                params = augment_params(config.batch_size, kind=config.augment,
                                        pad=config.augment_pad, seed=config.seed, step=step)
                rank = 0 if replica is None else replica.rank
                xb = augment_images(xb, params[rank * rows:(rank + 1) * rows],
                                    pad=config.augment_pad)
            opt.zero_grad(set_to_none=True)
            if step < config.largest_first_steps:  # the sampler waits: its sequence is kept
                subnets = [SampledArch(largest, "largest")]
            else:
                subnets = sampler.next_step()
            loss_tensors = sandwich_backward(net, subnets, xb, yb, config=config,
                                             autocast=autocast,
                                             regularizer=regularizer_at(step, rows))
            if replica is None:
                losses = [float(v) for v in loss_tensors]
                out_of_time = False
            else:  # one all-reduce: gradients, losses and the time-limit vote together
                losses, out_of_time = replica.average_gradients(
                    net, loss_tensors, out_of_time=time_limit_s is not None
                    and time.perf_counter() - started > time_limit_s)
            lr = apply_update(net, opt, sched, config)
            step += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            record = {"kind": "train", "step": step, "lr": lr,
                      "loss": float(np.mean(losses)), "losses": losses,
                      "samples_per_s": len(subnets) * rows * world_size / dt,
                      "world_size": world_size,
                      "archs": [{"key": s.arch.key(), "role": s.role, "bin": s.bin,
                                 "flops": space.flops(s.arch)} for s in subnets]}
            if lead:
                log.write(json.dumps(record) + "\n")
                if step % config.eval_every == 0 or step == stop:
                    last_panel, val_step = evaluate_panel(), step
                    keep_if_best(last_panel)
                    net.train()
                    log.write(json.dumps({"kind": "val", "step": step, "panel": last_panel})
                              + "\n")
                log.flush()
                if step % config.checkpoint_every == 0 or step == stop:
                    checkpoint()
                    ckpt_step = step
                bar.update(step, loss=record["loss"], rate=record["samples_per_s"])
                if on_step is not None:
                    on_step(step, record)
            if replica is None:
                out_of_time = (time_limit_s is not None
                               and time.perf_counter() - started > time_limit_s)
            if out_of_time:
                break
        if lead and val_step != step:  # stopped by the time limit, or nothing left to train
            last_panel = evaluate_panel()
            keep_if_best(last_panel)
            log.write(json.dumps({"kind": "val", "step": step, "panel": last_panel}) + "\n")
    if lead and (ckpt_step != step or not ckpt_path.exists()):
        checkpoint()
    if replica is not None:
        replica.barrier()  # the last checkpoint is on disk before any rank returns
    return TrainResult(step=step, checkpoint=ckpt_path, metrics_log=log_path, panel=last_panel,
                       supernet=net.eval(), best=best_path if best["step"] is not None else None,
                       best_step=best["step"], best_loss=best["loss"])


class _NullLog:
    """The metrics log of a rank other than 0: writes nothing."""

    def __enter__(self) -> _NullLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def write(self, text: str) -> None:
        return None

    def flush(self) -> None:
        return None
