"""Wall-clock-budgeted benchmarks keep the horizon they probed: a rerun resumes on it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_io import kept_horizon  # noqa: E402


def test_a_rerun_keeps_the_probed_horizon_and_another_budget_probes_again(tmp_path):
    path = tmp_path / "mnist" / "horizon.json"
    probes: list[int] = []

    def probe(steps: int):
        def run() -> int:
            probes.append(steps)
            return steps
        return run

    key = {"train_seconds": 110.0, "device": "cuda", "smoke": False}
    assert kept_horizon(path, key=key, probe=probe(1470)) == 1470
    # after a crash the step speed probes differently; the run keeps its schedule
    assert kept_horizon(path, key=key, probe=probe(1947)) == 1470
    assert probes == [1470]
    other = {**key, "train_seconds": 60.0}
    assert kept_horizon(path, key=other, probe=probe(800)) == 800
    assert probes == [1470, 800]
