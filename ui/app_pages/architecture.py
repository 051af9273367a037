"""Architecture: one arch's layers coloured by mixer, its per-layer latency from a table,
predicted against measured numbers, a side-by-side comparison, and Export (a zip)."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from nas.export.bundle import ExportError, export_arch_zip
from ui import queries
from ui.arch_metrics import OBJECTIVES, latency_source
from ui.arch_view import layers_of, show_arch, show_trust, stored_numbers
from ui.figures import layer_latency_figure
from ui.page_context import (
    ARCH_KEY,
    current_study,
    link_arch,
    linked_arch,
    next_step,
    storage_url,
    study_command,
)

PICK_KEY = "architecture_pick"
EXPORT_KEY = "architecture_export"
NO_COMPARE = "(none)"


def predicted_vs_measured(url: str, study: str, key: str, predicted_ms: float,
                          table_source: str = "latency table") -> pd.DataFrame:
    """Latency predicted by the table (``table_source`` names it and its verdict) beside
    any measured latency; accuracy and loss from every source that stored one."""
    numbers = stored_numbers(url, study, key)
    rows = [{"quantity": "latency (ms)", "source": f"{table_source}, predicted",
             "value": predicted_ms}] if math.isfinite(predicted_ms) else []
    for r in numbers.itertuples():
        if "latency" in r.metric or r.metric in ("val_accuracy", "val_loss", "test_accuracy",
                                                 "test_loss"):
            rows.append({"quantity": r.metric, "source": f"{r.source} ({r.fidelity or '-'})",
                         "value": r.value})
    return pd.DataFrame(rows, columns=["quantity", "source", "value"])


def export_section(url: str, study: str, key: str) -> None:
    st.subheader("Export")
    st.caption("Builds the standalone model of this arch from the study's supernet checkpoint, "
               "as `nas export --arch KEY` does (weights.pt, TorchScript, ONNX when available, "
               "arch.json, layers.json and the model card), and offers it as a zip.")
    if st.button("Export", type="primary", key="export_button"):
        with st.spinner("Exporting..."):
            try:
                st.session_state[EXPORT_KEY] = (key, export_arch_zip(
                    store=queries.store(url), study=study, arch_key=key))
            except (ExportError, ValueError, OSError, RuntimeError) as exc:
                st.session_state.pop(EXPORT_KEY, None)
                st.error(f"Export failed: {exc}")
    done = st.session_state.get(EXPORT_KEY)
    if done is not None and done[0] == key:
        exported = done[1]
        st.success(f"Exported {len(exported.files)} files: {', '.join(exported.files)}")
        st.download_button(f"Download {exported.file_name}", exported.data,
                           file_name=exported.file_name, mime="application/zip",
                           key="export_download")


def main() -> None:
    url = storage_url()
    st.title("Architecture")
    record = current_study()
    if record is None:
        return
    archs = queries.archs(url, record.name)
    if not archs:
        next_step(f"Study {record.name} has no arch yet.", study_command(record))
        return
    points = queries.points(url, record.name)
    labels = dict(zip(points["key"], points["label"]))
    keys = sorted(labels, key=lambda k: labels[k])
    wanted = linked_arch(labels) or st.session_state.get(ARCH_KEY)
    if wanted in labels and st.session_state.get("_architecture_wanted") != wanted:
        st.session_state[PICK_KEY] = wanted  # a pick made on another page wins once
        st.session_state["_architecture_wanted"] = wanted
    if st.session_state.get(PICK_KEY) not in labels:
        st.session_state[PICK_KEY] = keys[0]
    tables = queries.table_choices(url, record)
    c1, c2 = st.columns([2, 1])
    key = c1.selectbox("Architecture", keys, key=PICK_KEY,
                       format_func=lambda k: f"{labels[k]}  [{k}]")
    st.session_state[ARCH_KEY] = key
    link_arch(key)
    table_label = c2.selectbox("Latency table", list(tables) or ["(none)"])
    table = tables.get(table_label)
    stored_table = queries.latency_table(url, table) if table is not None else None
    if not tables:
        st.caption(f"No latency table for this space: run "
                   f"`{study_command(record, 'profile')}` for the per-layer breakdown.")
    elif stored_table is not None:
        show_trust(stored_table)
    arch = queries.arch_by_key(url, record.name, key)
    assert arch is not None  # the keys are the study's own archs
    rows, predicted = layers_of(url, record, arch, table)
    max_dim = max(int(r["dim"] or 1) for r in rows)
    show_arch(url, record, key, table=table, slot="main", with_numbers=False)

    st.subheader("Layers")
    frame = pd.DataFrame(rows)
    if table is not None and frame["median_ms"].notna().any():
        st.plotly_chart(layer_latency_figure(rows), width="stretch", key="layer_latency")
        missing = int(frame["median_ms"].isna().sum())
        if missing:
            st.warning(f"{missing} layer(s) of this arch are not in the table.")
    st.dataframe(frame, hide_index=True, width="stretch")

    st.subheader("Predicted and measured")
    compared = predicted_vs_measured(
        url, record.name, key, predicted,
        latency_source(stored_table) if stored_table is not None else "latency table")
    if compared.empty:
        st.caption("Nothing stored for this arch yet.")
    else:
        st.dataframe(compared, hide_index=True, width="stretch")

    st.subheader("Compare")
    other = st.selectbox("Compare with", [NO_COMPARE] + [k for k in keys if k != key],
                         format_func=lambda k: k if k == NO_COMPARE else f"{labels[k]}  [{k}]")
    if other != NO_COMPARE:
        other_arch = queries.arch_by_key(url, record.name, other)
        assert other_arch is not None  # the keys are the study's own archs
        other_rows, _ = layers_of(url, record, other_arch, table)
        max_dim = max(max_dim, *(int(r["dim"] or 1) for r in other_rows))
        left, right = st.columns(2)
        with left:
            show_arch(url, record, key, table=table, slot="compare-a", max_dim=max_dim)
        with right:
            show_arch(url, record, other, table=table, slot="compare-b", max_dim=max_dim)
        points = queries.points(url, record.name, table=table).set_index("key")
        both = points.loc[[key, other], list(OBJECTIVES)].T
        both.columns = ["this", "other"]
        both["other - this"] = both["other"] - both["this"]
        st.dataframe(both, width="stretch")
    export_section(url, record.name, key)


main()
