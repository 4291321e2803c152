"""The shared sidebar every page calls first: atlas picker and precompute control."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from galaxyml.atlas import Atlas, AtlasError, home, list_runs
from galaxyml.integrity import describe
from precompute.config import ConfigError, preset_names, read_preset
from precompute.jobs import build_status, cancel_build, start_build
from precompute.lock import BuildLocked
from precompute.progress import BuildProgress
from ui import loaders
from ui.export import screenshot_control

DEFAULT_PRESET = "demo"
PAGES = (
    ("app.py", "Home", ":material/home:"),
    ("pages/atlas.py", "Feature atlas", ":material/grid_view:"),
    ("pages/compare.py", "Compare models", ":material/compare:"),
    ("pages/predictions.py", "Predictions", ":material/query_stats:"),
    ("pages/explore.py", "Explore the map", ":material/scatter_plot:"),
    ("pages/search.py", "Search", ":material/travel_explore:"),
    ("pages/forge.py", "Forge", ":material/auto_awesome:"),
    ("pages/clusters.py", "Clusters", ":material/hub:"),
)
POLL_S = 1.5
FAVICON = str(Path(__file__).with_name("favicon.png"))
"""The tab icon, served by the app itself (a Material icon name would be fetched from Google's servers)."""


@dataclass
class Selection:
    """What the sidebar resolved: the chosen run, its atlas (if it has one) and its build state."""

    run: str
    run_dir: Path
    atlas: Atlas | None
    status: BuildProgress
    error: str = ""


def _choose_run(names: list[str]) -> str:
    linked = st.query_params.get("run")
    if linked and names and linked not in names and not (home() / linked / "manifest.json").exists():
        st.warning(f"?run={linked} is not an atlas under {home()} (atlases: {', '.join(names)}); "
                   f"showing {names[0]}.", icon=":material/link_off:")
        st.query_params["run"] = names[0]
        return names[0]
    wanted = linked or st.session_state.get("run")
    if wanted in names:
        return wanted
    return names[0] if names else DEFAULT_PRESET


def _on_run_change() -> None:
    st.query_params["run"] = st.session_state["run"]


def _start(run: str, preset: str) -> None:
    try:
        start_build(home(), run, preset)
        st.session_state["run"] = run
        st.query_params["run"] = run
        st.toast(f"Started building '{run}' ({preset}).", icon=":material/play_arrow:")
    except (BuildLocked, ConfigError, PermissionError, ValueError) as e:
        st.session_state["build_error"] = str(e)


def _on_start() -> None:
    preset = st.session_state["build_preset"]
    _start(str(st.session_state.get("build_run", "")).strip() or preset, preset)


def _build_panel(run_dir: Path) -> None:
    """Progress of the selected run's build, refreshed while it runs."""
    status = build_status(run_dir)
    seen = st.session_state.get("_seen_stages")
    now = (status.state, len(status.finished_stages))
    st.session_state["_seen_stages"] = now
    if seen is not None and seen != now:
        st.rerun(scope="app")  # a stage finished or the build ended: pages may show more now
    if status.state == "running":
        st.progress(status.fraction, text=f"**{status.stage or 'starting'}** · {status.message}"[:120])
        elapsed = time.time() - status.started if status.started else 0
        st.caption(f"{len(status.finished_stages)}/{len(status.stages) or '?'} stages · {elapsed:.0f} s elapsed")
        if st.button("Cancel build", icon=":material/stop:", key="cancel_build"):
            cancel_build(run_dir)
            st.toast("Cancelling… finished stages are kept.")
    elif status.state == "failed":
        st.error(f"Build failed: {status.error}", icon=":material/error:")
    elif status.state in ("cancelled", "stopped"):
        st.warning(f"Build {status.state}: {status.error or status.message}. Start it again to resume; "
                   f"finished stages are kept.", icon=":material/pause:")
    elif status.state == "done":
        st.caption(f":material/check_circle: {status.message}")


def _description(preset: str) -> str:
    try:
        return str(read_preset(preset).get("description", ""))
    except ConfigError as e:
        return f"cannot be used: {e}"


def build_control(run: str, run_dir: Path, running: bool) -> None:
    st.subheader("Precompute", divider="gray")
    st.fragment(_build_panel, run_every=POLL_S if running else None)(run_dir)
    if running:
        return
    with st.form("start_build", border=False):
        presets = preset_names()
        described = {p: _description(p) for p in presets}
        st.selectbox("Preset", presets, key="build_preset",
                     index=presets.index(DEFAULT_PRESET) if DEFAULT_PRESET in presets else 0,
                     help=" · ".join(f"**{p}**: {d}" for p, d in described.items()))
        st.text_input("Run name", value=run, key="build_run", help="Folder under the atlas home; an existing run resumes "
                      "and rebuilds only stages whose settings changed.")
        st.form_submit_button("Start build", icon=":material/play_arrow:", key="start_build_submit",
                              on_click=_on_start)  # a callback: it runs before the atlas picker is drawn
    if err := st.session_state.pop("build_error", ""):
        st.error(err)


def sidebar() -> Selection:
    """Draw the sidebar; returns the selected run with its atlas (None until it has stages)."""
    runs = list_runs()
    names = [r.name for r in runs]
    run = _choose_run(names)
    with st.sidebar:
        st.markdown("### Galaxy Feature Atlas")
        for path, label, icon in PAGES:
            st.page_link(path, label=label, icon=icon)
        st.divider()
        if names:
            st.session_state["run"] = run
            st.selectbox("Atlas", names, key="run", on_change=_on_run_change, help=f"Runs under {home()}")
            st.query_params["run"] = run  # a link names its atlas, so it opens the same view after another build
        else:
            st.caption(f"No atlas yet under `{home()}`.")
        run_dir = home() / run
        atlas, error = None, ""
        if (run_dir / "manifest.json").exists():
            try:
                atlas = loaders.open_atlas(run_dir)
            except AtlasError as e:
                error = str(e)
                st.error(error)
        status = build_status(run_dir) if run_dir.is_dir() else BuildProgress()
        if atlas is not None and atlas.is_mock:
            st.badge("mock data", icon=":material/science:", color="orange")
        if atlas is not None and atlas.stale:
            st.warning(f"Files changed on disk since they were built, so these stages are not shown: "
                       f"{describe(atlas.stale)}. The next build of **{run}** rebuilds them.",
                       icon=":material/report:")
        build_control(run, run_dir, status.state == "running")
        if atlas is not None:
            st.subheader("Export", divider="gray")
            screenshot_control()
    return Selection(run, run_dir, atlas, status, error)


def page(title: str, needs: str | tuple[str, ...]) -> Atlas:
    """Set up a page: config, the shared sidebar, the title; stop with a notice until the atlas has
    the stage ``needs`` (with a tuple: any one of them); label mock data. Returns the atlas."""
    from ui.widgets import mock_badge, waiting_for

    st.set_page_config(page_title=f"{title} · Galaxy Feature Atlas", page_icon=FAVICON, layout="wide")
    sel = sidebar()
    st.title(title)
    needs = (needs,) if isinstance(needs, str) else needs
    if sel.atlas is None or not any(sel.atlas.ready(s) for s in needs):
        waiting_for(needs, sel)
        st.stop()
    mock_badge(sel.atlas.is_mock)
    return sel.atlas
