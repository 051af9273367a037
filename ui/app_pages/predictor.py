"""Predictor: its predictions against the supernet's labels with Kendall tau and the noise
ceiling (two half-size evaluations of the same archs agree only so far), and the stored
`nas audit` report: the supernet's, the predictor's and FLOPs' rankings against
stand-alone training, with the seed-to-seed ceiling."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from nas.audit.table import audit_summary
from ui import queries
from ui.figures import audit_figure, predicted_vs_true_figure
from ui.page_context import current_study, next_step, shown_url, storage_url, study_command
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
                  study_command(record, "predict"))
    else:
        st.subheader("Predicted against supernet labels")
        metric = st.selectbox("metric", metrics)
        pairs = paired(frame, metric=metric, source_a="predictor", source_b="supernet")
        if pairs.empty:
            st.caption("The predicted archs have no supernet label of this metric.")
        else:
            t = tau(pairs["predictor"], pairs["supernet"])
            pair_cols = st.columns(3)
            pair_cols[0].metric("Kendall tau", f"{t:.3f}")
            pair_cols[1].metric("noise ceiling",
                                f"{ceiling:.3f}" if math.isfinite(ceiling) else "-")
            pair_cols[2].metric("archs", len(pairs))
            st.plotly_chart(predicted_vs_true_figure(
                pairs["predictor"], pairs["supernet"],
                [names.get(k, k) for k in pairs["arch_key"]], metric=metric),
                width="stretch", key="predicted_vs_true")
    show_audit(url, record)


def show_audit(url: str, record) -> None:
    """The stored `nas audit` report: each proxy's rank agreement with stand-alone training
    (with bootstrap intervals), the seed-to-seed noise ceiling and the audited archs."""
    st.subheader("Audit: rankings against stand-alone training")
    stage = queries.audit(url, record.name)
    command = (f"nas audit {record.study_path or 'STUDY_FILE'} --n 12 --seeds 2 "
               f"--storage {shown_url(url)}")
    if stage is None:
        next_step("No rank-fidelity audit of this study yet: it trains a stratified sample "
                  "of subnets from scratch and checks the supernet's ranking against them.",
                  command)
        return
    if stage.status != "done" or not stage.detail or "comparisons" not in stage.detail:
        detail = stage.detail or {}
        st.warning(f"The audit is {stage.status}"
                   + (f": {detail['error']}" if "error" in detail else "")
                   + ". Finished stand-alone runs are kept; rerunning resumes it.")
        st.code(command, language="bash")
        return
    report = stage.detail
    recipe = report["recipe"]
    st.caption(f"{report['n_archs']} archs x {report['seeds']} seed(s), stand-alone "
               f"{recipe['steps']} steps x batch {recipe['batch_size']} on "
               f"{report.get('device', '?')}, test split; top-k = {report['top_k']}; "
               f"{100 * report['bootstrap']['level']:.0f} % bootstrap intervals; finished "
               f"{report.get('finished_at', '?')}")
    sup = report["comparisons"]["supernet"]
    flops = report["comparisons"]["flops"]
    ceiling = report["noise_ceiling"]
    cols = st.columns(3)
    cols[0].metric("Kendall tau, supernet", f"{sup['kendall_tau']:+.3f}")
    cols[1].metric("FLOPs alone (floor)", f"{flops['kendall_tau']:+.3f}")
    cols[2].metric("seed-to-seed (ceiling)", f"{ceiling['kendall_tau']:+.3f}"
                   if ceiling.get("available") else "n/a",
                   help=None if ceiling.get("available") else ceiling.get("reason"))
    st.dataframe(pd.DataFrame(audit_summary(report)), hide_index=True, width="stretch")
    st.plotly_chart(audit_figure(report["rows"]), width="stretch", key="audit")
    with st.expander("audited archs"):
        st.dataframe(pd.DataFrame([{
            "arch": r["arch_key"], "label": r["label"], "stratum": r["stratum"],
            "MFLOPs": r["flops"] / 1e6, "stand-alone %": 100 * r["standalone"],
            "supernet %": 100 * r["supernet"],
            "predicted loss": None if r["predictor"] is None else -r["predictor"]}
            for r in report["rows"]]), hide_index=True, width="stretch")
        worst = report.get("disagreements", {}).get("supernet", [])
        if worst:
            st.caption("largest supernet disagreements (stand-alone rank -> supernet rank): "
                       + ", ".join(f"{d['arch_key']} {d['standalone_rank']} -> "
                                   f"{d['proxy_rank']}" for d in worst))


main()
