"""Clusters page: galaxy clusters found on held-out sky tiles by every finder, beside the red-sequence
baseline: the sky of the test tiles, one tile with its true and detected clusters and members, predicted
against catalogue z and lambda, completeness and purity curves, the colour-magnitude diagram, and the
detections as a redMaPPer-layout FITS catalogue.

Deep link: ``/clusters?run=demo&method=detector&tile=<tile>``.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import streamlit as st
from astropy.wcs import WCS

from galaxyml.data.mock.clusters import r_lambda_arcsec
from galaxyml.data.redmapper import detections_catalog, write_fits_table
from galaxyml.data.survey import fluxes_to_rgb
from galaxyml.viz.clusters import (METHOD_NAMES, cmd_figure, curves_figure, methods_table, sets_figure, sky_figure,
                                   tile_figure)
from ui import loaders
from ui.sidebar import page
from ui.export import chart, export_table
from ui.widgets import linked_choice

atlas = page("Clusters", needs="clusters")
STAGES = ("clusters", "cluster_fields")
summary = atlas.load_json("clusters", "summary.json")
fields_tiles = loaders.cached_table(atlas, "cluster_fields", "tiles.parquet").set_index("tile", drop=False).rename_axis(None)
tiles = loaders.cached_table(atlas, "clusters", "tiles.parquet").set_index("tile", drop=False).rename_axis(None)
truth = loaders.cached_table(atlas, "cluster_fields", "clusters.parquet")
det = loaders.cached_table(atlas, "clusters", "detections.parquet")
truth = truth.assign(split=truth["tile"].map(tiles["split"]))
has_sets = atlas.has_file("clusters", "sets.parquet")
has_galaxies = atlas.has_file("cluster_fields", "galaxies.parquet")
methods = [m for m in ("fused", "detector", "catalogue", "red_sequence") if m in summary["table"]]
n = summary["n_tiles"]

st.markdown("**Every finder on held-out tiles**")
table = methods_table(summary)
shown = table.assign(**{c: [("–" if pd.isna(v) else f"{v:.3f}") for v in table[c]] for c in table.columns[1:]})
st.dataframe(shown, hide_index=True, width="stretch")  # a figure a method does not have: a dash
export_table(table, "Cluster finders on test tiles", atlas, STAGES, key="methods")
st.caption(f"Trained on {n['train']} tiles, score thresholds chosen on {n['val']} validation tiles (highest F1), "
           f"every number on {n['test']} test tiles the models never saw. A detection matches a true cluster within "
           f"{summary['match_arcsec']:.0f} arcsec of its centre (the BCG). AUROC: the tile's strongest score against "
           "whether it holds a cluster. σz/(1+z): NMAD; λ scatter: standard deviation of log10 λ. The baselines are "
           "the classical methods: a red-sequence overdensity finder on the galaxy catalogue, and a red-sequence "
           "colour fit with λ = Σ P for the member sets. The fused finder re-scores the candidates of the detector and "
           "the red-sequence finder with a logistic regression on both scores, fit on the validation tiles (their "
           "scores cross-fitted by tile). Best detector on validation tiles: "
           f"**{METHOD_NAMES.get(summary['best_detector'], summary['best_detector'])}**.")

method = linked_choice("method", methods, summary["best_detector"], "a detection method of this atlas")
method = st.segmented_control("Detections shown", methods, default=method, format_func=lambda m: METHOD_NAMES[m],
                              key="method_control") or method
st.query_params["method"] = method
test = tiles[tiles["split"] == "test"]
test_truth = truth[truth["split"] == "test"]
test_det = det[(det["split"] == "test")]

left, right = st.columns([1, 1])
with left:
    st.markdown("**Test tiles on the sky** (click a tile or a cluster)")
    event = chart(sky_figure(fields_tiles.loc[test.index], test_truth, test_det, method),
                  f"Test tiles on the sky: {METHOD_NAMES[method]}", atlas, STAGES, key="sky", on_select="rerun",
                  selection_mode="points")
options = [str(t) for t in test.sort_values(["has_cluster", "tile"], ascending=[False, True])["tile"]]
clicked = [p.get("customdata") for p in (event.selection.points if event and event.selection else [])]
default = str(int(clicked[0])) if clicked and clicked[0] is not None else linked_choice("tile", options, options[0],
                                                                                      "a test tile of this atlas")
with right:
    tile = int(st.selectbox("Tile (test tiles, those with a cluster first)", options, index=options.index(default)))
    st.query_params["tile"] = str(tile)
    info = fields_tiles.loc[tile]
    wcs = WCS(json.loads(info["wcs"]))
    image = np.asarray(loaders.cluster_fields(atlas)[tile], np.float32)
    if atlas.is_mock:
        rgb = fluxes_to_rgb(image[None], ("g", "r", "z"), stretch=0.5, q=8.0)[0].transpose(2, 0, 1) / 255.0
    else:
        lo, hi = np.percentile(image, [1, 99.5])
        rgb = np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
        rgb = np.repeat(rgb, 3, 0) if rgb.shape[0] == 1 else rgb
    t_truth = truth[truth["tile"] == tile]
    t_det = det[(det["tile"] == tile) & (det["method"] == method) & det["above_threshold"]]
    members = None
    mem_table = loaders.cluster_members(atlas)
    if mem_table is not None and len(t_truth):
        members = mem_table[mem_table["MEM_MATCH_ID"].isin(t_truth["mem_match_id"])].copy()
        members["x_px"], members["y_px"] = wcs.wcs_world2pix(members["RA"].to_numpy(), members["DEC"].to_numpy(), 0)
    t_truth = t_truth.assign(r_lambda_arcsec=r_lambda_arcsec(t_truth["richness"], t_truth["z"]))
    chart(tile_figure(rgb, float(info["pixel_scale_arcsec"]), t_truth, t_det, members),
          f"Tile {tile}: {METHOD_NAMES[method]}", atlas, STAGES, key="tile_fig")
    if not len(t_truth):
        st.caption("No catalogued cluster in this tile" + (" (a negative field)." if not info["near_cluster"] else "."))
    if not len(t_det):
        st.caption(f"The {METHOD_NAMES[method]} found nothing above its threshold here.")

c1, c2 = st.columns(2)
with c1:
    st.markdown("**Completeness and purity on test tiles**")
    chart(curves_figure(loaders.cached_table(atlas, "clusters", "curves.parquet")),
          "Completeness and purity on test tiles", atlas, STAGES)
    st.caption("Completeness per true λ and z bin; purity per detected λ and z bin (the detection's own estimate).")
with c2:
    st.markdown("**Colour–magnitude diagram of the tile**")
    rs = atlas.load_json("clusters", "red_sequence.json") if atlas.has_file("clusters", "red_sequence.json") else None
    z = float(t_truth["z"].iloc[0]) if len(t_truth) else (float(t_det["z"].iloc[0]) if len(t_det) else np.nan)
    if has_galaxies:
        gal = loaders.cluster_galaxies(atlas)
        gal = gal[gal["tile"] == tile].rename(columns={"p_mem": "P"})
        chart(cmd_figure(gal, z, rs), f"Colour-magnitude diagram of tile {tile}", atlas, STAGES)
    elif members is not None and len(members):
        members = members.assign(mag_r=members["MODEL_MAG_R"], g_r=members["MODEL_MAG_G"] - members["MODEL_MAG_R"])
        chart(cmd_figure(members, z, rs), f"Colour-magnitude diagram of tile {tile}", atlas, STAGES)
        st.caption("Members only: these fields have no galaxy catalogue.")
    else:
        st.info("No galaxy catalogue or members file for these fields: nothing to plot.")

if has_sets:
    st.markdown("**Redshift and richness from member sets** (test clusters)")
    sets = loaders.cached_table(atlas, "clusters", "sets.parquet")
    chart(sets_figure(sets), "Redshift and richness from member sets (test)", atlas, STAGES)
    export_table(sets, "Member-set predictions (test clusters)", atlas, STAGES, key="sets")
    st.caption("DeepSets and Janossy read each cluster's members (positions, magnitudes, colours, P) in any order; "
               "error bars are the networks' predicted 1σ (the red-sequence fit's from Δχ² = 1).")
else:
    st.info("The fields have no members file, so the set regressors were not trained. Build from a redMaPPer "
            "members file (cluster_fields.members_path) to see them.")

st.markdown("**Export**")
kept = det[(det["split"] == "test") & det["above_threshold"] & (det["method"] == method)]
buf = io.BytesIO()
write_fits_table(detections_catalog(kept), buf, {"RA": "deg", "DEC": "deg"})
st.download_button(f"Detections of the {METHOD_NAMES[method]} on the test tiles (redMaPPer-layout FITS)",
                   buf.getvalue(), f"{atlas.path.name}_{method}_detections.fits", mime="application/fits")
export_table(det, "Every method's detections", atlas, STAGES, units={"ra": "deg", "dec": "deg"}, key="detections")
