"""App-side helpers shared by ``app.py`` and ``pages/`` (Streamlit lives here, never in galaxyml)."""
