"""Latency tables: per device and mode, a heatmap per mixer of latency over width x
tokens, the other layers' entries, and how well the table predicts whole models."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import queries
from ui.arch_metrics import TableRef, mixer_entries, table_label
from ui.figures import latency_heatmap
from ui.page_context import next_step, storage_url

MIXERS = ("attention", "glu_mlp", "ssm", "conv")


def validation_frame(validation: dict) -> pd.DataFrame:
    """Rows ``naive`` / ``calibrated`` with MAPE, share within 10 %, Kendall tau, n."""
    rows = []
    for name in ("naive", "calibrated"):
        v = validation.get(name)
        if isinstance(v, dict):
            rows.append({"prediction": name, "MAPE %": 100 * v.get("mape", float("nan")),
                         "within ±10 %": 100 * v.get("within10", float("nan")),
                         "Kendall tau": v.get("kendall"), "models": v.get("n")})
    return pd.DataFrame(rows)


def main() -> None:
    url = storage_url()
    st.title("Latency tables")
    tables = queries.latency_tables(url)
    if not tables:
        next_step("No latency table in the store yet.",
                  "nas profile studies/quickstart.py --storage URL")
        return
    st.dataframe(pd.DataFrame([{
        "device": table_label(t), "space": t.space or "(any)", "entries": t.n_entries,
        "calibrated": t.calibration is not None, "updated": t.updated_at,
    } for t in tables]), hide_index=True, width="stretch")
    choices = {f"{table_label(t)} · {t.space or 'any space'}": TableRef.of(t) for t in tables}
    picked = st.selectbox("Table", list(choices))
    record = queries.latency_table(url, choices[picked])
    if record is None:
        st.warning("This table disappeared from the store; press Refresh.")
        return
    st.subheader("Validation on whole models")
    validation = record.validation or {}
    frame = validation_frame(validation)
    if frame.empty:
        st.caption("This table was not validated against end-to-end runs.")
    else:
        st.dataframe(frame, hide_index=True, width="stretch")
    if record.calibration:
        c = record.calibration
        st.caption(f"calibration: {c.get('scale', 1):.3f} x sum + {c.get('per_layer_ms', 0):.4f}"
                   f" ms x layers + {c.get('intercept_ms', 0):.4f} ms "
                   f"(fitted on {c.get('n_models', '?')} models)")
    with st.expander("device fingerprint"):
        st.json(record.fingerprint)
    entries = mixer_entries(record)
    st.subheader("Latency per mixer")
    present = [m for m in MIXERS if (entries["mixer"] == m).any()]
    if not present:
        st.caption("No mixer entries in this table.")
    for i in range(0, len(present), 2):
        cols = st.columns(2)
        for col, mixer in zip(cols, present[i:i + 2]):
            col.plotly_chart(latency_heatmap(entries, mixer=mixer), width="stretch",
                             key=f"heatmap-{mixer}")
    st.subheader("Stem, downsampling and head")
    others = entries[~entries["mixer"].isin(MIXERS)]
    st.dataframe(others.sort_values(["kind", "dim", "tokens"]), hide_index=True,
                 width="stretch")


main()
