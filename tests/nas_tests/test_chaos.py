"""Crash safety end to end: the short version of `benchmarks/chaos.py` (a few SIGKILLs of
`nas run` on SQLite), and two concurrent `nas run` on one study."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_helpers import PREDICT_GNN, SEARCH_GNN, write_study  # noqa: E402

from nas.storage import open_store  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _chaos_module():
    """`benchmarks/chaos.py`, its study given the small GNN predictor of the pipeline tests
    (the default one, 5 x 500 steps fitted twice, costs ~11 s of each run that predicts)."""
    spec = importlib.util.spec_from_file_location("_nas_chaos", REPO / "benchmarks" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    search = "    search=SearchConfig(budget=12, population=4, pool_factor=4, seed=0),\n"
    assert search in module.CHAOS_STUDY, "the chaos study changed: update this test"
    small = (f"    search=SearchConfig(budget=12, population=4, pool_factor=4, seed=0,\n"
             f"                        predictor_options={SEARCH_GNN!r}),\n"
             f"    predictor=PredictorConfig(kind='gnn', options={PREDICT_GNN!r}),\n")
    module.CHAOS_STUDY = module.CHAOS_STUDY.replace("from nas.study import (", (
        "from nas.study import PredictorConfig\nfrom nas.study import (")).replace(
        search, small.replace("{", "{{").replace("}", "}}"))  # the text is a format string
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


GATE = """
import os as _os, time as _time
while _os.environ.get("TINY_GATE") and not _os.path.exists(_os.environ["TINY_GATE"]):
    _time.sleep(0.05)  # the test's gate: a run started with $TINY_GATE waits here for it
"""


@pytest.mark.slow
def test_second_concurrent_run_is_refused_then_waits(tmp_path):
    """Three `nas run` of one study: the first holds it, the second is refused naming it,
    the third (--wait) waits for it, then finds every stage done. The second and third start
    with the first (imports take ~10 s on a busy 2-core CPU), held at a gate in the study
    file (the same text for all three) until the first holds the study; after the gate they
    only check the study (~3 s) while the first trains and runs every stage (~15 s)."""
    study = write_study(tmp_path, steps=100)
    study.write_text(study.read_text() + GATE)
    gate = tmp_path / "go"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cmd = [sys.executable, "-m", "nas.cli", "run", str(study), "--storage", url]
    gated = {**os.environ, "TINY_GATE": str(gate)}

    def start(name: str, args: list[str], env=None) -> tuple[subprocess.Popen, Path, Path]:
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with out.open("w") as o, err.open("w") as e:
            proc = subprocess.Popen(args, cwd=tmp_path, stdout=o, stderr=e, text=True, env=env)
        return proc, out, err

    first, _, first_err = start("first", cmd)
    second, _, second_err = start("second", cmd, gated)
    waiting, waiting_out, waiting_err = start("waiting", cmd + ["--wait"], gated)
    try:
        deadline = time.monotonic() + 120
        lease = None
        while lease is None and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
            try:
                with open_store(url) as store:
                    lease = store.get_lease(study="tiny")
            except ValueError:
                continue
        assert lease is not None and lease.pid == first.pid, first_err.read_text()
        gate.touch()
        assert second.wait(120) == 1, second_err.read_text()
        line = second_err.read_text().strip()
        assert len(line.splitlines()) == 1, line
        assert f"pid {first.pid} since" in line and "--wait" in line
        assert first.wait(600) == 0, first_err.read_text()
        assert waiting.wait(600) == 0, waiting_err.read_text()
    finally:
        for proc in (first, second, waiting):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "waiting for study 'tiny'" in waiting_err.read_text()
    # it ran nothing again: every stage was done by the first run
    printed = waiting_out.read_text()
    assert "done, skipped" in printed and "train ..." not in printed
    with open_store(url) as store:
        assert store.get_lease(study="tiny") is None
        assert len(store.list_checkpoints(study="tiny")) == 1
