"""The home page's survey view: example galaxies per structure flag, histograms, relations."""

from __future__ import annotations

import numpy as np
import streamlit as st

from galaxyml.atlas import Atlas
from galaxyml.viz.survey import flag_examples, histogram_figure, relations_figure
from ui import loaders
from ui.export import chart
from ui.widgets import gallery, linked_selectbox


def survey_view(atlas: Atlas) -> None:
    cat = loaders.catalog(atlas)
    meta = atlas.survey_meta()
    units = meta.get("units", {})
    st.markdown("#### Survey")
    shown = st.toggle("Show the survey: galaxies per structure, property histograms, scaling relations",
                      value=st.query_params.get("survey") == "1", key="survey_view")
    if not shown:
        st.query_params.pop("survey", None)
        return
    st.query_params["survey"] = "1"
    if atlas.ready("thumbnails"):
        thumbs = loaders.thumbnails(atlas)
        for flag, idx in flag_examples(cat).items():
            share = cat[flag].mean()
            st.caption(f"**{flag.replace('_', ' ')}** · {share:.1%} of galaxies")
            gallery(np.asarray(thumbs[idx]), cat["galaxy_id"].iloc[idx].str.rsplit("-", n=1).str[-1].tolist(), width=80)
    numeric = [c for c in cat.columns if c not in ("galaxy_id",) and cat[c].dtype.kind in "fi" and cat[c].nunique() > 5]
    if not numeric:
        st.caption("The catalog has no numeric property with more than 5 distinct values to plot.")
        return
    column = linked_selectbox("Property histogram", numeric, "property", "log_mstar", "a numeric catalog column")
    chart(histogram_figure(cat, column, units.get(column, "")), f"Survey: {column} histogram", atlas, ("survey",))
    if {"log_mstar", "oh_12", "log_sfr", "r50_kpc", "quenched"} <= set(cat.columns):
        floors = loaders.prediction_floors(atlas)
        chart(relations_figure(cat), "Survey: scaling relations", atlas, ("survey",))
        legend = ("Blue: star-forming galaxies (size-mass: late types, B/T ≤ 0.5); red: quenched galaxies "
                  "(size-mass: early types); orange: AGN. White lines: the relations the mock draws from "
                  "(BPT: dashed Kauffmann, solid Kewley; size-mass: solid late types, dotted early types).")
        if floors:
            legend += (" Scatter around them, propagated to each property (the floor on any prediction from "
                       "images): " + ", ".join(f"{k} {v:.3g} dex" for k, v in floors.items()) + ".")
        st.caption(legend)
