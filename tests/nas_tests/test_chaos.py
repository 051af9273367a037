"""Crash safety end to end: the short version of `benchmarks/chaos.py` (a few SIGKILLs of
`nas run` on SQLite), and two concurrent `nas run` on one study."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import write_study  # noqa: E402

from nas.storage import open_store  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _chaos_module():
    spec = importlib.util.spec_from_file_location("_nas_chaos", REPO / "benchmarks" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_short_chaos_campaign_on_sqlite(tmp_path):
    out = _chaos_module().main(["--kills", "3", "--backends", "sqlite", "--no-write",
                                "--work", str(tmp_path / "chaos"), "--seed", "1"])
    m = out["metrics"]["sqlite"]
    assert m["kills"] >= 2, out["raw"]["sqlite"]["kills"]
    assert m["lost"] == 0 and m["duplicated"] == 0 and m["corrupted"] == 0, out
    assert m["same_checkpoint"] and m["all_stages_done"] and m["train_steps_in_order"]
    assert m["front_identical"], out


@pytest.mark.slow
def test_second_concurrent_run_is_refused_then_waits(tmp_path):
    study = write_study(tmp_path, steps=6)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cmd = [sys.executable, "-m", "nas.cli", "run", str(study), "--storage", url]
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 120
    lease = None
    while lease is None and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
        try:
            with open_store(url) as store:
                lease = store.get_lease(study="tiny")
        except ValueError:
            continue
    assert lease is not None and lease.pid == first.pid
    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    line = second.stderr.strip()
    assert len(line.splitlines()) == 1, second.stderr
    assert f"pid {first.pid} since" in line and "--wait" in line
    waiting = subprocess.run(cmd + ["--wait"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert first.wait(600) == 0, first.stderr.read()
    assert waiting.returncode == 0, waiting.stderr
    assert "waiting for study 'tiny'" in waiting.stderr
    # it ran nothing again: every stage was done by the first run
    assert "done, skipped" in waiting.stdout and "train ..." not in waiting.stdout
    with open_store(url) as store:
        assert store.get_lease(study="tiny") is None
        assert len(store.list_checkpoints(study="tiny")) == 1
