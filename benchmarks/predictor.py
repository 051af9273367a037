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

    python benchmarks/predictor.py --labels mnist=labels/mnist.jsonl \
        --labels cifar=labels/cifar.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
BENCHMARKS_HEADER = """# Benchmarks

One row per benchmark run, appended by the scripts in `benchmarks/` (full results in
`benchmarks/results/<name>.json`).

| date | benchmark | device | headline metrics | command |
|---|---|---|---|---|
"""


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


def run_dataset(name: str, space: SearchSpace, archs: list[Arch], labels: dict[str, np.ndarray],
                args: argparse.Namespace, gnn_options: dict[str, Any]) -> tuple[dict, dict, Any]:
    y = labels["val_loss"]
    n_test = min(args.test, len(archs) - max(args.sizes))
    if n_test < 20:
        raise ValueError(f"{name}: {len(archs)} archs leave {n_test} for testing (need >= 20)")
    runs: list[dict[str, Any]] = []
    last_gnn = None
    for seed in range(args.seeds):
        perm = np.random.default_rng(seed).permutation(len(archs))
        test, pool = perm[:n_test], perm[n_test:]
        test_archs = [archs[i] for i in test]
        for n in args.sizes:
            train = pool[:n]
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
                if method == "gnn":
                    last_gnn = predictor
                print(f"{name} seed {seed} n {n:4d} {method:18s} tau {result['tau']:.3f} "
                      f"spearman {result['spearman']:.3f} top5 {result['top5']:.2f} "
                      f"fit {fit_s:.1f}s", flush=True)
    ceiling = noise_ceiling_tau(labels["val_loss_a"], labels["val_loss_b"])
    ceiling_half = noise_ceiling_tau(labels["val_loss_a"], labels["val_loss_b"],
                                     spearman_brown=False)
    low, high = bootstrap_ci(lambda a, b: noise_ceiling_tau(a, b), labels["val_loss_a"],
                             labels["val_loss_b"], n=200, seed=0)
    summary: dict[str, Any] = {"noise_ceiling_tau": ceiling, "noise_ceiling_tau_half": ceiling_half,
                               "truth_ceiling_tau": truth_ceiling_tau(labels["val_loss_a"],
                                                                      labels["val_loss_b"]),
                               "noise_ceiling_tau_ci95": [low, high], "archs": len(archs),
                               "test": n_test}
    for method in args.methods:
        for n in args.sizes:
            rows = [r for r in runs if r["method"] == method and r["n"] == n]
            for key in ("tau", "spearman", "top5", "fit_s"):
                values = [r[key] for r in rows]
                summary[f"{method}.{key}_{n}"] = statistics.mean(values)
                if key != "fit_s" and len(values) > 1:
                    summary[f"{method}.{key}_{n}_sd"] = statistics.stdev(values)
    return summary, {"runs": runs}, last_gnn


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


def append_row(path: Path, *, date: str, device: str, metrics: dict[str, Any],
               command: str) -> None:
    """Append one row to BENCHMARKS.md (created with a header if missing)."""
    headline = ", ".join(f"{k}={metrics[k]:.3f}" if isinstance(metrics[k], float)
                         else f"{k}={metrics[k]}" for k in
                         ("gnn.tau_256", "best_baseline.tau_256", "noise_ceiling_tau",
                          "gnn.archs_per_s") if k in metrics)
    if not path.exists():
        path.write_text(BENCHMARKS_HEADER)
    with path.open("a") as fh:
        fh.write(f"| {date} | predictor | {device} | {headline} | `{command}` |\n")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--sizes", default="32,64,128,256")
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default=",".join(list_predictors()))
    parser.add_argument("--gnn", action="append", default=[], metavar="KEY=VALUE",
                        help="GNNConfig option, e.g. --gnn conv=gat")
    parser.add_argument("--throughput-archs", type=int, default=20000)
    parser.add_argument("--min-archs-per-s", type=float, default=5000.0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(list_predictors()))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {list_predictors()}")
    return args


def gnn_option(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    args = parse_args()
    gnn_options = dict(gnn_option(t) for t in args.gnn)
    datasets = {}
    for item in args.labels:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--labels {item!r}: expected NAME=PATH")
        datasets[name] = load_labels(Path(path))
    metrics: dict[str, Any] = {}
    raw: dict[str, Any] = {"gnn_options": gnn_options, "sizes": args.sizes,
                           "seeds": args.seeds, "methods": args.methods}
    baselines = [m for m in args.methods if m != "gnn"]
    top = max(args.sizes)
    gnn = space_of_gnn = None
    for name, (space, archs, labels) in datasets.items():
        summary, detail, fitted = run_dataset(name, space, archs, labels, args, gnn_options)
        metrics[name] = summary
        raw[name] = detail
        if fitted is not None:
            gnn, space_of_gnn = fitted, space
        if baselines:
            best = max(baselines, key=lambda m: summary[f"{m}.tau_{top}"])
            summary[f"best_baseline.name_{top}"] = best
            summary[f"best_baseline.tau_{top}"] = summary[f"{best}.tau_{top}"]
    names = list(datasets)
    metrics["noise_ceiling_tau"] = min(metrics[d]["noise_ceiling_tau"] for d in names)
    metrics["truth_ceiling_tau"] = min(metrics[d]["truth_ceiling_tau"] for d in names)
    if "gnn" in args.methods:
        metrics[f"gnn.tau_{top}"] = min(metrics[d][f"gnn.tau_{top}"] for d in names)
        metrics[f"gnn.tau_{top}_over_ceiling"] = min(
            metrics[d][f"gnn.tau_{top}"] / metrics[d]["noise_ceiling_tau"] for d in names)
    if baselines:
        metrics[f"best_baseline.tau_{top}"] = min(metrics[d][f"best_baseline.tau_{top}"]
                                                  for d in names)
    if gnn is not None:
        rates = throughput(gnn, space_of_gnn, args.throughput_archs)
        metrics["gnn.archs_per_s"] = rates["configured"]
        raw["throughput"] = {"archs": args.throughput_archs, "threads": gnn.config.threads,
                             **rates}
        print(f"scoring throughput: {rates}")
    device = device_name("cpu")
    command = "python " + " ".join(sys.argv)
    path = write_result("predictor", metrics=metrics, raw=raw, device=device, command=command,
                        out_dir=args.results_dir)
    date = json.loads(path.read_text())["date"]
    append_row(args.benchmarks_md, date=date, device=device, metrics=metrics, command=command)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=1))
    print(f"wrote {path} and a row of {args.benchmarks_md}")
    if gnn is not None and metrics["gnn.archs_per_s"] < args.min_archs_per_s:
        raise SystemExit(f"scoring throughput {metrics['gnn.archs_per_s']:.0f} archs/s is "
                         f"below the {args.min_archs_per_s:.0f} archs/s target")


if __name__ == "__main__":
    main()
