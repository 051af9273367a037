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


def storage_url() -> str:
    return st.session_state[URL_KEY]


def current_study() -> StudyRecord | None:
    """The study picked in the sidebar; shows what to run and returns None if the store
    has no study."""
    url = storage_url()
    name = st.session_state.get(STUDY_KEY)
    record = queries.study(url, name) if name else None
    if record is None:
        next_step("No study in this store yet.", "nas run studies/quickstart.py --storage URL")
    return record


def next_step(message: str, command: str) -> None:
    """An empty state that says what to run next."""
    st.info(message + " Run:")
    st.code(command, language="bash")


def select_arch(key: str) -> None:
    """Make ``key`` the arch the Architecture page opens."""
    st.session_state[ARCH_KEY] = key
