"""Every read the app makes, cached: pages call these and never touch the store or SQL.

Each function takes the store URL first (so two stores never share a cache entry) and
returns plain records, dicts or DataFrames. Reads expire after `TTL_S` seconds, so a study
that is still running shows up as it progresses; `clear()` forgets everything (the
sidebar's Refresh button).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pandas as pd
import streamlit as st

from nas.latency.store import table_from_record
from nas.storage import (
    ArchRecord,
    CheckpointRecord,
    Evaluation,
    FrontRow,
    LatencyTableRecord,
    PredictorRecord,
    SearchRunRecord,
    StageStatus,
    Store,
    StudyRecord,
    StudySummary,
    TrialRecord,
    open_store,
)
from search_spaces import Arch, SearchSpace, get_space
from ui.arch_metrics import (
    TableRef,
    arch_points,
    latency_source,
    predict_latency,
    space_key,
    table_applies,
    table_label,
)

TTL_S = 15


@st.cache_resource(show_spinner=False)
def store(url: str) -> Store:
    """One open store per URL for the whole server (SQLAlchemy pools its connections)."""
    return open_store(url)


def clear() -> None:
    st.cache_data.clear()


# -- studies --------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def studies(url: str) -> list[StudySummary]:
    return store(url).list_studies()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def study(url: str, name: str) -> StudyRecord | None:
    return store(url).get_study(name=name)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def stages(url: str, name: str) -> list[StageStatus]:
    return store(url).stages(study=name)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def checkpoints(url: str, name: str) -> list[CheckpointRecord]:
    return store(url).list_checkpoints(study=name)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def trials(url: str, name: str) -> list[TrialRecord]:
    return store(url).list_trials(study=name)


@st.cache_resource(show_spinner=False)
def space(space_name: str, overrides_json: str) -> SearchSpace:
    """The search space of a study record (built once per name and overrides)."""
    return get_space(space_name, **json.loads(overrides_json))


def study_space(record: StudyRecord) -> SearchSpace:
    return space(record.space, json.dumps(record.space_overrides, sort_keys=True))


# -- archs and evaluations ------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def archs(url: str, name: str) -> list[ArchRecord]:
    return store(url).get_archs(study=name)


def arch_by_key(url: str, name: str, key: str) -> Arch | None:
    record = next((a for a in archs(url, name) if a.key == key), None)
    return None if record is None else Arch.from_json(record.arch_json)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def evaluations(url: str, name: str) -> list[Evaluation]:
    return store(url).get_evaluations(study=name)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def evaluations_frame(url: str, name: str) -> pd.DataFrame:
    """All evaluations of a study as a table (one row per stored number)."""
    columns = ["arch_key", "metric", "value", "source", "checkpoint_sha256", "fidelity", "split",
               "recorded_at"]
    return pd.DataFrame([{c: getattr(e, c) for c in columns} for e in evaluations(url, name)],
                        columns=columns)


# -- searches -------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def search_runs(url: str, name: str) -> list[SearchRunRecord]:
    return store(url).list_search_runs(study=name)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def front(url: str, name: str, run: str) -> list[FrontRow]:
    return store(url).get_front(study=name, run=run)


# -- training metrics -----------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def metric_runs(url: str, name: str) -> list[str]:
    return store(url).metric_runs(study=name)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def metrics(url: str, name: str, run: str, kind: str) -> list[dict[str, Any]]:
    """The JSON lines of a training metrics log of one kind (``train`` or ``val``)."""
    return [r.payload for r in store(url).get_metrics(study=name, run=run, kind=kind)]


# -- latency tables -------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latency_tables(url: str) -> list[LatencyTableRecord]:
    """Every stored table, without entries."""
    return store(url).list_latency_tables()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latency_table(url: str, ref: TableRef) -> LatencyTableRecord | None:
    """One table with all its entries."""
    return store(url).get_latency_table(fingerprint_id=ref.fingerprint_id, mode=ref.mode,
                                        batch_size=ref.batch_size, dtype=ref.dtype,
                                        space=ref.space)


def study_tables(url: str, record: StudyRecord) -> list[LatencyTableRecord]:
    """Tables measured for the study's space (or shared by every space), newest first."""
    key = space_key(record.space, study_space(record))
    found = [t for t in latency_tables(url)
             if table_applies(t, space_name=record.space, key=key)]
    return sorted(found, key=lambda t: t.updated_at, reverse=True)


def table_choices(url: str, record: StudyRecord) -> dict[str, TableRef]:
    """Label -> table reference of the study's tables, for a picker."""
    return {f"{table_label(t)} [{t.fingerprint_id[:8]}]": TableRef.of(t)
            for t in study_tables(url, record)}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latencies(url: str, name: str, ref: TableRef) -> dict[str, float]:
    """Arch key -> predicted latency (ms) from table ``ref`` (NaN where a layer is missing)."""
    record, table = study(url, name), latency_table(url, ref)
    if record is None or table is None:
        return {}
    model, sp = table_from_record(table), study_space(record)
    return {a.key: predict_latency(sp, model, Arch.from_json(a.arch_json))
            for a in archs(url, name)}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def points(url: str, name: str, *, source: str = "best", table: TableRef | None = None,
           run: str | None = None) -> pd.DataFrame:
    """One row of objectives per arch of the study (see `ui.arch_metrics.arch_points`)."""
    lat = latencies(url, name, table) if table is not None else {}
    stored = latency_table(url, table) if table is not None else None
    lat_source = latency_source(stored) if stored is not None else ""
    rows = front(url, name, run) if run else []
    return arch_points(archs(url, name), evaluations(url, name), source=source,
                       latencies=lat, latency_source=lat_source, front=rows,
                       front_name=run or "")


# -- predictors and the rank-fidelity audit ---------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latest_predictor(url: str, name: str) -> PredictorRecord | None:
    """The newest stored predictor, without its (possibly large) blob."""
    record = store(url).get_latest_predictor(study=name)
    return None if record is None else replace(record, blob=None)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def audit(url: str, name: str) -> StageStatus | None:
    """The study's ``audit`` stage; once done its detail is the `nas audit` report."""
    return next((s for s in stages(url, name) if s.stage == "audit"), None)


# -- picks: the knee of a stored front and the exported arch -----------------------------


def knee_key(url: str, name: str, run: str) -> str | None:
    """The knee of search run ``run``'s stored front (`nas.search.session.knee_of_front`:
    the search's, `nas export`'s and `nas show`'s knee)."""
    from nas.search.session import front_knee_key

    config = next((r.config for r in search_runs(url, name) if r.name == run), None)
    return front_knee_key(front(url, name, run), config)


def exported_key(url: str, name: str) -> str | None:
    """The arch the study's export stage wrote (its stage detail), if that stage is done."""
    stage = next((s for s in stages(url, name) if s.stage == "export"), None)
    if stage is None or stage.status != "done" or not stage.detail:
        return None
    key = stage.detail.get("arch")
    return key if isinstance(key, str) else None


def search_history(url: str, name: str, run: str) -> list[dict[str, Any]]:
    """The labelled archs of search run ``run`` in the order the search labelled them
    (``[{"step": evaluations so far, "labelled": [keys]}]``), as the search session logs
    them; empty for a run that logged none (made before runs logged their history)."""
    from nas.search.session import history_run_name

    return [r for r in metrics(url, name, history_run_name(run), "search")]
