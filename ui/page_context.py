"""What every page shares: the store URL, the study picked in the sidebar, empty states.

`app.py` puts the URL and the study name in ``st.session_state``; pages read them here.
"""

from __future__ import annotations

import streamlit as st

from nas.storage import StudyRecord
from ui import queries

URL_KEY = "storage_url"
STUDY_KEY = "study"
ARCH_KEY = "arch_key"
LINKED_ARCH_KEY = "linked_arch"  # ?arch=KEY of the URL the session was opened with


def storage_url() -> str:
    return st.session_state[URL_KEY]


def shown_url(url: str | None = None) -> str:
    """The store URL as commands should name it (a password masked)."""
    url = url or storage_url()
    return queries.store(url).url


def current_study() -> StudyRecord | None:
    """The study picked in the sidebar; shows what to run and returns None if the store
    has no study."""
    url = storage_url()
    name = st.session_state.get(STUDY_KEY)
    record = queries.study(url, name) if name else None
    if record is None:
        next_step(f"No study in `{shown_url(url)}` yet.",
                  f"nas run studies/quickstart.py --storage {shown_url(url)}")
    return record


def study_command(record: StudyRecord, command: str = "run") -> str:
    """``nas <command> <study file> --storage <this store>``: what to run next for it."""
    return f"nas {command} {record.study_path or 'STUDY_FILE'} --storage {shown_url()}"


def link_arch(key: str | None) -> None:
    """Name ``key`` in the page's URL (``?study=...&arch=KEY``), so the URL opens this
    study and arch again (a deep link)."""
    study = st.session_state.get(STUDY_KEY)
    wanted = {k: v for k, v in (("study", study), ("arch", key)) if v}
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


def linked_arch(keys) -> str | None:
    """The arch the URL asked for (``?arch=KEY``) when it is among ``keys``; asked once."""
    key = st.session_state.get(LINKED_ARCH_KEY)
    if key is not None and key in keys:
        st.session_state[LINKED_ARCH_KEY] = None
        return key
    return None


def next_step(message: str, command: str) -> None:
    """An empty state that says what to run next."""
    st.info(message + " Run:")
    st.code(command, language="bash")


def select_arch(key: str) -> None:
    """Make ``key`` the arch the Architecture page opens."""
    st.session_state[ARCH_KEY] = key
