"""Benchmark `sampler_ablation` (and the supernets + labels the predictor benchmark needs).

Trains the MNIST study's supernet (its recipe: augmentation, label smoothing, stochastic
depth) with each sampler under the same budget (same steps, batch and number of subnets per
step: uniform samples 4 random subnets, the sandwich samplers 2 + largest + smallest), 3
seeds for uniform and complexity_aware, each over its whole cosine schedule (``--steps`` is
the horizon; a run that a ``--time-limit`` stops early is flagged ``completed: false``), then
scores
the largest, the smallest and 50 fixed random subnets on the 10,000 test images. The runs
are independent processes sharing one GPU. With ``--label N`` the complexity_aware seed-0
MNIST supernet and a CIFAR-10-subset supernet also label N random subnets (inherited
weights, validation halves A/B) for `benchmarks/predictor.py`.

    python benchmarks/sampler_ablation.py --device cuda --parallel 10 --label 1000
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

from nas.evaluation import evaluate_many, evaluate_split_halves  # noqa: E402
from nas.study import load_study  # noqa: E402
from nas.training import train_supernet  # noqa: E402

JOBS = [("uniform", s) for s in (0, 1, 2)] + [("complexity_aware", s) for s in (0, 1, 2)] + [
    ("sandwich", 0), ("mixer_balanced", 0)]
PANEL_SEED = 2024
LABEL_SEED = 4242


def run_job(*, study_file: str, sampler: str, seed: int, device: str, steps: int | None,
            out: Path, label: int, time_limit: float | None) -> dict:
    study = load_study(ROOT / study_file)
    space = study.build_space()
    data = study.load_data()
    num_random = 4 if sampler == "uniform" else 2
    config = study.training.with_overrides(sampler=sampler, seed=seed, device=device,
                                           num_random=num_random, steps=steps)
    t0 = time.time()
    result = train_supernet(space=space, train=(data.train.x, data.train.y),
                            val=(data.val.x, data.val.y), config=config,
                            out_dir=out / f"run-{config.steps}", resume=True, progress=False,
                            time_limit_s=time_limit)
    train_s = time.time() - t0
    net = result.supernet
    rng = np.random.default_rng(PANEL_SEED)
    randoms = [space.sample(rng) for _ in range(50)]
    archs = [space.largest(), space.smallest()] + randoms
    scores = evaluate_many(net, archs, data.test.x, data.test.y, batch_size=1000, device=device)
    acc = [100 * r.accuracy for r in scores]
    summary = {"sampler": sampler, "seed": seed, "study": study.name, "steps": result.step,
               "horizon": config.steps, "completed": result.step == config.steps,
               "train_seconds": train_s, "largest": acc[0], "smallest": acc[1],
               "random_mean": statistics.mean(acc[2:]), "random_min": min(acc[2:]),
               "random": dict(zip([a.key() for a in randoms], acc[2:])),
               "largest_key": archs[0].key(), "smallest_key": archs[1].key()}
    if label:
        rng = np.random.default_rng(LABEL_SEED)
        to_label = [space.sample(rng) for _ in range(label)]
        rows = evaluate_split_halves(net, to_label, data.val.x, data.val.y, batch_size=1000,
                                     device=device)
        with (out / "labels.jsonl").open("w") as f:
            for arch, r in zip(to_label, rows):
                f.write(json.dumps({
                    "arch": arch.to_json(), "space": study.space,
                    "overrides": study.space_overrides, "study": study.name,
                    "val_loss": r.full.loss, "val_acc": r.full.accuracy,
                    "val_loss_a": r.half_a.loss, "val_loss_b": r.half_b.loss,
                    "val_acc_a": r.half_a.accuracy, "val_acc_b": r.half_b.accuracy,
                    "flops": space.flops(arch), "params": space.params(arch)}) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, default=list))
    return summary


def figure(path: Path, out: Path) -> Path:
    """Draw `sampler_ablation.json` as one PNG: per sampler and seed, the test accuracy of
    the 50 fixed random subnets (dots), the largest (triangle) and the smallest (square),
    with the issue's goal lines. Why: the spread of the random subnets, not just their
    mean, is what the search draws from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(path.read_text())
    runs = sorted(data["raw"]["runs"], key=lambda r: (r["sampler"], r["seed"]))
    samplers = list(dict.fromkeys(r["sampler"] for r in runs))
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    rng = np.random.default_rng(0)  # jitter only
    lows = []
    for i, sampler in enumerate(samplers):
        mine = [r for r in runs if r["sampler"] == sampler]
        for j, r in enumerate(mine):
            x = i + (j - (len(mine) - 1) / 2) * 0.25
            accs = list(r["random"].values())
            lows.append(min(accs))
            ax.plot(x + rng.uniform(-0.06, 0.06, len(accs)), accs, ".", ms=4, alpha=0.5,
                    color="tab:blue", label="50 random subnets" if i == j == 0 else None)
            ax.plot(x, r["largest"], "^", color="tab:green", ms=8,
                    label="largest" if i == j == 0 else None)
            ax.plot(x, r["smallest"], "s", color="tab:red", ms=7,
                    label="smallest" if i == j == 0 else None)
    ax.axhline(99.4, ls="--", lw=1, color="tab:green", label="goal: largest 99.4 %")
    ax.axhline(99.0, ls=":", lw=1, color="tab:red", label="goal: smallest, random mean 99.0 %")
    ax.set_xticks(range(len(samplers)),
                  [f"{s}\n({sum(r['sampler'] == s for r in runs)} seeds)" for s in samplers])
    ax.set_ylim(max(min(lows) - 0.5, 0), 100)
    steps = sorted({r["steps"] for r in runs})
    ax.set_ylabel("test accuracy, inherited weights (%)")
    ax.set_title(f"MNIST supernet by sampler, {'/'.join(map(str, steps))} steps "
                 f"({data['date']})", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=7)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    target = out / "sampler_ablation.png"
    fig.savefig(target)
    plt.close(fig)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=None, help="override the study's steps")
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--label", type=int, default=0)
    parser.add_argument("--work", default="runs/sampler_ablation")
    parser.add_argument("--job", nargs=3, metavar=("STUDY", "SAMPLER", "SEED"))
    parser.add_argument("--job-label", type=int, default=0)
    parser.add_argument("--samplers", default=None,
                        help="comma-separated samplers to run (default: every one of JOBS)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds of training per run (the run stops at the step reached)")
    parser.add_argument("--plot", type=Path, default=None, metavar="JSON",
                        help="only draw docs/sampler_ablation.png from this result JSON")
    args = parser.parse_args()
    if args.plot:
        if not args.plot.is_file():
            parser.error(f"--plot: no such file {args.plot}")
        print(f"wrote {figure(args.plot, ROOT / 'docs')}")
        return
    work = ROOT / args.work
    if args.job:
        study_file, sampler, seed = args.job
        out = work / f"{Path(study_file).stem}-{sampler}-{seed}"
        out.mkdir(parents=True, exist_ok=True)
        run_job(study_file=study_file, sampler=sampler, seed=int(seed), device=args.device,
                steps=args.steps, out=out, label=args.job_label, time_limit=args.time_limit)
        return
    wanted = args.samplers.split(",") if args.samplers else [s for s, _ in JOBS]
    jobs = [("studies/mnist_hybrid.py", s, seed,
             args.label if (s, seed) == ("complexity_aware", 0) else 0) for s, seed in JOBS
            if s in wanted]
    if args.label:
        jobs.append(("studies/cifar10_subset.py", "complexity_aware", 0, args.label))
    procs = []
    for study_file, sampler, seed, label in jobs:
        while sum(p.poll() is None for p, _ in procs) >= args.parallel:
            time.sleep(1)
        cmd = [sys.executable, __file__, "--device", args.device, "--work", args.work,
               "--job", study_file, sampler, str(seed), "--job-label", str(label)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        if args.time_limit:
            cmd += ["--time-limit", str(args.time_limit)]
        work.mkdir(parents=True, exist_ok=True)
        log = open(work / f"{Path(study_file).stem}-{sampler}-{seed}.log", "w")  # noqa: SIM115
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), cmd))
    failed = [cmd for p, cmd in procs if p.wait() != 0]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed: {failed}")
    summaries = [json.loads(p.read_text())
                 for p in sorted(work.glob("mnist_hybrid-*/summary.json"))]
    metrics: dict = {}
    for sampler in dict.fromkeys(s for s, _ in JOBS if s in wanted):
        runs = [s for s in summaries if s["sampler"] == sampler]
        entry = {}
        for key in ("largest", "smallest", "random_mean", "random_min"):
            values = [r[key] for r in runs]
            entry[key] = statistics.mean(values)
            if len(values) > 1:
                entry[f"{key}_std"] = statistics.stdev(values)
        entry["seeds"] = len(runs)
        entry["steps"] = [r["steps"] for r in runs]
        entry["completed"] = all(r.get("completed", False) for r in runs)
        entry["train_seconds"] = statistics.mean(r["train_seconds"] for r in runs)
        metrics[sampler] = entry
    best = max(metrics, key=lambda s: metrics[s]["random_mean"])
    metrics["winner_random_mean"] = best
    path = write_result("sampler_ablation", metrics=metrics, raw={"runs": summaries},
                        device=device_name(args.device))
    print(json.dumps(metrics, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
