"""Benchmark `search`: our predictor-guided Pareto search against baselines, on ground truth.

Ground truth (`--phase truth`, GPU or CPU): a reduced `hybrid_vit_tiny` space of 4,608 archs
on MNIST; a supernet trained with the study recipe, then every arch of the space evaluated
with inherited weights on the whole validation split; written as JSON lines (cached: the
search phase reads it). Latency (`--phase table`, on the machine whose latency is the
objective): a calibrated latency table of this CPU (batch 1, one thread).

Search (`--phase search`): the true front of (accuracy, latency) over the whole space;
each method gets an evaluator that answers from the ground truth and counts its budget;
budgets of 1 %, 2 % and 4 % of the space, 5 seeds; hypervolume of the archs each method
evaluated (true values; objectives normalised by the true front's ideal and nadir, reference
point = nadir + 0.1) as a fraction of the true front's, and the share of true-front archs
found. Methods: ours (predictor-guided evolution), ours without the predictor, random
search, Optuna NSGA-II and Optuna TPE.

    python benchmarks/search.py --phase truth --device cuda   # on the GPU box
    python benchmarks/search.py --phase table                 # here, the latency target
    python benchmarks/search.py --phase search --jobs 16     # runs spread over processes

Development runs use other seeds (``--first-seed 100``) and write elsewhere
(``--results-dir /tmp/x --no-row``); ``--search-options`` sets SearchConfig fields for ours.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from search_spaces import Arch, LayerArch, SearchSpace, StageArch, get_space  # noqa: E402

SPACE_NAME = "hybrid_vit_tiny"
SPACE_OVERRIDES: dict[str, Any] = {
    "in_channels": 1, "num_classes": 10, "resolutions": (16, 20, 24, 28),
    "widths": ((32,), (64, 96)), "depths": ((1,), (1, 2)),
}
LABELS = ROOT / "benchmarks" / "results" / "labels"
TRUTH_FILE = LABELS / "search_truth_mnist.jsonl"
TABLE_FILE = LABELS / "search_latency_cpu.json"


def bench_space() -> SearchSpace:
    return get_space(SPACE_NAME, **SPACE_OVERRIDES)


def enumerate_archs(space: SearchSpace) -> list[Arch]:
    """Every arch of ``space`` (resolution, then per stage width, depth and layers)."""
    per_stage: list[list[StageArch]] = []
    for stage in space.stages:
        options: list[LayerArch] = stage.layer_options()
        per_stage.append([StageArch(depth=d, width=w, layers=layers)
                          for w in stage.width for d in stage.depth
                          for layers in itertools.product(options, repeat=d)])
    archs = [Arch(resolution=r, stages=stages) for r in space.resolution
             for stages in itertools.product(*per_stage)]
    if len(archs) != space.size() or len({a.key() for a in archs}) != len(archs):
        raise RuntimeError(f"enumeration gave {len(archs)} archs, space.size() is "
                           f"{space.size()}")
    return archs


# ---- phase truth: train the supernet and evaluate every arch ------------------------------


def truth_phase(args: argparse.Namespace) -> None:
    from nas.data import DataConfig, load_data
    from nas.evaluation import evaluate_split_halves
    from nas.training import TrainConfig, train_supernet

    space = bench_space()
    archs = enumerate_archs(space)[:args.limit or None]
    data = load_data(DataConfig(source="mnist", seed=0))
    config = TrainConfig(steps=args.steps, batch_size=256, lr=2e-3, weight_decay=0.05,
                         warmup_steps=max(1, args.steps // 20), num_random=2, bins=8,
                         eval_every=max(1, args.steps // 4), eval_batches=4,
                         checkpoint_every=max(1, args.steps // 4), device=args.device,
                         seed=0, threads=args.threads)
    work = Path(args.work)
    t0 = time.perf_counter()
    result = train_supernet(space=space, train=(data.train.x, data.train.y),
                            val=(data.val.x, data.val.y), config=config,
                            out_dir=work / f"supernet-{args.steps}", resume=True, progress=False,
                            time_limit_s=args.train_seconds)
    train_s = time.perf_counter() - t0
    print(f"trained {result.step} steps in {train_s:.0f} s: {result.panel}", flush=True)
    net = result.supernet.eval()
    x, y = data.val.x, data.val.y
    if args.val_size:
        x, y = x[:args.val_size], y[:args.val_size]
    out = Path(args.truth)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with out.open("w") as fh:
        for start in range(0, len(archs), args.chunk):
            chunk = archs[start:start + args.chunk]
            results = evaluate_split_halves(net, chunk, x, y, batch_size=1000)
            for arch, r in zip(chunk, results):
                fh.write(json.dumps({
                    "key": arch.key(), "arch": arch.to_json(), "space": SPACE_NAME,
                    "overrides": SPACE_OVERRIDES, "val_loss": r.full.loss,
                    "val_accuracy": r.full.accuracy, "val_loss_a": r.half_a.loss,
                    "val_loss_b": r.half_b.loss, "val_acc_a": r.half_a.accuracy,
                    "val_acc_b": r.half_b.accuracy, "val_count": r.full.count,
                    "flops": space.flops(arch), "params": space.params(arch)}) + "\n")
            print(f"evaluated {start + len(chunk)}/{len(archs)} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    meta = {"steps": result.step, "train_seconds": train_s, "device": args.device,
            "eval_seconds": time.perf_counter() - t0, "val_count": int(x.shape[0]),
            "panel": result.panel, "train_config": config.to_dict()}
    out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta), flush=True)


# ---- phase table: the latency table of this CPU ----------------------------------------------


def table_phase(args: argparse.Namespace) -> None:
    from nas.latency.profile import MeasureConfig, build_table, calibrate_and_validate
    from nas.latency.trust import validation_line

    space = bench_space()
    config = MeasureConfig(device="cpu", mode="eager", batch_size=1, threads=1)
    path = Path(args.table)
    table = build_table(space, config=config, out=path, show_progress=False)
    result = calibrate_and_validate(table, space, config=config, show_progress=False)
    table.save(path)
    print(f"latency table {path}: {len(table)} entries; {validation_line(result)}", flush=True)


# ---- phase search: every method against the true front ---------------------------------------

METHODS = ("ours", "ours_no_predictor", "random", "optuna_nsga2", "optuna_tpe")
OBJECTIVES = ("accuracy", "latency_ms")


class TruthEvaluator:
    """Answers from the ground truth (the supernet's inherited-weight results)."""

    def __init__(self, truth: dict[str, dict[str, Any]]) -> None:
        self.truth = truth
        self.calls = 0

    def __call__(self, archs: list[Arch]) -> list[dict[str, float]]:
        self.calls += len(archs)
        return [{"val_accuracy": self.truth[a.key()]["val_accuracy"],
                 "val_loss": self.truth[a.key()]["val_loss"]} for a in archs]


def load_truth(path: Path, space: SearchSpace) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise SystemExit(f"{path} not found: run --phase truth first")
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[row["key"]] = row
    if len(rows) != space.size():
        raise SystemExit(f"{path}: {len(rows)} archs, the space has {space.size()}")
    return rows


def store_truth(store_url: str, truth: dict[str, dict[str, Any]]) -> None:
    """Keep the ground truth in its own store (study ``search_truth``); idempotent upserts,
    so a rerun on a new truth file (other ``--steps``) replaces the stored labels."""
    from nas.storage import ArchRecord, Evaluation, open_store

    if store_url.startswith("sqlite:///"):
        Path(store_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    store = open_store(store_url)
    store.create_or_get_study(name="search_truth", space=SPACE_NAME,
                              space_overrides=SPACE_OVERRIDES)
    store.put_archs(study="search_truth", archs=[
        ArchRecord(k, r["arch"], flops=r["flops"], params=r["params"]) for k, r in truth.items()])
    store.put_evaluations(study="search_truth", evaluations=[
        Evaluation(k, metric, r[field], "supernet", fidelity=f"val_count={r['val_count']}")
        for k, r in truth.items()
        for metric, field in (("val_accuracy", "val_accuracy"), ("val_loss", "val_loss"))])


def run_method(method: str, *, space: SearchSpace, truth: dict[str, dict[str, Any]],
               scorer: Any, budget: int, seed: int, predictor: str,
               predictor_options: dict[str, Any],
               search_options: dict[str, Any] | None = None) -> tuple[list[str], dict]:
    from nas.search import SearchConfig, run_baseline, run_search

    config = SearchConfig(budget=budget, objectives=OBJECTIVES, seed=seed,
                          use_predictor=method == "ours", predictor=predictor,
                          **({"predictor_options": predictor_options} if predictor_options
                             else {}),
                          **((search_options or {}) if method.startswith("ours") else {}))
    evaluator = TruthEvaluator(truth)
    t0 = time.perf_counter()
    if method.startswith("ours"):
        result = run_search(space=space, evaluate=evaluator, config=config, latency=scorer,
                            progress=False)
    else:
        result = run_baseline(method, space=space, evaluate=evaluator, config=config,
                              latency=scorer, progress=False)
    keys = [a.key() for a in result.archs]
    if evaluator.calls != len(keys) or len(set(keys)) != len(keys) or len(keys) > budget:
        raise RuntimeError(f"{method}: budget accounting broken ({evaluator.calls} calls, "
                           f"{len(keys)} labelled, budget {budget})")
    return keys, {"seconds": time.perf_counter() - t0, **result.info}


_WORKER: dict[str, Any] = {}


def _worker_init(truth_path: str, table_path: str, threads: int | None) -> None:
    """Load the ground truth and the latency scorer once per process."""
    from kernels.latency_table import LatencyTable
    from nas.latency.scorer import ArchLatencyScorer

    if threads:
        torch.set_num_threads(threads)
    space = bench_space()
    _WORKER.update(space=space, truth=load_truth(Path(truth_path), space),
                   scorer=ArchLatencyScorer(space, LatencyTable.load(table_path)))


def _worker_run(task: tuple[str, int, int, str, dict[str, Any], dict[str, Any]]
                ) -> tuple[tuple[str, int, int], tuple[list[str], dict]]:
    method, seed, budget, predictor, options, search_options = task
    return (method, seed, budget), run_method(
        method, space=_WORKER["space"], truth=_WORKER["truth"], scorer=_WORKER["scorer"],
        budget=budget, seed=seed, predictor=predictor, predictor_options=options,
        search_options=search_options)


def run_tasks(tasks: list[tuple[str, int, int]], args: argparse.Namespace):
    """Yield ((method, seed, budget), (labelled keys, info)) for every task, in
    ``args.jobs`` processes (one torch thread each) or in this one; results do not depend
    on how the runs are spread."""
    full = [(m, s, b, args.predictor, args.predictor_options, args.search_options)
            for m, s, b in tasks]
    if args.jobs <= 1:
        _worker_init(args.truth, args.table, None)
        yield from map(_worker_run, full)
        return
    from multiprocessing import get_context

    # the slowest runs (ours: predictor fits) first, so the pool drains evenly
    full.sort(key=lambda t: (t[0] != "ours", -t[2]))
    with get_context("spawn").Pool(args.jobs, initializer=_worker_init,
                                   initargs=(args.truth, args.table, 1)) as pool:
        yield from pool.imap_unordered(_worker_run, full)


def search_phase(args: argparse.Namespace) -> None:
    from bench_io import device_name, write_result

    from kernels.latency_table import LatencyTable
    from nas.latency.scorer import ArchLatencyScorer
    from nas.search import SearchConfig
    from nas.search.pareto import hypervolume, non_dominated_mask, normalise

    space = bench_space()
    truth = load_truth(Path(args.truth), space)
    store_truth(args.truth_store, truth)
    table = LatencyTable.load(args.table)
    scorer = ArchLatencyScorer(space, table)
    archs = [Arch.from_json(r["arch"]) for r in truth.values()]
    keys = [a.key() for a in archs]
    index = {k: i for i, k in enumerate(keys)}
    points = np.column_stack([-np.array([truth[k]["val_accuracy"] for k in keys]),
                              scorer.predict_many(archs)])  # (N, 2) minimised
    on_front = non_dominated_mask(points)
    front_keys = {k for k, f in zip(keys, on_front) if f}
    ideal, nadir = points[on_front].min(0), points[on_front].max(0)
    ref = np.full(2, 1.1)
    true_hv = hypervolume(normalise(points[on_front], ideal, nadir), ref)
    budgets = {f"{p:g}pct": max(1, int(round(p / 100 * len(archs)))) for p in args.budgets}
    largest = max(budgets.values())
    print(f"space {len(archs)} archs, true front {len(front_keys)} archs, budgets {budgets}",
          flush=True)

    def score(labelled: list[str]) -> dict[str, float]:
        z = normalise(points[[index[k] for k in labelled]], ideal, nadir)
        return {"hv_fraction": hypervolume(z, ref) / true_hv,
                "front_share": len(front_keys & set(labelled)) / len(front_keys)}

    raw: dict[str, Any] = {"runs": {}}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(method, seed, largest) for method in args.methods for seed in seeds]
    # a smaller budget labels a prefix of a larger one (tested); check it here once too
    check = min(budgets.values())
    prefix_check = "ours" in args.methods and check != largest
    if prefix_check:
        tasks.append(("ours", seeds[0], check))
    done = {}
    for (method, seed, budget), (labelled, info) in run_tasks(tasks, args):
        done[(method, seed, budget)] = labelled
        if budget != largest:
            continue
        per_budget = {name: score(labelled[:b]) for name, b in budgets.items()}
        raw["runs"][f"{method}/seed{seed}"] = {"labelled": labelled, "info": info,
                                               "scores": per_budget}
        print(f"[{len(done)}/{len(tasks)}] {method} seed {seed}: " + ", ".join(
            f"{n} hv {s['hv_fraction']:.4f} front {s['front_share']:.2f}"
            for n, s in per_budget.items()) + f" ({info['seconds']:.0f} s)", flush=True)
    if prefix_check and done[("ours", seeds[0], check)] != done[
            ("ours", seeds[0], largest)][:check]:
        raise RuntimeError("prefix property broken: budgets must be run separately")

    metrics: dict[str, Any] = {}
    for method in args.methods:
        for name in budgets:
            runs = [raw["runs"][f"{method}/seed{s}"]["scores"][name] for s in seeds]
            hv = np.array([r["hv_fraction"] for r in runs])
            share = np.array([r["front_share"] for r in runs])
            metrics[f"{method}.hv_fraction_at_{name}"] = float(hv.mean())
            metrics[f"{method}.hv_fraction_at_{name}_std"] = float(hv.std())
            metrics[f"{method}.hv_fraction_at_{name}_min"] = float(hv.min())
            metrics[f"{method}.front_share_at_{name}"] = float(share.mean())
    if "ours" in args.methods:
        metrics["ours_hv_fraction_at_2pct"] = metrics.get("ours.hv_fraction_at_2pct")
        others = [m for m in args.methods if m != "ours"]
        metrics["ours_ahead_of_every_baseline"] = all(
            metrics[f"ours.hv_fraction_at_{n}"] > metrics[f"{m}.hv_fraction_at_{n}"]
            for n in budgets for m in others)
    meta_path = Path(args.truth).with_suffix(".meta.json")
    raw.update({"space": space.describe(), "space_overrides": SPACE_OVERRIDES,
                "budgets": budgets, "seeds": list(seeds), "true_front": sorted(front_keys),
                "true_hv": true_hv, "ideal": ideal.tolist(), "nadir": nadir.tolist(),
                "objectives": list(OBJECTIVES), "predictor": args.predictor,
                "predictor_options": args.predictor_options,
                "search_config": SearchConfig(**args.search_options).to_dict(),
                "predictor_settings": SearchConfig(
                    predictor=args.predictor, **({"predictor_options": args.predictor_options}
                                                 if args.predictor_options else {}),
                    **args.search_options).predictor_settings(),
                "truth_meta": json.loads(meta_path.read_text()) if meta_path.is_file() else {},
                "latency_table": {"entries": len(table), "validation": table.validation,
                                  "fingerprint": table.fingerprint.describe()}})
    device = device_name("cpu")
    if args.jobs > 1:
        device = device.rsplit(" (", 1)[0] + f" ({args.jobs} processes, 1 thread each)"
    command = "python benchmarks/search.py " + " ".join(sys.argv[1:])
    path = write_result("search", metrics=metrics, raw=raw, device=device, command=command,
                        out_dir=Path(args.results_dir) if args.results_dir else None)
    if not args.no_row:
        append_row(ROOT / "BENCHMARKS.md", metrics=metrics, device=device, command=command,
                   budgets=list(budgets), seeds=args.seeds, true_front=len(front_keys),
                   space_size=len(archs))
    print(json.dumps({k: v for k, v in metrics.items() if "std" not in k and "min" not in k},
                     indent=1), flush=True)
    print(f"wrote {path}", flush=True)


def append_row(path: Path, *, metrics: dict[str, Any], device: str, command: str,
               budgets: list[str], seeds: int, true_front: int, space_size: int) -> None:
    """Append one row to BENCHMARKS.md in its columns (date, benchmark, device, command,
    comparison measured, goal, result)."""
    import datetime

    comparison = [f"reduced hybrid_vit_tiny on MNIST ({space_size} archs, true front "
                  f"{true_front}); hypervolume of each method's evaluated archs (true "
                  f"values) / true front's, mean over {seeds} seeds"]
    for name in budgets:
        comparison.append(f"{name}: " + ", ".join(
            f"{m} {metrics[f'{m}.hv_fraction_at_{name}']:.4f}" for m in METHODS
            if f"{m}.hv_fraction_at_{name}" in metrics))
    hv = metrics.get("ours_hv_fraction_at_2pct")
    ahead = metrics.get("ours_ahead_of_every_baseline")
    met = hv is not None and hv >= 0.99 and bool(ahead)
    result = (f"{'**met**' if met else '**missed**'}: `ours_hv_fraction_at_2pct` "
              f"{hv if hv is None else round(hv, 4)}, ahead of every baseline at every "
              f"budget: {ahead}")
    with path.open("a") as fh:
        fh.write(f"| {datetime.date.today().isoformat()} | search | {device} | `{command}` | "
                 f"{'; '.join(comparison)} | ours >= 0.99 at 2 %, ahead of every baseline at "
                 f"every budget | {result} |\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=("truth", "table", "search", "all"), default="search")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--train-seconds", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--val-size", type=int, default=0, help="0: the whole val split")
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--limit", type=int, default=0, help="smoke test: first N archs only")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench_search"))
    parser.add_argument("--truth", default=str(TRUTH_FILE))
    parser.add_argument("--table", default=str(TABLE_FILE))
    parser.add_argument("--truth-store", default="sqlite:///" + str(
        ROOT / "runs" / "bench_search" / "truth.db"), help="the separate ground-truth store")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes for the search runs (each one torch thread)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (development runs "
                             "use others than the benchmark's)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[1, 2, 4],
                        help="percent of the space")
    parser.add_argument("--predictor", default="gnn")
    parser.add_argument("--predictor-options", type=json.loads, default={},
                        help='JSON, e.g. \'{"steps": 150}\'')
    parser.add_argument("--search-options", type=json.loads, default={},
                        help='SearchConfig fields for ours (both variants), JSON, e.g. '
                             '\'{"pool_factor": 20}\' (default: SearchConfig\'s defaults)')
    parser.add_argument("--results-dir", default="",
                        help="where search.json goes (default benchmarks/results)")
    parser.add_argument("--no-row", action="store_true",
                        help="do not append a row to BENCHMARKS.md (smoke runs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.phase in ("truth", "all"):
        truth_phase(args)
    if args.phase in ("table", "all"):
        table_phase(args)
    if args.phase in ("search", "all"):
        search_phase(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
