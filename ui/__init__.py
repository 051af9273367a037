"""The Streamlit app: browse studies and Pareto fronts, inspect architectures, export.

`launch(storage_url=...)` serves it (what `nas ui` calls); the app reads the store only
through `ui.queries`, which caches every read with `st.cache_data`.
"""

from __future__ import annotations

from ui.launch import APP_PATH, launch, streamlit_command

__all__ = ["APP_PATH", "launch", "streamlit_command"]
