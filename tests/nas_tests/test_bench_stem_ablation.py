"""`benchmarks/stem_ablation.py` resumes: a rerun into the same ``--work`` reuses the finished
variants (no retraining), a run killed after one variant finished keeps it, a variant's
checkpoint resumes to the straight run's result, another ``--steps`` trains apart, and a
checkpoint of another recipe is one clear error that writes nothing.

A tiny image study (scikit-learn digits at 8 x 8) trained 20 steps per variant on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import TINY_OVERRIDES  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "stem_ablation.py"
STUDY = '''
from nas.study import DataConfig, Study, TrainConfig

study = Study(
    name="tiny_stem",
    space="hybrid_vit_tiny",
    space_overrides={overrides!r},
    data=DataConfig(source="digits"),
    training=TrainConfig(steps=20, batch_size=32, lr={lr}, panel_size=1, num_random=1,
                         bins=3, eval_batches=2, drop_path=0.1, device="cpu"),
)
'''
KEY = "tiny_stem_20steps"  # the result's block: <study file stem>_<steps>steps


def write_study(directory: Path, lr: float = 2e-3) -> Path:
    path = directory / "tiny_stem.py"
    path.write_text(STUDY.format(overrides=TINY_OVERRIDES, lr=lr))
    return path


def command(root: Path, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--device", "cpu", "--study",
            str(root / "tiny_stem.py"), "--steps", "20", "--work", str(root / "work"), *args]


def environment(root: Path) -> dict[str, str]:
    return {**os.environ, "NAS_BENCH_RESULTS": str(root / "results"), "OMP_NUM_THREADS": "1"}


def ablation(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(root, *args), capture_output=True, text=True, timeout=300,
                          cwd=REPO, env=environment(root))
    if check and proc.returncode != 0:
        raise AssertionError(f"stem_ablation {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def folder(root: Path, variant: str, steps: int = 20) -> Path:
    return root / "work" / "tiny_stem" / variant / f"run-{steps}"


def runs(root: Path) -> dict[str, dict]:
    return json.loads((root / "results" / "stem_ablation.json").read_text())["raw"][KEY]["runs"]


def stamps(root: Path, variants: tuple[str, ...]) -> dict[str, int]:
    return {f"{v}/{name}": (folder(root, v) / name).stat().st_mtime_ns for v in variants
            for name in ("checkpoint.pt", "result.json")}


def scores(run: dict) -> dict:
    """A variant's result without its timing and bookkeeping."""
    return {k: v for k, v in run.items()
            if k not in ("train_seconds", "reused", "resumed_from_step")}


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """base and nodp trained once, side by side (read it, or copy it before changing it)."""
    root = tmp_path_factory.mktemp("straight")
    write_study(root)
    out = ablation(root, "--variants", "base,nodp")
    assert "base: training" in out.stdout and "nodp: training" in out.stdout
    return root


def test_a_rerun_reuses_the_finished_variants_and_other_steps_train_apart(straight, tmp_path):
    shutil.copytree(straight, tmp_path, dirs_exist_ok=True)
    first = runs(tmp_path)
    assert all(r["completed"] and r["steps"] == 20 and not r["reused"] for r in first.values())
    before = stamps(tmp_path, ("base", "nodp"))
    again = ablation(tmp_path, "--variants", "base,nodp")
    assert "base: reused" in again.stdout and "nodp: reused" in again.stdout
    assert "training" not in again.stdout and "resuming" not in again.stdout
    assert stamps(tmp_path, ("base", "nodp")) == before  # no checkpoint or result rewritten
    second = runs(tmp_path)
    assert {v: r["reused"] for v, r in second.items()} == {"base": True, "nodp": True}
    assert {v: {**r, "reused": False} for v, r in second.items()} == first
    # another horizon trains into its own folder and its own block of the results
    longer = ablation(tmp_path, "--variants", "base", "--steps", "24")
    assert f"base: training {folder(tmp_path, 'base', 24)}" in longer.stdout
    assert stamps(tmp_path, ("base", "nodp")) == before
    data = json.loads((tmp_path / "results" / "stem_ablation.json").read_text())
    assert data["raw"]["tiny_stem_24steps"]["runs"]["base"]["steps"] == 24
    assert data["raw"][KEY]["runs"]["base"] == second["base"]


def test_a_killed_run_keeps_the_variant_it_finished(straight, tmp_path):
    write_study(tmp_path)
    proc = subprocess.Popen(command(tmp_path, "--variants", "base,nodp", "--parallel", "1"),
                            cwd=REPO, env=environment(tmp_path), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = folder(tmp_path, "base") / "result.json"
    try:
        deadline = time.monotonic() + 240
        while not done.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), "base never finished"
    finally:  # the run, and the nodp job it just started, killed at once
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (folder(tmp_path, "nodp") / "result.json").exists()
    assert not (tmp_path / "results").exists()
    kept = done.stat().st_mtime_ns
    rerun = ablation(tmp_path, "--variants", "base,nodp")
    assert "base: reused" in rerun.stdout and "base: training" not in rerun.stdout
    assert "nodp: training" in rerun.stdout or "nodp: resuming" in rerun.stdout
    assert done.stat().st_mtime_ns == kept
    result = runs(tmp_path)
    assert result["base"]["reused"] and not result["nodp"]["reused"]
    # the same scores as the run that was never killed (training is deterministic on the CPU)
    assert {v: scores(r) for v, r in result.items()} == {
        v: scores(r) for v, r in runs(straight).items()}


def test_a_checkpoint_resumes_and_one_of_another_recipe_is_refused(straight, tmp_path):
    write_study(tmp_path)
    stopped = ablation(tmp_path, "--variants", "base", "--time-limit", "0.001")
    assert "base: training" in stopped.stdout
    partial = runs(tmp_path)["base"]
    assert not partial["completed"] and 1 <= partial["steps"] < 20
    # the study edited (another lr): the unfinished checkpoint cannot resume; one error,
    # nothing written
    write_study(tmp_path, lr=1e-3)
    listing = sorted(str(p) for p in tmp_path.rglob("*"))
    results = (tmp_path / "results" / "stem_ablation.json").read_bytes()
    refused = ablation(tmp_path, "--variants", "base", check=False)
    assert refused.returncode != 0
    assert "--work: variant 'base':" in refused.stderr
    assert "another recipe (lr: 0.002 -> 0.001)" in refused.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == listing
    assert (tmp_path / "results" / "stem_ablation.json").read_bytes() == results
    # the study as it was, without the time limit: the checkpoint resumes to the horizon
    write_study(tmp_path)
    resumed = ablation(tmp_path, "--variants", "base")
    assert f"base: resuming {folder(tmp_path, 'base')} from step {partial['steps']} of 20" \
        in resumed.stdout
    run = runs(tmp_path)["base"]
    assert run["completed"] and run["steps"] == 20
    assert run["resumed_from_step"] == partial["steps"] and not run["reused"]
    assert scores(run) == scores(runs(straight)["base"])  # the straight run's weights
