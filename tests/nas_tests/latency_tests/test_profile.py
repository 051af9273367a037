"""Profiling a space: the enumeration covers every layer an arch can have, the fast arch
scorer equals the reference path exactly, builds resume without re-measuring, and
`python -m nas.latency.profile` runs with Ray, Optuna, SQLAlchemy and Streamlit unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from kernels import (
    FingerprintMismatchError,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MissingLayerError,
    TimingConfig,
    device_fingerprint,
    signature,
)
from kernels.latency_table import Calibration
from nas.latency.profile import (
    MeasureConfig,
    build_table,
    calibrate_and_validate,
    enumerate_layer_specs,
)
from nas.latency.scorer import ArchLatencyScorer, reference_latency
from search_spaces import Arch, get_space, list_spaces

TINY = {"widths": ((16,), (32,)), "depths": ((1,), (1, 2)), "resolutions": (16,),
        "head_dim": 16}
TINY_ARGS = ["--override", "widths=((16,),(32,))", "--override", "depths=((1,),(1,2))",
             "--override", "resolutions=(16,)", "--override", "head_dim=16"]
FAST = MeasureConfig(threads=1, block=4,
                     layer_timing=TimingConfig(warmup=1, repeats=3, min_sample_ms=0.0),
                     model_timing=TimingConfig(warmup=1, repeats=3, min_sample_ms=0.0))


def _synthetic_table(space, rng, *, calibrated: bool = True) -> LatencyTable:
    table = LatencyTable(device_fingerprint(device="cpu", batch_size=1, threads=1))
    for spec in enumerate_layer_specs(space):
        table.add(spec, LatencyEntry(float(rng.uniform(0.01, 3.0)), 0.01, 5))
    if calibrated:
        table.calibration = Calibration(scale=1.13, per_layer_ms=0.017, intercept_ms=0.21,
                                        n_models=10)
    return table


@pytest.mark.parametrize("name", list_spaces())
def test_enumeration_covers_every_sampled_layer(name, rng):
    space = get_space(name)
    enumerated = {signature(s) for s in enumerate_layer_specs(space)}
    sampled = {signature(s) for _ in range(200) for s in space.layers(space.sample(rng))}
    extremes = {signature(s) for a in (space.smallest(), space.largest())
                for s in space.layers(a)}
    assert sampled | extremes <= enumerated
    assert len(enumerated) == len(enumerate_layer_specs(space))  # distinct


@pytest.mark.parametrize("name", list_spaces())
def test_fast_scorer_equals_reference_exactly(name, rng):
    space = get_space(name)
    table = _synthetic_table(space, rng)
    archs = [space.sample(rng) for _ in range(200)] + [space.smallest(), space.largest()]
    for naive in (False, True):
        fast = ArchLatencyScorer(space, table, naive=naive).predict_many(archs)
        ref = [reference_latency(space, table, a, naive=naive) for a in archs]
        assert fast.tolist() == ref  # bit for bit


def test_fast_scorer_errors_are_explicit(rng):
    space = get_space("hybrid_vit_tiny")
    table = _synthetic_table(space, rng)
    arch = space.largest()
    missing = space.layers(arch)[3]
    del table.entries[signature(missing)]
    with pytest.raises(MissingLayerError, match="not in the"):
        ArchLatencyScorer(space, table).predict(arch)
    bad = Arch.from_dict(arch.to_dict() | {"resolution": 20})
    with pytest.raises(ValueError, match="resolution"):
        ArchLatencyScorer(space, table).predict(bad)
    with pytest.raises(LatencyTableError, match="no calibration"):
        ArchLatencyScorer(space, _synthetic_table(space, rng, calibrated=False))
    elsewhere = device_fingerprint(device="cpu", batch_size=64, threads=1)
    with pytest.raises(FingerprintMismatchError, match="batch_size"):
        ArchLatencyScorer(space, table, fingerprint=elsewhere)


def test_build_resumes_without_remeasuring(tmp_path):
    space = get_space("hybrid_vit_tiny", **TINY)
    out = tmp_path / "table.json"
    total = len(enumerate_layer_specs(space))

    class Interrupt(Exception):
        pass

    def interrupt(done, total):
        raise Interrupt

    with pytest.raises(Interrupt):
        build_table(space, config=FAST, out=out, on_block=interrupt, show_progress=False)
    first = LatencyTable.load(out)
    assert len(first) == FAST.block < total
    calls = []
    table = build_table(space, config=FAST, out=out, show_progress=False,
                        on_block=lambda done, total: calls.append(done))
    assert len(table) == total
    assert calls[0] == FAST.block + FAST.block and calls[-1] == total
    assert len(calls) == -(-(total - FAST.block) // FAST.block)  # only the missing blocks
    assert all(table.entries[k] == v for k, v in first.entries.items())
    assert build_table(space, config=FAST, out=out, show_progress=False).entries == \
        table.entries  # nothing left to measure
    other = MeasureConfig(threads=1, batch_size=2, layer_timing=FAST.layer_timing)
    with pytest.raises(LatencyTableError, match="batch_size"):
        build_table(space, config=other, out=out, show_progress=False)


def test_calibrate_and_validate_on_tiny_space():
    space = get_space("hybrid_vit_tiny", **TINY)
    table = build_table(space, config=FAST, show_progress=False)
    result = calibrate_and_validate(table, space, config=FAST, n_calibration=4,
                                    n_validation=6, show_progress=False)
    for name in ("naive", "calibrated"):
        assert set(result[name]) == {"mape", "within10", "kendall", "n"}
        assert result[name]["n"] == 6
    assert table.calibration.n_models == 4 and min(
        table.calibration.scale, table.calibration.per_layer_ms,
        table.calibration.intercept_ms) >= 0
    with pytest.raises(ValueError, match="n_calibration"):
        calibrate_and_validate(table, space, config=FAST, n_calibration=11)


BLOCKER = textwrap.dedent("""
    import runpy, sys
    BLOCKED = {"ray", "optuna", "sqlalchemy", "streamlit"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: nas.latency.profile must run "
                                  "with torch only")
            return None

    sys.meta_path.insert(0, Blocker())
    runpy.run_module("nas.latency.profile", run_name="__main__", alter_sys=True)
""")


def test_cli_runs_with_heavy_packages_blocked(tmp_path, repo):
    wrapper = tmp_path / "run_profile.py"
    wrapper.write_text(BLOCKER)
    out = tmp_path / "tiny.json"
    cmd = [sys.executable, str(wrapper), "--space", "hybrid_vit_tiny", *TINY_ARGS,
           "--threads", "1", "--repeats", "3", "--model-repeats", "3", "--spread", "0",
           "--calibrate", "3",
           "--validate", "5", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "validation: calibrated: MAPE" in proc.stdout
    data = json.loads(out.read_text())
    assert data["mode"] == "eager" and data["calibration"]["n_models"] == 3
    assert data["validation"]["calibrated"]["n"] == 5
    assert len(data["entries"]) == len(enumerate_layer_specs(get_space("hybrid_vit_tiny",
                                                                       **TINY)))
    # bad input: one clear error, nothing written
    bad_out = tmp_path / "bad.json"
    proc = subprocess.run([sys.executable, str(wrapper), "--space", "no_such_space",
                           "--out", str(bad_out)], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "error: unknown search space" in proc.stderr
    assert not bad_out.exists()
