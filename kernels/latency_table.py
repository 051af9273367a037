"""Latency lookup table: measured per-layer times of one device fingerprint, and how they
compose into whole-model latency.

Entries are keyed by (fingerprint, layer signature, batch size, dtype, execution mode); the
fingerprint carries the batch size, dtype and mode, so one table holds exactly one of each
and its entries are keyed by `kernels.signature(spec)` inside it.

Composition. Summing per-layer times measured in isolation (``naive``) misses what a real
run adds or hides (Python and launch overhead between layers, cache state, overlap), so a
table carries a small calibration fitted on a handful of measured whole models::

    predicted_ms = scale * sum(entry.median_ms) + per_layer_ms * n_layers + intercept_ms

with all three coefficients >= 0, fitted by least squares on the relative error.

Errors are explicit, never a silent guess: a spec missing from the table raises
`MissingLayerError`; a table of another fingerprint (device, threads, torch, dtype, batch
size or mode) raises `FingerprintMismatchError`; both are `LatencyTableError` (a ValueError).

Example::

    table = LatencyTable.load("table.json", fingerprint=device_fingerprint(...))
    ms = table.predict(space.layers(arch))
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kernels.fingerprint import DeviceFingerprint
from kernels.specs import LayerSpec, signature
from kernels.timing import Measurement

TABLE_FORMAT = "nas-latency-table/1"


class LatencyTableError(ValueError):
    """A latency table cannot answer: wrong device, missing layer, bad file."""


class MissingLayerError(LatencyTableError):
    """A layer spec has no entry in the table (measure it or rebuild the table)."""


class FingerprintMismatchError(LatencyTableError):
    """The table was measured on another device / software / dtype / batch size / mode."""


@dataclass(frozen=True)
class LatencyEntry:
    """One layer's latency: median and spread (IQR) in ms over ``repeats`` samples."""

    median_ms: float
    spread_ms: float
    repeats: int

    @classmethod
    def from_measurement(cls, m: Measurement) -> LatencyEntry:
        return cls(median_ms=m.median_ms, spread_ms=m.spread_ms, repeats=m.repeats)


@dataclass(frozen=True)
class Calibration:
    """``scale * sum + per_layer_ms * n_layers + intercept_ms``, fitted on ``n_models``."""

    scale: float = 1.0
    per_layer_ms: float = 0.0
    intercept_ms: float = 0.0
    n_models: int = 0

    def apply(self, total_ms: float, n_layers: int) -> float:
        return self.scale * total_ms + self.per_layer_ms * n_layers + self.intercept_ms


def _nonneg_least_squares(rows: list[list[float]], target: list[float]) -> list[float]:
    """Exact non-negative least squares for a few columns: the best unconstrained fit over
    every subset of columns whose coefficients are all >= 0 (the others held at 0)."""
    k = len(rows[0])
    best, best_err = [0.0] * k, sum(t * t for t in target)
    for size in range(1, k + 1):
        for cols in itertools.combinations(range(k), size):
            coef = _solve_normal([[r[c] for c in cols] for r in rows], target)
            if coef is None or min(coef) < 0:
                continue
            full = [0.0] * k
            for c, v in zip(cols, coef):
                full[c] = v
            err = sum((sum(f * x for f, x in zip(full, r)) - t) ** 2
                      for r, t in zip(rows, target))
            if err < best_err - 1e-15:
                best, best_err = full, err
    return best


def _solve_normal(rows: list[list[float]], target: list[float]) -> list[float] | None:
    """Least squares via the normal equations (Gaussian elimination); None if singular."""
    k = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    b = [sum(r[i] * t for r, t in zip(rows, target)) for i in range(k)]
    tiny = 1e-12 * max(abs(a[i][i]) for i in range(k))
    for col in range(k):
        pivot = max(range(col, k), key=lambda i: abs(a[i][col]))
        if abs(a[pivot][col]) <= tiny:
            return None
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for i in range(k):
            if i != col:
                f = a[i][col] / a[col][col]
                a[i] = [x - f * y for x, y in zip(a[i], a[col])]
                b[i] -= f * b[col]
    return [b[i] / a[i][i] for i in range(k)]


def fit_calibration(totals_ms: Sequence[float], n_layers: Sequence[int],
                    measured_ms: Sequence[float]) -> Calibration:
    """Fit scale, per-layer overhead and intercept (all >= 0) so that ``apply(total, n)``
    matches ``measured_ms`` with the least squared *relative* error (nn-Meter's +-10 % is
    relative, so a 1 ms model counts as much as a 100 ms one)."""
    if not (len(totals_ms) == len(n_layers) == len(measured_ms)) or not totals_ms:
        raise ValueError("fit_calibration: totals, n_layers and measured need the same, "
                         "non-zero length")
    if min(measured_ms) <= 0:
        raise ValueError("fit_calibration: measured latencies must be > 0")
    rows = [[t / m, n / m, 1.0 / m] for t, n, m in zip(totals_ms, n_layers, measured_ms)]
    scale, per_layer, intercept = _nonneg_least_squares(rows, [1.0] * len(rows))
    return Calibration(scale=scale, per_layer_ms=per_layer, intercept_ms=intercept,
                       n_models=len(rows))


def _kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b (ties handled) between two equally long sequences, NaN when either
    is constant: the latency validation's own, in pure Python, because a bare target box
    has no scipy. Everything else ranks with `predictors.metrics.kendall_tau` (the one
    public Kendall tau; equal to this one, tested)."""
    n = len(a)
    if n != len(b):
        raise ValueError(f"kendall_tau: lengths differ ({n} vs {len(b)})")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(n):
        ai, bi = a[i], b[i]
        for j in range(i + 1, n):
            da, db = a[j] - ai, b[j] - bi
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else float("nan")


def latency_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """MAPE (fraction), share within +-10 % (fraction) and Kendall tau of predictions."""
    if len(predicted) != len(measured) or not measured:
        raise ValueError("latency_metrics: predicted and measured need the same, non-zero "
                         "length")
    rel = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"mape": sum(rel) / len(rel), "within10": sum(r <= 0.10 + 1e-12 for r in rel) / len(rel),
            "kendall": _kendall_tau(predicted, measured), "n": len(rel)}


class LatencyTable:
    """Per-layer latencies of one `DeviceFingerprint`, plus the composition calibration.

    ``entries`` maps ``signature(spec)`` to a `LatencyEntry`; ``validation`` holds the
    metrics of the last `validate` call (naive and calibrated); ``meta`` is free JSON-ready
    information (space, timing settings, build time).
    """

    def __init__(self, fingerprint: DeviceFingerprint, *,
                 entries: dict[str, LatencyEntry] | None = None,
                 calibration: Calibration | None = None,
                 validation: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.fingerprint = fingerprint
        self.entries: dict[str, LatencyEntry] = dict(entries or {})
        self.calibration = calibration
        self.validation = validation
        self.meta: dict[str, Any] = dict(meta or {})

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, spec: LayerSpec | str) -> bool:
        return (spec if isinstance(spec, str) else signature(spec)) in self.entries

    def __repr__(self) -> str:
        return (f"LatencyTable({self.fingerprint.describe()}, {len(self)} entries, "
                f"calibrated={self.calibration is not None})")

    def add(self, spec: LayerSpec, entry: LatencyEntry | Measurement) -> None:
        if isinstance(entry, Measurement):
            entry = LatencyEntry.from_measurement(entry)
        self.entries[signature(spec)] = entry

    def check(self, fingerprint: DeviceFingerprint | None) -> None:
        """Raise `FingerprintMismatchError` unless ``fingerprint`` is this table's (or None)."""
        if fingerprint is None or fingerprint == self.fingerprint:
            return
        diff = "; ".join(self.fingerprint.differences(fingerprint))
        raise FingerprintMismatchError(
            f"latency table is for another fingerprint ({diff}; table vs requested): "
            f"measure a table on this device and mode with `python -m nas.latency.profile`")

    def entry(self, spec: LayerSpec) -> LatencyEntry:
        key = signature(spec)
        try:
            return self.entries[key]
        except KeyError:
            raise MissingLayerError(
                f"layer {key} is not in the latency table ({len(self)} entries, "
                f"{self.fingerprint.describe()}): rebuild the table for this space") from None

    def layer_sum(self, specs: Iterable[LayerSpec]) -> tuple[float, int]:
        """(sum of entry medians in ms, number of layers), summed in layer order."""
        total, n = 0.0, 0
        for spec in specs:
            total += self.entry(spec).median_ms
            n += 1
        return total, n

    def compose(self, total_ms: float, n_layers: int, *, naive: bool = False) -> float:
        """Whole-model latency from a layer sum: plain (``naive``) or calibrated."""
        if naive:
            return total_ms
        if self.calibration is None:
            raise LatencyTableError("latency table has no calibration: call calibrate() on "
                                    "measured models, or ask for naive=True")
        return self.calibration.apply(total_ms, n_layers)

    def predict(self, specs: Sequence[LayerSpec], *, naive: bool = False,
                fingerprint: DeviceFingerprint | None = None) -> float:
        """Predicted latency (ms) of one model given as layer specs (``space.layers(arch)``)."""
        self.check(fingerprint)
        return self.compose(*self.layer_sum(specs), naive=naive)

    def predict_many(self, models: Iterable[Sequence[LayerSpec]], *, naive: bool = False,
                     fingerprint: DeviceFingerprint | None = None) -> list[float]:
        """`predict` for many models (each a list of layer specs)."""
        self.check(fingerprint)
        return [self.compose(*self.layer_sum(specs), naive=naive) for specs in models]

    def calibrate(self, models: Sequence[Sequence[LayerSpec]],
                  measured_ms: Sequence[float]) -> Calibration:
        """Fit (and keep) the calibration on a few whole models measured end to end."""
        sums = [self.layer_sum(specs) for specs in models]
        self.calibration = fit_calibration([s for s, _ in sums], [n for _, n in sums],
                                           measured_ms)
        return self.calibration

    def validate(self, models: Sequence[Sequence[LayerSpec]],
                 measured_ms: Sequence[float]) -> dict[str, Any]:
        """Metrics of naive and calibrated predictions against measured models (kept)."""
        sums = [self.layer_sum(specs) for specs in models]
        result: dict[str, Any] = {
            "naive": latency_metrics([s for s, _ in sums], measured_ms)}
        if self.calibration is not None:
            result["calibrated"] = latency_metrics(
                [self.compose(s, n) for s, n in sums], measured_ms)
        self.validation = result
        return result

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per entry, with its full key, for a database."""
        fp = self.fingerprint
        return [{"fingerprint": fp.id, "signature": key, "batch_size": fp.batch_size,
                 "dtype": fp.dtype, "mode": fp.mode, **asdict(entry)}
                for key, entry in self.entries.items()]

    # ---- JSON file -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        fp = self.fingerprint
        return {
            "format": TABLE_FORMAT, "fingerprint_id": fp.id, "fingerprint": fp.to_dict(),
            "mode": fp.mode, "batch_size": fp.batch_size, "dtype": fp.dtype,
            "entries": {k: asdict(e) for k, e in sorted(self.entries.items())},
            "calibration": None if self.calibration is None else asdict(self.calibration),
            "validation": self.validation, "meta": self.meta,
        }

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON atomically (a temporary file renamed over ``path``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_dict(cls, data: Any) -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise LatencyTableError(f"not a latency table (expected format {TABLE_FORMAT!r})")
        try:
            fp = DeviceFingerprint.from_dict(data["fingerprint"])
            entries = {str(k): LatencyEntry(**v) for k, v in data["entries"].items()}
            cal = data.get("calibration")
            calibration = None if cal is None else Calibration(**cal)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise LatencyTableError(f"malformed latency table: {exc}") from None
        if data.get("fingerprint_id") not in (None, fp.id):
            raise LatencyTableError("latency table: fingerprint_id does not match its "
                                    "fingerprint (file edited by hand?)")
        return cls(fp, entries=entries, calibration=calibration,
                   validation=data.get("validation"), meta=data.get("meta") or {})

    @classmethod
    def load(cls, path: str | Path, *,
             fingerprint: DeviceFingerprint | None = None) -> LatencyTable:
        """Read a table file; with ``fingerprint``, refuse a table measured elsewhere."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise LatencyTableError(f"cannot read latency table {path}: {exc}") from None
        table = cls.from_dict(data)
        table.check(fingerprint)
        return table
