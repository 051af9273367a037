"""Benchmark `stem_ablation`: which part of a study's space or recipe breaks weight sharing.

Trains a study's supernet for ``--steps`` (a whole warm-up + cosine schedule) once per
variant, each variant a separate process sharing one GPU, then scores the largest, the
smallest and 20 fixed random subnets (inherited weights) on the validation split: accuracy
(%) for image studies, loss (nats / token) for sequence studies; for images also the first
six archs on 5,000 training images (under- vs over-fitting). Named for its first use (the
image stems); the sequence variants ask the same question of the LM space.

Image studies (default `studies/mnist_hybrid.py`):

- ``base``: the study as it is;
- ``noreg``: no augmentation, no label smoothing, no stochastic depth;
- ``nodp``: no stochastic depth;
- ``dw05``: distillation mixed half-and-half with the labels;
- ``patch``: the patch stem only; ``convs2``: the stride-2 conv stem only;
- narrower grids (resolutions 24 / 28, so the stem's token grid spans 6x6-14x14 instead of
  4x4-28x28 on MNIST): ``hi_mix`` (patch and stride-2 conv stems), ``hi_s2`` (stride-2 conv
  stem only), ``hi_s2_nossm`` (the same without the SSM mixer), ``s2_28`` (stride-2 conv stem
  at the native 28 only);
- ``convs2_nossm``: the stride-2 conv stem, no SSM mixer, the study's resolutions;
- ``largest_first``: the first 40 % of the schedule trains the largest subnet alone
  (`TrainConfig.largest_first`), then the sampler's subnets join.

Sequence studies (e.g. `studies/shakespeare_lm.py`; ``base`` as above):

- ``lm_nossm``: attention / GLU-MLP / conv layers (no SSM);
- ``lm_attn_glu``: attention / GLU-MLP layers only (a transformer space);
- ``lm_fixed_width``: one width, the space's widest (one-stage spaces);
- ``lm_nodrop``: no dropout;
- ``lm_largest_first``: as ``largest_first``; ``lm_attn_glu_lf``: both;
- the image study's recipe (`benchmarks/recipe_variants.py`) asked of the LM study:
  ``lm_dw05`` (distillation half-and-half with the labels), ``lm_pm`` (the sandwich's bottom
  rotating over each mixer's cheapest arch), ``lm_pm_dw05`` (both), ``lm_pm_dw05_lf02`` (both,
  with the largest-alone phase cut from 40 % to 20 % of the schedule).

    python benchmarks/stem_ablation.py --device cuda --steps 600
    python benchmarks/stem_ablation.py --device cuda --study studies/shakespeare_lm.py \
        --steps 2500 --variants base,lm_nossm,lm_attn_glu,lm_fixed_width,lm_nodrop
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

NO_SSM = ("attention", "glu_mlp", "conv")
#: variant -> (modality, space overrides, training overrides)
VARIANTS: dict[str, tuple[str, dict, dict]] = {
    "base": ("any", {}, {}),
    "noreg": ("image", {}, {"drop_path": 0.0, "label_smoothing": 0.0, "augment": "none"}),
    "nodp": ("image", {}, {"drop_path": 0.0}),
    "dw05": ("image", {}, {"distill_weight": 0.5}),
    "patch": ("image", {"stems": ("patch",)}, {}),
    "convs2": ("image", {"stems": ("conv_s2",)}, {}),
    "hi_mix": ("image", {"stems": ("patch", "conv_s2"), "resolutions": (24, 28)}, {}),
    "hi_s2": ("image", {"stems": ("conv_s2",), "resolutions": (24, 28)}, {}),
    "hi_s2_nossm": ("image", {"stems": ("conv_s2",), "resolutions": (24, 28),
                              "mixers": NO_SSM}, {}),
    "s2_28": ("image", {"stems": ("conv_s2",), "resolutions": (28,)}, {}),
    "convs2_nossm": ("image", {"stems": ("conv_s2",), "mixers": NO_SSM}, {}),
    "lm_nossm": ("sequence", {"mixers": NO_SSM}, {}),
    "lm_attn_glu": ("sequence", {"mixers": ("attention", "glu_mlp")}, {}),
    "lm_fixed_width": ("sequence", {}, {}),  # widths set from the built space
    "lm_nodrop": ("sequence", {}, {"dropout": 0.0}),
    "largest_first": ("image", {}, {"largest_first": 0.4}),
    "lm_largest_first": ("sequence", {}, {"largest_first": 0.4}),
    "lm_attn_glu_lf": ("sequence", {"mixers": ("attention", "glu_mlp")}, {"largest_first": 0.4}),
    "lm_dw05": ("sequence", {}, {"distill_weight": 0.5}),
    "lm_pm": ("sequence", {}, {"smallest": "per_mixer"}),
    "lm_pm_dw05": ("sequence", {}, {"smallest": "per_mixer", "distill_weight": 0.5}),
    "lm_pm_dw05_lf02": ("sequence", {}, {"smallest": "per_mixer", "distill_weight": 0.5,
                                         "largest_first": 0.2}),
}
PANEL_SEED = 7


def variant_study(variant: str, study_file: str):
    """The study with ``variant``'s overrides; ValueError names a variant that does not
    exist or does not fit the study's modality."""
    from nas.study import load_study

    if variant not in VARIANTS:
        raise ValueError(f"variant: {variant!r} is not one of {sorted(VARIANTS)}")
    study = load_study(ROOT / study_file)
    modality, space_overrides, train = VARIANTS[variant]
    base_space = study.build_space()
    if modality not in ("any", base_space.modality):
        article = "an" if base_space.modality == "image" else "a"
        raise ValueError(f"variant {variant!r} is for {modality} studies; "
                         f"{study_file} is {article} {base_space.modality} study")
    overrides = {**study.space_overrides, **space_overrides}
    if variant == "lm_fixed_width":
        if len(base_space.stages) != 1:
            raise ValueError("lm_fixed_width needs a one-stage space (hybrid_lm_small)")
        overrides["widths"] = (base_space.stages[0].width.max,)
    return dataclasses.replace(study, space_overrides=overrides), dict(train)


def run_variant(variant: str, steps: int, device: str, work: Path,
                study_file: str = "studies/mnist_hybrid.py",
                time_limit: float | None = None) -> dict:
    import torch

    from nas.evaluation import evaluate_many
    from nas.training import train_supernet

    if device == "cpu":
        torch.set_num_threads(1)  # the variants run side by side, one core each
    study, train = variant_study(variant, study_file)
    train.update(steps=steps, device=device, eval_every=steps, checkpoint_every=steps,
                 warmup_steps=steps // 20)
    space, data = study.build_space(), study.load_data()
    config = study.training.with_overrides(**train)
    t0 = time.time()
    result = train_supernet(space=space, data=data, config=config, out_dir=work / variant,
                            progress=False, time_limit_s=time_limit)
    seconds = time.time() - t0
    rng = np.random.default_rng(PANEL_SEED)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(20)]
    image = space.modality == "image"
    batch = 1000 if image else 256

    def scores(x, y, some):
        rows = evaluate_many(result.supernet, some, x, y, batch_size=batch, device=device)
        return [100 * r.accuracy if image else r.loss for r in rows]

    val = scores(data.val.x, data.val.y, archs)
    worst = min if image else max
    out = {"variant": variant, "steps": result.step, "horizon": steps,
           "completed": result.step == steps, "train_seconds": seconds, "study": study.name,
           "metric": "val_accuracy_pct" if image else "val_loss", "largest": val[0],
           "smallest": val[1], "random_mean": statistics.mean(val[2:]),
           "random_worst": worst(val[2:]), "random": val[2:],
           "space_overrides": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in study.space_overrides.items()}}
    if image:
        out["random_min"] = out["random_worst"]  # the key of the earlier image runs
        out["train_acc_first6"] = scores(data.train.x[:5000], data.train.y[:5000], archs[:6])
        out["random_stems"] = [a.stem for a in archs[2:]]
        out["random_mean_by_stem"] = {
            stem: statistics.mean(v for a, v in zip(archs[2:], val[2:]) if a.stem == stem)
            for stem in sorted({str(a.stem) for a in archs[2:]})}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--study", default="studies/mnist_hybrid.py",
                   help="an image or sequence study (default the MNIST one)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds of training per variant; a variant stopped by it keeps its "
                        "horizon and is flagged completed: false")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "stem_ablation")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps < 20:
        p.error("--steps must be >= 20")
    if args.time_limit is not None and args.time_limit <= 0:
        p.error("--time-limit must be > 0 seconds")
    if args.job:
        out = run_variant(args.job, args.steps, args.device, args.work, args.study,
                          args.time_limit)
        (args.work / f"{args.job}.json").write_text(json.dumps(out))
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants:
        p.error("--variants: empty")
    for v in variants:  # every variant checked against the study before anything runs
        try:
            variant_study(v, args.study)
        except (ValueError, FileNotFoundError) as exc:
            p.error(f"--variants: {exc}")
    args.work.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, __file__, "--device", args.device, "--steps",
                               str(args.steps), "--work", str(args.work), "--study",
                               args.study, "--job", v]
                              + ([] if args.time_limit is None
                                 else ["--time-limit", str(args.time_limit)]))
             for v in variants]
    failed = [v for v, proc in zip(variants, procs) if proc.wait() != 0]
    if failed:
        raise SystemExit(f"variants failed: {failed}")
    runs = {v: json.loads((args.work / f"{v}.json").read_text()) for v in variants}
    keys = ("metric", "largest", "smallest", "random_mean", "random_worst", "train_seconds",
            "steps", "completed")
    metrics = {v: {k: r[k] for k in keys} for v, r in runs.items()}
    name = f"{Path(args.study).stem}_{args.steps}steps"  # runs of other lengths stay apart
    metrics = {name: metrics}
    path = write_result("stem_ablation", metrics=metrics, raw={name: {"runs": runs}},
                        device=device_name(args.device))
    for v, m in metrics[name].items():
        print(f"{v:14s} {m['metric']}: largest {m['largest']:.3f} smallest "
              f"{m['smallest']:.3f} random mean {m['random_mean']:.3f} worst "
              f"{m['random_worst']:.3f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
