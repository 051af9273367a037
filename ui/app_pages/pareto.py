"""Pareto front: any two objectives of the study's archs, the front highlighted and
connected, a latency budget that dims what does not fit, baseline fronts from the search
benchmark; picking a point (on the chart or in the list) shows its architecture."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from ui import queries
from ui.arch_metrics import MAXIMISED, OBJECTIVES, pareto_mask
from ui.arch_view import show_arch
from ui.baselines import baseline_fronts, read_benchmark
from ui.figures import pareto_figure
from ui.page_context import ARCH_KEY, current_study, next_step, select_arch, storage_url

NO_RUN = "(none: non-dominated of the evaluated archs)"
PICK_KEY = "pareto_pick"
SEEN_KEY = "pareto_seen_selection"


def _available(df: pd.DataFrame) -> list[str]:
    return [c for c in OBJECTIVES if np.isfinite(df[c].astype(float)).any()]


def _chart_selection(event) -> str | None:
    """The arch key of the first point selected on the chart, if any."""
    try:
        chosen = event.selection.points
    except AttributeError:
        return None
    for point in chosen or []:
        key = point.get("customdata")
        if isinstance(key, list):
            key = key[0] if key else None
        if isinstance(key, str):
            return key
    return None


def _ordered_keys(df: pd.DataFrame, y: str) -> list[str]:
    """Front members first (by rank), then the rest by the y objective, best first."""
    front = df[df["on_front"]].sort_values("front_rank")
    rest = df[~df["on_front"]].sort_values(y, ascending=y not in MAXIMISED, na_position="last")
    return front["key"].tolist() + rest["key"].tolist()


def main() -> None:
    url = storage_url()
    st.title("Pareto front")
    record = current_study()
    if record is None:
        return
    if not queries.archs(url, record.name):
        next_step(f"Study {record.name} has no evaluated arch yet.",
                  f"nas run {record.study_path or 'STUDY_FILE'}")
        return
    runs = queries.search_runs(url, record.name)
    tables = queries.table_choices(url, record)
    c1, c2, c3 = st.columns(3)
    run = c1.selectbox("Search run", [r.name for r in reversed(runs)] + [NO_RUN],
                       help="Its stored front is highlighted.")
    run = None if run == NO_RUN else run
    table_label = c2.selectbox("Latency table (device, mode)", list(tables) or ["(none)"])
    table = tables.get(table_label)
    source = c3.selectbox("Accuracy / loss from", ["best", "standalone", "supernet",
                                                   "predictor"],
                          help="best: standalone if measured, else supernet, else predictor")
    if not runs:
        st.caption(f"No search run yet: run `nas search {record.study_path or record.name}` "
                   "to store a front; the non-dominated evaluated archs are shown instead.")
    if not tables:
        st.caption(f"No latency table for this space yet: run `nas profile "
                   f"{record.study_path or record.name}` to plot latency.")
    df = queries.points(url, record.name, source=source, table=table, run=run)
    available = _available(df)
    cheap = [c for c in available if c in ("latency_ms", "flops", "params")] or available
    measured = [c for c in available if c in ("accuracy", "loss")] or available
    c4, c5, c6 = st.columns(3)
    x = c4.selectbox("x", available, index=available.index(cheap[0]), format_func=OBJECTIVES.get)
    y = c5.selectbox("y", available, index=available.index(measured[0]),
                     format_func=OBJECTIVES.get)
    latency = df["latency_ms"].astype(float)
    budget = None
    if np.isfinite(latency).any():
        lo, hi = float(np.nanmin(latency)), float(np.nanmax(latency))
        if hi > lo:
            budget = c6.slider("Latency budget (ms)", lo, hi, hi, step=(hi - lo) / 100,
                               format="%.4f", help="Archs slower than this are dimmed.")
    baselines = {}
    benchmark = read_benchmark()
    if benchmark is not None:
        overlay = st.toggle("Overlay baseline fronts (search benchmark)", value=False)
        if overlay:
            name = st.selectbox("Benchmark budget", list(benchmark["budgets"]))
            baselines = baseline_fronts(df, benchmark, x=x, y=y,
                                        budget=benchmark["budgets"][name])
            if not baselines:
                st.caption("None of the benchmark's archs are in this study (the baselines "
                           "ran on the benchmark's own space and store).")
    shown = df[np.isfinite(df[x].astype(float)) & np.isfinite(df[y].astype(float))]
    keys = _ordered_keys(shown, y)
    if not keys:
        st.info(f"No arch has both {OBJECTIVES[x]} and {OBJECTIVES[y]}.")
        return
    if st.session_state.get(PICK_KEY) not in keys:
        st.session_state[PICK_KEY] = keys[0]
    # The chart's identity includes its figure, so the figure of the run a click triggers
    # must equal the one clicked on: it depends on the pick of the previous run only.
    fig = pareto_figure(df, x=x, y=y, budget_ms=budget, stored_front=run is not None,
                        selected=st.session_state[PICK_KEY], baselines=baselines)
    event = st.plotly_chart(fig, width="stretch", key="pareto_chart", on_select="rerun",
                            selection_mode="points")
    chart_key = _chart_selection(event)
    if chart_key is None:
        st.session_state[SEEN_KEY] = None  # so clicking the same point again picks it again
    elif chart_key in keys and chart_key != st.session_state.get(SEEN_KEY):
        st.session_state[SEEN_KEY] = chart_key
        st.session_state[PICK_KEY] = chart_key
        st.rerun()  # redraw with the picked point ringed
    feasible = shown if budget is None else shown[~(shown["latency_ms"] > budget)]
    cols = st.columns(3)
    cols[0].metric("archs plotted", len(shown))
    n_front = int(shown["on_front"].sum()) if run else int(pareto_mask(
        shown[x], shown[y], maximise_x=x in MAXIMISED, maximise_y=y in MAXIMISED).sum())
    cols[1].metric("on the stored front" if run else "non-dominated", n_front)
    if len(feasible) and "accuracy" in available:
        best = feasible.sort_values("accuracy", ascending=False).iloc[0]
        if math.isfinite(best["accuracy"]):
            cols[2].metric("best accuracy within budget", f"{best['accuracy']:.4f}",
                           help=best["label"])
    labels = dict(zip(df["key"], df["label"]))
    st.subheader("Selected architecture")
    pick = st.selectbox("Architecture (or select a point on the chart)", keys, key=PICK_KEY,
                        format_func=lambda k: f"{labels.get(k, k)}  [{k}]")
    show_arch(url, record, pick, table=table, slot="pareto")
    if st.button("Open in the Architecture page", type="primary"):
        select_arch(pick)
        st.switch_page("app_pages/architecture.py")
    if run:
        with st.expander(f"Front of search run {run}"):
            rows = [{"rank": r.rank, "key": r.arch_key, "label": labels.get(r.arch_key, ""),
                     **r.objectives} for r in queries.front(url, record.name, run)]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.session_state.setdefault(ARCH_KEY, pick)


main()
