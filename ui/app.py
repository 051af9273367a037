"""The nas Streamlit app: ``streamlit run ui/app.py -- --storage URL`` (or ``nas ui``).

The store URL comes from ``--storage``, else ``$NAS_STORAGE``, else ``./.nas/nas.db``. The
sidebar picks the study every page shows; pages live in ``ui/app_pages/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st

from nas.storage import StoreError, resolve_url
from ui import queries
from ui.page_context import ARCH_KEY, LINKED_ARCH_KEY, STUDY_KEY, URL_KEY

LINKS_READ_KEY = "links_read"

PAGES = Path(__file__).resolve().parent / "app_pages"


def _storage_url() -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--storage", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:])
    return resolve_url(args.storage)


def _sidebar(url: str) -> None:
    st.sidebar.markdown("### nas")
    try:
        summaries = queries.studies(url)
        shown = queries.store(url).url
    except StoreError as exc:
        st.error(f"Cannot open the store: {exc}")
        st.stop()
    st.sidebar.caption(f"store: `{shown}`")
    names = [s.study.name for s in summaries]
    if not st.session_state.get(LINKS_READ_KEY):  # a deep link: ?study=NAME&arch=KEY
        st.session_state[LINKS_READ_KEY] = True
        linked = st.query_params.get("study")
        if linked in names:
            st.session_state[STUDY_KEY] = linked
        elif linked:
            st.sidebar.warning(f"The link names study {linked!r}, which is not in this store.")
        arch = st.query_params.get("arch")
        if arch:
            st.session_state[LINKED_ARCH_KEY] = arch
            st.session_state[ARCH_KEY] = arch
    if names:
        if st.session_state.get(STUDY_KEY) not in names:
            st.session_state[STUDY_KEY] = names[0]
        st.sidebar.selectbox("Study", names, key=STUDY_KEY)
    else:
        st.session_state[STUDY_KEY] = None
        st.sidebar.caption("no studies yet")
    if st.sidebar.button("Refresh", help="Read the store again (reads are cached "
                                         f"for {queries.TTL_S} s)."):
        queries.clear()
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="nas", layout="wide")
    if URL_KEY not in st.session_state:
        st.session_state[URL_KEY] = _storage_url()
    _sidebar(st.session_state[URL_KEY])
    pages = [
        st.Page(PAGES / "studies.py", title="Studies", url_path="studies", default=True),
        st.Page(PAGES / "pareto.py", title="Pareto front", url_path="pareto"),
        st.Page(PAGES / "architecture.py", title="Architecture", url_path="architecture"),
        st.Page(PAGES / "training.py", title="Supernet training", url_path="training"),
        st.Page(PAGES / "latency.py", title="Latency tables", url_path="latency"),
        st.Page(PAGES / "predictor.py", title="Predictor", url_path="predictor"),
    ]
    st.navigation(pages).run()


main()
