"""Predictor: its predictions against the supernet's labels with Kendall tau and the noise
ceiling (two half-size evaluations of the same archs agree only so far), and an audit of
the supernet's own ranking against standalone training when such runs are stored."""

from __future__ import annotations

import math

import streamlit as st

from ui import queries
from ui.figures import predicted_vs_true_figure
from ui.page_context import current_study, next_step, storage_url
from ui.ranking import noise_ceiling, paired, tau


def main() -> None:
    url = storage_url()
    st.title("Predictor")
    record = current_study()
    if record is None:
        return
    frame = queries.evaluations_frame(url, record.name)
    stored = queries.latest_predictor(url, record.name)
    ceiling, n_halves = noise_ceiling(frame)
    if stored is not None:
        cols = st.columns(4)
        cols[0].metric("predictor", stored.kind)
        cols[1].metric("labels", stored.n_labels)
        held = stored.metrics.get("kendall_tau")
        cols[2].metric("held-out Kendall tau", f"{held:.3f}" if isinstance(held, float) else "-")
        cols[3].metric("noise ceiling tau", f"{ceiling:.3f}" if math.isfinite(ceiling) else "-",
                       help=f"split-half agreement of {n_halves} archs, Spearman-Brown corrected")
        with st.expander("stored metrics"):
            st.json(stored.metrics)
    points = queries.points(url, record.name)
    names = dict(zip(points["key"], points["label"]))
    metrics = sorted(set(frame.loc[frame["source"] == "predictor", "metric"]))
    if not metrics:
        next_step(f"No predictor prediction stored for {record.name} yet.",
                  f"nas predict {record.study_path or record.name}")
    else:
        st.subheader("Predicted against supernet labels")
        metric = st.selectbox("metric", metrics)
        pairs = paired(frame, metric=metric, source_a="predictor", source_b="supernet")
        if pairs.empty:
            st.caption("The predicted archs have no supernet label of this metric.")
        else:
            t = tau(pairs["predictor"], pairs["supernet"])
            cols = st.columns(3)
            cols[0].metric("Kendall tau", f"{t:.3f}")
            cols[1].metric("noise ceiling", f"{ceiling:.3f}" if math.isfinite(ceiling) else "-")
            cols[2].metric("archs", len(pairs))
            st.plotly_chart(predicted_vs_true_figure(
                pairs["predictor"], pairs["supernet"],
                [names.get(k, k) for k in pairs["arch_key"]], metric=metric),
                width="stretch", key="predicted_vs_true")
    standalone = frame[frame["source"] == "standalone"]
    st.subheader("Audit: supernet ranking against standalone training")
    if standalone.empty:
        st.caption("No standalone evaluation stored: the audit (issue 11) trains a sample of "
                   "subnets from scratch and stores them with source 'standalone'.")
        return
    metric = st.selectbox("audit metric", sorted(set(standalone["metric"])))
    pairs = paired(frame, metric=metric, source_a="supernet", source_b="standalone")
    if pairs.empty:
        st.caption("No arch has both a supernet and a standalone value of this metric.")
        return
    st.metric("Kendall tau (supernet vs standalone)",
              f"{tau(pairs['supernet'], pairs['standalone']):.3f}")
    st.plotly_chart(predicted_vs_true_figure(
        pairs["supernet"], pairs["standalone"], [names.get(k, k) for k in pairs["arch_key"]],
        metric=metric), width="stretch", key="audit")


main()
