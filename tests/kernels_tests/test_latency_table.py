"""LatencyTable: JSON round trip, clear errors (missing layer, other fingerprint, other mode,
no calibration, bad file), the calibrated composition and the ranking metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from kernels import (
    FingerprintMismatchError,
    LatencyEntry,
    LatencyTable,
    LatencyTableError,
    MissingLayerError,
    MixerSpec,
    device_fingerprint,
    fit_calibration,
    latency_metrics,
    signature,
)
from kernels.latency_table import _kendall_tau as kendall_tau  # latency_metrics' own

FP = device_fingerprint(device="cpu", batch_size=1, mode="eager", threads=1)


def _spec(dim: int, mixer: str = "glu_mlp") -> MixerSpec:
    if mixer == "glu_mlp":
        return MixerSpec("glu_mlp", dim, 16, (4, 4), hidden=2 * dim)
    return MixerSpec("conv", dim, 16, (4, 4), kernel_size=3)


def _table(rng: np.random.Generator, n: int = 12) -> tuple[LatencyTable, list[MixerSpec]]:
    specs = [_spec(8 * (i + 1), m) for i in range(n) for m in ("glu_mlp", "conv")]
    table = LatencyTable(FP)
    for s in specs:
        table.add(s, LatencyEntry(median_ms=float(rng.uniform(0.05, 2.0)),
                                  spread_ms=float(rng.uniform(0, 0.1)), repeats=9))
    return table, specs


def test_save_load_round_trip(tmp_path, rng):
    table, specs = _table(rng)
    models = [list(rng.choice(len(specs), size=5)) for _ in range(6)]
    models = [[specs[i] for i in m] for m in models]
    measured = [1.1 * table.predict(m, naive=True) + 0.2 for m in models]
    table.calibrate(models[:4], measured[:4])
    table.validate(models[4:], measured[4:])
    table.meta["space"] = "toy"
    path = table.save(tmp_path / "sub" / "table.json")
    data = json.loads(path.read_text())
    for key in ("fingerprint", "fingerprint_id", "mode", "batch_size", "dtype", "entries",
                "calibration", "validation"):
        assert key in data
    assert data["mode"] == "eager" and data["fingerprint_id"] == FP.id
    loaded = LatencyTable.load(path, fingerprint=FP)
    assert loaded.fingerprint == FP and loaded.entries == table.entries
    assert loaded.calibration == table.calibration and loaded.validation == table.validation
    assert loaded.meta == {"space": "toy"}
    assert loaded.predict(models[0]) == table.predict(models[0])
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))
    rows = loaded.rows()
    assert len(rows) == len(loaded) and rows[0]["fingerprint"] == FP.id
    assert {"signature", "batch_size", "dtype", "mode", "median_ms", "spread_ms",
            "repeats"} <= set(rows[0])


def test_missing_spec_raises_clear_error(rng):
    table, specs = _table(rng)
    unknown = _spec(1000)
    with pytest.raises(MissingLayerError, match="not in the latency table") as info:
        table.predict(specs[:3] + [unknown], naive=True)
    assert isinstance(info.value, ValueError) and signature(unknown) in str(info.value)


def test_other_fingerprint_and_other_mode_raise(tmp_path, rng):
    table, specs = _table(rng)
    path = table.save(tmp_path / "t.json")
    other_batch = device_fingerprint(device="cpu", batch_size=8, mode="eager", threads=1)
    other_threads = device_fingerprint(device="cpu", batch_size=1, mode="eager", threads=3)
    for other in (other_batch, other_threads):
        with pytest.raises(FingerprintMismatchError, match="another fingerprint"):
            LatencyTable.load(path, fingerprint=other)
        with pytest.raises(FingerprintMismatchError):
            table.predict(specs[:2], naive=True, fingerprint=other)
    other_mode = FP.to_dict() | {"device_type": "cuda", "mode": "cuda_graph"}
    from kernels import DeviceFingerprint

    with pytest.raises(FingerprintMismatchError, match="mode"):
        table.check(DeviceFingerprint.from_dict(other_mode))


def test_no_calibration_and_bad_files_raise(tmp_path, rng):
    table, specs = _table(rng)
    with pytest.raises(LatencyTableError, match="no calibration"):
        table.predict(specs[:2])
    assert table.predict(specs[:2], naive=True) > 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LatencyTableError, match="cannot read"):
        LatencyTable.load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LatencyTableError, match="not a latency table"):
        LatencyTable.load(bad)
    with pytest.raises(LatencyTableError, match="cannot read"):
        LatencyTable.load(tmp_path / "missing.json")


def test_calibration_recovers_known_overhead_and_beats_naive(rng):
    """Whole models cost 1.15 x the layer sum + 0.2 ms per layer + 0.3 ms (+-1 % noise)."""
    table, specs = _table(rng)
    models = [[specs[i] for i in rng.choice(len(specs), size=int(rng.integers(3, 15)))]
              for _ in range(60)]
    truth = [1.15 * table.predict(m, naive=True) + 0.2 * len(m) + 0.3 for m in models]
    measured = [t * (1 + 0.01 * rng.standard_normal()) for t in truth]
    cal = table.calibrate(models[:10], measured[:10])
    assert cal.scale == pytest.approx(1.15, rel=0.1)
    assert cal.per_layer_ms == pytest.approx(0.2, abs=0.05)
    assert cal.n_models == 10
    held_out = [table.predict(m) / t - 1 for m, t in zip(models[10:], truth[10:])]
    assert max(abs(e) for e in held_out) < 0.03
    result = table.validate(models[10:], measured[10:])
    assert result["calibrated"]["mape"] < 0.03 < result["naive"]["mape"]
    assert result["calibrated"]["within10"] == 1.0
    assert result["calibrated"]["within10"] > result["naive"]["within10"]


def test_calibration_coefficients_are_non_negative():
    # measured = 0.9 * sum - 0.5: the unconstrained intercept is negative
    totals = [1.0, 2.0, 4.0, 8.0, 16.0]
    measured = [0.9 * t - 0.5 + 0.6 for t in totals[:1]] + [0.9 * t - 0.5 for t in totals[1:]]
    cal = fit_calibration(totals, [3] * 5, measured)
    assert min(cal.scale, cal.per_layer_ms, cal.intercept_ms) >= 0
    with pytest.raises(ValueError):
        fit_calibration([1.0], [1], [0.0])


def test_kendall_and_metrics_match_reference(rng):
    a, b = rng.normal(size=50), rng.normal(size=50)
    b[:5] = a[:5]
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b)[0], abs=1e-12)
    ties = [1, 1, 2, 3, 3, 4]
    other = [1, 2, 2, 3, 4, 4]
    assert kendall_tau(ties, other) == pytest.approx(kendalltau(ties, other)[0], abs=1e-12)
    m = latency_metrics([1.0, 2.2, 3.0, 5.0], [1.0, 2.0, 3.3, 4.0])
    assert m["within10"] == 0.75 and m["n"] == 4
    assert m["mape"] == pytest.approx((0 + 0.1 + 0.3 / 3.3 + 0.25) / 4)
