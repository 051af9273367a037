"""Benchmark `lm_gpu`: `hybrid_lm_tiny` on tiny-shakespeare for a fixed wall-clock budget.

The schedule horizon is set from the measured speed of a short probe run (so warm-up +
cosine spans the budget), then the study's supernet trains from scratch until the budget
is spent. Reported: validation loss (nats/char) of the largest subnet and of 10 fixed
random subnets on the whole validation split.

    python benchmarks/lm_gpu.py --device cuda --budget-s 540
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, write_result  # noqa: E402

from nas.evaluation import evaluate_many  # noqa: E402
from nas.study import load_study  # noqa: E402
from nas.training import train_supernet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--probe-steps", type=int, default=40)
    parser.add_argument("--work", default="runs/lm_gpu")
    args = parser.parse_args()
    work = ROOT / args.work
    shutil.rmtree(work, ignore_errors=True)
    study = load_study(ROOT / "studies/shakespeare_lm.py")
    space = study.build_space()
    data = study.load_data()
    train, val = (data.train.x, data.train.y), (data.val.x, data.val.y)
    probe = study.training.with_overrides(device=args.device, steps=10_000, eval_every=10_000)
    t0 = time.perf_counter()
    train_supernet(space=space, train=train, val=val, config=probe, out_dir=work / "probe",
                   stop_at=args.probe_steps, progress=False)
    lines = (work / "probe" / "metrics.jsonl").read_text().splitlines()
    log = [json.loads(line) for line in lines if '"train"' in line]
    step_s = statistics.median(len(r["archs"]) * probe.batch_size / r["samples_per_s"]
                               for r in log[5:])
    horizon = max(100, int(args.budget_s / (step_s * 1.03)))
    config = study.training.with_overrides(device=args.device, steps=horizon,
                                           eval_every=max(1, horizon // 5))
    print(f"probe: {step_s * 1e3:.1f} ms/step -> horizon {horizon} steps")
    t1 = time.perf_counter()
    result = train_supernet(space=space, train=train, val=val, config=config,
                            out_dir=work / "run", progress=False)
    train_s = time.perf_counter() - t1
    rng = np.random.default_rng(2024)
    randoms = [space.sample(rng) for _ in range(10)]
    scores = evaluate_many(result.supernet, [space.largest()] + randoms, *val, batch_size=256,
                           device=args.device)
    metrics = {
        "largest_val_loss": scores[0].loss,
        "random_val_loss_mean": statistics.mean(r.loss for r in scores[1:]),
        "random_val_loss_min": min(r.loss for r in scores[1:]),
        "random_val_loss_max": max(r.loss for r in scores[1:]),
        "steps": result.step, "train_seconds": train_s, "budget_seconds": args.budget_s,
        "probe_seconds": t1 - t0, "reference_6x384_transformer": 1.47,
    }
    raw = {"largest": {"key": space.largest().key(), "arch": space.largest().to_json(),
                       "val_loss": scores[0].loss},
           "random": [{"key": a.key(), "arch": a.to_json(), "flops": space.flops(a),
                       "val_loss": r.loss} for a, r in zip(randoms, scores[1:])]}
    path = write_result("lm_gpu", metrics=metrics, raw=raw, device=device_name(args.device))
    print(json.dumps(metrics, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
