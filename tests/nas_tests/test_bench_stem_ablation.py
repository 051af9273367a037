"""`benchmarks/stem_ablation.py`: a bad argument is one clear error and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "base,bogus"], "--variants: variant: 'bogus' is not one of"),
    (["--variants", "lm_pm_dw05"], "variant 'lm_pm_dw05' is for sequence studies; "
                                   "studies/mnist_hybrid.py is an image study"),
    (["--study", "studies/shakespeare_lm.py", "--variants", "dw05"],
     "variant 'dw05' is for image studies; studies/shakespeare_lm.py is a sequence study"),
    (["--time-limit", "0"], "--time-limit must be > 0 seconds"),
    (["--steps", "5"], "--steps must be >= 20"),
])
def test_bad_arguments_name_the_argument_and_write_nothing(tmp_path, args, message):
    work, results = tmp_path / "work", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "stem_ablation.py"), "--device", "cpu",
         "--work", str(work), *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={"NAS_BENCH_RESULTS": str(results), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not work.exists() and not results.exists()
