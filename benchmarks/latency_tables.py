"""Benchmark `latency_tables`: latency-table predictions against measured end-to-end runs.

For `hybrid_vit_tiny` (batch 1 and 64) and `hybrid_lm_tiny` (batch 1 and 16), per target:

1. build the full latency table of the space (timed: ``table_build_s``);
2. sample 300 distinct random archs and at most 10 other archs for calibration;
3. pass A: measure the 10 + 300 exported models (`StaticModel(space.layers(arch))`, random
   weights) end to end, interleaved; fit the calibration on the 10;
4. pass B: measure the same 300 again in the same run (the repeat: the ceiling of any
   predictor);
5. predict the 300 with the fast arch scorer (naive sum and calibrated), compare to pass A:
   MAPE, share within +-10 %, Kendall tau; repeat tau = Kendall(pass A, pass B).

Targets: ``cpu`` (eager, this machine), ``gpu_eager`` and ``gpu_cuda_graph`` (a CUDA box).
Results merge into ``benchmarks/results/latency_tables.json``, so the CPU part and the GPU
part (run later on the GPU box, torch only) land in one file.

    python benchmarks/latency_tables.py --targets cpu
    python benchmarks/latency_tables.py --targets gpu_eager,gpu_cuda_graph
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_io import device_name, write_result  # noqa: E402

from kernels.latency_table import latency_metrics  # noqa: E402
from nas.latency.profile import (  # noqa: E402
    MeasureConfig,
    build_table,
    default_timings,
    distinct_archs,
    measure_archs,
)
from nas.latency.scorer import ArchLatencyScorer, reference_latency  # noqa: E402
from search_spaces import get_space  # noqa: E402

TARGETS = {"cpu": ("cpu", "eager"), "gpu_eager": ("cuda", "eager"),
           "gpu_cuda_graph": ("cuda", "cuda_graph")}
SPACES = {"hybrid_vit_tiny": (1, 64), "hybrid_lm_tiny": (1, 16)}


def profile_config(device: str, mode: str, batch: int, threads: int | None,
                   fast: bool) -> MeasureConfig:
    """The device's default timings (`nas.latency.profile.default_timings`); ``fast`` lowers the
    repeats for smoke runs."""
    layer, model = default_timings(device, mode)
    if fast:
        layer, model = replace(layer, repeats=9), replace(model, repeats=5)
    return MeasureConfig(device=device, mode=mode, batch_size=batch,
                         threads=threads if device == "cpu" else None, layer_timing=layer,
                         model_timing=model)


def scorer_speed(space, table, n: int = 20000) -> float:
    """Archs per second of the fast scorer, fresh random archs (encoding included)."""
    archs = [space.sample(np.random.default_rng(1)) for _ in range(n)]
    scorer = ArchLatencyScorer(space, table)
    t0 = time.perf_counter()
    scorer.predict_many(archs)
    return n / (time.perf_counter() - t0)


def run_case(target: str, space_name: str, batch: int, args) -> tuple[dict, dict]:
    device, mode = TARGETS[target]
    space = get_space(space_name)
    config = profile_config(device, mode, batch, args.threads, args.fast)
    t0 = time.perf_counter()
    table = build_table(space, config=config, show_progress=not args.no_progress)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    val = distinct_archs(space, args.n, rng)
    cal = distinct_archs(space, args.calibrate, rng, exclude={a.key() for a in val})
    tag = f"{target} {space_name} b{batch}"
    show = not args.no_progress
    first = measure_archs(space, cal + val, config=config, show_progress=show,
                          description=f"{tag} pass A")
    cal_ms, val_ms = first[:len(cal)], first[len(cal):]
    repeat_ms = measure_archs(space, val, config=config, show_progress=show,
                              description=f"{tag} pass B")
    table.calibrate([space.layers(a) for a in cal], cal_ms)
    pred = ArchLatencyScorer(space, table).predict_many(val)
    pred_naive = ArchLatencyScorer(space, table, naive=True).predict_many(val)
    for a, p in zip(val[:20], pred[:20]):  # the fast path is the reference path, exactly
        assert p == reference_latency(space, table, a), a.label()
    calibrated = latency_metrics(pred.tolist(), val_ms)
    naive = latency_metrics(pred_naive.tolist(), val_ms)
    repeat = latency_metrics(repeat_ms, val_ms)
    c = table.calibration
    metrics = {
        "calibrated": calibrated, "naive": naive, "repeat_kendall": repeat["kendall"],
        "repeat_within10": repeat["within10"], "repeat_mape": repeat["mape"],
        "table_build_s": build_s, "table_entries": len(table),
        "kendall_goal": min(0.95, repeat["kendall"] - 0.02),
        "calibration": {"scale": c.scale, "per_layer_ms": c.per_layer_ms,
                        "intercept_ms": c.intercept_ms, "n_models": c.n_models},
        "median_measured_ms": float(np.median(val_ms)),
    }
    raw = {"keys": [a.key() for a in val], "predicted_ms": pred.tolist(),
           "predicted_naive_ms": pred_naive.tolist(), "measured_ms": val_ms,
           "repeat_ms": repeat_ms, "calibration_keys": [a.key() for a in cal],
           "calibration_measured_ms": cal_ms, "fingerprint": table.fingerprint.to_dict()}
    print(f"{tag}: table {len(table)} entries in {build_s:.0f} s | calibrated MAPE "
          f"{calibrated['mape']:.3f} within10 {calibrated['within10']:.2f} tau "
          f"{calibrated['kendall']:.3f} | naive MAPE {naive['mape']:.3f} within10 "
          f"{naive['within10']:.2f} tau {naive['kendall']:.3f} | repeat tau "
          f"{repeat['kendall']:.3f}", flush=True)
    if target == "cpu" or args.scorer_speed:
        metrics["scorer_archs_per_s"] = scorer_speed(space, table)
    return metrics, raw


def summarize(target: str, cases: dict[str, dict]) -> dict:
    """Flat metric keys: ``<target>.mape`` etc. = worst case over spaces and batch sizes."""
    out: dict = {}
    for name, key in (("calibrated", target), ("naive", f"{target}_naive")):
        out[f"{key}.mape"] = max(c[name]["mape"] for c in cases.values())
        out[f"{key}.within10"] = min(c[name]["within10"] for c in cases.values())
        out[f"{key}.kendall"] = min(c[name]["kendall"] for c in cases.values())
    out[f"{target}.repeat_kendall"] = min(c["repeat_kendall"] for c in cases.values())
    out[f"{target}.table_build_s_max"] = max(c["table_build_s"] for c in cases.values())
    within_goal = 0.95 if target == "cpu" else 0.90
    out[f"{target}.goal_met"] = all(
        c["calibrated"]["within10"] >= within_goal
        and (target != "cpu" or c["calibrated"]["kendall"] >= c["kendall_goal"])
        for c in cases.values())
    for case, c in cases.items():
        for name, key in (("calibrated", target), ("naive", f"{target}_naive")):
            for m in ("mape", "within10", "kendall"):
                out[f"{key}.{case}.{m}"] = c[name][m]
        for m in ("repeat_kendall", "repeat_within10", "repeat_mape", "table_build_s",
                  "table_entries", "kendall_goal", "calibration", "median_measured_ms",
                  "scorer_archs_per_s"):
            if m in c:
                out[f"{target}.{case}.{m}"] = c[m]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default="cpu",
                        help="comma-separated: cpu, gpu_eager, gpu_cuda_graph")
    parser.add_argument("--n", type=int, default=300, help="validation archs per case")
    parser.add_argument("--calibrate", type=int, default=10, help="calibration archs (<= 10)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (fixed)")
    parser.add_argument("--spaces", default=",".join(SPACES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="fewer CPU repeats (smoke runs)")
    parser.add_argument("--scorer-speed", action="store_true",
                        help="also time the arch scorer on GPU targets")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the JSON")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        parser.error(f"unknown target(s) {bad}; choose from {sorted(TARGETS)}")
    if any(TARGETS[t][0] == "cuda" for t in targets) and not torch.cuda.is_available():
        parser.error("GPU targets need a CUDA device")
    metrics: dict = {}
    raw: dict = {}
    for target in targets:
        device = TARGETS[target][0]
        load_before = os.getloadavg()
        cases: dict[str, dict] = {}
        for space_name in args.spaces.split(","):
            for batch in SPACES[space_name]:
                case = f"{space_name}.b{batch}"
                cases[case], raw_case = run_case(target, space_name, batch, args)
                raw.setdefault(target, {})[case] = raw_case
        metrics.update(summarize(target, cases))
        metrics[f"{target}.device"] = device_name(device) if device == "cuda" else (
            device_name("cpu").rsplit(" (", 1)[0] + f" ({args.threads} threads)")
        metrics[f"{target}.loadavg_before_after"] = [load_before[0], os.getloadavg()[0]]
        metrics[f"{target}.n_archs"] = args.n
    gpu = any(TARGETS[t][0] == "cuda" for t in targets)
    device = device_name("cuda") if gpu else metrics["cpu.device"]
    for key in sorted(k for k in metrics if k.count(".") == 1):
        print(f"{key}: {metrics[key]}")
    if not args.dry_run:
        path = write_result("latency_tables", metrics=metrics, raw=raw, device=device)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
