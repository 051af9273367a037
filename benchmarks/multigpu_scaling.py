"""Benchmark `multigpu_scaling`: data-parallel supernet training, steps/s per GPU count.

Weak scaling at a fixed per-GPU batch: `hybrid_vit_tiny` (3 x 32 x 32 synthetic images,
10 classes; content does not change the cost), the complexity-aware sandwich (largest +
smallest + 2 random subnets a step), bf16 autocast on GPU. Every run trains the same
sequence of subnets; a run's rate is (steps timed) / (sum of their step times), read from
the trainer's own per-step log, after ``--warmup`` steps. In the same run of this script:

1. `train_supernet` (one process, no communication) vs `train_data_parallel(nproc=1)` (the
   data-parallel path at world size 1: spawned rank, NCCL, one flat all-reduce a step),
   alternated over ``--rounds``: the overhead of the data-parallel path.
2. `train_data_parallel(nproc=k)` for each k in ``--nprocs`` that the machine has GPUs for,
   global batch k x per-GPU batch: ``efficiency_kgpu = steps_per_s_kgpu / steps_per_s_1gpu``.
3. Gradient synchronisation in isolation, in one spawned rank (world size 1): the same
   steps with no sync (twice: the second run is the run-to-run noise floor of the GPU's
   non-deterministic kernels), with the flat all-reduce (`Replica.average_gradients`) and
   with DDP (``find_unused_parameters=True``, ``no_sync`` over all subnets but the last),
   interleaved in blocks; the parameter differences after the run are recorded.

    python benchmarks/multigpu_scaling.py --device cuda
    python benchmarks/multigpu_scaling.py --device cpu --per-gpu-batch 16 --steps 8 \\
        --warmup 2 --rounds 1 --space-small   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_io import device_name, write_result  # noqa: E402

from nas.supernet import Supernet  # noqa: E402
from nas.training import (  # noqa: E402
    Replica,
    SamplerConfig,
    TrainConfig,
    lr_factor,
    make_sampler,
    train_data_parallel,
    train_supernet,
)
from nas.training.trainer import (  # noqa: E402
    _EpochBatches,
    _optimizer,
    apply_update,
    sandwich_backward,
)
from search_spaces import get_space  # noqa: E402

SMALL = dict(resolutions=(16,), widths=((16,), (16, 32), (32,)), depths=((1,), (1, 2), (1,)))


def _config(args, nproc: int) -> TrainConfig:
    return TrainConfig(steps=args.steps, batch_size=nproc * args.per_gpu_batch, warmup_steps=5,
                       eval_every=args.steps, eval_batches=1, eval_batch_size=256, panel_size=1,
                       checkpoint_every=args.steps, num_random=2, device=args.device, seed=0)


def _data(space, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = space.example_input(space.largest(), n, generator=g)
    return x, torch.randint(0, space.num_outputs, (n,), generator=g)


def _step_seconds(out: Path, warmup: int, batch: int) -> list[float]:
    """Per-step wall times of a run (global ``batch``), from its metrics log (steps after
    ``warmup``): the trainer logs ``samples_per_s = subnets x batch / step time``."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train" and r["step"] > warmup]
    return [len(r["archs"]) * batch / r["samples_per_s"] for r in train]


def _run(kind: str, nproc: int, args, space_factory, work: Path, tag: str) -> dict:
    config = _config(args, nproc)
    out = work / tag
    n = max(4 * config.batch_size, 2048)
    train, val = _data(space_factory(), n, 0), _data(space_factory(), 256, 1)
    t0 = time.perf_counter()
    if kind == "plain":
        train_supernet(space=space_factory(), train=train, val=val, config=config, out_dir=out,
                       progress=False)
    else:
        train_data_parallel(nproc=nproc, space_factory=space_factory, train=train, val=val,
                            config=config, out_dir=out, progress=False)
    wall = time.perf_counter() - t0
    secs = _step_seconds(out, args.warmup, config.batch_size)
    rate = len(secs) / sum(secs)
    print(f"{tag:14s} nproc {nproc} global batch {config.batch_size}: {rate:.2f} steps/s "
          f"(median step {1e3 * statistics.median(secs):.1f} ms, call {wall:.1f} s)",
          flush=True)
    return {"steps_per_s": rate, "step_ms": [1e3 * s for s in secs], "call_s": wall,
            "global_batch": config.batch_size, "nproc": nproc}


def _sync_rank(rank: int, init_file: str, args, space_factory, result_file: str) -> None:
    """World size 1: no sync vs flat all-reduce vs DDP (find_unused + no_sync), same steps."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = torch.device("cuda:0" if args.device.startswith("cuda") else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            init_method=f"file://{init_file}", rank=rank, world_size=1)
    try:
        space = space_factory()
        config = _config(args, 1)
        x, y = _data(space, max(4 * config.batch_size, 2048), 0)
        x, y = x.to(device), y.to(device)
        batches = _EpochBatches(x.shape[0], config.batch_size, config.seed)
        sampler = make_sampler(space, SamplerConfig(name=config.sampler, num_random=2,
                                                    bins=config.bins, seed=0))
        total = args.warmup + args.rounds * args.block
        plan = [sampler.next_step() for _ in range(total)]
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else nullcontext())
        replica = Replica(0, 1, device)
        variants = {}
        for name in ("none", "none_again", "flat", "ddp"):
            torch.manual_seed(config.seed)
            net = Supernet(space).to(device).train()
            opt = _optimizer(net, config)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, config=config))
            model = net
            if name == "ddp":
                model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                            find_unused_parameters=True, broadcast_buffers=False)
            variants[name] = {"net": net, "model": model, "opt": opt, "sched": sched,
                              "step": 0, "ms": []}

        def run_steps(v: dict, name: str, count: int) -> None:
            for _ in range(count):
                i = v["step"]
                idx = batches.indices(i).to(device)
                v["opt"].zero_grad(set_to_none=True)
                losses = sandwich_backward(
                    v["model"], plan[i], x[idx], y[idx], config=config, autocast=autocast,
                    no_sync=v["model"].no_sync if name == "ddp" else None)
                if name == "flat":
                    replica.average_gradients(v["net"], losses, out_of_time=False)
                else:
                    [float(t) for t in losses]
                apply_update(v["net"], v["opt"], v["sched"], config)
                v["step"] += 1

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()

        # every planned step once on a throwaway supernet first: the first run of a new
        # shape pays one-time costs (kernel selection), which must not land in one variant
        prime = Supernet(space).to(device).train()
        for i, subs in enumerate(plan):
            idx = batches.indices(i).to(device)
            sandwich_backward(prime, subs, x[idx], y[idx], config=config, autocast=autocast)
            prime.zero_grad(set_to_none=True)
        del prime
        for name, v in variants.items():
            run_steps(v, name, args.warmup)
        names = list(variants)
        for r in range(args.rounds):  # interleaved blocks, order rotated every round
            for name in names[r % len(names):] + names[:r % len(names)]:
                v = variants[name]
                sync()
                t0 = time.perf_counter()
                run_steps(v, name, args.block)
                sync()
                v["ms"].append(1e3 * (time.perf_counter() - t0) / args.block)
        ref = variants["none"]["net"].state_dict()
        out = {}
        for name, v in variants.items():
            sd = v["net"].state_dict()
            out[name] = {"ms_per_step": statistics.median(v["ms"]), "blocks_ms": v["ms"],
                         "max_param_diff_vs_none": max(float((sd[k] - ref[k]).abs().max())
                                                       for k in ref)}
        out["grad_numel"] = sum(p.numel() for p in variants["none"]["net"].parameters())
        Path(result_file).write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--per-gpu-batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2, help="plain / nproc=1 alternations; "
                        "also the sync micro-benchmark's rounds x 3")
    parser.add_argument("--block", type=int, default=20, help="steps per sync-timing block")
    parser.add_argument("--nprocs", default="1,2", help="GPU counts to run when available")
    parser.add_argument("--space-small", action="store_true", help="tiny space (smoke runs)")
    args = parser.parse_args()
    space_factory = partial(get_space, "hybrid_vit_tiny", **(SMALL if args.space_small else {}))
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
    wanted = [int(k) for k in args.nprocs.split(",")]
    work = Path(tempfile.mkdtemp(prefix="multigpu-"))

    plain, dp1 = [], []
    for r in range(args.rounds):
        pair = [("plain", plain), ("dp", dp1)]
        for kind, bucket in pair if r % 2 == 0 else pair[::-1]:
            bucket.append(_run(kind, 1, args, space_factory, work, f"{kind}1_r{r}"))
    multi = {}
    for k in wanted:
        if k > 1 and (args.device == "cpu" or k <= gpus):
            multi[k] = _run("dp", k, args, space_factory, work, f"dp{k}")

    init_dir = tempfile.mkdtemp(prefix="sync-")
    result_file = os.path.join(init_dir, "sync.json")
    mp.spawn(_sync_rank, nprocs=1, args=(os.path.join(init_dir, "init"), args, space_factory,
                                         result_file))
    sync = json.loads(Path(result_file).read_text())
    for name in ("none", "none_again", "flat", "ddp"):
        print(f"sync {name:10s}: {sync[name]['ms_per_step']:.2f} ms/step (max param diff vs "
              f"none {sync[name]['max_param_diff_vs_none']:.2g})")

    rate_plain = statistics.median(r["steps_per_s"] for r in plain)
    rate_1 = statistics.median(r["steps_per_s"] for r in dp1)
    none_ms = statistics.median(sync["none"]["blocks_ms"] + sync["none_again"]["blocks_ms"])

    def paired(a: str, b: str) -> float:
        """Median over rounds of a's block time / b's block time (same steps)."""
        return statistics.median(x / y for x, y in zip(sync[a]["blocks_ms"],
                                                        sync[b]["blocks_ms"]))

    metrics = {
        "per_gpu_batch": args.per_gpu_batch,
        "steps_per_s_1gpu": rate_1,
        "steps_per_s_1gpu_plain": rate_plain,
        "dp_overhead_world1": rate_plain / rate_1 - 1,
        "sync_world1": {
            "none_ms": none_ms, "none_again_ms": sync["none_again"]["ms_per_step"],
            "flat_allreduce_ms": sync["flat"]["ms_per_step"],
            "ddp_no_sync_ms": sync["ddp"]["ms_per_step"],
            "flat_overhead": paired("flat", "none") - 1,
            "ddp_overhead": paired("ddp", "none") - 1,
            "ddp_vs_flat": paired("ddp", "flat"),
            "grad_numel": sync["grad_numel"],
            # GPU kernels are not bitwise deterministic: "none_again" (the no-sync run
            # repeated) is the floor that the others' differences are judged against
            "max_param_diff_vs_none": {n: sync[n]["max_param_diff_vs_none"]
                                       for n in ("none_again", "flat", "ddp")},
        },
        "gpus_on_machine": gpus,
    }
    for k in wanted:
        if k == 1:
            continue
        if k in multi:
            metrics[f"steps_per_s_{k}gpu"] = multi[k]["steps_per_s"]
            metrics[f"efficiency_{k}gpu"] = multi[k]["steps_per_s"] / rate_1
        else:
            metrics[f"steps_per_s_{k}gpu"] = None
            metrics[f"efficiency_{k}gpu"] = None
            metrics[f"efficiency_{k}gpu_note"] = (
                f"not measured: this machine has {gpus} GPU(s); no multi-GPU device kind was "
                f"lent to this session")
    target = "gpu" if args.device.startswith("cuda") else "cpu"
    raw = {"plain_1": plain, "dp_1": dp1, "dp_multi": {str(k): v for k, v in multi.items()},
           "sync": sync, "args": vars(args)}
    if target == "cpu":
        metrics = {"cpu_smoke": metrics}
    path = write_result("multigpu_scaling", metrics=metrics, raw={target: raw},
                        device=device_name(args.device))
    print(json.dumps(metrics, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
