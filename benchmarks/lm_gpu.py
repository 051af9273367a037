"""Benchmark `lm_gpu`: a searched hybrid char-LM front against GPT baselines, same run.

On one GPU (tiny-shakespeare, bytes, `studies/shakespeare_lm.py`: `hybrid_lm_small` at the
full 256-byte context, random-offset windows, dropout):

1. trains the study's supernet for at most ``--train-seconds``; the schedule horizon comes
   from the measured step speed (`steps_for_budget`), so the warm-up + cosine schedule ends
   inside the budget, and is cut further so that the supernet and the baselines (which
   train as many steps, step 4) fit ``--train-budget`` together, from their measured step
   times; the weights kept are the best validation-panel checkpoint (`best.pt`), as
   `nas run` does;
2. builds two latency tables with the project's harness (batch 1 and batch 64, full
   256-token forward, CUDA-graph mode), each calibrated and validated on whole models;
3. runs the predictor-guided search (validation loss with inherited weights vs the table's
   latency) against each table;
4. trains the GPT baselines (`nas.baselines.text`: nanoGPT's 6 x 384 with dropout 0.2 and
   smaller ones) stand-alone on the same split with the same token budget (as many batches
   of the same size as the supernet's steps, the very same random windows: same seed),
   AdamW with the same warm-up + cosine schedule, keeping their best-validation weights;
5. measures every front member (exported) and every baseline end to end, interleaved in one
   run per setting;
6. scores everything on the validation split (the issue's goals) and, once, at the end, on
   the test split, which nothing above looked at; fine-tunes the front members briefly and
   reports them apart.

A front *dominates* a baseline in a setting when a front member has <= its validation loss
at <= its measured latency there. Writes ``benchmarks/results/lm_gpu.json`` and
``docs/lm_gpu.png``. Imports torch, numpy, torch-geometric (the search's predictor) and
matplotlib (the figure, lazily) only: it runs on a bare GPU box.

    python benchmarks/lm_gpu.py --device cuda                 # H200: ~8 minutes
    python benchmarks/lm_gpu.py --device cpu --smoke          # the whole path on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, write_result  # noqa: E402
from bench_supernet import CachedEvaluator, calibrated_table, kept_supernet, log  # noqa: E402

from kernels.timing import TimingConfig, measure_interleaved  # noqa: E402
from nas.baselines.text import GPT_BASELINES, build_text_baseline, fit_lm  # noqa: E402
from nas.data import load_text  # noqa: E402
from nas.evaluation import evaluate_many, evaluate_model  # noqa: E402
from nas.export.model import export_subnet  # noqa: E402
from nas.search import SearchConfig, run_search  # noqa: E402
from nas.study import load_study  # noqa: E402
from nas.training import steps_for_budget, train_supernet  # noqa: E402
from nas.training.standalone import FitRecipe  # noqa: E402
from search_spaces import Arch, get_space  # noqa: E402

STUDY = ROOT / "studies" / "shakespeare_lm.py"
# name -> (batch, mode) of every latency setting, per device kind
SETTINGS = {"cuda": {"gpu_b1": (1, "cuda_graph"), "gpu_b64": (64, "cuda_graph")},
            "cpu": {"cpu_b1": (1, "eager"), "cpu_b8": (8, "eager")}}
# --smoke: a small space, short windows and a few steps of everything (a check of the path)
SMOKE_SPACE = {"context_lengths": (32,), "widths": (64, 128), "depths": (2, 3, 4),
               "head_dim": 32}
SMOKE_SEQ_LEN, SMOKE_BYTES = 32, 300_000


def _timings(kind: str, smoke: bool) -> tuple[TimingConfig, TimingConfig]:
    """(layer, model) timing: interleaved, warm, medians over >= 15 rounds (5 in smoke)."""
    if kind == "cpu":
        return (TimingConfig(warmup=1, repeats=5 if smoke else 15, min_sample_ms=0.0),
                TimingConfig(warmup=1, repeats=5 if smoke else 11, min_sample_ms=0.0))
    return (TimingConfig(warmup=5, repeats=15, min_sample_ms=1.0, max_inputs=1),
            TimingConfig(warmup=3, repeats=15, min_sample_ms=2.0, max_inputs=1))


def build_latency_table(space, *, kind: str, batch: int, mode: str, smoke: bool, out: Path):
    layer, model = _timings(kind, smoke)
    return calibrated_table(space, device=kind, batch=batch, mode=mode, layer_timing=layer,
                            model_timing=model, out=out, n_calibration=4 if smoke else 10,
                            n_validation=6 if smoke else 30)


def measure(models: dict[str, torch.nn.Module], lengths: dict[str, int], *, kind: str,
            batch: int, mode: str, vocab: int, smoke: bool) -> dict[str, float]:
    """Median end-to-end latency (ms) of each model on ``(batch, length)`` random token ids,
    all interleaved in one run."""
    _, config = _timings(kind, smoke)
    gen = torch.Generator().manual_seed(0)
    calls = []
    for name, model in models.items():
        m = model.to(kind).eval()
        shape = (batch, lengths[name])
        calls.append((m, lambda s=shape: torch.randint(0, vocab, s, generator=gen).to(kind)))
    ms = measure_interleaved(calls, device=kind, mode=mode,
                             threads=1 if kind == "cpu" else None, config=config)
    return {name: m.median_ms for name, m in zip(models, ms)}


def baseline_step_seconds(name: str, *, train, batch: int, context: int, vocab: int,
                          device: str, probe: int) -> float:
    """Median seconds of one training step of baseline ``name`` (a throw-away model, the
    benchmark's recipe shape), after a few untimed warm-up steps."""
    model = build_text_baseline(name, seed=0, context=context, vocab_size=vocab)
    recipe = FitRecipe(steps=probe + 3, batch_size=batch, lr=1e-4, weight_decay=0.0,
                       warmup_steps=0)
    stamps: list[float] = []

    def stamp(step: int, loss: torch.Tensor) -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    fit_lm(model, train=train, recipe=recipe, seed=0, device=device, on_step=stamp)
    gaps = sorted(b - a for a, b in zip(stamps[2:], stamps[3:]))
    return gaps[len(gaps) // 2]


def dominates(front: list[dict], baseline: dict, setting: str, split: str) -> bool:
    """Some front member with <= the baseline's loss on ``split`` at <= its latency."""
    key = f"{split}_loss"
    return any(f[key] <= baseline[key] and f["latency_ms"][setting]
               <= baseline["latency_ms"][setting] for f in front)


def load(args: argparse.Namespace):
    """(study, space, data) of the benchmark; --smoke shrinks the space and the windows."""
    study = load_study(STUDY)
    if not args.smoke:
        return study, study.build_space(), study.load_data()
    space = get_space(study.space, **SMOKE_SPACE)
    data = load_text(study.data.path, seq_len=SMOKE_SEQ_LEN, max_bytes=SMOKE_BYTES)
    return study, space, data


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    kind = "cuda" if device.startswith("cuda") else "cpu"
    settings = SETTINGS[kind]
    study, space, data = load(args)
    train, val, test = data.train_source(), (data.val.x, data.val.y), (data.test.x, data.test.y)
    context = space.resolution.max
    log(f"{data.describe()}; space {space.name} {space.size():.3g} archs, context {context}")

    # 1. the supernet, its horizon from the measured step speed; best.pt kept
    base = study.training.with_overrides(device=device, eval_batches=None,
                                         largest_first=args.largest_first)
    if args.smoke:
        base = base.with_overrides(batch_size=16, eval_batch_size=64, warmup_steps=5)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    steps = steps_for_budget(space=space, train=train, val=val, config=base,
                             seconds=args.train_seconds, probe_steps=3 if args.smoke else 20,
                             warmup_steps=1 if args.smoke else 4)
    # the baselines train as many steps (same tokens): the two together must fit the
    # --train-budget, so the horizon may be shorter than --train-seconds alone allows
    supernet_step_s = 0.92 * args.train_seconds / steps  # steps_for_budget's own margin
    base_step_s = {name: baseline_step_seconds(name, train=train, batch=base.batch_size,
                                               context=space.resolution.max,
                                               vocab=space.vocab_size, device=device,
                                               probe=6 if args.smoke else 16)
                   for name in args.baselines}
    joint = int(0.92 * args.train_budget / (supernet_step_s + sum(base_step_s.values())))
    if args.baseline_steps is None and joint < steps:
        log(f"horizon {steps} -> {max(10, joint)} steps: with the baselines' "
            f"{1e3 * sum(base_step_s.values()):.1f} ms per step the two fit in "
            f"{args.train_budget:.0f}s")
        steps = max(10, joint)
    horizon_s = time.perf_counter() - t0
    warmup = max(1, round(base.warmup_steps * steps / base.steps))
    config = base.with_overrides(steps=steps, warmup_steps=warmup,
                                 eval_every=max(1, steps // (3 if args.smoke else 12)),
                                 checkpoint_every=steps)
    log(f"supernet: {steps} steps (probes {horizon_s:.0f}s)")
    t0 = time.perf_counter()
    result = train_supernet(space=space, train=train, val=val, config=config,
                            out_dir=args.work / "supernet", progress=False,
                            time_limit_s=1.5 * args.train_seconds)
    train_s = time.perf_counter() - t0
    phases.update(horizon_probe=horizon_s, supernet=train_s)
    predicted = {"supernet_step_ms": 1e3 * supernet_step_s,
                 "baseline_step_ms": {k: 1e3 * v for k, v in base_step_s.items()}}
    net, kept_step = kept_supernet(space, result, device)
    log(f"trained {result.step} steps in {train_s:.0f}s; kept step {kept_step} "
        f"(panel loss {result.best_loss})")
    evaluate = CachedEvaluator(net, val, batch_size=256, device=device)
    cache = evaluate.cache

    # 2-3. a latency table per setting, one search against each
    fronts: dict[str, list[Arch]] = {}
    tables: dict[str, Any] = {}
    for setting, (batch, mode) in settings.items():
        t0 = time.perf_counter()
        phases.setdefault("tables", 0.0)
        phases.setdefault("search", 0.0)
        table, validation = build_latency_table(space, kind=kind, batch=batch, mode=mode,
                                                smoke=args.smoke,
                                                out=args.work / f"table_{setting}.json")
        tables[setting] = validation
        t1 = time.perf_counter()
        search = run_search(space=space, evaluate=evaluate, latency=table, progress=False,
                            config=SearchConfig(budget=args.search_budget,
                                                population=args.population, seed=0,
                                                objectives=("loss", "latency_ms")))
        fronts[setting] = search.front_archs()
        phases["tables"] += t1 - t0
        phases["search"] += time.perf_counter() - t1
        log(f"{setting}: table of {len(table)} entries in {t1 - t0:.0f}s; search front of "
            f"{len(fronts[setting])} in {time.perf_counter() - t1:.0f}s ({len(cache)} archs "
            f"labelled so far)")

    # 4. baselines: the same windows (seed), batch, schedule shape and number of steps
    recipe = FitRecipe.from_training(config, steps=args.baseline_steps or result.step)
    baselines: dict[str, dict[str, Any]] = {}
    baseline_models: dict[str, torch.nn.Module] = {}
    t_base = time.perf_counter()
    for name in args.baselines:
        model = build_text_baseline(name, seed=0, context=context,
                                    vocab_size=space.vocab_size)
        t0 = time.perf_counter()
        fit = fit_lm(model, train=train, recipe=recipe, seed=config.seed, device=device,
                     val=val, eval_batch_size=256,
                     eval_every=recipe.steps if args.smoke else None)
        if kind == "cuda":
            torch.cuda.synchronize()
        baseline_models[name] = fit.model
        baselines[name] = {"params": sum(p.numel() for p in fit.model.parameters()),
                           "train_seconds": time.perf_counter() - t0, "steps": recipe.steps,
                           "tokens": recipe.steps * recipe.batch_size * context,
                           "dropout": fit.model.config.dropout, "kept_step": fit.best_step,
                           "val_loss": fit.best_val_loss,
                           "final_train_loss": fit.final_train_loss}
        log(f"baseline {name}: {baselines[name]['params']:,} params, {recipe.steps} steps in "
            f"{baselines[name]['train_seconds']:.0f}s, val loss {fit.best_val_loss:.4f}")

    phases["baselines"] = time.perf_counter() - t_base
    # 5. front members exported; every model measured per setting, interleaved
    members: dict[str, Arch] = {}
    for archs in fronts.values():
        for a in archs:
            members.setdefault(a.key(), a)
    exported = {key: export_subnet(net, a).cpu() for key, a in members.items()}
    models = {**{f"arch:{k}": m for k, m in exported.items()},
              **{f"base:{k}": m for k, m in baseline_models.items()}}
    lengths = {k: members[k[5:]].resolution if k.startswith("arch:") else context
               for k in models}
    latency: dict[str, dict[str, float]] = {}
    for setting, (batch, mode) in settings.items():
        t0 = time.perf_counter()
        latency[setting] = measure(models, lengths, kind=kind, batch=batch, mode=mode,
                                   vocab=space.vocab_size, smoke=args.smoke)
        log(f"measured {len(models)} models at {setting} in {time.perf_counter() - t0:.0f}s")

    phases["latency"] = time.perf_counter() - t_base - phases["baselines"]
    # 6. scores: validation (the goals), then the test split once; the fine-tuned front apart
    test_scores = evaluate_many(net, list(members.values()), *test, batch_size=256,
                                device=device)
    rows: dict[str, dict[str, Any]] = {}
    for (key, arch), res in zip(members.items(), test_scores):
        rows[key] = {"arch": arch.to_json(), "label": arch.label(),
                     "params": space.params(arch), "flops": space.flops(arch),
                     "val_loss": cache[key]["val_loss"], "test_loss": res.loss,
                     "latency_ms": {s: latency[s][f"arch:{key}"] for s in settings},
                     "fronts": [s for s, archs in fronts.items() if arch in archs]}
    for name, model in baseline_models.items():
        baselines[name]["test_loss"] = evaluate_model(model.to(device), *test, batch_size=256,
                                                      device=device).loss
        baselines[name]["latency_ms"] = {s: latency[s][f"base:{name}"] for s in settings}
    tune = FitRecipe(steps=args.finetune_steps, batch_size=config.batch_size,
                     lr=config.lr * 0.1, weight_decay=config.weight_decay, warmup_steps=0,
                     min_lr_ratio=0.1, label_smoothing=config.label_smoothing)
    by_val = sorted(members, key=lambda k: rows[k]["val_loss"])[:args.finetune_max]
    t0 = time.perf_counter()
    for key in by_val if args.finetune_steps > 0 else []:
        fit = fit_lm(export_subnet(net, members[key]), train=train, recipe=tune,
                     seed=config.seed + 1, device=device, val=val, eval_batch_size=256,
                     eval_every=tune.steps if args.smoke else None)
        rows[key]["finetuned_val_loss"] = fit.best_val_loss
        rows[key]["finetuned_test_loss"] = evaluate_model(fit.model, *test, batch_size=256,
                                                          device=device).loss
    finetune_s = time.perf_counter() - t0
    phases["finetune"] = finetune_s
    extremes = evaluate_many(net, [space.largest(), space.smallest()], *val, batch_size=256,
                             device=device)
    extremes_test = evaluate_many(net, [space.largest()], *test, batch_size=256,
                                  device=device)

    front_of = {s: [rows[a.key()] for a in archs] for s, archs in fronts.items()}
    dominance = {s: {b: dominates(front_of[s], row, s, "val") for b, row in baselines.items()}
                 for s in settings}
    dominance_test = {s: {b: dominates(front_of[s], row, s, "test")
                          for b, row in baselines.items()} for s in settings}
    best = min(rows.values(), key=lambda f: f["val_loss"])
    tuned = [f["finetuned_val_loss"] for f in rows.values() if "finetuned_val_loss" in f]
    metrics: dict[str, Any] = {
        "largest_val_loss": extremes[0].loss, "largest_test_loss": extremes_test[0].loss,
        "smallest_val_loss": extremes[1].loss,
        "best_front_val_loss": best["val_loss"], "best_front_test_loss": best["test_loss"],
        "best_front_finetuned_val_loss": min(tuned) if tuned else None,
        **{f"dominates_{s}": all(d.values()) for s, d in dominance.items()},
        **{f"dominates_{s}_test": all(d.values()) for s, d in dominance_test.items()},
        "dominance": dominance, "dominance_test": dominance_test,
        "train_seconds": train_s, "supernet_steps": result.step,
        "supernet_kept_step": kept_step, "goal_largest_le_1_50": extremes[0].loss
        <= 1.50, "baselines": baselines, "front_sizes": {s: len(a) for s, a in fronts.items()},
    }
    raw = {"fronts": {s: [a.key() for a in archs] for s, archs in fronts.items()},
           "members": rows, "latency_tables": tables, "finetune_seconds": finetune_s,
           "finetune_steps": args.finetune_steps, "train_config": config.to_dict(),
           "baseline_recipe": recipe.__dict__, "search_budget": args.search_budget,
           "labelled": len(cache), "panel": result.panel, "smoke": args.smoke,
           "data": data.describe(), "space": space.describe(), "phase_seconds": phases,
           "predicted_step_times": predicted, "train_budget": args.train_budget}
    log(f"largest {extremes[0].loss:.4f}, best front {best['val_loss']:.4f} ({best['label']});"
        f" dominance {json.dumps(dominance)}")
    if not args.no_figures:
        figure(front_of, rows, baselines, settings, args.figures / "lm_gpu.png",
               device=device_name(device))
    return {"metrics": metrics, "raw": raw}


def figure(front_of: dict[str, list[dict]], rows: dict[str, dict],
           baselines: dict[str, dict], settings: dict[str, tuple[int, str]], path: Path, *,
           device: str) -> None:
    """One PNG, a panel per setting: validation loss against measured latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(settings), figsize=(6.2 * len(settings), 4.6), dpi=120)
    for ax, (setting, (batch, mode)) in zip(list(axes), settings.items()):
        front = front_of[setting]
        pts = sorted((f["latency_ms"][setting], f["val_loss"]) for f in front)
        ax.plot(*zip(*pts), "o-", color="tab:blue", label="searched front (inherited weights)")
        tuned = sorted((f["latency_ms"][setting], f["finetuned_val_loss"]) for f in front
                       if "finetuned_val_loss" in f)
        if tuned:
            ax.plot(*zip(*tuned), "o", mfc="none", color="tab:green",
                    label="same archs, short fine-tune")
        for i, (name, b) in enumerate(baselines.items()):
            ax.plot(b["latency_ms"][setting], b["val_loss"], "*", ms=13, color="tab:red",
                    label="GPT baselines (stand-alone, same tokens)" if i == 0 else None)
            ax.annotate(name, (b["latency_ms"][setting], b["val_loss"]),
                        textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"measured latency (ms), batch {batch}, {mode}")
        ax.set_ylabel("validation loss (nats / byte)")
        ax.set_title(f"{setting}: {device}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("tiny-shakespeare: searched hybrid front vs GPT baselines (same run)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--train-seconds", type=float, default=None,
                   help="supernet wall-clock budget at most (default 270 s; 10 s with "
                        "--smoke)")
    p.add_argument("--train-budget", type=float, default=None,
                   help="seconds for the supernet and the baselines' training together "
                        "(default 330; 20 with --smoke): the shared step count is cut to fit")
    p.add_argument("--baseline-steps", type=int, default=None,
                   help="steps of every baseline (default: the supernet's steps, the same "
                        "token budget)")
    p.add_argument("--baselines", default=None,
                   help=f"comma-separated names of {sorted(GPT_BASELINES)} (default all; "
                        f"with --smoke the two smaller)")
    p.add_argument("--search-budget", type=int, default=None,
                   help="archs labelled per search (default 100; 16 with --smoke)")
    p.add_argument("--population", type=int, default=None, help="default 16 (8 with --smoke)")
    p.add_argument("--finetune-steps", type=int, default=None,
                   help="fine-tune steps per front member (default 200; 5 with --smoke)")
    p.add_argument("--finetune-max", type=int, default=None,
                   help="fine-tune this many front members, those of lowest validation loss "
                        "(default 4; 2 with --smoke)")
    p.add_argument("--work", type=Path, default=None, help="default runs/lm_gpu[_smoke]")
    p.add_argument("--figures", type=Path, default=None,
                   help="folder of lm_gpu.png (default docs/; runs/lm_gpu_smoke with --smoke)")
    p.add_argument("--results", type=Path, default=None, help="folder of lm_gpu.json "
                   "(default benchmarks/results; runs/lm_gpu_smoke with --smoke)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--largest-first", type=float, default=None, metavar="FRACTION",
                   help="override the study's training.largest_first (the share of the "
                   "schedule that trains the largest subnet alone)")
    p.add_argument("--smoke", action="store_true", help="a small space, 32-byte windows and "
                   "a few steps of everything: a check of the whole path, not a measurement")
    args = p.parse_args(argv)
    smoke = args.smoke
    defaults = {"train_seconds": 10.0 if smoke else 270.0, "search_budget": 16 if smoke else 100,
                "train_budget": 20.0 if smoke else 330.0,
                "population": 8 if smoke else 16, "finetune_steps": 5 if smoke else 200,
                "finetune_max": 2 if smoke else 4,
                "baselines": "gpt_4x256,gpt_2x192" if smoke else ",".join(GPT_BASELINES)}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    scratch = ROOT / "runs" / ("lm_gpu_smoke" if smoke else "lm_gpu")
    args.work = args.work or scratch
    args.figures = args.figures or (scratch if smoke else ROOT / "docs")
    args.results = args.results or (scratch if smoke else None)
    args.baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    bad = [b for b in args.baselines if b not in GPT_BASELINES]
    if bad or not args.baselines:
        p.error(f"--baselines: {bad or 'empty'} not in {sorted(GPT_BASELINES)}")
    if args.train_seconds <= 0 or args.train_budget <= 0 or args.search_budget < args.population:
        p.error("--train-seconds and --train-budget must be > 0, --search-budget >= "
                "--population")
    if args.largest_first is not None and not 0 <= args.largest_first <= 1:
        p.error(f"--largest-first must be in [0, 1], got {args.largest_first}")
    if (args.baseline_steps is not None and args.baseline_steps < 1) or min(
            args.finetune_steps, args.finetune_max) < 0:
        p.error("--baseline-steps must be >= 1, --finetune-steps and --finetune-max >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here (use --device cpu --smoke)")
    if not args.device.startswith("cuda") and not smoke:
        p.error("a CPU run is only a path check: pass --smoke (the goals are GPU numbers)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.work.exists():  # a benchmark starts from nothing: no stale checkpoint or table
        import shutil

        shutil.rmtree(args.work)
    out = run(args)
    out["raw"]["wall_seconds"] = time.perf_counter() - started
    path = write_result("lm_gpu", metrics=out["metrics"], raw=out["raw"],
                        device=device_name(args.device), out_dir=args.results)
    m = out["metrics"]
    log(f"wrote {path} in {out['raw']['wall_seconds']:.0f}s")
    print(f"largest {m['largest_val_loss']:.4f}, best front {m['best_front_val_loss']:.4f}, "
          + ", ".join(f"{k} {v}" for k, v in m.items() if k.startswith("dominates_")))
    for name, b in m["baselines"].items():
        lat = " ".join(f"{s} {v:.3f}ms" for s, v in b["latency_ms"].items())
        print(f"  {name:10s} val {b['val_loss']:.4f} test {b['test_loss']:.4f} "
              f"params {b['params']:,} {lat}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
