"""What the pages compute from stored records: one row of objectives per arch, latency from
a stored table, per-layer breakdowns and 2-D Pareto fronts.

Plain functions of store records (no Streamlit), so they are tested directly and cached by
`ui.queries`. Objective columns: ``accuracy`` and ``loss`` (measured, each with the source
it came from), ``latency_ms`` (from a latency table), ``flops`` and ``params`` (exact counts
stored with the archs). Every value carries its source in ``<name>_source``; a value the
picked source does not have is NaN with an empty source (shown as missing), never taken
from another source. The sources of accuracy and loss (`MEASURED`):

- ``supernet``: inherited weights on the validation split (``val_accuracy`` / ``val_loss``);
- ``standalone``: the audit's stand-alone training on the test split (``test_accuracy`` /
  ``test_loss``), the mean over the stored runs (seeds);
- ``predictor``: the predictor's estimate of the validation loss (it predicts no accuracy);
- ``best``: per arch and objective, standalone if stored, else supernet, else predictor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeGuard

import numpy as np
import pandas as pd

from kernels import LatencyTable, layer_flops, layer_params, signature, spec_to_dict
from kernels.latency_table import LatencyTableError
from nas.search.objectives import canonical_objectives
from nas.storage import ArchRecord, Evaluation, FrontRow, LatencyTableRecord
from search_spaces import Arch, SearchSpace

OBJECTIVES: dict[str, str] = {"accuracy": "validation accuracy", "loss": "validation loss",
                              "latency_ms": "latency (ms)", "flops": "FLOPs",
                              "params": "parameters"}
MAXIMISED = frozenset({"accuracy"})
MEASURED_METRICS = {"accuracy": "val_accuracy", "loss": "val_loss"}
SOURCES = ("standalone", "supernet", "predictor")  # "best available" prefers this order
# source -> objective -> (stored metric, how the source is described)
MEASURED: dict[str, dict[str, tuple[str, str]]] = {
    "supernet": {"accuracy": ("val_accuracy", "supernet (inherited weights), validation split"),
                 "loss": ("val_loss", "supernet (inherited weights), validation split")},
    "standalone": {"accuracy": ("test_accuracy", "standalone training, test split"),
                   "loss": ("test_loss", "standalone training, test split")},
    "predictor": {"loss": ("val_loss", "predictor estimate of the validation loss")},
}


class TableRef(NamedTuple):
    """The natural key of a stored latency table (a tuple, so it can key a cache)."""

    fingerprint_id: str
    mode: str
    batch_size: int
    dtype: str
    space: str

    @classmethod
    def of(cls, record: LatencyTableRecord) -> TableRef:
        return cls(record.fingerprint_id, record.mode, record.batch_size, record.dtype,
                   record.space)


def table_label(record: LatencyTableRecord) -> str:
    """``AMD EPYC (cpu, 2 threads) · eager · batch 1 · float32`` for pickers and titles."""
    fp = record.fingerprint or {}
    where = fp.get("device_type", "?")
    if fp.get("device_type") == "cpu" and fp.get("threads"):
        where += f", {fp['threads']} threads"
    return (f"{fp.get('device_name', record.fingerprint_id)} ({where}) · {record.mode} · "
            f"batch {record.batch_size} · {record.dtype}")


def table_trust(record: LatencyTableRecord):
    """The table's `nas.latency.LatencyTrust` verdict, from its stored validation (the
    same verdict `nas profile` prints)."""
    from nas.latency.trust import latency_trust

    validation = {k: v for k, v in (record.validation or {}).items() if k != "meta"}
    return latency_trust(validation)


def latency_source(record: LatencyTableRecord) -> str:
    """Where a latency plotted from this table comes from, with the verdict on the table:
    ``latency table <device> (calibrated; UNRELIABLE: ...)``."""
    how = "calibrated" if record.calibration is not None else "sum of layers"
    trust = table_trust(record)
    verdict = {"trusted": "trusted", "unvalidated": "NOT VALIDATED"}.get(
        trust.status, "UNRELIABLE")
    if trust.within10 is not None:
        verdict += f": {100 * trust.within10:.0f} % of models within +-10 %"
    return f"latency table {table_label(record)} ({how}; {verdict})"


def space_key(name: str, space: SearchSpace) -> str:
    """The key a study's own latency tables are stored under (name and space hash)."""
    from nas.supernet import space_fingerprint

    return f"{name}:{space_fingerprint(space)}"


def table_applies(record: LatencyTableRecord, *, space_name: str, key: str) -> bool:
    """A table measured for this space (its exact key or its name) or shared by all."""
    return record.space in ("", space_name, key)


def predict_latency(space: SearchSpace, table: LatencyTable, arch: Arch) -> float:
    """Calibrated prediction (the plain sum of entries if the table has no calibration);
    NaN when the table lacks one of the arch's layers."""
    try:
        return table.predict(space.layers(arch), naive=table.calibration is None)
    except LatencyTableError:
        return math.nan


def latest_values(evaluations: Iterable[Evaluation]) -> dict[tuple[str, str, str], float]:
    """(arch key, metric, source) -> the value to show: the most recently recorded one
    (evaluations come oldest first, so a later checkpoint's value replaces an earlier one),
    except for ``standalone`` values, which are the mean over every stored run (seeds).
    Keys ``(arch key, metric, "standalone:n")`` hold the number of runs averaged."""
    values: dict[tuple[str, str, str], float] = {}
    runs: dict[tuple[str, str], list[float]] = {}
    for e in evaluations:
        if e.source == "standalone":
            runs.setdefault((e.arch_key, e.metric), []).append(e.value)
        else:
            values[(e.arch_key, e.metric, e.source)] = e.value
    for (key, metric), found in runs.items():
        values[(key, metric, "standalone")] = float(np.mean(found))
        values[(key, metric, "standalone:n")] = len(found)
    return values


def _pick(values: Mapping[tuple[str, str, str], float], key: str, name: str,
          source: str) -> tuple[float, str]:
    """Objective ``name`` of arch ``key`` from ``source`` (``best``: the first of `SOURCES`
    that has it) and the words for where it came from; (NaN, "") when missing."""
    for candidate in (SOURCES if source == "best" else (source,)):
        metric, words = MEASURED.get(candidate, {}).get(name, (None, ""))
        if metric is None:  # this source does not measure ``name``
            continue
        value = values.get((key, metric, candidate))
        if value is not None:
            if candidate == "standalone":
                n = int(values.get((key, metric, "standalone:n"), 1))
                words += f", mean of {n} run{'s' if n != 1 else ''}"
            return value, words
    return math.nan, ""


def source_description(source: str, name: str) -> str:
    """How the picked ``source`` measures objective ``name`` (for axis titles and notes);
    ``""`` when that source does not provide it."""
    if source == "best":
        return "best source per arch, named in the hover"
    return MEASURED.get(source, {}).get(name, (None, ""))[1]


def arch_points(archs: Sequence[ArchRecord], evaluations: Iterable[Evaluation], *,
                source: str = "best", latencies: Mapping[str, float] | None = None,
                latency_source: str = "", front: Sequence[FrontRow] = (),
                front_name: str = "") -> pd.DataFrame:
    """One row per arch: ``key, label``, each objective of `OBJECTIVES` with its source
    (``accuracy, accuracy_source, ..., latency_ms, latency_ms_source, ...``), ``on_front``
    and ``front_rank``.

    ``source`` picks the measured values (module docstring). A value that source lacks is
    NaN (missing), never filled from another source; the one exception keeps to the same
    source: a front member without a stored supernet value takes the one stored with the
    front (the search's own supernet evaluation) when the source is ``supernet`` or
    ``best``. Latency comes from ``latencies`` (a table) only.
    """
    if source not in ("best", *SOURCES):
        raise ValueError(f"source: expected one of {('best', *SOURCES)}, got {source!r}")
    values = latest_values(evaluations)
    ranks = {row.arch_key: row.rank for row in front}
    objectives = {row.arch_key: dict(zip(canonical_objectives(list(row.objectives)),
                                          row.objectives.values()))
                  for row in front}
    rows = []
    for record in archs:
        arch = Arch.from_json(record.arch_json)
        row: dict[str, Any] = {"key": record.key, "label": arch.label()}
        for name in MEASURED_METRICS:
            row[name], row[f"{name}_source"] = math.nan, ""
            stored = objectives.get(record.key, {}).get(name)
            for candidate in (SOURCES if source == "best" else (source,)):
                value, words = _pick(values, record.key, name, candidate)
                if math.isnan(value) and candidate == "supernet" and _finite(stored):
                    value = float(stored)
                    words = f"supernet (inherited weights), stored with front {front_name}"
                if not math.isnan(value):
                    row[name], row[f"{name}_source"] = value, words.strip()
                    break
        latency = (latencies or {}).get(record.key, math.nan)
        row["latency_ms"] = latency
        row["latency_ms_source"] = latency_source if math.isfinite(latency) else ""
        row["flops"] = math.nan if record.flops is None else float(record.flops)
        row["params"] = math.nan if record.params is None else float(record.params)
        for name in ("flops", "params"):
            row[f"{name}_source"] = "exact count" if math.isfinite(row[name]) else ""
        row["on_front"] = record.key in ranks
        row["front_rank"] = ranks.get(record.key, -1)
        rows.append(row)
    columns = ["key", "label"] + [c for name in OBJECTIVES for c in (name, f"{name}_source")] \
        + ["on_front", "front_rank"]
    return pd.DataFrame(rows, columns=columns)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def pareto_mask(x: Sequence[float], y: Sequence[float], *, maximise_x: bool = False,
                maximise_y: bool = True) -> np.ndarray:
    """Non-dominated points of a 2-D objective set, as a boolean mask: the search's own
    `nas.search.pareto.non_dominated_mask` with the maximised objectives negated."""
    from nas.search.pareto import non_dominated_mask

    xs = np.asarray(x, dtype=float) * (-1 if maximise_x else 1)
    ys = np.asarray(y, dtype=float) * (-1 if maximise_y else 1)
    if xs.size == 0:
        return np.zeros(0, dtype=bool)
    return non_dominated_mask(np.stack([xs, ys], axis=1))


def layer_rows(space: SearchSpace, arch: Arch,
               table: LatencyTable | None = None) -> list[dict[str, Any]]:
    """Each layer of ``arch``: ``index, part, kind, mixer, detail, dim, tokens, grid, flops,
    params, median_ms, spread_ms`` (latency NaN without a table or an entry)."""
    specs = space.layers(arch)
    parts = ["stem"]
    for i, stage in enumerate(arch.stages):
        if i:
            parts.append(f"downsample {i}->{i + 1}")
        parts += [f"stage {i + 1}"] * stage.depth
    parts.append("head")
    rows = []
    for index, (spec, part) in enumerate(zip(specs, parts)):
        d = spec_to_dict(spec)
        entry = None if table is None else table.entries.get(signature(spec))
        rows.append({
            "index": index, "part": part, "kind": spec.kind,
            "mixer": d.get("mixer", spec.kind), "detail": _detail(d),
            "dim": d.get("dim", d.get("out_dim")), "tokens": d.get("tokens"),
            "grid": "x".join(map(str, d["grid"])) if d.get("grid") else "",
            "flops": layer_flops(spec), "params": layer_params(spec),
            "median_ms": math.nan if entry is None else entry.median_ms,
            "spread_ms": math.nan if entry is None else entry.spread_ms,
        })
    return rows


def _detail(d: dict[str, Any]) -> str:
    """The knob of a layer spec in words (hidden size, kernel, heads, state)."""
    kind, mixer = d["kind"], d.get("mixer")
    if kind == "downsample":
        return f"{d['in_dim']} -> {d['out_dim']}"
    if kind == "stem":
        return f"patch {d['patch_size']}" if d.get("patch_size") else f"vocab {d['vocab_size']}"
    if kind == "head":
        return f"{d['num_outputs']} outputs"
    if mixer == "glu_mlp":
        return f"hidden {d['hidden']}"
    if mixer == "conv":
        return f"kernel {d['kernel_size']}"
    if mixer == "attention":
        return f"{max(1, d['dim'] // max(1, d['head_dim']))} heads of {d['head_dim']}"
    if mixer == "ssm":
        return f"state {d['state_size']}, head {d['head_dim']}"
    return ""


def mixer_entries(record: LatencyTableRecord) -> pd.DataFrame:
    """Entries of a stored table as rows: ``kind, mixer, dim, tokens, detail, median_ms,
    spread_ms, repeats`` (signatures are the JSON of layer specs)."""
    rows = []
    for sig, entry in record.entries.items():
        try:
            d = json.loads(sig)
        except json.JSONDecodeError:
            continue
        if not isinstance(d, dict) or "kind" not in d:
            continue
        rows.append({"kind": d["kind"], "mixer": d.get("mixer", d["kind"]),
                     "dim": d.get("dim", d.get("out_dim")), "tokens": d.get("tokens"),
                     "detail": _detail_safe(d), "median_ms": entry.median_ms,
                     "spread_ms": entry.spread_ms, "repeats": entry.repeats})
    return pd.DataFrame(rows, columns=["kind", "mixer", "dim", "tokens", "detail", "median_ms",
                                       "spread_ms", "repeats"])


def _detail_safe(d: dict[str, Any]) -> str:
    try:
        return _detail(d)
    except (KeyError, TypeError, ZeroDivisionError):
        return ""
