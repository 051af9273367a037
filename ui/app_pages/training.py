"""Supernet training: loss curves, the FLOPs of the subnets sampled at each step (the
complexity-aware walk made visible), and the fixed panel's validation accuracy."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from nas.search.session import history_run_name
from ui import queries
from ui.figures import panel_figure, sampled_flops_figure, training_loss_figure
from ui.page_context import current_study, next_step, storage_url, study_command


def main() -> None:
    url = storage_url()
    st.title("Supernet training")
    record = current_study()
    if record is None:
        return
    searches = {history_run_name(r.name) for r in queries.search_runs(url, record.name)}
    runs = [r for r in queries.metric_runs(url, record.name) if r not in searches]
    if not runs:
        next_step(f"Study {record.name} has no training log in the store yet.",
                  study_command(record))
        return
    run = st.selectbox("Run", runs, index=runs.index("supernet") if "supernet" in runs else 0)
    train = queries.metrics(url, record.name, run, "train")
    val = queries.metrics(url, record.name, run, "val")
    if train:
        last = train[-1]
        cols = st.columns(4)
        cols[0].metric("steps", last["step"])
        cols[1].metric("last loss (mean of the step's subnets)",
                       f"{last.get('loss', float('nan')):.4f}",
                       help="Mixes the largest's cross-entropy with the others' distillation "
                            "loss; the chart below shows each kind on its own axis.")
        cols[2].metric("learning rate", f"{last.get('lr', float('nan')):.2e}")
        speed = [p.get("samples_per_s") for p in train if p.get("samples_per_s")]
        cols[3].metric("samples / s (median)", f"{pd.Series(speed).median():.0f}"
                       if speed else "-")
        st.subheader("Loss")
        st.caption("Two kinds of loss: the largest subnet learns from the labels "
                   "(cross-entropy); the others learn from the largest's logits (in-place "
                   "distillation, the study's `distill` loss, mixed with the labels by "
                   "`distill_weight`). Each has its own axis.")
        st.plotly_chart(training_loss_figure(train), width="stretch", key="loss")
        st.subheader("FLOPs of the sampled subnets")
        st.caption("Largest and smallest are trained every step (sandwich rule); the random "
                   "subnets walk across FLOPs bins.")
        st.plotly_chart(sampled_flops_figure(train), width="stretch", key="flops")
    else:
        st.info("No training step logged yet.")
    st.subheader("Validation panel")
    if not val:
        st.caption("No validation step logged yet (the panel is evaluated every "
                   "`eval_every` steps).")
        return
    metric = st.radio("metric", ["accuracy", "loss"], horizontal=True)
    st.plotly_chart(panel_figure(val, metric=metric), width="stretch", key="panel")
    with st.expander("Last panel evaluation"):
        st.dataframe(pd.DataFrame(val[-1].get("panel") or []), hide_index=True,
                     width="stretch")


main()
