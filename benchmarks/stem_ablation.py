"""Benchmark `stem_ablation`: which part of the 2026-12 image recipe breaks weight sharing.

Trains the MNIST study's supernet for ``--steps`` (a whole warm-up + cosine schedule) once per
variant, each variant a separate process sharing one GPU, then scores the largest, the
smallest and 20 fixed random subnets (inherited weights) on the 5,000 validation images, and
the first six of them on 5,000 training images (under- vs over-fitting):

- ``base``: the study as it is (stems patch / conv_s1 / conv_s2, translation, label
  smoothing, stochastic depth);
- ``noreg``: no augmentation, no label smoothing, no stochastic depth;
- ``nodp``: no stochastic depth;
- ``dw05``: distillation mixed half-and-half with the labels;
- ``patch``: the patch stem only; ``convs2``: the stride-2 conv stem only;
- narrower grids (the suspected fix; resolutions 24 / 28, so the stem's token grid spans
  6x6-14x14 instead of 4x4-28x28): ``hi_mix`` (patch and stride-2 conv stems), ``hi_s2``
  (stride-2 conv stem only), ``hi_s2_nossm`` (the same without the SSM mixer), ``s2_28``
  (stride-2 conv stem at the native 28 only).

    python benchmarks/stem_ablation.py --device cuda --steps 600
"""

from __future__ import annotations

import argparse
import dataclasses
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

VARIANTS = ("base", "noreg", "patch", "convs2", "nodp", "dw05", "hi_mix", "hi_s2", "hi_s2_nossm",
            "s2_28")
PANEL_SEED = 7


def run_variant(variant: str, steps: int, device: str, work: Path,
                study_file: str = "studies/mnist_hybrid.py") -> dict:
    import torch

    from nas.evaluation import evaluate_many
    from nas.study import load_study
    from nas.training import train_supernet

    if device == "cpu":
        torch.set_num_threads(1)  # the variants run side by side, one core each
    study = load_study(ROOT / study_file)
    overrides = dict(study.space_overrides)
    train = dict(steps=steps, device=device, eval_every=steps, checkpoint_every=steps,
                 warmup_steps=steps // 20)
    if variant == "patch":
        overrides["stems"] = ("patch",)
    elif variant == "convs2":
        overrides["stems"] = ("conv_s2",)
    elif variant == "hi_mix":
        overrides.update(stems=("patch", "conv_s2"), resolutions=(24, 28))
    elif variant == "hi_s2":
        overrides.update(stems=("conv_s2",), resolutions=(24, 28))
    elif variant == "hi_s2_nossm":
        overrides.update(stems=("conv_s2",), resolutions=(24, 28),
                         mixers=("attention", "glu_mlp", "conv"))
    elif variant == "s2_28":
        overrides.update(stems=("conv_s2",), resolutions=(28,))
    elif variant == "noreg":
        train.update(drop_path=0.0, label_smoothing=0.0, augment="none")
    elif variant == "nodp":
        train.update(drop_path=0.0)
    elif variant == "dw05":
        train.update(distill_weight=0.5)
    elif variant != "base":
        raise ValueError(f"variant: {variant!r} is not one of {VARIANTS}")
    study = dataclasses.replace(study, space_overrides=overrides)
    space, data = study.build_space(), study.load_data()
    config = study.training.with_overrides(**train)
    t0 = time.time()
    result = train_supernet(space=space, train=(data.train.x, data.train.y),
                            val=(data.val.x, data.val.y), config=config,
                            out_dir=work / variant, progress=False)
    seconds = time.time() - t0
    rng = np.random.default_rng(PANEL_SEED)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(20)]
    val = [100 * r.accuracy for r in evaluate_many(result.supernet, archs, data.val.x,
                                                   data.val.y, batch_size=1000, device=device)]
    train_acc = [100 * r.accuracy for r in evaluate_many(
        result.supernet, archs[:6], data.train.x[:5000], data.train.y[:5000], batch_size=1000,
        device=device)]
    val_by_stem = {stem: statistics.mean(v for a, v in zip(archs[2:], val[2:]) if a.stem == stem)
                   for stem in sorted({str(a.stem) for a in archs[2:]})}
    return {"variant": variant, "steps": steps, "train_seconds": seconds, "largest": val[0],
            "smallest": val[1], "random_mean": statistics.mean(val[2:]),
            "random_min": min(val[2:]), "random": val[2:], "train_acc_first6": train_acc,
            "stems": list(overrides.get("stems", ())), "random_stems": [a.stem for a in archs[2:]],
            "random_mean_by_stem": val_by_stem, "study": study.name}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--study", default="studies/mnist_hybrid.py",
                   help="an image study with a stem choice (default the MNIST one)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "stem_ablation")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps < 20:
        p.error("--steps must be >= 20")
    if args.job:
        out = run_variant(args.job, args.steps, args.device, args.work, args.study)
        (args.work / f"{args.job}.json").write_text(json.dumps(out))
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        p.error(f"--variants: {bad or 'empty'} not in {VARIANTS}")
    args.work.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, __file__, "--device", args.device, "--steps",
                               str(args.steps), "--work", str(args.work), "--study",
                               args.study, "--job", v])
             for v in variants]
    failed = [v for v, proc in zip(variants, procs) if proc.wait() != 0]
    if failed:
        raise SystemExit(f"variants failed: {failed}")
    runs = {v: json.loads((args.work / f"{v}.json").read_text()) for v in variants}
    metrics = {v: {k: r[k] for k in ("largest", "smallest", "random_mean", "random_min",
                                     "train_seconds")} for v, r in runs.items()}
    name = f"{Path(args.study).stem}_{args.steps}steps"  # runs of other lengths stay apart
    metrics = {name: metrics}
    path = write_result("stem_ablation", metrics=metrics, raw={name: {"runs": runs}},
                        device=device_name(args.device))
    for v, m in metrics[name].items():
        print(f"{v:8s} largest {m['largest']:.1f} smallest {m['smallest']:.1f} "
              f"random mean {m['random_mean']:.2f} min {m['random_min']:.1f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
