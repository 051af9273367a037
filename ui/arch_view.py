"""Showing one arch: its layer diagram, its stored numbers with their sources, and the
latency the picked table predicts. Shared by the Pareto and Architecture pages."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from nas.latency.store import table_from_record
from nas.storage import LatencyTableRecord, StudyRecord
from search_spaces import Arch
from ui import queries
from ui.arch_metrics import (
    TableRef,
    layer_rows,
    predict_latency,
    table_label,
    table_trust,
)
from ui.figures import arch_diagram


def show_trust(record: LatencyTableRecord) -> None:
    """The verdict on a latency table (`nas.latency.latency_trust`, what `nas profile`
    prints) next to anything plotted from it: a warning with reasons and advice when it is
    unreliable or unvalidated, a caption when it is trusted."""
    trust = table_trust(record)
    where = table_label(record)
    if trust.trusted:
        st.caption(f"Latency from {where}: {trust.summary()}.")
        return
    lines = [f"**Latencies from {where} are not to be trusted.** {trust.summary()}."]
    lines += [f"- {r}" for r in trust.reasons]
    if trust.advice:
        lines += ["", "**To measure a better table:** " + "; ".join(trust.advice) + "."]
    st.warning("\n".join(lines))


def stored_numbers(url: str, study: str, key: str) -> pd.DataFrame:
    """Every stored number about arch ``key``: metric x source (latest value), with the
    fidelity it was measured at."""
    frame = queries.evaluations_frame(url, study)
    mine = frame[frame["arch_key"] == key]
    if mine.empty:
        return pd.DataFrame(columns=["metric", "source", "value", "fidelity", "split"])
    latest = mine.groupby(["metric", "source"], as_index=False).last()
    return latest[["metric", "source", "value", "fidelity", "split"]]


def layers_of(url: str, record: StudyRecord, arch: Arch,
              table: TableRef | None) -> tuple[list[dict], float]:
    """Layer rows (with latency entries of ``table``) and the table's prediction (ms)."""
    space = queries.study_space(record)
    stored = queries.latency_table(url, table) if table is not None else None
    model = table_from_record(stored) if stored is not None else None
    rows = layer_rows(space, arch, model)
    predicted = predict_latency(space, model, arch) if model is not None else math.nan
    return rows, predicted


def show_arch(url: str, record: StudyRecord, key: str, *, table: TableRef | None, slot: str,
              max_dim: int | None = None, with_numbers: bool = True) -> None:
    """Diagram, counts, predicted latency and stored numbers of arch ``key`` (``slot``
    names the place on the page, to key its widgets)."""
    arch = queries.arch_by_key(url, record.name, key)
    if arch is None:
        st.warning(f"Arch {key} is not in study {record.name}.")
        return
    rows, predicted = layers_of(url, record, arch, table)
    st.markdown(f"**`{arch.label()}`**  \nkey `{key}`")
    st.plotly_chart(arch_diagram(rows, max_dim=max_dim), width="stretch",
                    key=f"diagram-{slot}", config={"displayModeBar": False})
    cols = st.columns(3)
    cols[0].metric("FLOPs", f"{sum(r['flops'] for r in rows):,}")
    cols[1].metric("params", f"{sum(r['params'] for r in rows):,}")
    cols[2].metric("predicted latency", f"{predicted:.3f} ms" if math.isfinite(predicted)
                   else "no table")
    if with_numbers:
        numbers = stored_numbers(url, record.name, key)
        if numbers.empty:
            st.caption("No stored evaluation of this arch yet.")
        else:
            st.dataframe(numbers, hide_index=True, width="stretch")
