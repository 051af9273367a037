"""Benchmark `audit`: does the supernet rank subnets the way stand-alone training does?

For the MNIST and CIFAR-10-subset studies (and tiny-shakespeare, `shakespeare`: ranked by
the test loss, trained on random-offset windows, gap in nats, > 0 when inherited is worse):
the supernet is trained here with the study's own recipe; N archs are picked with
`nas.audit.select_archs` (log-FLOPs strata) among the 1,000 archs of
``benchmarks/results/labels/<study>.jsonl`` (so the earlier labels can be compared too;
a study without such a file draws its candidates from its space); each is trained from
scratch as its exported model (`train_standalone`,
the study's recipe for ``--budget`` x its steps) with S seeds and scored on the test
split, as are the supernet's inherited weights. The project's GNN predictor is fitted on
the labels file (validation losses of an earlier, time-limited supernet) minus the audited
archs and ranks them too; FLOPs alone is the floor, the seed-to-seed tau the ceiling.
All runs are independent processes sharing one GPU (each is bound by kernel launches);
the stand-alone ones run niced so the supernet run, the long pole, keeps a core. A
dataset per call fits the device's time limit; the results merge into one JSON.
Torch, numpy, scipy and torch-geometric only: no store, no Ray.

    NAS_SHARED_DATA=$PWD/.devdata python benchmarks/audit.py --device cuda \
        --datasets mnist --standalone-steps 800
    NAS_SHARED_DATA=$PWD/.devdata python benchmarks/audit.py --device cuda \
        --datasets cifar10_subset --standalone-steps 1000
    NAS_SHARED_DATA=$PWD/.devdata python benchmarks/audit.py --device cuda \
        --datasets shakespeare --n 10 --seeds 1 --supernet-steps 4000 --standalone-steps 1500
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_io import device_name, write_result  # noqa: E402

from nas.audit.config import StandaloneRecipe  # noqa: E402
from nas.audit.fidelity import disagreements, rank_fidelity  # noqa: E402
from nas.audit.selection import select_archs  # noqa: E402
from search_spaces import Arch  # noqa: E402

DATASETS = {"mnist": ("studies/mnist_hybrid.py", "mnist_hybrid.jsonl"),
            "cifar10_subset": ("studies/cifar10_subset.py", "cifar10_subset.jsonl"),
            "shakespeare": ("studies/shakespeare_lm.py", None)}
LABELS = ROOT / "benchmarks" / "results" / "labels"
_LOADED: dict[str, Any] = {}
LABEL_SEED = 4242


def _study(study_file: str):
    """(study, space, data) loaded once per process."""
    if study_file not in _LOADED:
        from nas.study import load_study

        study = load_study(ROOT / study_file)
        _LOADED[study_file] = (study, study.build_space(), study.load_data())
    return _LOADED[study_file]


def _init_worker(niceness: int = 0) -> None:
    import torch

    torch.set_num_threads(1)
    if niceness:
        os.nice(niceness)  # the supernet run (the long pole) keeps its core


def supernet_job(study_file: str, device: str, steps: int | None, arch_jsons: list[str],
                 out: str, time_limit: float | None) -> dict[str, Any]:
    """Train the study's supernet (its recipe; ``steps`` shortens it for a smoke run; a
    sequence study on its random-offset windows) and score the audited archs with the
    weights `nas run` keeps (the best validation panel, ``best.pt``) on the test split."""
    from nas.evaluation import evaluate_many
    from nas.training import load_checkpoint, train_supernet

    study, space, data = _study(study_file)
    config = study.training.with_overrides(device=device, steps=steps)
    if steps is not None:  # a shortened schedule keeps its warm-up share
        config = config.with_overrides(warmup_steps=min(config.warmup_steps, steps // 10))
    t0 = time.time()
    result = train_supernet(space=space, train=data.train_source(),
                            val=(data.val.x, data.val.y), config=config,
                            out_dir=Path(out) / f"horizon-{config.steps}",
                            resume=True, progress=False, time_limit_s=time_limit)
    seconds = time.time() - t0
    net = result.supernet
    if result.best is not None:
        net.load_state_dict(load_checkpoint(result.best, map_location=device)["model"])
    archs = [Arch.from_json(j) for j in arch_jsons]
    scores = evaluate_many(net, archs, data.test.x, data.test.y,
                           batch_size=256 if space.modality == "sequence" else 1000,
                           device=device)
    return {"kind": "supernet", "study": study.name, "steps": result.step,
            "kept_step": result.best_step, "horizon": config.steps, "seconds": seconds,
            "panel": result.panel,
            "test_accuracy": {a.key(): r.accuracy for a, r in zip(archs, scores)},
            "test_loss": {a.key(): r.loss for a, r in zip(archs, scores)}}


def standalone_job(study_file: str, device: str, arch_json: str, seed: int,
                   recipe: dict[str, Any]) -> dict[str, Any]:
    from nas.audit.standalone import train_standalone

    study, space, data = _study(study_file)
    result = train_standalone(space=space, arch=Arch.from_json(arch_json), seed=seed,
                              recipe=StandaloneRecipe(**recipe), train=data.train_source(),
                              test=(data.test.x, data.test.y), device=device)
    return {"kind": "standalone", "study": study.name, **result.to_dict()}


def load_labels(name: str | None, space) -> dict[str, dict[str, Any]]:
    """The labels file's rows whose arch is in ``space`` (a study whose space changed since
    the labels were made keeps none of them; a dataset without a labels file, none)."""
    path = LABELS / name if name else None
    if path is None or not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    out = {}
    for r in rows:
        arch = Arch.from_json(r["arch"])
        try:
            space.validate(arch)
        except ValueError:
            continue
        out[arch.key()] = r
    return out


def fit_predictor(space, labels: dict[str, dict[str, Any]], audited: list[Arch]) -> list[float]:
    """GNN fitted on every labelled arch but the audited ones; minus its predicted loss."""
    from predictors import make_predictor

    keys = {a.key() for a in audited}
    train = [(Arch.from_json(r["arch"]), r["val_loss"]) for k, r in labels.items()
             if k not in keys]
    if len(train) < 32:  # no labels of this space: no predictor to rank with
        return [float("nan")] * len(audited)
    model = make_predictor("gnn", space, seed=0).fit([a for a, _ in train],
                                                     [y for _, y in train])
    mean, _ = model.predict(audited)
    return [-float(m) for m in mean]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--budget", type=float, default=0.5,
                   help="stand-alone steps as a fraction of the study's supernet steps")
    p.add_argument("--supernet-steps", type=int, default=None,
                   help="shorten the supernet schedule (smoke runs only)")
    p.add_argument("--standalone-steps", type=int, default=None,
                   help="stand-alone steps (overrides --budget)")
    p.add_argument("--procs", type=int, default=8,
                   help="stand-alone processes sharing the GPU (plus one per supernet)")
    p.add_argument("--niceness", type=int, default=10,
                   help="nice value of the stand-alone processes")
    p.add_argument("--deadline", type=float, default=500.0,
                   help="seconds; runs unfinished by then are reported as missing")
    p.add_argument("--work", default="runs/bench_audit")
    p.add_argument("--name", default="audit", help="results/<name>.json")
    p.add_argument("--seed", type=int, default=0, help="selection seed")
    return p.parse_args()


HEADLINES = ("supernet_tau", "predictor_tau", "flops_tau", "noise_ceiling_tau", "goal_met",
             "gap_goal_met", "mean_gap_inherited_vs_standalone")


def flat_headlines(metrics: dict) -> dict:
    """``<dataset>.supernet_tau`` etc. beside the per-dataset blocks (the issue's keys)."""
    return {f"{ds}.{key}": block[key] for ds, block in metrics.items()
            if isinstance(block, dict) for key in HEADLINES if key in block}


def main() -> None:
    args = parse_args()
    started = time.time()
    work = ROOT / args.work
    plan: dict[str, dict[str, Any]] = {}
    for ds in args.datasets:
        study_file, labels_file = DATASETS[ds]
        study, space, _ = _study(study_file)
        labels = load_labels(labels_file, space)
        archs = [Arch.from_json(r["arch"]) for r in labels.values()]
        if len(archs) < 10 * args.n:  # the space changed: candidates drawn from it instead
            rng = np.random.default_rng(LABEL_SEED)
            archs = list({a.key(): a for a in (space.sample(rng) for _ in range(1000))}
                         .values())
        selection = select_archs(space=space, n=args.n, candidates=archs, seed=args.seed,
                                 include_extremes=False)
        recipe = StandaloneRecipe.from_training(study.training, budget=args.budget,
                                                steps=args.standalone_steps)
        plan[ds] = {"study_file": study_file, "space": space, "labels": labels,
                    "selection": selection, "recipe": recipe}
        print(f"{ds}: {len(selection)} archs, FLOPs {selection[0].flops:,} .. "
              f"{selection[-1].flops:,}; stand-alone {recipe.describe()}", flush=True)
    ctx = mp.get_context("spawn")
    futures: dict[cf.Future, tuple[str, str]] = {}
    results: dict[str, dict[str, Any]] = {ds: {"supernet": None, "standalone": []}
                                          for ds in plan}
    supernets = cf.ProcessPoolExecutor(max_workers=len(plan), mp_context=ctx,
                                       initializer=_init_worker)
    with supernets, cf.ProcessPoolExecutor(max_workers=args.procs, mp_context=ctx,
                                           initializer=_init_worker,
                                           initargs=(args.niceness,)) as pool:
        limit = max(30.0, args.deadline - 90.0)  # leave time for the inherited-weight scores
        for ds, p in plan.items():  # the long supernet runs, each in its own process
            futures[supernets.submit(supernet_job, p["study_file"], args.device,
                                     args.supernet_steps,
                                     [s.arch.to_json() for s in p["selection"]],
                                     str(work / ds / "supernet"), limit)] = (ds, "supernet")
        for seed in range(args.seeds):
            for ds, p in plan.items():
                for s in p["selection"]:
                    futures[pool.submit(standalone_job, p["study_file"], args.device,
                                        s.arch.to_json(), seed, p["recipe"].to_dict())] = (
                        ds, "standalone")
        predictions = {}
        for ds, p in plan.items():  # meanwhile, on this process's CPU
            t0 = time.time()
            predictions[ds] = fit_predictor(p["space"], p["labels"],
                                            [s.arch for s in p["selection"]])
            print(f"{ds}: GNN predictor fitted in {time.time() - t0:.0f} s", flush=True)
        remaining = args.deadline - (time.time() - started)
        done, not_done = cf.wait(futures, timeout=max(1.0, remaining))
        for future in not_done:
            future.cancel()
        for future in done:
            ds, kind = futures[future]
            out = future.result()
            if kind == "supernet":
                results[ds]["supernet"] = out
            else:
                results[ds]["standalone"].append(out)
        print(f"{len(done)} of {len(futures)} runs finished in {time.time() - started:.0f} s",
              flush=True)
        if not_done:
            for executor in (pool, supernets):
                executor.shutdown(wait=False, cancel_futures=True)
    metrics, raw = summarise(plan, results, predictions, args)
    metrics.update(flat_headlines(metrics))
    raw["wall_seconds"] = time.time() - started
    path = write_result(args.name, metrics=metrics, raw=raw, device=device_name(args.device))
    print(json.dumps(metrics, indent=1))
    print(f"wrote {path}")


def summarise(plan, results, predictions, args) -> tuple[dict[str, Any], dict[str, Any]]:
    metrics: dict[str, Any] = {}
    raw: dict[str, Any] = {"n": args.n, "seeds": args.seeds, "budget": args.budget,
                           "standalone_steps": args.standalone_steps, "procs": args.procs,
                           "cpus": os.cpu_count()}
    for ds, p in plan.items():
        sup = results[ds]["supernet"]
        runs = results[ds]["standalone"]
        by = {(r["arch_key"], r["seed"]): r for r in runs}
        metric_name = ("test_loss" if p["space"].modality == "sequence" else "test_accuracy")
        # a run that diverged (NaN / inf score) is reported, not ranked: one bad run must not
        # throw away the rest of an audit's device time
        diverged = sorted({k for (k, _), r in by.items()
                           if not np.isfinite(float(r.get(metric_name, float("nan"))))}
                          | {k for k, v in ((sup or {}).get(metric_name) or {}).items()
                             if not np.isfinite(float(v))})
        selection = [s for s in p["selection"] if s.arch.key() not in diverged
                     and all((s.arch.key(), seed) in by for seed in range(args.seeds))]
        keys = [s.arch.key() for s in selection]
        entry: dict[str, Any] = {"archs_complete": len(keys), "runs": len(runs),
                                 "diverged": diverged, "recipe": p["recipe"].to_dict()}
        raw[ds] = {"standalone": runs, "recipe": p["recipe"].to_dict(),
                   "selection": [s.to_dict() for s in p["selection"]],
                   "supernet": sup, "predictor": dict(zip(
                       [s.arch.key() for s in p["selection"]], predictions[ds]))}
        if sup is None or len(keys) < 3:
            entry["error"] = ("supernet unfinished" if sup is None else
                              f"only {len(keys)} archs have every seed")
            metrics[ds] = entry
            continue
        # a language model is ranked by its test loss (negated: ranks want higher = better)
        sequence = p["space"].modality == "sequence"
        metric, sign = ("test_loss", -1.0) if sequence else ("test_accuracy", 1.0)
        values = np.array([[by[(k, seed)][metric] for seed in range(args.seeds)]
                           for k in keys])
        matrix = sign * values
        pred_by = raw[ds]["predictor"]
        labels = p["labels"]
        proxies = {"supernet": [sign * sup[metric][k] for k in keys],
                   "flops": [float(s.flops) for s in selection]}
        if all(np.isfinite(pred_by[k]) for k in keys):
            proxies["predictor"] = [pred_by[k] for k in keys]
        if all(k in labels for k in keys):
            proxies["labels_supernet"] = [labels[k]["val_acc"] for k in keys]
        report = rank_fidelity(standalone=matrix, proxies=proxies,
                               top_k=max(1, round(0.25 * len(keys))), seed=0)
        comp, ceiling = report["comparisons"], report["noise_ceiling"]
        for name in proxies:
            for m in ("kendall_tau", "spearman_rho", "top_k_recall"):
                entry[f"{name}_{m}"] = comp[name][m]
                entry[f"{name}_{m}_ci"] = comp[name][f"{m}_ci"]
        entry["supernet_tau"] = comp["supernet"]["kendall_tau"]
        entry["predictor_tau"] = (comp["predictor"]["kendall_tau"] if "predictor" in comp
                                  else None)
        if sequence:  # nats per byte, > 0 when inherited is worse (the sign)
            gaps = [sup[metric][k] - t for k, t in zip(keys, values.mean(1))]
            entry["metric"] = metric
            entry["mean_gap_inherited_vs_standalone"] = float(np.mean(gaps))
            entry["gap_nats"] = dict(zip(keys, gaps))
            entry["gap_goal_met"] = bool(entry["mean_gap_inherited_vs_standalone"] <= 0.05)
        else:
            gaps = [100 * (sup["test_accuracy"][k] - t) for k, t in zip(keys, matrix.mean(1))]
            entry["mean_gap_inherited_vs_standalone"] = float(np.mean(gaps))  # points, < 0: worse
            entry["gap_points"] = dict(zip(keys, gaps))
        entry["flops_tau"] = comp["flops"]["kendall_tau"]
        entry["noise_ceiling_tau"] = ceiling.get("kendall_tau")
        entry["noise_ceiling_tau_ci"] = ceiling.get("kendall_tau_ci")
        ceil = entry["noise_ceiling_tau"]
        entry["supernet_over_ceiling"] = (entry["supernet_tau"] / ceil if ceil and ceil > 0
                                          else None)
        entry["goal_met"] = bool((entry["supernet_tau"] >= 0.8 or (
            entry["supernet_over_ceiling"] or 0) >= 0.9)
            and entry["supernet_tau"] > entry["flops_tau"])
        entry["supernet_steps"] = sup["steps"]
        entry["supernet_complete"] = sup["steps"] == sup["horizon"]
        entry["supernet_horizon"] = sup["horizon"]
        entry["supernet_seconds"] = sup["seconds"]
        entry["supernet_kept_step"] = sup.get("kept_step")
        entry["standalone_seconds_mean"] = statistics.mean(r["seconds"] for r in runs)
        entry[f"standalone_{'loss' if sequence else 'accuracy'}_range"] = [
            float(values.mean(1).min()), float(values.mean(1).max())]
        truth = matrix.mean(1)
        raw[ds]["report"] = report
        raw[ds]["table"] = [{"arch_key": k, "label": s.arch.label(), "stratum": s.stratum,
                             "flops": s.flops, "standalone": float(sign * t),
                             "standalone_seeds": [float(sign * v) for v in row],
                             "supernet": sup[metric][k],
                             "labels_val_acc": labels.get(k, {}).get("val_acc"),
                             "predictor": pred_by[k]}
                            for k, s, t, row in zip(keys, selection, truth, matrix)]
        raw[ds]["disagreements"] = {name: disagreements(keys, truth, scores, limit=12)
                                    for name, scores in proxies.items()}
        metrics[ds] = entry
    return metrics, raw


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
