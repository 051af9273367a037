"""Benchmark `predictor`: rank quality per labelled sample of the GNN and every baseline.

Input, per dataset, a labels file of JSON lines (one labelled subnet each)::

    {"arch": {...arch JSON object or string...}, "space": "hybrid_vit_tiny", "overrides": {...},
     "val_loss": float, "val_loss_a": float, "val_loss_b": float, "val_acc": float}

where ``val_loss_a`` / ``val_loss_b`` are the losses on two disjoint halves of the
validation set (``val_loss`` on all of it). For each of ``--seeds`` seeds: a random
``--test`` archs are the test set, and each method is trained on the first 32 / 64 / 128 /
256 of the rest (nested), then scored on the test set: Kendall tau, Spearman rho and
top-5 % precision (labels are losses: lower is better). The noise ceiling is the
Spearman-Brown-corrected tau between ``val_loss_a`` and ``val_loss_b`` over all archs
(test-retest agreement, the issue's definition); ``truth_ceiling_tau`` is the higher bound a
predictor of the noise-free score could reach against one evaluation (see
`predictors.metrics.truth_ceiling_tau`).
Headline metrics are the worse of the datasets: ``gnn.tau_256``, ``best_baseline.tau_256``,
``noise_ceiling_tau``; ``gnn.archs_per_s`` is the scoring throughput of the fitted ensemble
(encoding included) on this CPU, which must reach ``--min-archs-per-s``.

The (dataset, seed) jobs run in ``--workers`` processes of one thread each (the accuracy
part fits on a 16-core box in a few minutes). ``--first-seed`` moves the seeds away from the
benchmark's 0-4 for tuning. ``--throughput-only`` fits one GNN and measures only
``gnn.archs_per_s``; `bench_io.write_result` merges it, under its own device, into the
results of an accuracy run made elsewhere. Each run appends a BENCHMARKS.md row built from
the merged file (``--no-row``: none), with the goal verdicts (`verdicts`).

    python benchmarks/predictor.py --labels mnist=labels/mnist.jsonl \
        --labels cifar=labels/cifar.jsonl --workers 10 --throughput-archs 0 --no-row
    python benchmarks/predictor.py --labels mnist=labels/mnist.jsonl \
        --labels cifar=labels/cifar.jsonl --throughput-only   # on the target CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_io import RESULTS, device_name, write_result  # noqa: E402

from predictors import (  # noqa: E402
    kendall_tau,
    list_predictors,
    make_predictor,
    noise_ceiling_tau,
    spearman_rho,
    top_k_precision,
    truth_ceiling_tau,
)
from predictors.metrics import bootstrap_ci  # noqa: E402
from search_spaces import Arch, SearchSpace, get_space  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIELDS = ("arch", "space", "val_loss", "val_loss_a", "val_loss_b")
HEADLINE = ("gnn.tau_256", "best_baseline.tau_256", "noise_ceiling_tau", "gnn.archs_per_s")
GOAL_TAU, GOAL_SHARE, GOAL_BASELINE_FROM = 0.85, 0.9, 128


def load_labels(path: Path) -> tuple[SearchSpace, list[Arch], dict[str, np.ndarray]]:
    """Archs of one space and their label columns; ValueError naming the bad line."""
    archs, columns = [], {k: [] for k in ("val_loss", "val_loss_a", "val_loss_b")}
    space, space_id = None, None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        missing = [k for k in FIELDS if k not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        this_id = (row["space"], json.dumps(row.get("overrides", {}), sort_keys=True))
        if space is None:
            space, space_id = get_space(row["space"], **row.get("overrides", {})), this_id
        elif this_id != space_id:
            raise ValueError(f"{where}: space {this_id} differs from the file's first {space_id}")
        try:
            arch = row["arch"]  # an arch object, or its JSON string
            archs.append(space.validate(Arch.from_json(arch) if isinstance(arch, str)
                                        else Arch.from_dict(arch)))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        for k in columns:
            columns[k].append(float(row[k]))
    if space is None or len(archs) < 2:
        raise ValueError(f"{path}: fewer than 2 labelled archs")
    return space, archs, {k: np.asarray(v) for k, v in columns.items()}


def score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {"tau": kendall_tau(pred, true), "spearman": spearman_rho(pred, true),
            "top5": top_k_precision(pred, true, fraction=0.05, lower_is_better=True)}


def seed_runs(job: tuple[str, Path, int, argparse.Namespace, dict[str, Any]]) -> list[dict]:
    """Every method at every label count for one dataset and one seed (one worker's job)."""
    name, path, seed, args, gnn_options = job
    torch.set_num_threads(1)  # workers share the cores: one thread each
    space, archs, labels = load_labels(path)
    y = labels["val_loss"]
    n_test = test_count(name, len(archs), args)
    perm = np.random.default_rng(seed).permutation(len(archs))
    test, pool = perm[:n_test], perm[n_test:]
    test_archs = [archs[i] for i in test]
    runs: list[dict[str, Any]] = []
    for n in args.sizes:
        train = pool[:n]  # nested: the first n of the same pool
        train_archs = [archs[i] for i in train]
        for method in args.methods:
            options = dict(gnn_options) if method == "gnn" else {}
            predictor = make_predictor(method, space, seed=seed, **options)
            t0 = time.perf_counter()
            predictor.fit(train_archs, y[train])
            fit_s = time.perf_counter() - t0
            mean, std = predictor.predict(test_archs)
            result = {"seed": seed, "n": int(n), "method": method, "fit_s": fit_s,
                      **score(mean, y[test]), "mean_std": float(std.mean())}
            runs.append(result)
            print(f"{name} seed {seed} n {n:4d} {method:18s} tau {result['tau']:.3f} "
                  f"spearman {result['spearman']:.3f} top5 {result['top5']:.2f} "
                  f"fit {fit_s:.1f}s", flush=True)
    return runs


def test_count(name: str, total: int, args: argparse.Namespace) -> int:
    n_test = min(args.test, total - max(args.sizes))
    if n_test < 20:
        raise ValueError(f"{name}: {total} archs leave {n_test} for testing (need >= 20)")
    return n_test


def summarise(runs: list[dict[str, Any]], labels: dict[str, np.ndarray], n_archs: int,
              n_test: int, args: argparse.Namespace) -> dict[str, Any]:
    """Means (and standard deviations over seeds) per method and label count, and the
    noise ceilings of one dataset."""
    ceiling = noise_ceiling_tau(labels["val_loss_a"], labels["val_loss_b"])
    ceiling_half = noise_ceiling_tau(labels["val_loss_a"], labels["val_loss_b"],
                                     spearman_brown=False)
    low, high = bootstrap_ci(lambda a, b: noise_ceiling_tau(a, b), labels["val_loss_a"],
                             labels["val_loss_b"], n=200, seed=0)
    summary: dict[str, Any] = {"noise_ceiling_tau": ceiling, "noise_ceiling_tau_half": ceiling_half,
                               "truth_ceiling_tau": truth_ceiling_tau(labels["val_loss_a"],
                                                                      labels["val_loss_b"]),
                               "noise_ceiling_tau_ci95": [low, high], "archs": n_archs,
                               "test": n_test}
    for method in args.methods:
        for n in args.sizes:
            rows = [r for r in runs if r["method"] == method and r["n"] == n]
            for key in ("tau", "spearman", "top5", "fit_s"):
                values = [r[key] for r in rows]
                summary[f"{method}.{key}_{n}"] = statistics.mean(values)
                if key != "fit_s" and len(values) > 1:
                    summary[f"{method}.{key}_{n}_sd"] = statistics.stdev(values)
    baselines = [m for m in args.methods if m != "gnn"]
    for n in args.sizes if baselines else []:
        best = max(baselines, key=lambda m: summary[f"{m}.tau_{n}"])
        summary[f"best_baseline.name_{n}"] = best
        summary[f"best_baseline.tau_{n}"] = summary[f"{best}.tau_{n}"]
    return summary


def run_all(datasets: dict[str, Path], args: argparse.Namespace,
            gnn_options: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Runs per dataset; the (dataset, seed) jobs spread over ``args.workers`` processes."""
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(name, path, seed, args, gnn_options) for name, path in datasets.items()
            for seed in seeds]
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(min(args.workers, len(jobs))) as pool:
            results = pool.map(seed_runs, jobs, chunksize=1)
    else:
        results = [seed_runs(job) for job in jobs]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in datasets}
    for job, result in zip(jobs, results):
        runs[job[0]] += result
    return runs


def throughput(predictor: Any, space: SearchSpace, count: int) -> dict[str, float]:
    """Archs scored per second, encoding and the whole ensemble included (best of 3 runs):
    as configured (``threads=1`` by default) and with torch's default thread count; with
    the load average, since this CPU is shared."""
    rng = np.random.default_rng(123)
    candidates = [space.sample(rng) for _ in range(count)]
    configured = predictor.config
    out: dict[str, float] = {"loadavg_1min": os.getloadavg()[0]}
    settings = {"configured": configured,
                f"torch_default_{torch.get_num_threads()}_threads":
                    dataclasses.replace(configured, threads=None)}
    try:
        for name, config in settings.items():
            predictor.config = config
            predictor.predict(candidates[:256])  # warm-up
            rates = []
            for _ in range(3):
                t0 = time.perf_counter()
                predictor.predict(candidates)
                rates.append(count / (time.perf_counter() - t0))
            out[name] = max(rates)
    finally:
        predictor.config = configured
    return out


def goal_target(ceiling: float) -> float:
    """The issue's goal for the GNN's tau at the largest label count: 0.85, or 90 % of the
    noise ceiling where the ceiling is below 0.85."""
    return GOAL_TAU if ceiling >= GOAL_TAU else GOAL_SHARE * ceiling


def verdicts(metrics: dict[str, Any], names: list[str], sizes: list[int],
             min_archs_per_s: float) -> dict[str, Any]:
    """Per dataset and overall: does each goal hold (see the module docstring)."""
    top, out = max(sizes), {}
    for d in names:
        m = metrics[d]
        if f"gnn.tau_{top}" not in m:
            continue
        out[f"{d}.goal_tau_target"] = goal_target(m["noise_ceiling_tau"])
        out[f"{d}.goal_tau_met"] = m[f"gnn.tau_{top}"] >= out[f"{d}.goal_tau_target"]
        if f"best_baseline.tau_{top}" in m:
            out[f"{d}.goal_vs_baseline_met"] = all(
                m[f"gnn.tau_{n}"] >= m[f"best_baseline.tau_{n}"] for n in sizes
                if n >= GOAL_BASELINE_FROM)
    for goal in ("goal_tau_met", "goal_vs_baseline_met"):
        values = [out[f"{d}.{goal}"] for d in names if f"{d}.{goal}" in out]
        if values:
            out[goal] = all(values)
    if "gnn.archs_per_s" in metrics:
        out["goal_archs_per_s_met"] = metrics["gnn.archs_per_s"] >= min_archs_per_s
    return out


def _fmt(values: list[float]) -> str:
    return "/".join(f"{v:.3f}" for v in values)


def row_text(result: dict[str, Any], *, min_archs_per_s: float) -> str:
    """One BENCHMARKS.md row (date, benchmark, device, command, comparison, goal, result)
    from a merged results file."""
    metrics, raw = result["metrics"], result["raw"]
    sizes, names = raw["sizes"], raw["datasets"]
    top = max(sizes)
    parts = []
    for d in names:
        m = metrics[d]
        methods = [k for k in raw["methods"] if f"{k}.tau_{top}" in m]
        taus = "; ".join(f"{k} {_fmt([m[f'{k}.tau_{n}'] for n in sizes])}" for k in methods)
        parts.append(
            f"**{d}** ({m['archs']} archs, {m['test']} test, {raw['seeds']} seeds), Kendall tau "
            f"at {'/'.join(map(str, sizes))} labels: {taus}; at {top}: Spearman gnn "
            f"{m.get(f'gnn.spearman_{top}', float('nan')):.3f}, top-5 % gnn "
            f"{m.get(f'gnn.top5_{top}', float('nan')):.2f} vs best baseline "
            f"({m.get(f'best_baseline.name_{top}', '-')}) "
            f"{m.get(m.get(f'best_baseline.name_{top}', '-') + f'.top5_{top}', float('nan')):.2f}"
            f"; noise ceiling {m['noise_ceiling_tau']:.3f} (split-half "
            f"{m['noise_ceiling_tau_half']:.3f}, truth ceiling {m['truth_ceiling_tau']:.3f})")
    if "gnn.archs_per_s" in metrics:
        t = raw.get("throughput", {})
        parts.append(f"scoring {metrics['gnn.archs_per_s']:.0f} archs/s (1 thread, encoding "
                     f"and {t.get('ensemble', '?')}-member ensemble, load average "
                     f"{t.get('loadavg_1min', float('nan')):.1f})")
    goal = (f"`gnn.tau_{top}` >= {GOAL_TAU} (or >= {GOAL_SHARE:.0%} of the noise ceiling "
            f"where it is lower) on both datasets; GNN >= best baseline from "
            f"{GOAL_BASELINE_FROM} labels on; >= {min_archs_per_s:,.0f} archs/s")
    v = verdicts(metrics, names, sizes, min_archs_per_s)

    def mark(ok: bool | None) -> str:
        return "met" if ok else "**missed**"

    results = []
    for d in names:
        m = metrics[d]
        if f"{d}.goal_tau_met" in v:
            results.append(f"{d}: tau {mark(v[f'{d}.goal_tau_met'])} ({m[f'gnn.tau_{top}']:.3f}"
                           f" vs {v[f'{d}.goal_tau_target']:.3f}), vs baseline "
                           f"{mark(v.get(f'{d}.goal_vs_baseline_met'))}")
    if "goal_archs_per_s_met" in v:
        results.append(f"throughput {mark(v['goal_archs_per_s_met'])}")
    headline = ", ".join(f"`{k}` {metrics[k]:.3f}" for k in HEADLINE if k in metrics)
    return (f"| {result['date']} | predictor | {result['device']} | `{result['command']}` | "
            f"{'; '.join(parts)} | {goal} | {headline}; {'; '.join(results)} |")


def append_row(path: Path, row: str) -> None:
    """Append one row to BENCHMARKS.md (which must exist: its header is shared)."""
    if not path.exists():
        raise SystemExit(f"{path}: missing; it holds the shared header the rows go under")
    with path.open("a") as fh:
        fh.write(row + "\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--sizes", default="32,64,128,256")
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed .. first-seed + seeds - 1 (tune on others)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running (dataset, seed) jobs, one thread each")
    parser.add_argument("--methods", default=",".join(list_predictors()))
    parser.add_argument("--gnn", action="append", default=[], metavar="KEY=VALUE",
                        help="GNNConfig option, e.g. --gnn conv=gat")
    parser.add_argument("--throughput-archs", type=int, default=20000,
                        help="archs scored for gnn.archs_per_s (0: skip)")
    parser.add_argument("--throughput-only", action="store_true",
                        help="only fit one GNN and measure gnn.archs_per_s, merged into the "
                             "results of an earlier run (e.g. accuracy on another machine)")
    parser.add_argument("--min-archs-per-s", type=float, default=5000.0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-row", action="store_true", help="write no BENCHMARKS.md row")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(list_predictors()))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {list_predictors()}")
    if args.workers < 1 or args.seeds < 1 or args.throughput_archs < 0:
        parser.error("--workers and --seeds must be >= 1, --throughput-archs >= 0")
    if args.throughput_only and ("gnn" not in args.methods or not args.throughput_archs):
        parser.error("--throughput-only needs gnn among --methods and --throughput-archs > 0")
    return args


def gnn_option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def fitted_gnn(path: Path, args: argparse.Namespace,
               gnn_options: dict[str, Any]) -> tuple[Any, SearchSpace]:
    """The GNN of the first seed at the largest label count, as the benchmark fits it."""
    space, archs, labels = load_labels(path)
    n_test = test_count(str(path), len(archs), args)
    perm = np.random.default_rng(args.first_seed).permutation(len(archs))
    train = perm[n_test:][:max(args.sizes)]
    gnn = make_predictor("gnn", space, seed=args.first_seed, **gnn_options)
    return gnn.fit([archs[i] for i in train], labels["val_loss"][train]), space


def main() -> None:
    args = parse_args()
    gnn_options = dict(gnn_option(t) for t in args.gnn)
    datasets: dict[str, Path] = {}
    for item in args.labels:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--labels {item!r}: expected NAME=PATH")
        load_labels(Path(path))  # every file is checked before any work starts
        datasets[name] = Path(path)
    names = list(datasets)
    top = max(args.sizes)
    metrics: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    if not args.throughput_only:
        raw = {"gnn_options": gnn_options, "sizes": args.sizes, "seeds": args.seeds,
               "first_seed": args.first_seed, "methods": args.methods, "datasets": names}
        runs = run_all(datasets, args, gnn_options)
        for name, path in datasets.items():
            _, archs, labels = load_labels(path)
            metrics[name] = summarise(runs[name], labels, len(archs),
                                      test_count(name, len(archs), args), args)
            raw[name] = {"runs": runs[name]}
        metrics["noise_ceiling_tau"] = min(metrics[d]["noise_ceiling_tau"] for d in names)
        metrics["truth_ceiling_tau"] = min(metrics[d]["truth_ceiling_tau"] for d in names)
        if "gnn" in args.methods:
            metrics[f"gnn.tau_{top}"] = min(metrics[d][f"gnn.tau_{top}"] for d in names)
            metrics[f"gnn.tau_{top}_over_ceiling"] = min(
                metrics[d][f"gnn.tau_{top}"] / metrics[d]["noise_ceiling_tau"] for d in names)
        if any(m != "gnn" for m in args.methods):
            metrics[f"best_baseline.tau_{top}"] = min(metrics[d][f"best_baseline.tau_{top}"]
                                                      for d in names)
    if "gnn" in args.methods and args.throughput_archs:
        gnn, space = fitted_gnn(datasets[names[-1]], args, gnn_options)
        rates = throughput(gnn, space, args.throughput_archs)
        metrics["gnn.archs_per_s"] = rates["configured"]
        raw["throughput"] = {"archs": args.throughput_archs, "threads": gnn.config.threads,
                             "ensemble": gnn.config.ensemble, "dataset": names[-1], **rates}
        print(f"scoring throughput: {rates}")
    device = device_name("cpu")
    if args.workers > 1:
        device += f", {args.workers} worker processes of 1 thread"
    command = "python " + " ".join(sys.argv)
    path = write_result("predictor", metrics=metrics, raw=raw, device=device, command=command,
                        out_dir=args.results_dir)
    result = json.loads(path.read_text())
    merged = result["metrics"]
    merged.update(verdicts(merged, result["raw"].get("datasets", []),
                           result["raw"].get("sizes", args.sizes), args.min_archs_per_s))
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in merged.items() if not isinstance(v, dict)}, indent=1))
    if not args.no_row and "datasets" in result["raw"]:
        append_row(args.benchmarks_md, row_text(result, min_archs_per_s=args.min_archs_per_s))
        print(f"appended a row to {args.benchmarks_md}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
