"""Studies: every study in the store with its space, data, stage status, evaluations and
last activity; then the picked study's stages, reproducibility record and what to run next."""

from __future__ import annotations

import ast
import json

import pandas as pd
import streamlit as st

from nas.storage import StudyRecord
from ui import queries
from ui.page_context import next_step, storage_url

STAGE_ORDER = ("train", "profile", "evaluate", "predict", "search", "export")
STATUS_MARK = {"done": "✓", "running": "…", "failed": "✗", "pending": "·"}


def data_description(study_text: str) -> str:
    """The ``data=...`` argument of the study file's ``Study(...)`` call, as written."""
    try:
        tree = ast.parse(study_text)
    except SyntaxError:
        return "?"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Study":
            for kw in node.keywords:
                if kw.arg == "data":
                    return ast.get_source_segment(study_text, kw.value) or "?"
    return "?"


def stage_text(stages: dict[str, str]) -> str:
    ordered = sorted(stages, key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else 99)
    return "  ".join(f"{s} {STATUS_MARK.get(stages[s], stages[s])}" for s in ordered) or "-"


def study_table(url: str) -> pd.DataFrame:
    return pd.DataFrame([{
        "study": s.study.name, "space": s.study.space,
        "data": data_description(s.study.study_text), "stages": stage_text(s.stages),
        "evaluations": s.n_evaluations,
        "last activity": s.last_activity.strftime("%Y-%m-%d %H:%M UTC"),
    } for s in queries.studies(url)])


def show_stages(url: str, record: StudyRecord) -> None:
    rows = []
    for s in queries.stages(url, record.name):
        took = (s.finished_at - s.started_at).total_seconds() \
            if s.started_at and s.finished_at else None
        rows.append({"stage": s.stage, "status": s.status,
                     "started": s.started_at.strftime("%Y-%m-%d %H:%M:%S")
                     if s.started_at else "", "took (s)": None if took is None else round(took, 1),
                     "detail": json.dumps(s.detail or {})[:300]})
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    done = {s.stage for s in queries.stages(url, record.name) if s.status == "done"}
    todo = [s for s in STAGE_ORDER if s not in done]
    if todo:
        where = record.study_path or "studies/<name>.py"
        next_step(f"Stages not done yet: {', '.join(todo)}.",
                  f"nas run {where} --storage {queries.store(url).url}")


def main() -> None:
    url = storage_url()
    st.title("Studies")
    if not queries.studies(url):
        next_step(f"No study in `{queries.store(url).url}` yet.",
                  f"nas run studies/quickstart.py --storage {queries.store(url).url}")
        return
    st.dataframe(study_table(url), hide_index=True, width="stretch")
    name = st.session_state.get("study")
    record = queries.study(url, name) if name else None
    if record is None:
        return
    st.header(record.name)
    archs, evals = queries.archs(url, record.name), queries.evaluations(url, record.name)
    cols = st.columns(4)
    cols[0].metric("archs", len(archs))
    cols[1].metric("evaluations", len(evals))
    cols[2].metric("checkpoints", len(queries.checkpoints(url, record.name)))
    cols[3].metric("search runs", len(queries.search_runs(url, record.name)))
    st.subheader("Stages")
    show_stages(url, record)
    left, right = st.columns(2)
    with left:
        st.subheader("Space")
        st.write(f"`{record.space}` with overrides")
        st.json(record.space_overrides, expanded=False)
        try:
            described = queries.study_space(record).describe()
            lo, hi = described["flops_range"]
            st.caption(f"{described['modality']} space of {described['size']:,} archs, "
                       f"FLOPs {lo:,} to {hi:,} per sample")
            st.json(described, expanded=False)
        except (ValueError, KeyError, TypeError) as exc:
            st.warning(f"The space cannot be rebuilt here: {exc}")
    with right:
        st.subheader("Reproducibility")
        st.write(f"study file `{record.study_path}`, sha256 `{record.study_hash[:16]}`")
        st.write(f"git commit `{record.git_commit or 'unknown'}`, seeds {record.seeds}")
        st.json(record.package_versions, expanded=False)
        with st.expander("study file"):
            st.code(record.study_text, language="python")
    runs = queries.search_runs(url, record.name)
    if runs:
        st.subheader("Search runs")
        st.dataframe(pd.DataFrame([{"run": r.name, "method": r.method, "status": r.status,
                                    "seed": r.seed, "updated": r.updated_at}
                                   for r in runs]), hide_index=True, width="stretch")
    trials = queries.trials(url, record.name)
    if trials:
        st.subheader("Hyper-parameter trials")
        st.dataframe(pd.DataFrame([{"trial": t.number, "score": t.score, "status": t.status,
                                    **t.config} for t in trials]), hide_index=True,
                     width="stretch")


main()
