"""Benchmark `vs_baselines`: the searched front beside hand-designed networks, same run.

For each dataset (MNIST, the CIFAR-10 subset) on one machine with a GPU:

1. trains the study's supernet on the GPU; the schedule horizon comes from the measured
   step speed (`steps_for_budget`), so the cosine schedule ends inside ``--train-seconds``;
   the weights kept are the best validation-panel checkpoint (`best.pt`), as `nas run` does.
   The probed horizon is kept in ``<work>/<dataset>/horizon.json`` and the run trains into
   ``supernet-<steps>-<recipe hash>``: a rerun after a crash resumes on the same schedule;
   another ``--train-seconds``, device (by name) or study recipe probes again and starts a
   fresh folder;
2. builds two latency tables with the project's harness: the host CPU (batch 1, one thread,
   eager) and the GPU (batch 1, CUDA graphs), each calibrated and validated on whole models;
3. runs the predictor-guided search (accuracy on the validation split with inherited
   weights vs the table's latency) against each table;
4. trains the hand-designed baselines (`nas.baselines`: LeNet-5, tiny ResNet, tiny ViT, tiny
   MobileNetV2) stand-alone on the same train split, for the same number of steps, with the
   same recipe (`fit_model`: batch, LR schedule, augmentation, label smoothing);
5. measures every front member (exported) and every baseline end to end, interleaved in one
   run per setting (CPU b1 one thread; GPU b1 and b256, CUDA graphs);
6. scores the front with inherited weights and the baselines on the test split, once, at
   the end; then fine-tunes each front member briefly (reported apart) and scores it again;
   with ``--standalone K`` it also trains the K lowest-latency members of each front from
   scratch (`nas.audit.train_standalone`, the supernet's steps), reported apart with
   ``mean_gap_inherited_vs_standalone`` (points) and ``dominance_standalone``: what the
   space holds, apart from what the supernet passes on.

A front *dominates* a baseline on a device when some front member has >= its test accuracy
at <= its measured latency there. Writes ``benchmarks/results/vs_baselines.json`` and one
figure per dataset and device under ``docs/``. Torch (+ torch-geometric for the predictor,
matplotlib for the figures) only: it runs on a bare GPU box.

    python benchmarks/vs_baselines.py --datasets mnist,cifar10_subset --device cuda
    python benchmarks/vs_baselines.py --datasets mnist --device cpu --smoke --no-figures

``--smoke`` is a CPU check of the whole path, not a measurement (about 1 min on 2 cores): short
timings, smaller defaults for the options left out (`DEFAULTS`: a 10 s supernet whose panel is
evaluated once, a 24-arch search, 2 front members fine-tuned 20 steps) and the archs scored on
the first 1,000 validation and 2,000 test images (`SMOKE_ROWS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, kept_horizon, write_result  # noqa: E402
from bench_supernet import CachedEvaluator, calibrated_table, kept_supernet, log  # noqa: E402

from kernels.timing import TimingConfig, measure_interleaved  # noqa: E402
from nas.audit import StandaloneRecipe, train_standalone  # noqa: E402
from nas.baselines import IMAGE_BASELINES, build_image_baseline  # noqa: E402
from nas.evaluation import evaluate_many, evaluate_model  # noqa: E402
from nas.export.model import export_subnet  # noqa: E402
from nas.search import SearchConfig, run_search  # noqa: E402
from nas.study import load_study  # noqa: E402
from nas.training import steps_for_budget, train_supernet  # noqa: E402
from nas.training.standalone import FitRecipe, fit_model  # noqa: E402
from search_spaces import Arch  # noqa: E402

STUDIES = {"mnist": "studies/mnist_hybrid.py", "cifar10_subset": "studies/cifar10_subset.py"}
# (name, device, batch, mode): the settings every model is measured in
SETTINGS = [("cpu", "cpu", 1, "eager"), ("gpu_b1", "cuda", 1, "cuda_graph"),
            ("gpu_b256", "cuda", 256, "cuda_graph")]
#: option: (default, default with --smoke), for the options left out. Why: a CPU smoke of
#: the full defaults took > 25 min on 2 cores, most of it fine-tuning every front member
#: 300 steps, then the 150-arch search and the 100 s supernet; the smoke checks the path.
DEFAULTS: dict[str, tuple[Any, Any]] = {
    "train_seconds": (100.0, 10.0), "search_budget": (150, 24), "population": (16, 8),
    "finetune_steps": (300, 20), "finetune_members": (None, 2)}
#: (validation, test) rows a --smoke scores archs on: the search's labels and the test split
#: of every front member took most of the rest of the smoke's time on the whole splits
SMOKE_ROWS = (1000, 2000)
#: panel evaluations of the supernet's run (normal, smoke): eval_every is the horizon / this
#: many, and the probe prices this many whole-validation-split evaluations, not one every
#: study ``eval_every`` steps (which under-priced them: a smoke planned 27 steps for 20 s and
#: was cut at step 20)
EVALUATIONS = {False: 6, True: 1}


def _timings(device: str, smoke: bool) -> tuple[TimingConfig, TimingConfig]:
    """(layer, model) timing: shorter than the study defaults (a benchmark builds four
    tables), still interleaved, warm, with medians over >= 15 rounds."""
    if device == "cpu":
        return (TimingConfig(warmup=2, repeats=7 if smoke else 15, min_sample_ms=0.0,
                             min_total_s=0.0 if smoke else 1.5),
                TimingConfig(warmup=2, repeats=5 if smoke else 11, min_sample_ms=5.0,
                             min_total_s=0.0 if smoke else 4.0))
    return (TimingConfig(warmup=5, repeats=15, min_sample_ms=1.0, max_inputs=1),
            TimingConfig(warmup=3, repeats=15, min_sample_ms=2.0, max_inputs=1))


def build_latency_table(space, *, setting: str, smoke: bool, out: Path):
    _, device, batch, mode = next(s for s in SETTINGS if s[0] == setting)
    layer, model = _timings(device, smoke)
    t0 = time.perf_counter()
    table, validation = calibrated_table(space, device=device, batch=batch, mode=mode,
                                         layer_timing=layer, model_timing=model, out=out,
                                         n_validation=12 if smoke else 30)
    log(f"  table {setting}: {len(table)} entries in {time.perf_counter() - t0:.0f}s, "
        f"validation {json.dumps({k: v for k, v in validation.items() if k != 'repeat'})[:200]}")
    return table, validation


def measure_models(models: dict[str, torch.nn.Module], shapes: dict[str, tuple[int, ...]], *,
                   setting: str, smoke: bool) -> dict[str, float]:
    """Median end-to-end latency (ms) of each model, all interleaved in one run."""
    _, device, batch, mode = next(s for s in SETTINGS if s[0] == setting)
    _, config = _timings(device, smoke)
    gen = torch.Generator().manual_seed(0)
    calls = []
    for name, model in models.items():
        m = model.to(device).eval()
        shape = shapes[name]
        calls.append((m, lambda s=shape: torch.randn(batch, *s, generator=gen).to(device)))
    ms = measure_interleaved(calls, device=device, mode=mode,
                             threads=1 if device == "cpu" else None, config=config)
    return {name: m.median_ms for name, m in zip(models, ms)}


def dominates(front: list[dict], baseline: dict, setting: str) -> bool:
    """Some front member with >= the baseline's test accuracy at <= its latency."""
    return any(f["test_acc"] >= baseline["test_acc"]
               and f["latency_ms"][setting] <= baseline["latency_ms"][setting] for f in front)


def run_dataset(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    device = args.device
    study = load_study(ROOT / STUDIES[name])
    space = study.build_space()
    data = study.load_data()
    train, val = (data.train.x, data.train.y), (data.val.x, data.val.y)
    test = (data.test.x, data.test.y)
    if args.smoke:  # every arch scored is scored on these: the smoke's first rows only
        val, test = ((x[:n], y[:n]) for (x, y), n in zip((val, test), SMOKE_ROWS))
    c, r = space.in_channels, space.resolution.max
    log(f"{name}: train {len(data.train)} / val {len(val[0])} / test {len(test[0])}, "
        f"space {space.size():.3g} archs")

    # 1. the supernet, its horizon from the measured step speed
    # the panel on the whole validation split (with_overrides would drop the None)
    base = dataclasses.replace(study.training, device=device, eval_batches=None)
    t0 = time.perf_counter()
    recipe = hashlib.sha256(json.dumps(base.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    steps = kept_horizon(
        work / name / "horizon.json",
        key={"train_seconds": args.train_seconds, "device": device_name(device),
             "smoke": bool(args.smoke), "recipe": recipe},
        probe=lambda: steps_for_budget(space=space, train=train, val=val, config=base,
                                       seconds=args.train_seconds,
                                       probe_steps=6 if args.smoke else 20,
                                       evaluations=EVALUATIONS[bool(args.smoke)]))
    horizon_s = time.perf_counter() - t0
    warmup = max(1, round(base.warmup_steps * steps / base.steps))
    config = base.with_overrides(steps=steps, warmup_steps=warmup,
                                 eval_every=max(1, steps // EVALUATIONS[bool(args.smoke)]),
                                 checkpoint_every=max(1, steps))
    log(f"  supernet: {steps} steps fit in {args.train_seconds:.0f}s (probe {horizon_s:.0f}s)")
    t0 = time.perf_counter()
    result = train_supernet(space=space, train=train, val=val, config=config,
                            out_dir=work / name / f"supernet-{steps}-{recipe}", resume=True,
                            progress=False,
                            time_limit_s=1.5 * args.train_seconds)
    train_s = time.perf_counter() - t0
    net, kept_step = kept_supernet(space, result, device)
    log(f"  trained {result.step} steps in {train_s:.0f}s; kept step {kept_step} "
        f"(panel loss {result.best_loss})")
    evaluate = CachedEvaluator(net, val, batch_size=1000, device=device)
    cache = evaluate.cache

    # 2-3. latency tables and one search against each
    fronts: dict[str, list[Arch]] = {}
    tables: dict[str, Any] = {}
    for setting in ("cpu", "gpu_b1"):
        if setting.startswith("gpu") and not device.startswith("cuda"):
            continue
        table, validation = build_latency_table(space, setting=setting, smoke=args.smoke,
                                                out=work / name / f"table_{setting}.json")
        tables[setting] = validation
        t0 = time.perf_counter()
        search = run_search(space=space, evaluate=evaluate, latency=table, progress=False,
                            config=SearchConfig(budget=args.search_budget,
                                                population=args.population, seed=0,
                                                objectives=("accuracy", "latency_ms")))
        fronts[setting] = search.front_archs()
        log(f"  search vs {setting}: front of {len(fronts[setting])} in "
            f"{time.perf_counter() - t0:.0f}s ({len(cache)} archs labelled so far)")

    # 4. baselines, trained stand-alone with the same steps and recipe
    recipe = FitRecipe.from_training(config)
    baselines: dict[str, dict[str, Any]] = {}
    baseline_models: dict[str, torch.nn.Module] = {}
    for bname in IMAGE_BASELINES:
        model = build_image_baseline(bname, in_channels=c, num_classes=space.num_outputs,
                                     resolution=r, seed=0)
        t0 = time.perf_counter()
        model = fit_model(model, train=train, recipe=recipe, seed=0, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        baseline_models[bname] = model
        baselines[bname] = {"params": sum(p.numel() for p in model.parameters()),
                            "train_seconds": time.perf_counter() - t0, "steps": recipe.steps}
        log(f"  baseline {bname}: {baselines[bname]['params']} params, "
            f"{baselines[bname]['train_seconds']:.0f}s")

    # 5. the front members exported; every model measured per setting, interleaved
    members: dict[str, Arch] = {}
    for archs in fronts.values():
        for a in archs:
            members.setdefault(a.key(), a)
    exported = {key: export_subnet(net, a).cpu() for key, a in members.items()}
    settings = [s for s, dev, _, _ in SETTINGS if dev == "cpu" or device.startswith("cuda")]
    latency: dict[str, dict[str, float]] = {}
    for setting in settings:
        models = {**{f"arch:{k}": m for k, m in exported.items()},
                  **{f"base:{k}": m.cpu() for k, m in baseline_models.items()}}
        shapes = {k: (c, members[k[5:]].resolution, members[k[5:]].resolution)
                  if k.startswith("arch:") else (c, r, r) for k in models}
        t0 = time.perf_counter()
        latency[setting] = measure_models(models, shapes, setting=setting, smoke=args.smoke)
        log(f"  measured {len(models)} models at {setting} in {time.perf_counter() - t0:.0f}s")

    # 6. the test split, once: inherited front, baselines; then the fine-tuned front
    inherited = evaluate_many(net, list(members.values()), *test, batch_size=1000,
                              device=device)
    front_rows = {}
    for (key, arch), res in zip(members.items(), inherited):
        front_rows[key] = {
            "arch": arch.to_json(), "label": arch.label(), "params": space.params(arch),
            "flops": space.flops(arch), "val_acc": cache[key]["val_accuracy"],
            "test_acc": res.accuracy,
            "latency_ms": {s: latency[s][f"arch:{key}"] for s in settings},
            "fronts": [s for s, archs in fronts.items() if arch in archs]}
    for bname, model in baseline_models.items():
        res = evaluate_model(model.to(device).eval(), *test, batch_size=1000, device=device)
        baselines[bname]["test_acc"] = res.accuracy
        baselines[bname]["latency_ms"] = {s: latency[s][f"base:{bname}"] for s in settings}
    t0 = time.perf_counter()
    tune = FitRecipe(steps=args.finetune_steps, batch_size=config.batch_size,
                     lr=config.lr * 0.1, weight_decay=config.weight_decay, warmup_steps=0,
                     min_lr_ratio=0.0, augment=config.augment, augment_pad=config.augment_pad,
                     label_smoothing=config.label_smoothing) if args.finetune_steps > 0 else None
    to_tune = list(members)  # --finetune-members K: the K of best validation accuracy
    if args.finetune_members is not None:
        best_val = sorted(to_tune, key=lambda k: -cache[k]["val_accuracy"])
        to_tune = [k for k in to_tune if k in best_val[:args.finetune_members]]
    for key in to_tune if tune is not None else ():
        model = fit_model(export_subnet(net, members[key]), train=train, recipe=tune, seed=0,
                          device=device)
        front_rows[key]["finetuned_test_acc"] = evaluate_model(
            model, *test, batch_size=1000, device=device).accuracy
    finetune_s = time.perf_counter() - t0
    tuned = len(to_tune) if tune is not None else 0
    log(f"  fine-tuned {tuned} of {len(members)} front members {args.finetune_steps} steps "
        f"in {finetune_s:.0f}s")
    standalone_s = train_cheapest_alone(args.standalone, fronts, front_rows, space=space,
                                        config=config, train=train, test=test, device=device)
    largest = evaluate_many(net, [space.largest(), space.smallest()], *test, batch_size=1000,
                            device=device)

    front_of = {s: [front_rows[a.key()] for a in archs] for s, archs in fronts.items()}
    dominance, dominance_alone = {}, {}
    for setting in settings:
        table_front = front_of.get(setting, front_of.get("gpu_b1", []))
        dominance[setting] = {b: dominates(table_front, row, setting)
                              for b, row in baselines.items()}
        alone = [{**f, "test_acc": f["standalone_test_acc"]} for f in table_front
                 if "standalone_test_acc" in f]
        if alone:
            dominance_alone[setting] = {b: dominates(alone, row, setting)
                                        for b, row in baselines.items()}
    gaps = [100 * (f["test_acc"] - f["standalone_test_acc"]) for f in front_rows.values()
            if "standalone_test_acc" in f]
    best = max(front_rows.values(), key=lambda f: f["test_acc"])
    metrics = {
        "best_inherited_test_acc": best["test_acc"],
        "best_finetuned_test_acc": max((f["finetuned_test_acc"] for f in front_rows.values()
                                        if "finetuned_test_acc" in f), default=float("nan")),
        "dominates_cpu": all(dominance["cpu"].values()),
        "dominates_gpu": all(dominance["gpu_b1"].values()) if "gpu_b1" in dominance else None,
        "dominates_gpu_b256": (all(dominance["gpu_b256"].values())
                               if "gpu_b256" in dominance else None),
        "dominance": dominance,
        # --standalone: the cheapest front members trained from scratch (the audit's recipe,
        # the supernet's steps): what the space holds, apart from what the supernet passes on
        "dominance_standalone": dominance_alone or None,
        "mean_gap_inherited_vs_standalone": (sum(gaps) / len(gaps)) if gaps else None,
        "largest_test_acc": largest[0].accuracy, "smallest_test_acc": largest[1].accuracy,
        "supernet_steps": result.step, "supernet_train_seconds": train_s,
        "baselines": baselines,
        "front_sizes": {s: len(a) for s, a in fronts.items()},
    }
    raw = {"fronts": {s: [a.key() for a in archs] for s, archs in fronts.items()},
           "members": front_rows, "latency_tables": tables, "finetune_seconds": finetune_s,
           "finetune_steps": args.finetune_steps, "finetuned_members": tuned,
           "standalone_seconds": standalone_s,
           "standalone_per_front": args.standalone, "train_config": config.to_dict(),
           "search_budget": args.search_budget, "labelled": len(cache),
           "kept_checkpoint_step": kept_step,
           "gpu_name": torch.cuda.get_device_name() if device.startswith("cuda") else None}
    log(f"  {name}: best inherited {best['test_acc']:.4f} ({best['label']}); dominance "
        f"{json.dumps(dominance)}")
    if not args.no_figures:
        figures(name, front_of, front_rows, baselines, settings, args.figures,
                gpu=raw["gpu_name"])
    return {"metrics": metrics, "raw": raw}


def train_cheapest_alone(k: int, fronts: dict[str, list[Arch]], rows: dict[str, dict], *,
                         space, config, train, test, device: str) -> float:
    """Train the ``k`` lowest-latency members of each table's front from scratch with the
    audit's stand-alone recipe over the supernet's steps (`nas.audit.train_standalone`,
    seed 0) and put their test accuracy in ``rows[key]["standalone_test_acc"]``. Why: the
    gap to the inherited accuracy says whether the space or the supernet is what a front
    lacks against the baselines. Returns the seconds it took."""
    if k <= 0:
        return 0.0
    recipe = StandaloneRecipe.from_training(config)
    picked: dict[str, Arch] = {}
    for setting, archs in fronts.items():
        for a in sorted(archs, key=lambda a: rows[a.key()]["latency_ms"][setting])[:k]:
            picked.setdefault(a.key(), a)
    t0 = time.perf_counter()
    for i, (key, arch) in enumerate(picked.items()):
        result = train_standalone(space=space, arch=arch, seed=0, recipe=recipe, train=train,
                                  test=test, device=device)
        rows[key]["standalone_test_acc"] = result.test_accuracy
        log(f"  stand-alone {i + 1}/{len(picked)} {arch.label()}: {result.test_accuracy:.4f} "
            f"(inherited {rows[key]['test_acc']:.4f}, {result.seconds:.0f}s)")
    return time.perf_counter() - t0


def figures(name: str, front_of: dict[str, list[dict]], rows: dict[str, dict],
            baselines: dict[str, dict], settings: list[str], out: Path, *,
            gpu: str | None) -> None:
    """One PNG per device: the front (inherited, fine-tuned) and the baselines; ``gpu`` names
    the GPU the GPU settings were measured on (the titles say which card)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    card = (gpu or "GPU").replace("NVIDIA ", "").split(" ")[0]  # "NVIDIA H100 80GB HBM3" -> H100
    titles = {"cpu": "CPU, batch 1, 1 thread", "gpu_b1": f"{card}, batch 1, CUDA graph",
              "gpu_b256": f"{card}, batch 256, CUDA graph"}
    for setting in settings:
        front = front_of.get(setting, front_of.get("gpu_b1", []))
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
        pts = sorted((f["latency_ms"][setting], 100 * f["test_acc"]) for f in front)
        ax.plot(*zip(*pts), "o-", color="tab:blue", label="searched front (inherited weights)")
        tuned = sorted((f["latency_ms"][setting], 100 * f["finetuned_test_acc"]) for f in front
                       if "finetuned_test_acc" in f)
        if tuned:
            ax.plot(*zip(*tuned), "o", mfc="none", color="tab:green",
                    label="same archs, short fine-tune")
        alone = sorted((f["latency_ms"][setting], 100 * f["standalone_test_acc"])
                       for f in front if "standalone_test_acc" in f)
        if alone:
            ax.plot(*zip(*alone), "s", mfc="none", color="tab:purple",
                    label="same archs, trained from scratch")
        for bname, b in baselines.items():
            ax.plot(b["latency_ms"][setting], 100 * b["test_acc"], "*", ms=12)
            ax.annotate(bname, (b["latency_ms"][setting], 100 * b["test_acc"]),
                        textcoords="offset points", xytext=(5, -10), fontsize=8)
        accs = ([p[1] for p in pts] + [p[1] for p in alone]
                + [100 * b["test_acc"] for b in baselines.values()])
        ax.set_ylim(min(accs) - 1.0, max(accs) + 0.5)  # every point shown, none clipped
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"measured latency (ms), {titles[setting]}")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{name}: searched front vs hand-designed baselines")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"vs_baselines_{name}_{setting}.png")
        plt.close(fig)


def replot(path: Path, out: Path) -> None:
    """Redraw every figure from a `vs_baselines.json` (its raw members and fronts)."""
    data = json.loads(path.read_text())
    for name, raw in data["raw"].items():
        rows = raw["members"]
        front_of = {s: [rows[k] for k in keys] for s, keys in raw["fronts"].items()}
        baselines = data["metrics"][name]["baselines"]
        settings = list(next(iter(baselines.values()))["latency_ms"])
        # runs before the key existed: the JSON's device line starts with the GPU's name
        gpu = raw.get("gpu_name") or data.get("device", "GPU").split(";")[0]
        figures(name, front_of, rows, baselines, settings, out, gpu=gpu)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="mnist,cifar10_subset")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--train-seconds", type=float, default=None,
                   help="supernet training budget (default 100; 10 with --smoke)")
    p.add_argument("--search-budget", type=int, default=None,
                   help="archs each search labels (default 150; 24 with --smoke)")
    p.add_argument("--population", type=int, default=None,
                   help="search population (default 16; 8 with --smoke)")
    p.add_argument("--finetune-steps", type=int, default=None,
                   help="fine-tune steps per front member (default 300; 20 with --smoke)")
    p.add_argument("--finetune-members", type=int, default=None, metavar="K",
                   help="fine-tune only the K front members of best validation accuracy "
                        "(default every member; 2 with --smoke)")
    p.add_argument("--standalone", type=int, default=0, metavar="K",
                   help="also train the K lowest-latency members of each front from scratch "
                        "(the audit's recipe, the supernet's steps), reported apart")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "vs_baselines")
    p.add_argument("--figures", type=Path, default=ROOT / "docs")
    p.add_argument("--results", type=Path, default=None, help="results folder (default: "
                   "benchmarks/results)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--smoke", action="store_true", help="short timings and the small "
                   "defaults above: a quick CPU check of the whole path, not a measurement")
    p.add_argument("--replot", type=Path, default=None, metavar="JSON",
                   help="only redraw the figures from a results file")
    args = p.parse_args()
    for option, (full, smoke) in DEFAULTS.items():  # an option given keeps its value
        if getattr(args, option) is None:
            setattr(args, option, smoke if args.smoke else full)
    if (args.replot is not None or not args.no_figures) and find_spec("matplotlib") is None:
        # checked before any work: the figures are drawn after hours of it
        p.error("matplotlib is not installed (pip install matplotlib): pass --no-figures, "
                "and redraw the figures later with --replot <vs_baselines.json>")
    if args.replot is not None:
        replot(args.replot, args.figures)
        return 0
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    bad = [n for n in names if n not in STUDIES]
    if bad or not names:
        p.error(f"--datasets: {bad or 'empty'} not in {sorted(STUDIES)}")
    if args.train_seconds <= 0 or args.search_budget < args.population:
        p.error("--train-seconds must be > 0 and --search-budget >= --population")
    if args.standalone < 0 or args.finetune_steps < 0 or (args.finetune_members or 0) < 0:
        p.error("--standalone, --finetune-steps and --finetune-members must be >= 0")
    torch.backends.cudnn.benchmark = False
    metrics, raw = {}, {}
    for name in names:
        out = run_dataset(name, args, args.work)
        metrics[name], raw[name] = out["metrics"], out["raw"]
    dev = device_name(args.device) + ("; host CPU: " + device_name("cpu")
                                      if args.device.startswith("cuda") else "")
    path = write_result("vs_baselines", metrics=metrics, raw=raw, device=dev,
                        out_dir=args.results)
    log(f"wrote {path}")
    for name in names:
        m = metrics[name]
        print(f"{name}: best inherited {m['best_inherited_test_acc']:.4f}, largest "
              f"{m['largest_test_acc']:.4f}, dominates cpu {m['dominates_cpu']} gpu "
              f"{m['dominates_gpu']} gpu_b256 {m['dominates_gpu_b256']}")
        if m["mean_gap_inherited_vs_standalone"] is not None:
            print(f"  stand-alone: mean gap inherited - stand-alone "
                  f"{m['mean_gap_inherited_vs_standalone']:+.2f} points; dominance "
                  f"{json.dumps(m['dominance_standalone'])}")
        for bname, b in m["baselines"].items():
            lat = " ".join(f"{s} {v:.3f}ms" for s, v in b["latency_ms"].items())
            print(f"  {bname:18s} acc {b['test_acc']:.4f} params {b['params']:6d} {lat}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
