"""Crash campaign: SIGKILL `nas run` at random moments of every stage, on SQLite and on
PostgreSQL, and check that nothing is lost, duplicated or corrupted.

For each backend: an unkilled reference run of the study (fresh store and run folder), then a
chaos run of the same study (another fresh store and folder) that is SIGKILLed ``--kills``
times: at random moments of start-up (before any stage runs) and of the train, evaluate,
predict, search and export stages (each kill waits until the stage is running in that
process, then a delay drawn uniformly from 0 to 90 % of the stage's duration in the
reference run). After every kill: SQLite's ``PRAGMA integrity_check``, the checkpoint loads,
the metrics log reads (a torn last line is allowed, nothing else), and the evaluations
committed so far are recorded. Then one `nas run` finishes the study (it takes the dead run's
lease over at once: same host, process gone).

Both runs import the same fixed latency table first (``nas profile --import``), so latency
measurement noise cannot change the front: a table whose latencies follow each layer's FLOPs
(deterministic), or ``--table FILE`` (a measured one). The profile stage is therefore not
killed; the import itself is.

Metrics per backend: ``kills`` (SIGKILLs that hit a running process), ``lost`` (evaluations
of the reference run missing from the chaos run, plus evaluations committed during the chaos
run and gone at its end), ``duplicated`` (stored rows beyond one per natural key, plus
(arch, metric, source, split, fidelity) evaluated under more than one checkpoint, plus
repeated steps in the metrics log), ``corrupted`` (failed integrity checks, unreadable
checkpoints, logs or table files after a kill), ``same_checkpoint`` (final checkpoint bytes
identical to the reference's), ``front_identical`` (stored Pareto front: same archs and
objectives) and ``same_export``.

    python benchmarks/chaos.py --kills 20                       # both backends
    python benchmarks/chaos.py --kills 3 --backends sqlite --no-write   # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KILL_STAGES = ("startup", "train", "evaluate", "predict", "search", "export")
PIPELINE = ("train", "profile", "evaluate", "predict", "search", "export")

CHAOS_STUDY = '''"""Crash campaign study: the quickstart made tiny (digits, a 2-stage space)."""
from nas.study import (DataConfig, EvaluationConfig, ProfilingConfig, SearchConfig, Study,
                       TrainConfig)

study = Study(
    name="{name}",
    space="hybrid_vit_tiny",
    space_overrides=dict(in_channels=1, num_classes=10, resolutions=(8,), patch_size=2,
                         widths=((8,), (8, 16)), depths=((1,), (1, 2)), head_dim=8),
    data=DataConfig(source="digits"),
    training=TrainConfig(steps={steps}, batch_size=32, warmup_steps=2, eval_every=10,
                         eval_batches=2, checkpoint_every=3, panel_size=1, num_random=1,
                         bins=3, threads=1),
    evaluation=EvaluationConfig(n_archs=24, batch_size=256),
    profiling=ProfilingConfig(n_calibration=3, n_validation=4, min_block_s=0),
    search=SearchConfig(budget=12, population=4, pool_factor=4, seed=0),
)
'''


@dataclass
class Backend:
    """Where one run's store lives (a fresh database per run)."""

    name: str
    make_url: Any
    cleanup: Any = None


@dataclass
class Campaign:
    kills: list[dict[str, Any]] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    committed: set[tuple] = field(default_factory=set)
    attempts: int = 0


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "NAS_STORAGE": url, "RAY_AUTH_MODE": "disabled",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _nas(args: list[str], *, cwd: Path, url: str, log: Path) -> subprocess.Popen:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "nas.cli", *args], cwd=cwd, env=_env(url),
                            stdout=out, stderr=subprocess.STDOUT)


def fixed_table(study_file: Path, out: Path) -> Path:
    """A deterministic latency table for the study's space and profiling settings: each
    layer's latency grows with its FLOPs (so the front has a real trade-off)."""
    import torch

    from kernels import DeviceFingerprint, LatencyTable, layer_flops, signature
    from kernels.latency_table import Calibration, LatencyEntry
    from nas.latency.profile import enumerate_layer_specs
    from nas.study import load_study

    study = load_study(study_file)
    cfg = study.profiling
    fp = DeviceFingerprint(device_type=cfg.device, device_name="chaos fixed table", threads=1,
                           driver="", cuda="", torch=torch.__version__, dtype="float32",
                           batch_size=cfg.batch_size, mode=cfg.mode)
    table = LatencyTable(fp)
    for spec in enumerate_layer_specs(study.build_space()):
        table.entries[signature(spec)] = LatencyEntry(
            median_ms=round(0.005 + layer_flops(spec) / 2e8, 6), spread_ms=0.0, repeats=1)
    table.calibration = Calibration(scale=1.0, per_layer_ms=0.002, intercept_ms=0.01, n_models=0)
    return table.save(out)


# ---- reading a run's state -----------------------------------------------------------------


def _store(url: str):
    from nas.storage import open_store

    return open_store(url)


def snapshot(url: str, study: str) -> dict[str, Any]:
    """Everything the comparison needs, read from the store."""
    with _store(url) as store:
        if store.get_study(name=study) is None:
            return {"evaluations": [], "stages": {}, "checkpoints": [], "front": None}
        evaluations = [(e.arch_key, e.metric, e.source, e.checkpoint_sha256, e.fidelity, e.split,
                        e.value) for e in store.get_evaluations(study=study)]
        stages = {s.stage: s.status for s in store.stages(study=study)}
        checkpoints = [(c.sha256, c.step) for c in store.list_checkpoints(study=study)]
        runs = {r.name for r in store.list_search_runs(study=study)}
        front = None
        if "search" in runs:
            front = [(r.arch_key, json.dumps(r.objectives, sort_keys=True))
                     for r in store.get_front(study=study, run="search")]
        export = next((s.detail for s in store.stages(study=study) if s.stage == "export"),
                      None)
    return {"evaluations": evaluations, "stages": stages, "checkpoints": checkpoints,
            "front": front, "export": export}


def running_stage(url: str, study: str, pid: int) -> str | None:
    """The stage process ``pid`` is running now, per the store (None if none)."""
    try:
        with _store(url) as store:
            if store.get_study(name=study) is None:
                return None
            for s in store.stages(study=study):
                owner = (s.detail or {}).get("owner", "") if s.status == "running" else ""
                if owner.endswith(f" pid {pid}"):
                    return s.stage
    except ValueError:
        return None
    return None


def check_files(url: str, run_dir: Path, backend: str) -> list[str]:
    """What is corrupt right after a kill (an empty list when nothing)."""
    from nas.training import load_checkpoint
    from nas.training.metrics_log import read_log

    problems = []
    if backend == "sqlite":
        path = url.removeprefix("sqlite:///")
        if Path(path).exists():
            with sqlite3.connect(path, timeout=30) as conn:
                verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                problems.append(f"sqlite integrity: {verdict}")
    ckpt = run_dir / "supernet" / "checkpoint.pt"
    if ckpt.exists():
        try:
            load_checkpoint(ckpt)
        except ValueError as exc:
            problems.append(f"checkpoint: {exc}")
    try:
        read_log(run_dir / "supernet" / "metrics.jsonl")
    except ValueError as exc:
        problems.append(f"metrics log: {exc}")
    for table in run_dir.glob("latency_*.json"):
        try:
            json.loads(table.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"latency table file {table.name}: {exc}")
    try:
        snapshot(url, "x")  # the store opens and answers
    except Exception as exc:
        problems.append(f"store: {type(exc).__name__}: {exc}")
    return problems


def log_duplicates(run_dir: Path) -> tuple[int, list[int]]:
    """Repeated (kind, step) lines of the final metrics log and its train steps."""
    from nas.training.metrics_log import read_log

    records = read_log(run_dir / "supernet" / "metrics.jsonl")
    counts = Counter((r["kind"], r["step"]) for r in records)
    return sum(n - 1 for n in counts.values()), [r["step"] for r in records
                                                 if r["kind"] == "train"]


# ---- the runs ------------------------------------------------------------------------------


def reference_run(work: Path, study_file: Path, table: Path, url: str, name: str
                  ) -> dict[str, Any]:
    """The unkilled run: import the table, run every stage; stage durations from the store."""
    log = work / "reference.log"
    t0 = time.perf_counter()
    for args in (["profile", str(study_file), "--import", str(table)],
                 ["run", str(study_file)]):
        rc = _nas(args, cwd=work, url=url, log=log).wait()
        if rc != 0:
            raise RuntimeError(f"reference `nas {' '.join(args)}` failed: see {log}")
    with _store(url) as store:
        durations = {s.stage: (s.finished_at - s.started_at).total_seconds()
                     for s in store.stages(study=name) if s.finished_at and s.started_at}
    return {"seconds": time.perf_counter() - t0, "durations": durations,
            "state": snapshot(url, name)}


def chaos_run(work: Path, study_file: Path, table: Path, url: str, name: str, backend: str,
              *, kills: int, durations: dict[str, float], rng: random.Random,
              startup_s: float) -> Campaign:
    """Kill `nas run` ``kills`` times over the stages (each stage owed a share of the kills,
    `kill_plan`; a stage finished before its share moves on to the next), then let the
    study finish."""
    campaign = Campaign()
    log = work / "chaos.log"
    run_dir = work / "runs" / name

    def after_kill(proc: subprocess.Popen, where: str, delay: float) -> None:
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        campaign.kills.append({"stage": where, "delay_s": round(delay, 3), "killed": alive,
                               "attempt": campaign.attempts})
        campaign.corrupted += check_files(url, run_dir, backend)
        state = snapshot(url, name)
        campaign.committed |= {e[:6] for e in state["evaluations"]}

    # the import itself is killed once at a random moment, then done
    while True:
        campaign.attempts += 1
        proc = _nas(["profile", str(study_file), "--import", str(table)], cwd=work, url=url,
                    log=log)
        if campaign.attempts == 1:
            delay = rng.uniform(0.5, startup_s)
            time.sleep(delay)
            after_kill(proc, "profile-import", delay)
            continue
        if proc.wait() != 0:
            raise RuntimeError(f"`nas profile --import` failed after a kill: see {log}")
        break

    quota = Counter(kill_plan(kills, durations, rng))
    while sum(1 for k in campaign.kills if k["killed"] and k["stage"] != "profile-import") < kills:
        state = snapshot(url, name)
        pending = [s for s in KILL_STAGES[1:] if state["stages"].get(s) != "done"]
        if not pending:
            break  # the study finished before every kill was spent (reported as is)
        wanted = [s for s in pending if quota[s] > 0]
        if quota["startup"] > 0 and (not wanted or rng.random() < 0.25):
            where = "startup"
        else:  # the first pending stage still owed kills; earlier ones run through
            where = wanted[0] if wanted else pending[0]
        campaign.attempts += 1
        proc = _nas(["run", str(study_file)], cwd=work, url=url, log=log)
        if where == "startup":
            delay = rng.uniform(0.1, startup_s)
            time.sleep(delay)
            actual = running_stage(url, name, proc.pid) or "startup"
        else:
            deadline = time.monotonic() + 600
            while proc.poll() is None and time.monotonic() < deadline:
                now = running_stage(url, name, proc.pid)
                if now is not None and PIPELINE.index(now) >= PIPELINE.index(where):
                    break  # at the stage (or already past it: a short stage was missed)
                time.sleep(0.05)
            # a random moment of the stage: within 60 % of its unkilled duration, so a stage
            # that cannot resume (predict refits) is hit before it ends
            delay = rng.uniform(0, 0.6 * max(durations.get(where, 1.0), 1.0))
            t0 = time.monotonic()
            while time.monotonic() - t0 < delay and proc.poll() is None:
                now = running_stage(url, name, proc.pid)
                if now is not None and PIPELINE.index(now) > PIPELINE.index(where):
                    break  # the stage ended sooner than in the reference run: kill now
                time.sleep(0.05)
            delay = time.monotonic() - t0
            actual = running_stage(url, name, proc.pid) or where
        after_kill(proc, actual, delay)
        if campaign.kills[-1]["killed"]:
            quota[actual if quota[actual] > 0 else where] -= 1
    campaign.attempts += 1
    if _nas(["run", str(study_file)], cwd=work, url=url, log=log).wait() != 0:
        raise RuntimeError(f"the final `nas run` after the kills failed: see {log}")
    return campaign


def kill_plan(kills: int, durations: dict[str, float], rng: random.Random) -> list[str]:
    """Which stage each kill aims at, in pipeline order: an equal share per stage (start-up
    included) when there are enough kills, the remainder in proportion to the stages'
    durations (at least 1 s)."""
    stages = list(KILL_STAGES)
    if kills < len(stages):
        return sorted(rng.sample(stages, kills), key=stages.index)
    share, rest = divmod(kills, len(stages))
    plan = [s for s in stages for _ in range(share)]
    weights = [max(durations.get(s, 1.0), 1.0) for s in stages]
    plan += rng.choices(stages, weights=weights, k=rest)
    return sorted(plan, key=stages.index)


def compare(reference: dict[str, Any], final: dict[str, Any], campaign: Campaign,
            ref_dir: Path, run_dir: Path) -> dict[str, Any]:
    from nas.training.checkpoint import content_sha256

    ref_rows = {e[:6]: e[6] for e in reference["evaluations"]}
    rows = final["evaluations"]
    keys = Counter(e[:6] for e in rows)
    got = {e[:6]: e[6] for e in rows}
    lost_ref = sorted(set(ref_rows) - set(got))
    lost_committed = sorted(campaign.committed - set(got))
    checkpoints_per = Counter((k[0], k[1], k[2], k[5], k[4]) for k in got)
    multi_ckpt = sum(n - 1 for n in checkpoints_per.values() if n > 1)
    log_dups, train_steps = log_duplicates(run_dir)
    ref_ckpt = ref_dir / "supernet" / "checkpoint.pt"
    ckpt = run_dir / "supernet" / "checkpoint.pt"
    differ = [k for k in set(ref_rows) & set(got)
              if not math.isclose(ref_rows[k], got[k], rel_tol=0, abs_tol=0)]
    return {
        "kills": sum(1 for k in campaign.kills if k["killed"]),
        "lost": len(lost_ref) + len(lost_committed),
        "duplicated": sum(n - 1 for n in keys.values()) + multi_ckpt + log_dups,
        "corrupted": len(campaign.corrupted),
        "front_identical": final["front"] is not None and final["front"] == reference["front"],
        "same_checkpoint": content_sha256(ckpt) == content_sha256(ref_ckpt),
        "same_export": (final.get("export") or {}).get("arch")
        == (reference.get("export") or {}).get("arch"),
        "evaluations": len(got),
        "reference_evaluations": len(ref_rows),
        "extra_evaluations": len(set(got) - set(ref_rows)),
        "values_differ": len(differ),
        "train_steps_in_log": len(train_steps),
        "train_steps_in_order": train_steps == list(range(1, len(train_steps) + 1)),
        "all_stages_done": all(final["stages"].get(s) == "done" for s in PIPELINE),
        "_detail": {"lost_reference": lost_ref[:10], "lost_committed": lost_committed[:10],
                    "corrupted": campaign.corrupted[:10]},
    }


def run_backend(backend: Backend, *, kills: int, seed: int, steps: int, table: Path | None,
                work_root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reference + chaos run on one backend; returns (metrics, raw)."""
    rng = random.Random(f"{seed}:{backend.name}")
    name = f"chaos_{backend.name}"
    ref_dir, chaos_dir = work_root / f"{backend.name}_ref", work_root / f"{backend.name}_chaos"
    for d in (ref_dir, chaos_dir):
        d.mkdir(parents=True)
        (d / f"{name}.py").write_text(CHAOS_STUDY.format(name=name, steps=steps))
    table_file = table or fixed_table(ref_dir / f"{name}.py", work_root / "table.json")
    ref_url, chaos_url = backend.make_url(ref_dir), backend.make_url(chaos_dir)
    t0 = time.perf_counter()
    reference = reference_run(ref_dir, ref_dir / f"{name}.py", table_file, ref_url, name)
    startup_s = max(1.0, reference["seconds"] - sum(reference["durations"].values()))
    startup_s = min(startup_s / 2, 10.0)  # two processes (import + run): per process
    t1 = time.perf_counter()
    campaign = chaos_run(chaos_dir, chaos_dir / f"{name}.py", table_file, chaos_url, name,
                         backend.name, kills=kills, durations=reference["durations"], rng=rng,
                         startup_s=startup_s)
    final = snapshot(chaos_url, name)
    metrics = compare(reference["state"], final, campaign, ref_dir / "runs" / name,
                      chaos_dir / "runs" / name)
    detail = metrics.pop("_detail")
    raw = {"kills": campaign.kills, "attempts": campaign.attempts, **detail,
           "reference_s": round(t1 - t0, 1), "chaos_s": round(time.perf_counter() - t1, 1),
           "reference_stage_s": {k: round(v, 2) for k, v in reference["durations"].items()},
           "stages_killed": dict(Counter(k["stage"] for k in campaign.kills if k["killed"])),
           "table": "fixed (FLOPs-proportional)" if table is None else str(table)}
    return metrics, raw


def _sqlite_backend() -> Backend:
    return Backend("sqlite", make_url=lambda d: f"sqlite:///{d / 'nas.db'}")


def _postgres_backend() -> Backend:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_nas_pg_conftest", REPO / "tests" / "nas_tests" / "storage_tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pg_bin = module.find_pg_bin()
    if pg_bin is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = module.PostgresServer(pg_bin)
    server.start()
    return Backend("postgresql", make_url=lambda d: server.url(server.database()),
                   cleanup=server.stop)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per backend.")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--steps", type=int, default=24, help="Training steps of the study "
                        "(checkpoint every 3).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--table", type=Path, default=None,
                        help="Latency table file to import (default: a fixed FLOPs table).")
    parser.add_argument("--work", type=Path, default=None, help="Work folder (default: temp).")
    parser.add_argument("--no-write", action="store_true", help="Print, do not write results.")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.steps < 1:
        parser.error("--kills and --steps must be >= 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="nas-chaos-"))
    metrics, raw = {}, {}
    for name in args.backends:
        backend = _sqlite_backend() if name == "sqlite" else _postgres_backend()
        try:
            metrics[name], raw[name] = run_backend(
                backend, kills=args.kills, seed=args.seed, steps=args.steps, table=args.table,
                work_root=work / name)
        finally:
            if backend.cleanup is not None:
                backend.cleanup()
        print(name, json.dumps(metrics[name]), flush=True)
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_io import device_name, write_result

        path = write_result("chaos", metrics=metrics, raw=raw, device=device_name("cpu"))
        print(f"results: {path}")
    return {"metrics": metrics, "raw": raw, "work": str(work)}


if __name__ == "__main__":
    main()
