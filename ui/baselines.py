"""Baseline fronts from the search benchmark (``benchmarks/results/search.json``).

The benchmark records, per method and seed, the keys of the archs each method labelled
(``raw.runs["random/seed0"].labelled``, in order, so a budget is a prefix). Their objective
values live in the ground-truth study (``search_truth``, in the benchmark's store), so a
method's front is drawn from the study shown: the non-dominated points among the first
``budget`` archs it labelled that the study holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ui.arch_metrics import MAXIMISED, pareto_mask

SEARCH_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "search.json"


def read_benchmark(path: str | Path = SEARCH_RESULTS) -> dict[str, Any] | None:
    """``{"budgets": {name: n}, "runs": {"method/seedN": [keys]}}``, or None when the file
    is missing or holds no runs."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text()).get("raw", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    runs = {name: list(run.get("labelled", [])) for name, run in (raw.get("runs") or {}).items()
            if isinstance(run, dict)}
    if not runs:
        return None
    budgets = {str(k): int(v) for k, v in (raw.get("budgets") or {}).items()}
    return {"budgets": budgets or {"all": max(len(v) for v in runs.values())}, "runs": runs}


def baseline_fronts(points: pd.DataFrame, benchmark: dict[str, Any], *, x: str, y: str,
                    budget: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Method -> its front (rows of ``points``) over the first ``budget`` archs it labelled
    with seed ``seed``; methods with none of their archs in ``points`` are left out."""
    by_key = points.set_index("key")
    fronts = {}
    for name, labelled in benchmark["runs"].items():
        method, _, seed_name = name.partition("/seed")
        if seed_name != str(seed):
            continue
        keys = [k for k in labelled[:budget] if k in by_key.index]
        part = by_key.loc[keys, [x, y]].dropna() if keys else pd.DataFrame(columns=[x, y])
        part = part[np.isfinite(part[x].astype(float)) & np.isfinite(part[y].astype(float))]
        if part.empty:
            continue
        mask = pareto_mask(part[x], part[y], maximise_x=x in MAXIMISED, maximise_y=y in MAXIMISED)
        fronts[method] = part[mask].reset_index()
    return fronts
