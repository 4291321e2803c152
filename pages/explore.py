"""Explore: the survey on a 2-D map (UMAP of the embeddings or of the sparse codes) coloured by any
property or feature, the galaxy under the cursor beside it, and what a box or lasso selection holds:
its galaxies, how its properties differ from the survey's and which sparse features it is rich in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml.explore import enrichment, filter_mask, format_filters, parse_filters, parse_id_list, property_shifts
from galaxyml.viz.maps import map_figure, rows_in_shapes, selection_histogram
from ui import loaders
from ui.feature_views import feature_link, search_link
from ui.map_events import hovered_row, map_selection
from ui.sidebar import page
from ui.export import chart, export_figure, export_gallery, export_table
from ui.widgets import bad_link, gallery, linked_choice

SPACES = {"embeddings": "Embeddings", "codes": "Sparse codes"}
FEATURE_PREFIX = "sae:"
MAX_LINK_IDS = 300
GALLERY = 30
KS_SAMPLE = 10_000
MAP_KEY = "explore_map"
DRAG_MODES = {"lasso": "lasso", "box": "select", "pan": "pan", "zoom": "zoom"}

atlas = page("Explore", needs="umap")
STAGES = ("umap", "embeddings", "survey", "thumbnails")
catalog = loaders.catalog(atlas)
ids = catalog["galaxy_id"].to_numpy().astype(str)
row_of = loaders.galaxy_rows(atlas)
thumbs = loaders.thumbnails(atlas)
units = atlas.survey_meta().get("units", {})
numeric = loaders.varying_columns(atlas)
fs = loaders.feature_set(atlas, "sae") if atlas.ready("features") and "sae" in atlas.feature_models() else None


def title_of(column: str) -> str:
    unit = units.get(column, "")
    return f"{column} [{unit}]" if unit and unit not in ("bool",) else column


def choose_space(where) -> str:
    spaces = atlas.map_spaces()
    space = linked_choice("space", spaces, spaces[0], "a map of this atlas")
    space = where.segmented_control("Map of", spaces, default=space, format_func=SPACES.get) or space
    st.query_params["space"] = space
    return space


def choose_colour(where) -> str:
    """A catalog column, ``sae:<n>`` or ``none`` (deep link ``?colour=``)."""
    colours = ["none"] + numeric + ([f"{FEATURE_PREFIX}{i}" for i in range(fs.n_features)] if fs is not None else [])
    default = "z" if "z" in numeric else (numeric[0] if numeric else "none")
    colour = linked_choice("colour", colours, default, "a catalog column or SAE feature (sae:<n>) of this atlas")
    colour = where.selectbox("Colour by", colours, index=colours.index(colour),
                             help="a catalog column, or the activation of a TopK SAE feature (sae:<number>)")
    st.query_params["colour"] = colour
    return colour


def choose_filters(where) -> dict[str, tuple[float, float]]:
    """Ranges on catalog columns, applied to the map and the selection alike (deep link ``?filter=``)."""
    try:
        linked = parse_filters(st.query_params.get("filter", ""), numeric)
    except ValueError as e:
        bad_link(f"?filter= {e}; no filter applied.")
        linked = {}
    ranges = {}
    with where.popover("Filters" + (f" ({len(linked)})" if linked else ""), icon=":material/filter_alt:",
                       width="stretch"):
        for col in st.multiselect("Filter on", numeric, default=list(linked), placeholder="catalog columns"):
            v = pd.to_numeric(catalog[col], errors="coerce")
            lo_all, hi_all = float(v.min()), float(v.max())
            lo, hi = linked.get(col, (lo_all, hi_all))
            shown = (min(max(lo, lo_all), hi_all), max(min(hi, hi_all), lo_all))  # a slider stays in the data's range
            moved = st.slider(title_of(col), lo_all, hi_all, shown, key=f"filter_{col}")
            ranges[col] = (lo, hi) if moved == shown else moved  # the link's own bounds until the slider is moved
    if ranges:
        st.query_params["filter"] = format_filters(ranges)
    elif "filter" in st.query_params:
        del st.query_params["filter"]
    return ranges


def colour_values(colour: str, in_view: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The colour of every galaxy in view and the colour bar's title (with units)."""
    if colour == "none":
        return None, ""
    if colour.startswith(FEATURE_PREFIX):
        feature = int(colour[len(FEATURE_PREFIX):])
        return fs.activations(feature)[in_view], f"SAE #{feature} activation"
    return pd.to_numeric(catalog[colour], errors="coerce").to_numpy(np.float64)[in_view], title_of(colour)


def current_selection(coords: np.ndarray, in_view: np.ndarray) -> tuple[np.ndarray, str]:
    """The rows selected (in view) and how: drawn on the map (box / lasso), clicked, or ``?ids=``."""
    drawn = map_selection(MAP_KEY, key="explore_selection") or {}
    if drawn.get("box") or drawn.get("lasso"):
        selected = rows_in_shapes(coords, in_view, drawn.get("box", []), drawn.get("lasso", []))
        source = "drawn on the map"
    elif drawn.get("click") is not None and 0 <= int(drawn["click"]) < len(ids):
        selected, source = np.array([int(drawn["click"])]), "clicked"
    else:
        linked = parse_id_list(st.query_params.get("ids", ""))
        unknown = [g for g in linked if g not in row_of]
        if unknown:
            bad_link(f"?ids= names {len(unknown)} galaxies not in this atlas (e.g. {unknown[0]}); they are left out.")
        selected, source = np.unique([row_of[g] for g in linked if g in row_of]).astype(np.int64), "from the link"
    selected = np.intersect1d(selected, in_view)
    if len(selected) and len(selected) <= MAX_LINK_IDS:
        st.query_params["ids"] = ",".join(ids[selected])
    elif "ids" in st.query_params and source != "from the link":
        del st.query_params["ids"]
    return selected, source


def draw_map(coords, in_view, values, colour_title, selected, source, drag, view_key) -> None:
    """The map. Plotly shows a selection drawn on it by itself, so the figure is left unchanged then (an
    unchanged figure is not sent to the browser's plot again, which keeps a selection on a large map fast);
    when the view changed, or the selection came from the link, the selection is drawn from here."""
    redraw = st.session_state.get("explore_view") != view_key or source == "from the link"
    st.session_state["explore_view"] = view_key
    mask = np.isin(in_view, selected) if len(selected) and redraw else None
    fig = map_figure(coords, in_view, ids[in_view], values, colour_title, mask, dragmode=DRAG_MODES[drag])
    st.plotly_chart(fig, key=MAP_KEY, width="stretch", config={"displaylogo": False, "scrollZoom": True})
    export_figure(fig, f"UMAP of the {SPACES[view_key[0]].lower()}, coloured by {view_key[1]}", atlas, STAGES, key="map")


@st.fragment
def hover_panel(colour: str) -> None:
    """The galaxy under the cursor (reruns alone as the cursor moves)."""
    row = hovered_row(MAP_KEY, key="explore_hover")
    if row is None or not 0 <= row < len(ids):
        st.caption("Hover over the map to see a galaxy here.")
        return
    st.image(np.asarray(thumbs[row]), width=180, caption=f"galaxy {ids[row]}")
    facts = [f"{c} = {catalog[c].iloc[row]:.3g}" for c in ("z", "log_mstar", colour) if c in numeric]
    st.caption(" · ".join(dict.fromkeys(facts)))
    st.markdown(f"[Similar galaxies]({search_link(atlas.name, ids[row])})")


def map_quality(space: str) -> None:
    info = atlas.metrics("umap").get("spaces", {}).get(space, {})
    if info.get("test_preservation") is not None:
        st.caption(f"Map quality on {info['n_test_queries']} test galaxies (placed on a map fitted on "
                   f"{info['n_fit']:,} training galaxies): {info['test_preservation']:.0%} of each galaxy's 10 "
                   f"nearest neighbours (cosine) are among its 10 nearest on the map, against "
                   f"{info['pca2_test_preservation']:.0%} on a 2-D PCA map; PCA before UMAP: "
                   f"{info['pca_dims'] or 'none'} (chosen on validation galaxies).")


def show_galaxy(g: int) -> None:
    """One clicked galaxy: its image, properties and active features."""
    st.subheader(f"Galaxy {ids[g]}")
    a, b = st.columns([1, 3])
    a.image(np.asarray(thumbs[g]), width=220)
    a.markdown(f"[Galaxies like this one]({search_link(atlas.name, ids[g])})")
    row = catalog.iloc[g]
    b.dataframe(pd.DataFrame({"property": [title_of(c) for c in numeric[:40]],
                              "value": [row[c] for c in numeric[:40]]}), hide_index=True, height=300)
    if fs is not None:
        feats = fs.features_of(g).head(8)
        b.markdown("Active SAE features: " + ", ".join(
            f"[#{int(f)}]({feature_link(atlas.name, 'sae', int(f))})" for f in feats["feature"]))


def property_tab(selected: np.ndarray, in_view: np.ndarray) -> None:
    shifts = property_shifts(catalog, selected, in_view, numeric, max_rows=KS_SAMPLE)
    if shifts.empty:
        st.info("Too few galaxies with values to compare.")
        return
    cols = st.columns(3)
    for i, col in enumerate(shifts["property"].head(3)):
        v = pd.to_numeric(catalog[col], errors="coerce").to_numpy(np.float64)
        chart(selection_histogram(v[selected], v[np.setdiff1d(in_view, selected)], title_of(col)),
              f"Selection against the survey: {col}", atlas, STAGES, where=cols[i], key=f"hist_{col}")
    st.dataframe(shifts.head(20), hide_index=True, width="stretch", column_config={
        "selection_median": st.column_config.NumberColumn(format="%.3g"),
        "survey_median": st.column_config.NumberColumn(format="%.3g"),
        "ks": st.column_config.NumberColumn("KS statistic", format="%.2f"),
        "p": st.column_config.NumberColumn(format="%.1e"), "q": st.column_config.NumberColumn(format="%.1e")})
    export_table(shifts, "Property shifts of the selection", atlas, STAGES, key="shifts")
    st.caption("Two-sample Kolmogorov-Smirnov test of each property, the selection against the other galaxies "
               f"in view (at most {KS_SAMPLE:,} drawn from each, seeded); q: Benjamini-Hochberg corrected over the "
               "properties.")


def enrichment_tab(selected: np.ndarray, in_view: np.ndarray) -> None:
    if fs is None:
        st.info("Enrichment needs the TopK SAE's features (stages sae and features).")
        return
    table = enrichment(selected, in_view, fs.code_indices, fs.code_values, fs.n_features)
    significant = table[table["q"] < 0.05]
    if significant.empty:
        st.info("No SAE feature fires significantly more often in this selection than in the survey "
                "(q < 0.05 after Benjamini-Hochberg).")
    else:
        top = significant.head(20).copy()
        top["label"] = [fs.labels[int(f)] for f in top["feature"]]
        top["atlas"] = [feature_link(atlas.name, "sae", int(f)) for f in top["feature"]]
        st.dataframe(top[["feature", "label", "in_selection", "selection_rate", "survey_rate", "ratio", "q", "atlas"]],
                     hide_index=True, width="stretch", column_config={
                         "atlas": st.column_config.LinkColumn("atlas page", display_text="open"),
                         "selection_rate": st.column_config.NumberColumn("fires in selection", format="percent"),
                         "survey_rate": st.column_config.NumberColumn("fires in survey", format="percent"),
                         "ratio": st.column_config.NumberColumn("enrichment", format="%.1f×"),
                         "q": st.column_config.NumberColumn(format="%.1e")})
        export_table(top.drop(columns=["atlas"]), "Enriched SAE features", atlas, (*STAGES, "sae", "features"),
                     key="enriched")
    st.caption(f"A feature fires in a galaxy when it is among its top-k activations. One-sided hypergeometric "
               f"test (Fisher's exact) of the selection's count against the {len(in_view):,} galaxies in view, "
               f"Benjamini-Hochberg q over all {fs.n_features} features; {len(significant)} with q < 0.05.")


def show_selection(selected: np.ndarray, in_view: np.ndarray, source: str) -> None:
    st.subheader(f"Selection: {len(selected):,} galaxies ({source})")
    shown = selected[np.linspace(0, len(selected) - 1, min(GALLERY, len(selected))).astype(int)]
    gallery(np.asarray(thumbs[shown]), [str(ids[r]) for r in shown], width=96)
    if len(selected) > GALLERY:
        st.caption(f"{GALLERY} of the {len(selected):,} selected galaxies, evenly spaced through the selection.")
    c1, c2, _ = st.columns([1, 1, 4])
    with c1:
        export_gallery(np.asarray(thumbs[shown]), ids[shown], f"Selection of {len(selected):,} galaxies", atlas,
                       STAGES, key="selection")
    with c2:
        export_table(catalog.iloc[selected], "Selected galaxies", atlas, STAGES, key="selection")
    if len(selected) > MAX_LINK_IDS:
        st.caption(f"The link of this page keeps the filters but not a selection of more than {MAX_LINK_IDS} galaxies.")
    tab_props, tab_feats = st.tabs(["Properties against the survey", "Enriched sparse features"])
    with tab_props:
        property_tab(selected, in_view)
    with tab_feats:
        enrichment_tab(selected, in_view)


c1, c2, c3 = st.columns([2, 3, 2])
space = choose_space(c1)
colour = choose_colour(c2)
ranges = choose_filters(c3)
coords = loaders.map_coords(atlas, space)
in_view = np.flatnonzero(filter_mask(catalog, ranges))
if not len(in_view):
    st.warning("No galaxy passes these filters; widen them.")
    st.stop()
values, colour_title = colour_values(colour, in_view)
selected, source = current_selection(coords, in_view)
drag = st.segmented_control("Drag on the map to", list(DRAG_MODES), default="lasso", key="explore_drag",
                            help="Draw a lasso or a box to select galaxies; pan or zoom to move around (the mouse "
                                 "wheel zooms too)") or "lasso"
left, right = st.columns([4, 1])
with left:
    draw_map(coords, in_view, values, colour_title, selected, source, drag,
             (space, colour, format_filters(ranges), drag))
    st.caption(f"{len(in_view):,} of {len(catalog):,} galaxies{' (filtered)' if ranges else ''}. UMAP of the "
               f"{SPACES[space].lower()}; draw a lasso or a box to select, click a galaxy to open it, double-click "
               "to clear the selection.")
with right:
    hover_panel(colour)
map_quality(space)

if not len(selected):
    st.info("Select galaxies on the map (lasso or box) to see them, their properties against the survey's and "
            "the sparse features they are rich in; click one galaxy to open it.")
elif len(selected) == 1:
    show_galaxy(int(selected[0]))
else:
    show_selection(selected, in_view, source)
