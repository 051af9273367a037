"""`benchmarks/recipe_variants.py`: a bad argument is one clear error and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "base,bogus"], "--variants: unknown ['bogus']"),
    (["--steps", "0"], "--steps must be >= 1"),
])
def test_bad_arguments_name_the_argument_and_write_nothing(tmp_path, args, message):
    work, results = tmp_path / "work", tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "recipe_variants.py"), "--device", "cpu",
         "--work", str(work), *args],
        capture_output=True, text=True, timeout=120,
        env={"NAS_BENCH_RESULTS": str(results), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not work.exists() and not results.exists()
