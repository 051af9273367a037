"""Benchmark scripts: a bad argument is one clear error and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("script", "args", "message"), [
    ("recipe_variants.py", ["--variants", "base,bogus"], "--variants: unknown ['bogus']"),
    ("recipe_variants.py", ["--steps", "0"], "--steps must be >= 1"),
    ("stem_ablation.py", ["--variants", "base,bogus"],
     "--variants: variant: 'bogus' is not one of"),
    ("stem_ablation.py", ["--variants", "lm_pm_dw05"],
     "variant 'lm_pm_dw05' is for sequence studies; studies/mnist_hybrid.py is an image study"),
    ("stem_ablation.py", ["--study", "studies/shakespeare_lm.py", "--variants", "dw05"],
     "variant 'dw05' is for image studies; studies/shakespeare_lm.py is a sequence study"),
    ("stem_ablation.py", ["--time-limit", "0"], "--time-limit must be > 0 seconds"),
    ("stem_ablation.py", ["--steps", "5"], "--steps must be >= 20"),
])
def test_bad_arguments_name_the_argument_and_write_nothing(tmp_path, script, args, message):
    work, results = tmp_path / "work", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--device", "cpu",
         "--work", str(work), *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={"NAS_BENCH_RESULTS": str(results), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not work.exists() and not results.exists()
