"""Latency tables: per device and mode, a heatmap per mixer of latency over width x
tokens, the other layers' entries, and how well the table predicts whole models."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import queries
from ui.arch_metrics import TableRef, mixer_entries, table_label, table_trust
from ui.arch_view import show_trust
from ui.figures import latency_heatmap
from ui.page_context import next_step, shown_url, storage_url

MIXERS = ("attention", "glu_mlp", "ssm", "conv")


def validation_frame(validation: dict) -> pd.DataFrame:
    """Rows ``naive`` / ``calibrated`` (the table against whole models measured) and the
    machine's repeat ceiling (the same models measured twice; a row of missing values when
    it was not measured) with MAPE, share within 10 %, Kendall tau, n."""
    rows = []
    names = {"naive": "naive (sum of layers)", "calibrated": "calibrated",
             "repeat": "repeat ceiling (same models measured twice)"}
    for name, words in names.items():
        v = validation.get(name)
        if isinstance(v, dict):
            rows.append({"prediction": words, "MAPE %": 100 * v.get("mape", float("nan")),
                         "within ±10 %": 100 * v.get("within10", float("nan")),
                         "Kendall tau": v.get("kendall"), "models": v.get("n")})
        elif name == "repeat" and rows:
            rows.append({"prediction": words + ": not measured", "MAPE %": float("nan"),
                         "within ±10 %": float("nan"), "Kendall tau": None, "models": None})
    return pd.DataFrame(rows)


def main() -> None:
    url = storage_url()
    st.title("Latency tables")
    tables = queries.latency_tables(url)
    if not tables:
        next_step(f"No latency table in `{shown_url(url)}` yet.",
                  f"nas profile studies/quickstart.py --storage {shown_url(url)}")
        return
    st.dataframe(pd.DataFrame([{
        "device": table_label(t), "space": t.space or "(any)", "entries": t.n_entries,
        "calibrated": t.calibration is not None, "verdict": table_trust(t).status,
        "updated": t.updated_at,
    } for t in tables]), hide_index=True, width="stretch")
    choices = {f"{table_label(t)} · {t.space or 'any space'}": TableRef.of(t) for t in tables}
    picked = st.selectbox("Table", list(choices))
    record = queries.latency_table(url, choices[picked])
    if record is None:
        st.warning("This table disappeared from the store; press Refresh.")
        return
    st.subheader("Validation on whole models")
    show_trust(record)
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
