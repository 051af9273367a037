"""Benchmark `recipe_variants`: which supernet recipe gives the best inherited weights (#15).

Trains the MNIST study's supernet once per recipe variant (the study's recipe with a few
`TrainConfig` overrides: distillation weight, sandwich bottom, largest-first phase, learning
rate, subnets per step), all over the same cosine horizon (``--steps``), as independent
processes sharing one GPU, and scores a fixed panel on the validation split (the test split
is left to `vs_baselines`): the largest, the smallest, the three lowest-latency members of
the committed CPU front (`benchmarks/results/vs_baselines_cpu.json`; all glu_mlp nets, the
corner the plain sandwich does not train), two fixed random archs, and the mean / min of 30
fixed random archs. The same panel archs are also trained stand-alone (`nas.audit`'s recipe
over the same steps), so each variant's gap to stand-alone training is read off one run.

``metrics``: per variant its panel accuracies (``largest``, ``smallest``, ``fast0..2``,
``rand0..1``, ``random_mean``, ``random_min``, in [0, 1]), ``steps``, ``completed`` and
``mean_gap_vs_standalone`` (points, mean over the panel archs trained stand-alone; negative
when inherited is worse); ``standalone``: the panel's stand-alone accuracies; ``best``: the
variant with the highest ``random_mean``. Needs torch only (runs on a bare GPU box).

    python benchmarks/recipe_variants.py --device cuda --steps 1500
    python benchmarks/recipe_variants.py --device cuda --variants base,pm_dw05 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, write_result  # noqa: E402

from nas.audit import StandaloneRecipe, train_standalone  # noqa: E402
from nas.evaluation import evaluate_many  # noqa: E402
from nas.study import load_study  # noqa: E402
from nas.training import train_supernet  # noqa: E402
from search_spaces import Arch, SearchSpace  # noqa: E402

STUDY = ROOT / "studies" / "mnist_hybrid.py"
#: overrides of the study's recipe; "base" is the recipe before this benchmark's first run
#: (2026-12-07): the FLOPs-smallest bottom and students taught by the largest alone
BASE = {"smallest": "flops", "distill_weight": 1.0}
VARIANTS: dict[str, dict] = {
    "base": {},
    "dw05": {"distill_weight": 0.5},
    "lf02": {"largest_first": 0.2},
    "lr4": {"lr": 4e-3},
    "nr4": {"num_random": 4},
    "pm": {"smallest": "per_mixer"},
    "pm_dw05": {"smallest": "per_mixer", "distill_weight": 0.5},
    "pm_dw025": {"smallest": "per_mixer", "distill_weight": 0.25},
    "pm_dw05_lf02": {"smallest": "per_mixer", "distill_weight": 0.5, "largest_first": 0.2},
}
RANDOM_SEED, PANEL_RANDOM_SEED, RANDOMS = 2024, 7, 30


def panel(space: SearchSpace) -> dict[str, Arch]:
    """The fixed archs every variant is scored on (and that are trained stand-alone)."""
    archs = {"largest": space.largest(), "smallest": space.smallest()}
    front = ROOT / "benchmarks" / "results" / "vs_baselines_cpu.json"
    if front.exists():
        members = json.loads(front.read_text())["raw"]["mnist"]["members"]
        fast = sorted(members.values(), key=lambda m: m["latency_ms"]["cpu"])[:3]
        for i, m in enumerate(fast):
            archs[f"fast{i}"] = Arch.from_json(m["arch"])
    rng = np.random.default_rng(PANEL_RANDOM_SEED)
    for i in range(2):
        archs[f"rand{i}"] = space.sample(rng)
    return archs


def run_variant(name: str, *, steps: int, device: str, work: Path,
                time_limit: float | None) -> dict:
    study = load_study(STUDY)
    space, data = study.build_space(), study.load_data()
    overrides = {**BASE, **VARIANTS[name]}
    config = study.training.with_overrides(steps=steps, device=device, **overrides)
    t0 = time.time()
    result = train_supernet(space=space, train=(data.train.x, data.train.y),
                            val=(data.val.x, data.val.y), config=config,
                            out_dir=work / f"run-{name}-{steps}", resume=True, progress=False,
                            time_limit_s=time_limit)
    seconds = time.time() - t0
    archs = panel(space)
    rng = np.random.default_rng(RANDOM_SEED)
    randoms = [space.sample(rng) for _ in range(RANDOMS)]
    scores = evaluate_many(result.supernet, [*archs.values(), *randoms], data.val.x, data.val.y,
                           batch_size=1000, device=device)
    acc = [r.accuracy for r in scores]
    row = {"variant": name, "overrides": overrides, "steps": result.step, "horizon": steps,
           "completed": result.step == steps, "train_seconds": seconds,
           **dict(zip(archs, acc)), "random_mean": statistics.mean(acc[len(archs):]),
           "random_min": min(acc[len(archs):])}
    return row


def run_alone(names: list[str], *, steps: int, device: str) -> dict:
    study = load_study(STUDY)
    space, data = study.build_space(), study.load_data()
    archs = panel(space)
    recipe = StandaloneRecipe.from_training(study.training.with_overrides(steps=steps,
                                                                          device=device))
    out = {}
    for name in names:
        r = train_standalone(space=space, arch=archs[name], seed=0, recipe=recipe,
                             train=(data.train.x, data.train.y), test=(data.val.x, data.val.y),
                             device=device)
        out[name] = {"label": archs[name].label(), "val_acc": r.test_accuracy,
                     "seconds": r.seconds}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=1500, help="every variant's schedule horizon")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--alone-procs", type=int, default=3,
                   help="processes sharing the stand-alone panel runs (0: none)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds per variant (a stopped run is flagged completed: false)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "recipe_variants")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    p.add_argument("--alone", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    wanted = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(wanted) - set(VARIANTS))
    if unknown or not wanted:
        raise SystemExit(f"--variants: unknown {unknown}, expected some of {sorted(VARIANTS)}")
    if args.steps < 1 or args.alone_procs < 0:
        raise SystemExit("--steps must be >= 1 and --alone-procs >= 0")
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    if args.job:
        row = run_variant(args.job, steps=args.steps, device=args.device, work=work,
                          time_limit=args.time_limit)
        (work / f"variant-{args.job}.json").write_text(json.dumps(row, indent=1))
        return
    if args.alone:
        names = args.alone.split(",")
        rows = run_alone(names, steps=args.steps, device=args.device)
        (work / f"alone-{'-'.join(names)}.json").write_text(json.dumps(rows, indent=1))
        return
    common = [sys.executable, __file__, "--device", args.device, "--steps", str(args.steps),
              "--work", str(work)]
    if args.time_limit:
        common += ["--time-limit", str(args.time_limit)]
    cmds = {f"variant-{v}": [*common, "--job", v] for v in wanted}
    panel_archs = panel(load_study(STUDY).build_space())
    names = list(panel_archs)
    if args.alone_procs:
        groups = np.array_split(np.array(names), min(args.alone_procs, len(names)))
        for g in groups:
            cmds[f"alone-{'-'.join(g)}"] = [*common, "--alone", ",".join(g)]
    procs = {}
    for key, cmd in cmds.items():
        if (work / f"{key}.json").exists():
            continue  # finished in an earlier, interrupted run
        log = open(work / f"{key}.log", "w")  # noqa: SIM115
        procs[key] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    print(f"{len(procs)} processes ({len(cmds) - len(procs)} already done)", flush=True)
    failed = [k for k, proc in procs.items() if proc.wait() != 0]
    if failed:
        raise SystemExit(f"failed: {failed} (logs in {work})")
    standalone: dict = {}
    for path in work.glob("alone-*.json"):
        standalone.update(json.loads(path.read_text()))
    metrics: dict = {"standalone": standalone}
    for v in wanted:
        row = json.loads((work / f"variant-{v}.json").read_text())
        gaps = [100 * (row[k] - s["val_acc"]) for k, s in standalone.items() if k in row]
        row["mean_gap_vs_standalone"] = statistics.mean(gaps) if gaps else None
        metrics[v] = row
    metrics["best"] = max(wanted, key=lambda v: metrics[v]["random_mean"])
    path = write_result("recipe_variants", metrics=metrics,
                        raw={"panel": {k: a.to_json() for k, a in panel_archs.items()}},
                        device=device_name(args.device))
    print(json.dumps({v: {k: metrics[v][k] for k in ("random_mean", "mean_gap_vs_standalone")}
                      for v in wanted}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
