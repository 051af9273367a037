"""The study pipeline through the CLI: resume after SIGKILL, changed files, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import nas, write_study  # noqa: E402

from nas.storage import open_store  # noqa: E402

STEPS, KILL_AFTER = 80, 10  # the killed run's schedule, and the train steps logged before it


@pytest.fixture
def finished_run(finished_tiny_run) -> tuple[Path, str]:
    """The tiny study run through every stage once (a session fixture: its folder and the
    first run's output); tests copy the folder before changing anything."""
    return finished_tiny_run.root, finished_tiny_run.stdout


def _copy_run(finished: Path, to: Path) -> tuple[Path, str]:
    shutil.copytree(finished, to, dirs_exist_ok=True)
    return to / "tiny.py", f"sqlite:///{to / 'db.sqlite'}"


@pytest.mark.slow
def test_run_is_idempotent_and_shows(tmp_path, finished_run):
    root, first_stdout = finished_run
    study, url = _copy_run(root, tmp_path)
    assert "train: done" in first_stdout
    with open_store(url) as store:
        before = sorted((e.arch_key, e.value) for e in store.get_evaluations(
            study="tiny", metric="val_loss", source="supernet"))
    # run again, redoing one stage: every other stage is done and skipped (a plain re-run
    # doing nothing is checked by test_chaos's waiting run), the redone one adds no rows
    redo = nas("run", str(study), "--storage", url, "--redo", "evaluate", cwd=tmp_path)
    assert "evaluate: done" in redo.stdout and "evaluate: done, skipped" not in redo.stdout
    for stage in ("train", "profile", "predict", "search", "export"):
        assert f"{stage}: done, skipped" in redo.stdout, stage
    with open_store(url) as store:
        assert {s.stage: s.status for s in store.stages(study="tiny")}["evaluate"] == "done"
        evals = store.get_evaluations(study="tiny", metric="val_loss", source="supernet")
        assert len(evals) == len({e.arch_key for e in evals}) >= 8
        assert sorted((e.arch_key, e.value) for e in evals) == before  # same numbers again
    listed = nas("studies", "--storage", url, cwd=tmp_path)
    assert "tiny" in listed.stdout and "train:done" in listed.stdout
    shown = nas("show", "tiny", "--storage", url, cwd=tmp_path)
    assert "Pareto front" in shown.stdout and "export" in shown.stdout
    # the front is stored; export picks the most accurate member within a latency limit
    with open_store(url) as store:
        front = store.get_front(study="tiny", run="search")
        assert front
        budget = max(r.objectives["latency_ms"] for r in front)
    out = nas("export", str(study), "--storage", url, "--max-latency-ms", str(budget),
              "--out", str(tmp_path / "exported"), cwd=tmp_path)
    assert "reproduces the stored value: True" in out.stdout
    card = json.loads((tmp_path / "exported" / "model_card.json").read_text())
    assert card["latency"]["predicted_ms"] <= budget
    assert {"arch.json", "weights.pt", "model.torchscript.pt", "model_card.md"} <= {
        p.name for p in (tmp_path / "exported").iterdir()}
    assert any(m["source"] == "supernet" for m in card["metrics"])


@pytest.mark.slow
def test_sigkill_during_training_resumes_without_duplicates(tmp_path):
    # ~15 steps/s on a quiet 2-core CPU: the kill lands with 60+ steps (4 s) to spare
    study = write_study(tmp_path, steps=STEPS)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    log = tmp_path / "runs" / "tiny" / "supernet" / "metrics.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "run", str(study), "--storage", url],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if log.exists() and log.read_text().count('"train"') >= KILL_AFTER:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = log.read_text().splitlines()
    assert KILL_AFTER <= len([line for line in lines if '"train"' in line]) < STEPS, \
        "killed too late"
    with open_store(url) as store:
        assert store.get_stage_status(study="tiny", stage="train").status == "running"
    nas("run", str(study), "--storage", url, cwd=tmp_path)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()
             if '"train"' in line]
    assert steps == list(range(1, STEPS + 1))
    with open_store(url) as store:
        rows = store.get_metrics(study="tiny", run="supernet", kind="train")
        assert sorted(r.step for r in rows) == list(range(1, STEPS + 1))
        assert store.get_stage_status(study="tiny", stage="train").status == "done"
        evals = store.get_evaluations(study="tiny")
        assert len(evals) == len({(e.arch_key, e.metric, e.source, e.checkpoint_sha256, e.fidelity,
                                   e.split) for e in evals})


def test_changed_study_file_is_refused_unless_forced(tmp_path, finished_run):
    study, url = _copy_run(finished_run[0], tmp_path)  # a study with results
    study.write_text(study.read_text().replace("batch_size=32", "batch_size=16"))
    out = nas("run", str(study), "--storage", url, cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert "changed since the study was created" in out.stderr
    assert "batch_size=16" in out.stderr and "Traceback" not in out.stderr
    forced = nas("run", str(study), "--storage", url, "--force", cwd=tmp_path)
    assert forced.returncode == 0


def test_bad_inputs_get_one_clear_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("from nas.study import Study\n\nstudy = Study(name='x', space=3)\n")
    out = nas("run", str(bad), "--storage", f"sqlite:///{tmp_path / 'db.sqlite'}",
              cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert f"{bad}:3" in out.stderr and "Traceback" not in out.stderr
    out = nas("studies", "--storage", "postgresql+psycopg://nobody@127.0.0.1:1/nothing",
              cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "127.0.0.1" in out.stderr
    out = nas("train", str(tmp_path / "missing.py"), cwd=tmp_path, check=False)
    assert out.returncode == 1 and "not found" in out.stderr


@pytest.mark.parametrize("where", ["empty", "new"])
def test_studies_on_an_empty_sqlite_file(tmp_path, where):
    db = tmp_path / "empty.db"
    if where == "empty":
        db.write_bytes(b"")
    out = nas("studies", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert "no studies" in out.stdout


@pytest.mark.slow
def test_two_ray_workers_find_the_same_front_as_one(tmp_path, finished_run):
    """`nas search --workers 2` (a local Ray started by the CLI) evaluates on two actors and
    stores exactly the front that the in-process evaluator finds for the same seed, from
    the same starting store."""
    root, _ = finished_run
    fronts, evaluated = {}, {}
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    try:
        for workers in (1, 2):
            where = tmp_path / f"w{workers}"
            study, url = _copy_run(root, where)
            out = subprocess.run(
                [sys.executable, "-m", "nas.cli", "search", str(study), "--storage", url,
                 "--workers", str(workers), "--seed", "5", "--budget", "10", "--run", "again"],
                cwd=where, capture_output=True, text=True, timeout=600, env=env)
            assert out.returncode == 0, out.stdout + out.stderr
            with open_store(url) as store:
                fronts[workers] = [(r.arch_key, r.objectives)
                                   for r in store.get_front(study="tiny", run="again")]
                evaluated[workers] = sorted(
                    (e.arch_key, e.metric, e.value) for e in store.get_evaluations(study="tiny")
                    if e.source == "supernet")
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert fronts[1] and fronts[1] == fronts[2]
    assert evaluated[1] == evaluated[2]


@pytest.mark.slow
def test_predict_after_a_search_holds_out_only_the_random_sample(tmp_path, finished_run):
    """The search's evaluations (front-biased, no split halves) train the predictor but are
    never in its held-out set, so the noise ceiling is always measured on that set."""
    root, _ = finished_run
    study, url = _copy_run(root, tmp_path)
    with open_store(url) as store:
        assert store.list_search_runs(study="tiny")  # the search has added labels
    nas("run", str(study), "--storage", url, "--redo", "predict", cwd=tmp_path)
    with open_store(url) as store:
        metrics = store.get_latest_predictor(study="tiny").metrics
        sampled = {e.arch_key for e in store.get_evaluations(study="tiny", metric="val_loss_b")}
        held_out = {e.arch_key for e in store.get_evaluations(study="tiny", source="predictor")}
        searched = {e.arch_key for e in store.get_evaluations(study="tiny", source="supernet",
                                                              metric="val_loss")}
    assert "noise_ceiling_tau" in metrics
    assert held_out and held_out <= sampled
    assert metrics["n_train"] + metrics["n_test"] == len(searched)


@pytest.mark.slow
def test_train_stage_data_parallel_equals_one_process(tmp_path):
    """`nas run --nproc 2` (two gloo ranks sharing each global batch) leaves the checkpoint
    the one-process train stage writes, within float reduction order; bad counts refused."""
    import torch

    from nas.pipeline import run_stage
    from nas.study_context import open_study
    from nas.training import load_checkpoint

    states = {}
    for nproc in (1, 2):
        where = tmp_path / f"n{nproc}"
        where.mkdir()
        study = write_study(where, steps=4)
        cwd = os.getcwd()
        os.chdir(where)  # run files go under ./runs
        try:
            with open_store(f"sqlite:///{where / 'db.sqlite'}") as store:
                ctx = open_study(study, store=store)
                if nproc == 2:
                    with pytest.raises(ValueError, match="nproc"):
                        run_stage(ctx, "train", nproc=0)
                detail = run_stage(ctx, "train", nproc=nproc)
                assert detail["step"] == 4
                states[nproc] = load_checkpoint(ctx.supernet_dir / "checkpoint.pt")["model"]
        finally:
            os.chdir(cwd)
    for name, value in states[1].items():
        torch.testing.assert_close(states[2][name], value, atol=1e-5, rtol=0)
