"""The Streamlit app: browse studies and Pareto fronts, inspect architectures, export.

`nas ui` serves it (`nas.app_launch.launch(storage_url=...)`, which finds ``ui/app.py``
without importing this package); the app reads the store only through `ui.queries`, which
caches every read with `st.cache_data`.
"""
