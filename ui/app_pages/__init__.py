"""Pages of the Streamlit app, each run as a script by `st.navigation` (see ui/app.py)."""
