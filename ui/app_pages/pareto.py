"""Pareto front: any two objectives of the study's archs, the front highlighted and
connected with its knee and the exported arch marked, a latency budget that dims what does
not fit, other latency tables (devices) overlaid, baseline fronts from the search
benchmark; the verdict on the latency table; the search run's hypervolume against
evaluations and a parallel-coordinates view of the choices. Picking a point (on the chart
or in the list) shows its architecture; the URL names the study and arch (a deep link)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from nas.search.objectives import canonical_objectives
from ui import queries
from ui.arch_metrics import MAXIMISED, OBJECTIVES, pareto_mask, source_description
from ui.arch_view import show_arch, show_trust
from ui.baselines import baseline_fronts, read_benchmark
from ui.explore import baseline_orders, choice_columns, history_order, hypervolume_curves
from ui.figures import front_knee_2d, hypervolume_figure, parallel_figure, pareto_figure
from ui.page_context import (
    ARCH_KEY,
    current_study,
    link_arch,
    linked_arch,
    next_step,
    select_arch,
    storage_url,
    study_command,
)

NO_RUN = "(none: non-dominated of the evaluated archs)"
PICK_KEY = "pareto_pick"
SEEN_KEY = "pareto_seen_selection"
DEFAULT_FOR_KEY = "pareto_default_for"
SOURCES = ["supernet", "best", "standalone", "predictor"]  # supernet: what the front is in


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


def _axis_titles(source: str) -> dict[str, str]:
    """Axis titles that name where accuracy and loss come from."""
    titles = {}
    for name in ("accuracy", "loss"):
        words = source_description(source, name)
        titles[name] = name + (f" ({words})" if words else f" (none from {source})")
    return titles


def _missing_note(df: pd.DataFrame, *, x: str, y: str, source: str, run: str | None) -> None:
    """Say how many archs (and front members) lack a value of the plotted objectives from
    the picked source: they are not plotted, and nothing stands in for them."""
    lacking = df[~(np.isfinite(df[x].astype(float)) & np.isfinite(df[y].astype(float)))]
    if lacking.empty:
        return
    on_front = int(lacking["on_front"].sum()) if run else 0
    what = [OBJECTIVES[c] for c in (x, y) if not np.isfinite(df[c].astype(float)).all()]
    text = (f"{len(lacking)} of {len(df)} archs have no {' or '.join(what)} from source "
            f"**{source}** and are not plotted (a missing value is never replaced by another "
            f"source's)")
    if on_front:
        text += f"; {on_front} of them are on the stored front"
    st.info(text + ".")


def _overlay_points(url: str, record, *, source: str, run: str | None, tables: dict,
                    picked: list[str]) -> dict[str, pd.DataFrame]:
    return {label: queries.points(url, record.name, source=source, table=tables[label],
                                  run=run) for label in picked}


def _baselines(df: pd.DataFrame, *, x: str, y: str) -> dict[str, pd.DataFrame]:
    """The overlay toggle of the benchmark's baseline fronts: shown only when some baseline
    has archs in this study (the benchmark ran on its own study)."""
    benchmark = read_benchmark()
    if benchmark is None:
        return {}
    usable = {name: n for name, n in benchmark["budgets"].items()
              if baseline_fronts(df, benchmark, x=x, y=y, budget=n)}
    if not usable:
        return {}
    if not st.toggle("Overlay baseline fronts (search benchmark)", value=False):
        return {}
    name = st.selectbox("Benchmark budget", list(usable))
    return baseline_fronts(df, benchmark, x=x, y=y, budget=usable[name])


def _history(url: str, record, run: str, *, table_points: pd.DataFrame) -> None:
    """Hypervolume against evaluations of the run (and the benchmark's baselines)."""
    st.subheader(f"Search history of run {run}")
    config = next((r.config for r in queries.search_runs(url, record.name) if r.name == run),
                  {})
    # a stored config may spell an objective the older way ("latency"): one name each
    objectives = list(canonical_objectives(config.get("objectives", ("accuracy", "latency_ms"))))
    order = history_order(queries.search_history(url, record.name, run))
    if not order:
        st.caption(f"Run {run} stored no history (runs made before searches logged the order "
                   "they labelled archs in): no hypervolume curve.")
        return
    orders = {f"run {run}": order, **baseline_orders(read_benchmark(), table_points)}
    missing = [o for o in objectives if o not in table_points
               or not np.isfinite(table_points[o].astype(float)).any()]
    if missing:
        st.caption(f"No values of {missing} to measure the hypervolume with (pick a latency "
                   "table and the supernet source).")
        return
    curves = hypervolume_curves(table_points, orders, objectives=objectives)
    if not curves:
        st.caption("None of the run's archs has every objective: no hypervolume.")
        return
    st.plotly_chart(hypervolume_figure(curves), width="stretch", key="hypervolume",
                    config={"displaylogo": False})
    st.caption(f"Hypervolume of {' x '.join(objectives)} (normalised by the front of every "
               "point plotted, reference 1.1), from the accuracy source and latency table "
               "picked above; " + ("dotted: the search benchmark's baselines (seed 0)."
                                   if len(curves) > 1 else
                                   "no benchmark baseline ran on this study."))


def _parallel(url: str, record, df: pd.DataFrame, *, y: str) -> None:
    st.subheader("Architecture choices against objectives")
    choices = choice_columns(queries.archs(url, record.name))
    frame = choices.merge(df, on="key")
    objectives = [c for c in ("accuracy", "loss", "latency_ms", "flops", "params")
                  if c in frame and np.isfinite(frame[c].astype(float)).any()]
    frame = frame[np.isfinite(frame[y].astype(float))] if y in frame else frame
    if len(frame) < 2 or not objectives:
        st.caption("Fewer than two archs with values: nothing to compare.")
        return
    columns = [c for c in choices.columns if c != "key" and frame[c].nunique() > 1]
    st.plotly_chart(parallel_figure(frame, choices=columns, objectives=objectives,
                                    colour=y if y in objectives else objectives[0],
                                    labels=dict(OBJECTIVES)),
                    width="stretch", key="parallel", config={"displaylogo": False})
    st.caption("One line per arch through its choices and objectives; drag along an axis "
               "to filter.")


def main() -> None:
    url = storage_url()
    st.title("Pareto front")
    record = current_study()
    if record is None:
        return
    if not queries.archs(url, record.name):
        next_step(f"Study {record.name} has no evaluated arch yet.", study_command(record))
        return
    runs = queries.search_runs(url, record.name)
    tables = queries.table_choices(url, record)
    c1, c2, c3 = st.columns(3)
    run: str | None = c1.selectbox("Search run", [r.name for r in reversed(runs)] + [NO_RUN],
                       help="Its stored front is highlighted, its knee starred.")
    run = None if run == NO_RUN else run
    table_label = c2.selectbox("Latency table (device, mode)", list(tables) or ["(none)"])
    table = tables.get(table_label)
    source = c3.selectbox("Accuracy / loss from", SOURCES,
                          help="supernet: inherited weights, validation split; standalone: "
                               "the audit's stand-alone training, test split; predictor: its "
                               "validation-loss estimate; best: standalone if measured, else "
                               "supernet, else predictor. A missing value stays missing.")
    if not runs:
        st.caption(f"No search run yet: run `{study_command(record, 'search')}` to store a "
                   "front; the non-dominated evaluated archs are shown instead.")
    if not tables:
        st.caption(f"No latency table for this space yet: run "
                   f"`{study_command(record, 'profile')}` to plot latency.")
    df = queries.points(url, record.name, source=source, table=table, run=run)
    available = _available(df)
    if not available:
        st.info(f"No arch has a value from source **{source}**.")
        return
    cheap = [c for c in available if c in ("latency_ms", "flops", "params")] or available
    measured = [c for c in available if c in ("accuracy", "loss")] or available
    c4, c5, c6 = st.columns(3)
    x = c4.selectbox("x", available, index=available.index(cheap[0]),
                     format_func=lambda c: OBJECTIVES[c])  # available: keys of OBJECTIVES
    y = c5.selectbox("y", available, index=available.index(measured[0]),
                     format_func=lambda c: OBJECTIVES[c])
    latency = df["latency_ms"].astype(float)
    budget = None
    if np.isfinite(latency).any():
        lo, hi = float(np.nanmin(latency)), float(np.nanmax(latency))
        if hi > lo:
            budget = c6.slider("Latency budget (ms)", lo, hi, hi, step=(hi - lo) / 100,
                               format="%.4f", help="Archs slower than this are dimmed.")
    if table is not None and "latency_ms" in (x, y):
        stored = queries.latency_table(url, table)
        if stored is not None:
            show_trust(stored)
    c7, c8 = st.columns([1, 2])
    log_x = False
    if x == "latency_ms":
        spread = latency[np.isfinite(latency)]
        wide = len(spread) > 0 and spread.min() > 0 and spread.max() / spread.min() > 5
        log_x = c7.toggle("Log latency axis", value=bool(wide),
                          help="On by default when latencies span more than 5x.")
    others = [label for label in tables if label != table_label]
    picked_overlays = []
    if x == "latency_ms" and others:
        picked_overlays = c8.multiselect("Overlay fronts from other latency tables",
                                         others, help="The same archs' front with latency "
                                         "from another device or mode, knee starred.")
    overlays = _overlay_points(url, record, source=source, run=run, tables=tables,
                               picked=picked_overlays)
    baselines = _baselines(df, x=x, y=y)
    _missing_note(df, x=x, y=y, source=source, run=run)
    shown = df[np.isfinite(df[x].astype(float)) & np.isfinite(df[y].astype(float))]
    keys = _ordered_keys(shown, y)
    if not keys:
        st.info(f"No arch has both {OBJECTIVES[x]} and {OBJECTIVES[y]} from source "
                f"**{source}**.")
        return
    knee = queries.knee_key(url, record.name, run) if run else None
    if knee is not None and knee not in keys:
        st.caption(f"The knee of run {run} ({knee}) has no {OBJECTIVES[x]} / "
                   f"{OBJECTIVES[y]} from this source: not plotted.")
    if run is None:
        mask = pareto_mask(shown[x], shown[y], maximise_x=x in MAXIMISED,
                           maximise_y=y in MAXIMISED)
        knee = front_knee_2d(shown[mask], x=x, y=y)
    exported = queries.exported_key(url, record.name)
    # the default pick: the arch the URL names, else the knee (once per study, run and axes)
    default_for = (record.name, run, x, y, source)
    wanted = linked_arch(keys)
    if wanted is not None:
        st.session_state[PICK_KEY] = wanted
        st.session_state[DEFAULT_FOR_KEY] = default_for
    elif (st.session_state.get(PICK_KEY) not in keys
          or st.session_state.get(DEFAULT_FOR_KEY) != default_for):
        st.session_state[PICK_KEY] = knee if knee in keys else keys[0]
        st.session_state[DEFAULT_FOR_KEY] = default_for
    # The chart's identity includes its figure, so the figure of the run a click triggers
    # must equal the one clicked on: it depends on the pick of the previous run only.
    fig = pareto_figure(df, x=x, y=y, budget_ms=budget, stored_front=run is not None,
                        selected=st.session_state[PICK_KEY], baselines=baselines,
                        knee=knee, exported=exported, log_x=log_x, overlays=overlays,
                        axis_titles=_axis_titles(source))
    event = st.plotly_chart(fig, width="stretch", key="pareto_chart", on_select="rerun",
                            selection_mode="points", config={"displaylogo": False})
    chart_key = _chart_selection(event)
    if chart_key is None:
        st.session_state[SEEN_KEY] = None  # so clicking the same point again picks it again
    elif chart_key in keys and chart_key != st.session_state.get(SEEN_KEY):
        st.session_state[SEEN_KEY] = chart_key
        st.session_state[PICK_KEY] = chart_key
        st.rerun()  # redraw with the picked point ringed
    feasible = shown if budget is None else shown[~(shown["latency_ms"] > budget)]
    cols = st.columns(4)
    cols[0].metric("archs plotted", len(shown))
    n_front = int(shown["on_front"].sum()) if run else int(pareto_mask(
        shown[x], shown[y], maximise_x=x in MAXIMISED, maximise_y=y in MAXIMISED).sum())
    cols[1].metric("on the stored front" if run else "non-dominated", n_front)
    if len(feasible) and "accuracy" in available:
        best = feasible[np.isfinite(feasible["accuracy"].astype(float))]
        if len(best):
            best = best.sort_values("accuracy", ascending=False).iloc[0]
            cols[2].metric("best accuracy within budget", f"{best['accuracy']:.4f}",
                           help=f"{best['label']} [{best['key']}]; source: "
                                f"{best['accuracy_source']}")
            cols[2].caption(f"from: {best['accuracy_source']}")
    labels = dict(zip(df["key"], df["label"]))
    if knee is not None:
        cols[3].metric("knee" if run else "knee (of what is shown)", knee,
                       help="The best trade-off of the front: the default pick, and what "
                            "`nas export` exports by default.")
    st.subheader("Selected architecture")

    def describe(k: str) -> str:
        marks = [m for m, on in (("knee", k == knee), ("exported", k == exported)) if on]
        return f"{labels.get(k, k)}  [{k}]" + (f"  ({', '.join(marks)})" if marks else "")

    pick = st.selectbox("Architecture (or select a point on the chart)", keys, key=PICK_KEY,
                        format_func=describe)
    link_arch(pick)
    show_arch(url, record, pick, table=table, slot="pareto")
    if st.button("Open in the Architecture page", type="primary"):
        select_arch(pick)
        st.switch_page("app_pages/architecture.py")
    if run:
        with st.expander(f"Front of search run {run}", expanded=False):
            rows = [{"rank": r.rank, "key": r.arch_key, "label": labels.get(r.arch_key, ""),
                     "pick": ", ".join(m for m, on in (("knee", r.arch_key == knee),
                                                        ("exported", r.arch_key == exported))
                                       if on),
                     **r.objectives} for r in queries.front(url, record.name, run)]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption("The front's objectives as the search stored them (supernet accuracy, "
                       "the search's latency table). Click a column to sort.")
        _history(url, record, run, table_points=queries.points(
            url, record.name, source="supernet", table=table, run=run))
    _parallel(url, record, df, y=y)
    st.session_state.setdefault(ARCH_KEY, pick)


main()
