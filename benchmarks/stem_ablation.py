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

Resumable: each variant trains into ``<work>/<study file stem>/<variant>/run-<steps>/``
(checkpoints every tenth of the schedule, its scores in ``result.json`` beside them, written
atomically when the variant is done). A rerun into the same ``--work`` reuses a variant whose
``result.json`` was made with the same study, steps, variant recipe, ``--time-limit`` and
device (``reused: true`` in its raw entry), resumes one whose checkpoint exists (a time limit
counts the seconds of every call that trained it), and trains another ``--steps`` into its
own folder. A checkpoint trained under another recipe or space (the study or the variant was
edited) is one error naming it, before anything runs.

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
from typing import Any

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


RESULT_NAME = "result.json"
SECONDS_NAME = "train_seconds.json"
#: a result.json holds these (a file without them is not a finished variant)
RESULT_KEYS = ("variant", "steps", "horizon", "completed", "train_seconds", "metric", "largest",
               "smallest", "random_mean", "random_worst", "random")


@dataclasses.dataclass(frozen=True)
class VariantPlan:
    """One variant of one run: its study, space, training config, folder and result key."""

    variant: str
    study: Any
    space: Any
    config: Any
    folder: Path
    key: dict[str, Any]


def device_key(device: str) -> str:
    """The machine a variant's result was measured on: the GPU's name, or the CPU's model
    (not the thread count, which a CPU job sets to one)."""
    name = device_name(device)
    return name if device.startswith("cuda") else name.rsplit(" (", 1)[0]


def _data_key(data: Any) -> Any:
    """A study's data as a result key: a `DataConfig`'s fields, or a loader's name."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return dataclasses.asdict(data)
    return f"{getattr(data, '__module__', '')}.{getattr(data, '__qualname__', type(data).__name__)}"


def variant_plan(variant: str, study_file: str, *, steps: int, device: str, work: Path,
                 time_limit: float | None) -> VariantPlan:
    """``variant`` of ``study_file`` trained for ``steps``: ValueError as `variant_study`.

    The key a finished ``result.json`` must carry to be reused: the study (name, data and
    space), the variant's recipe (every `TrainConfig` field a resume may not change),
    the steps, the time limit and the device. The folder is keyed by the study file, the
    variant and the horizon, so another ``--steps`` trains apart."""
    from nas.supernet.supernet import space_fingerprint
    from nas.training.config import RESUME_FREE_FIELDS

    study, train = variant_study(variant, study_file)
    train.update(steps=steps, device=device, eval_every=steps,
                 checkpoint_every=max(1, steps // 10), warmup_steps=steps // 20)
    config = study.training.with_overrides(**train)
    space = study.build_space()
    key = {"study": study.name, "variant": variant, "steps": steps, "time_limit": time_limit,
           "device": device_key(device), "data": _data_key(study.data),
           "space": space_fingerprint(space),
           "recipe": {k: v for k, v in config.to_dict().items() if k not in RESUME_FREE_FIELDS}}
    key = json.loads(json.dumps(key, sort_keys=True, default=str))  # as read back from JSON
    folder = work / Path(study_file).stem / variant / f"run-{steps}"
    return VariantPlan(variant=variant, study=study, space=space, config=config,
                       folder=folder, key=key)


def finished_result(plan: VariantPlan) -> dict[str, Any] | None:
    """The variant's ``result.json`` when it is complete and made under ``plan.key``; None
    when it is missing, torn, incomplete or from another study, recipe, horizon, time
    limit or device (the variant then trains, or resumes, again)."""
    path = plan.folder / RESULT_NAME
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != plan.key:
        return None
    result = saved.get("result")
    if not isinstance(result, dict):
        return None
    if any(k not in result for k in RESULT_KEYS) or result["horizon"] != plan.key["steps"]:
        return None
    return result


def check_checkpoint(plan: VariantPlan) -> int:
    """The step of the variant's checkpoint (0 without one); `CheckpointError` when it is
    unreadable or was trained on another space or under another recipe, finished or not
    (a finished one would otherwise be scored as this recipe's result)."""
    from nas.supernet.supernet import space_fingerprint
    from nas.training import CheckpointError, load_checkpoint
    from nas.training.checkpoint import CHECKPOINT_NAME

    path = plan.folder / CHECKPOINT_NAME
    if not path.exists():
        return 0
    state = load_checkpoint(path, space_fingerprint=space_fingerprint(plan.space))
    changes = plan.config.recipe_changes(dict(state.get("config") or {}))
    if changes:
        raise CheckpointError(
            f"{path} was trained with another recipe ({'; '.join(changes)}) and is at step "
            f"{state['step']} of {plan.config.steps}: remove {plan.folder} to train the "
            f"variant anew, or use another --work")
    return int(state["step"])


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` to ``path`` atomically: a crash leaves the old file or none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _trained_seconds(plan: VariantPlan, step: int) -> float:
    """Seconds earlier calls spent training the checkpoint at ``step`` (0 from scratch)."""
    if step == 0:
        return 0.0
    try:
        saved = json.loads((plan.folder / SECONDS_NAME).read_text())
        return float(saved["seconds"])  # at most one checkpoint behind after a crash
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def run_variant(plan: VariantPlan, device: str, time_limit: float | None = None) -> dict:
    """Train (or resume) the variant's supernet and score its subnets. ``time_limit``
    counts the seconds of earlier calls that trained the checkpoint it resumes."""
    import torch

    from nas.evaluation import evaluate_many
    from nas.training import train_supernet

    if device == "cpu":
        torch.set_num_threads(1)  # the variants run side by side, one core each
    study, space, config = plan.study, plan.space, plan.config
    start = check_checkpoint(plan)
    before = _trained_seconds(plan, start)
    print(f"{plan.variant}: " + (f"resuming {plan.folder} from step {start} of {config.steps}"
                                 if start else f"training {plan.folder}"), flush=True)
    data = study.load_data()
    left = None if time_limit is None else time_limit - before
    plan.folder.mkdir(parents=True, exist_ok=True)

    def on_step(step: int, _record: dict) -> None:  # beside each checkpoint the trainer writes
        if step % config.checkpoint_every == 0 or step == config.steps:
            _write_json(plan.folder / SECONDS_NAME,
                        {"step": step, "seconds": before + time.time() - t0})

    t0 = time.time()
    result = train_supernet(space=space, data=data, config=config, out_dir=plan.folder,
                            resume=True, progress=False, on_step=on_step,
                            time_limit_s=None if left is None else max(left, 0.0),
                            stop_at=start if left is not None and left <= 0 else None)
    seconds = before + time.time() - t0
    _write_json(plan.folder / SECONDS_NAME, {"step": result.step, "seconds": seconds})
    rng = np.random.default_rng(PANEL_SEED)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(20)]
    image = space.modality == "image"
    batch = 1000 if image else 256

    def scores(x, y, some):
        rows = evaluate_many(result.supernet, some, x, y, batch_size=batch, device=device)
        return [100 * r.accuracy if image else r.loss for r in rows]

    val = scores(data.val.x, data.val.y, archs)
    worst = min if image else max
    out = {"variant": plan.variant, "steps": result.step, "horizon": config.steps,
           "completed": result.step == config.steps, "train_seconds": seconds,
           "resumed_from_step": start, "study": study.name,
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
    p.add_argument("--parallel", type=int, default=0,
                   help="variants training at once (default 0: all of them)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "stem_ablation")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.steps < 20:
        p.error("--steps must be >= 20")
    if args.time_limit is not None and args.time_limit <= 0:
        p.error("--time-limit must be > 0 seconds")
    if args.parallel < 0:
        p.error("--parallel must be >= 0")
    settings = dict(steps=args.steps, device=args.device, work=args.work,
                    time_limit=args.time_limit)
    if args.job:
        plan = variant_plan(args.job, args.study, **settings)
        out = run_variant(plan, args.device, args.time_limit)
        _write_json(plan.folder / RESULT_NAME, {"key": plan.key, "result": out})
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants:
        p.error("--variants: empty")
    plans = {}
    for v in variants:  # every variant checked against the study before anything runs
        try:
            plans[v] = variant_plan(v, args.study, **settings)
        except (ValueError, FileNotFoundError) as exc:
            p.error(f"--variants: {exc}")
    reused = {v: r for v, plan in plans.items() if (r := finished_result(plan)) is not None}
    todo = [v for v in variants if v not in reused]
    for v in todo:  # and every checkpoint a variant would resume, before anything runs
        try:
            check_checkpoint(plans[v])
        except ValueError as exc:  # CheckpointError
            p.error(f"--work: variant {v!r}: {exc}")
    for v in reused:
        print(f"{v}: reused {plans[v].folder / RESULT_NAME} (same study, steps, recipe, "
              f"time limit and device)", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    parallel = args.parallel or len(todo)
    procs: list[tuple[str, subprocess.Popen]] = []
    for v in todo:
        while sum(proc.poll() is None for _, proc in procs) >= parallel:
            time.sleep(0.2)
        procs.append((v, subprocess.Popen(
            [sys.executable, __file__, "--device", args.device, "--steps", str(args.steps),
             "--work", str(args.work), "--study", args.study, "--job", v]
            + ([] if args.time_limit is None else ["--time-limit", str(args.time_limit)]))))
    failed = [v for v, proc in procs if proc.wait() != 0]
    if failed:
        raise SystemExit(f"variants failed: {failed} (the finished ones are kept: rerun the "
                         f"same command to resume)")
    runs = {}
    for v, plan in plans.items():
        result = reused.get(v) or finished_result(plan)
        if result is None:
            raise SystemExit(f"variant {v!r} left no finished {plan.folder / RESULT_NAME}")
        runs[v] = {**result, "reused": v in reused}
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
              f"{m['random_worst']:.3f}" + ("  (reused)" if v in reused else ""))
    print(f"wrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
