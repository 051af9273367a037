"""Views of a study beyond one front (no Streamlit): the hypervolume a search run reached
after each evaluation, beside the search benchmark's baselines, and the architecture
choices of every arch as columns for a parallel-coordinates plot.

Hypervolume: every curve of one chart is measured in the same normalised objectives, by
the ideal and nadir of the front of all the points it plots (minimised, reference point
1.1 in each objective, as the search benchmark does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nas.search.pareto import hypervolume, non_dominated_mask, normalise
from nas.storage import ArchRecord
from search_spaces import Arch
from ui.arch_metrics import MAXIMISED

MIXER_NAMES = ("attention", "glu_mlp", "ssm", "conv")


def _minimised(points: pd.DataFrame, keys: Sequence[str],
               objectives: Sequence[str]) -> np.ndarray:
    """(len(keys), m) minimised objective values of ``keys`` in order; a row is NaN where
    the arch is not in ``points`` or lacks an objective."""
    by_key = points.drop_duplicates("key").set_index("key")
    out = np.full((len(keys), len(objectives)), np.nan)
    known = [i for i, k in enumerate(keys) if k in by_key.index]
    if known:
        values = by_key.loc[[keys[i] for i in known], list(objectives)].to_numpy(dtype=float)
        sign = np.array([-1.0 if o in MAXIMISED else 1.0 for o in objectives])
        out[known] = values * sign
    return out


def hypervolume_curves(points: pd.DataFrame, orders: Mapping[str, Sequence[str]], *,
                       objectives: Sequence[str], margin: float = 0.1
                       ) -> dict[str, tuple[list[int], list[float]]]:
    """Name -> (archs evaluated, hypervolume after them) for each labelling order of
    ``orders`` (arch keys, first labelled first), measured on the ``objectives`` columns of
    ``points``. An arch without a value of every objective counts as evaluated but adds
    nothing. Orders with none of their archs in ``points`` are left out."""
    if len(objectives) < 2:
        raise ValueError(f"objectives: need at least two, got {list(objectives)}")
    missing = [o for o in objectives if o not in points]
    if missing:
        raise ValueError(f"objectives {missing} are not columns of the points")
    values = {name: _minimised(points, list(keys), objectives) for name, keys in orders.items()}
    finite = {name: np.all(np.isfinite(v), axis=1) for name, v in values.items()}
    everything = np.vstack([v[finite[n]] for n, v in values.items()] or
                           [np.zeros((0, len(objectives)))])
    if not len(everything):
        return {}
    front = everything[non_dominated_mask(everything)]
    ideal, nadir = front.min(0), front.max(0)
    ref = np.full(len(objectives), 1.0 + margin)
    curves = {}
    for name, v in values.items():
        ok = finite[name]
        if not ok.any():
            continue
        z = normalise(v, ideal, nadir)
        xs = [int(i) + 1 for i in np.flatnonzero(ok)]
        ys = [hypervolume(z[:i][ok[:i]], ref) for i in xs]
        if xs[-1] < len(v):  # evaluations after the last plotted point add nothing
            xs.append(len(v))
            ys.append(ys[-1])
        curves[name] = (xs, ys)
    return curves


def baseline_orders(benchmark: Mapping[str, Any] | None, points: pd.DataFrame, *,
                    seed: int = 0, min_archs: int = 2) -> dict[str, list[str]]:
    """``baseline: <method>`` -> the archs that method labelled with ``seed`` in the search
    benchmark (``ui.baselines.read_benchmark``), kept only when at least ``min_archs`` of
    them are in ``points`` (the benchmark ran on its own study; elsewhere there is none)."""
    if not benchmark:
        return {}
    present = set(points["key"])
    orders = {}
    for name, keys in benchmark["runs"].items():
        method, _, seed_name = name.partition("/seed")
        if seed_name == str(seed) and sum(k in present for k in keys) >= min_archs:
            orders[f"baseline: {method}"] = list(keys)
    return orders


def history_order(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The labelling order of a search run from its history records (by step)."""
    order: list[str] = []
    for record in sorted(history, key=lambda r: r.get("step", 0)):
        order += [k for k in record.get("labelled", []) if isinstance(k, str)]
    return order


def choice_columns(archs: Sequence[ArchRecord]) -> pd.DataFrame:
    """One row per arch: ``key``, ``resolution``, ``stage<i> depth`` / ``stage<i> width``
    for each stage, and the number of layers of each mixer (``n attention``, ...)."""
    rows = []
    for record in archs:
        arch = Arch.from_json(record.arch_json)
        row: dict[str, Any] = {"key": record.key, "resolution": arch.resolution}
        counts = dict.fromkeys(MIXER_NAMES, 0)
        for i, stage in enumerate(arch.stages, start=1):
            row[f"stage{i} depth"] = stage.depth
            row[f"stage{i} width"] = stage.width
            for layer in stage.layers:
                counts[layer.mixer] = counts.get(layer.mixer, 0) + 1
        for mixer, n in counts.items():
            row[f"n {mixer}"] = n
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["baseline_orders", "choice_columns", "history_order", "hypervolume_curves"]
