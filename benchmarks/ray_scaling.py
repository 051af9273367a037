"""Benchmark `ray_scaling`: evaluation throughput of the Ray pool with 1 and 2 workers.

The quickstart study's space and supernet (random weights: evaluation costs the same as with
trained ones) score ``--archs`` random subnets on the digits validation split (270 images),
four archs per task. Per repeat, interleaved so every variant meets the same machine load:
the in-process evaluator with 1 torch thread and with 2 (both cores), a warm pool of 1
actor and a warm pool of 2 actors (1 CPU, 1 thread each); medians over ``--repeats``.

Metrics: ``efficiency_2_workers`` = throughput(2 workers) / (2 x throughput(1 worker));
``vs_in_process`` = throughput(2 workers) / throughput(in process, 2 threads);
``overhead_ms_per_arch`` = time per arch of the 1-actor pool minus in process (1 thread);
and what limits the efficiency, as the product of three measured factors:
``busy_2_workers`` (share of the wall time the two actors spent inside a batch: the rest is
Ray and driver overhead), ``cpu_share_ratio`` (CPU time per wall second an actor got with 2
workers / with 1: below 1 the actors waited for a core, i.e. the machine, not Ray, was the
limit) and ``cpu_work_ratio`` (CPU seconds per arch with 1 worker / with 2);
``efficiency_at_equal_cpu_share`` is the efficiency those factors give if each of the two
actors got the CPU share the single one got (what a machine with two free cores shows).
On Linux with ``sched_autogroup`` every process of one session (the driver, Ray's daemons
and its workers alike) shares one fair-share slot: on a machine oversubscribed by other
sessions, a second worker adds little CPU to the session, which ``cpu_share_ratio`` shows.

    python benchmarks/ray_scaling.py --archs 48 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_io import device_name, write_result  # noqa: E402

from nas.distributed import EvaluationPool, ray_session  # noqa: E402
from nas.evaluation import InProcessEvaluator  # noqa: E402
from nas.study import load_study  # noqa: E402
from nas.supernet import Supernet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def autogroup() -> bool | None:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def timed(evaluate, archs) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    results = evaluate(archs)
    return time.perf_counter() - t0, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--archs-per-task", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    study = load_study(REPO / "studies" / "quickstart.py")
    space, data = study.build_space(), study.load_data()
    torch.manual_seed(0)
    net = Supernet(space).eval()
    rng = np.random.default_rng(0)
    archs = list({a.key(): a for a in (space.sample(rng) for _ in range(args.archs))}.values())
    n = len(archs)
    x, y = data.val.x, data.val.y
    load_before = os.getloadavg()

    # 3 logical CPUs so both warm pools (1 + 2 actors of 1 CPU) exist at once; only one runs
    # at a time, so at most 2 processes compute, on the 2 physical cores
    with ray_session(num_cpus=3):
        t0 = time.perf_counter()
        one = EvaluationPool(supernet=net, x=x, y=y, workers=1, cpus_per_worker=1, threads=1,
                             archs_per_task=args.archs_per_task)
        startup_1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        two = EvaluationPool(supernet=net, x=x, y=y, workers=2, cpus_per_worker=1, threads=1,
                             archs_per_task=args.archs_per_task)
        startup_2 = time.perf_counter() - t0
        in_1 = InProcessEvaluator(supernet=net, x=x, y=y, threads=1, archs_per_batch=4)
        in_2 = InProcessEvaluator(supernet=net, x=x, y=y, threads=2, archs_per_batch=4)
        variants = {"in_process_1_thread": in_1, "in_process_2_threads": in_2,
                    "pool_1_worker": one, "pool_2_workers": two}
        reports: dict[str, list] = {k: [] for k in variants}
        for name, evaluate in variants.items():
            evaluate(archs[:4])  # warm-up: first-call costs out of the timings
            evaluate.on_batch = reports[name].append
        seconds: dict[str, list[float]] = {k: [] for k in variants}
        busy: dict[str, list[float]] = {k: [] for k in variants}
        loads, reference = [], None
        for r in range(args.repeats):
            for name, evaluate in variants.items():
                first = len(reports[name])
                dt, results = timed(evaluate, archs)
                seconds[name].append(dt)
                busy[name].append(sum(b.seconds for b in reports[name][first:]) / dt)
                if name != "in_process_2_threads":  # 2 threads may round differently
                    reference = reference or results
                    assert results == reference, f"{name} differs from the in-process results"
            loads.append(os.getloadavg()[0])
            print(f"repeat {r + 1}/{args.repeats} (load {loads[-1]:.1f}): " + ", ".join(
                f"{k} {n / v[-1]:.1f} archs/s" for k, v in seconds.items()), flush=True)
        one.close()
        two.close()
    load_after = os.getloadavg()

    throughput = {k: n / statistics.median(v) for k, v in seconds.items()}

    def cpu_share(name: str) -> float:  # CPU seconds per wall second inside batches
        return (sum(b.cpu_seconds for b in reports[name])
                / sum(b.seconds for b in reports[name]))

    def cpu_per_arch(name: str) -> float:
        return (sum(b.cpu_seconds for b in reports[name])
                / sum(len(b.arch_keys) for b in reports[name]))

    busy_2 = statistics.median(busy["pool_2_workers"]) / 2
    metrics = {
        "throughput_archs_per_s": throughput,
        "efficiency_2_workers": throughput["pool_2_workers"] / (2 * throughput["pool_1_worker"]),
        "vs_in_process": throughput["pool_2_workers"] / throughput["in_process_2_threads"],
        "vs_in_process_1_thread": (throughput["pool_2_workers"]
                                   / throughput["in_process_1_thread"]),
        "overhead_ms_per_arch": 1e3 * (1 / throughput["pool_1_worker"]
                                       - 1 / throughput["in_process_1_thread"]),
        "busy_1_worker": statistics.median(busy["pool_1_worker"]),
        "busy_2_workers": busy_2,
        "cpu_share": {k: cpu_share(k) for k in variants},
        "cpu_share_ratio": cpu_share("pool_2_workers") / cpu_share("pool_1_worker"),
        "cpu_ms_per_arch": {k: 1e3 * cpu_per_arch(k) for k in variants},
        "cpu_work_ratio": cpu_per_arch("pool_1_worker") / cpu_per_arch("pool_2_workers"),
        "efficiency_at_equal_cpu_share": (
            busy_2 / statistics.median(busy["pool_1_worker"])
            * cpu_per_arch("pool_1_worker") / cpu_per_arch("pool_2_workers")),
        "sched_autogroup": autogroup(),
        "startup_s": {"pool_1_worker": startup_1, "pool_2_workers": startup_2},
        "archs": n, "repeats": args.repeats, "archs_per_task": args.archs_per_task,
        "load_average": {"before": load_before[0], "median": statistics.median(loads),
                         "after": load_after[0]},
    }
    raw = {"seconds": seconds, "busy": busy, "load_per_repeat": loads,
           "batches": {k: [[b.seconds, b.cpu_seconds, len(b.arch_keys)] for b in v]
                       for k, v in reports.items()}}
    path = write_result("ray_scaling", metrics=metrics, raw=raw, device=device_name("cpu"))
    for key in ("throughput_archs_per_s", "efficiency_2_workers", "vs_in_process",
                "vs_in_process_1_thread", "overhead_ms_per_arch", "busy_2_workers",
                "cpu_share", "cpu_share_ratio", "cpu_ms_per_arch", "cpu_work_ratio",
                "efficiency_at_equal_cpu_share",
                "startup_s", "load_average"):
        print(f"{key}: {metrics[key]}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
