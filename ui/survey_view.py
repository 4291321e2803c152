"""The home page's survey view: example galaxies per structure flag, histograms, relations."""

from __future__ import annotations

import numpy as np
import streamlit as st

from galaxyml.atlas import Atlas
from galaxyml.viz.survey import flag_examples, histogram_figure, relations_figure
from ui import loaders
from ui.widgets import gallery


def survey_view(atlas: Atlas) -> None:
    cat = loaders.catalog(atlas)
    meta = atlas.survey_meta()
    units = meta.get("units", {})
    st.markdown("#### Survey")
    if not st.toggle("Show the survey: galaxies per structure, property histograms, scaling relations",
                     key="survey_view"):
        return
    if atlas.ready("thumbnails"):
        thumbs = loaders.thumbnails(atlas)
        for flag, idx in flag_examples(cat).items():
            share = cat[flag].mean()
            st.caption(f"**{flag.replace('_', ' ')}** · {share:.1%} of galaxies")
            gallery(np.asarray(thumbs[idx]), cat["galaxy_id"].iloc[idx].str.rsplit("-", n=1).str[-1].tolist(), width=80)
    numeric = [c for c in cat.columns if c not in ("galaxy_id",) and cat[c].dtype.kind in "fi" and cat[c].nunique() > 5]
    default = numeric.index("log_mstar") if "log_mstar" in numeric else 0
    column = st.selectbox("Property histogram", numeric, index=default)
    st.plotly_chart(histogram_figure(cat, column, units.get(column, "")), width="stretch")
    if {"log_mstar", "oh_12", "log_sfr", "r50_kpc", "quenched"} <= set(cat.columns):
        floors = loaders.prediction_floors(atlas)
        st.plotly_chart(relations_figure(cat), width="stretch")
        legend = ("Blue: star-forming galaxies (size-mass: late types, B/T ≤ 0.5); red: quenched galaxies "
                  "(size-mass: early types); orange: AGN. White lines: the relations the mock draws from "
                  "(BPT: dashed Kauffmann, solid Kewley; size-mass: solid late types, dotted early types).")
        if floors:
            legend += (" Scatter around them, propagated to each property (the floor on any prediction from "
                       "images): " + ", ".join(f"{k} {v:.3g} dex" for k, v in floors.items()) + ".")
        st.caption(legend)
