"""Pieces of the atlas page that show one feature: correlations, neighbours, example galleries."""

from __future__ import annotations

import numpy as np
import streamlit as st

from galaxyml.features import FeatureSet
from galaxyml.viz.features import correlation_bars
from ui.export import chart
from ui.widgets import gallery


def feature_link(run: str, model: str, feature: int) -> str:
    return f"/atlas?run={run}&model={model}&feature={feature}"


def search_link(run: str, galaxy: str) -> str:
    """The search page, open on the galaxies most like ``galaxy``."""
    return f"/search?run={run}&by=galaxy&galaxy={galaxy}"


def neighbour_links(title: str, features: np.ndarray, values: np.ndarray | None, run: str, model: str,
                    fs: FeatureSet) -> None:
    st.markdown(f"**{title}**")
    lines = []
    for j, f in enumerate(features):
        if f < 0:
            continue
        extra = f" (cos {values[j]:.2f})" if values is not None else ""
        lines.append(f"- [#{int(f)}]({feature_link(run, model, int(f))}){extra} · {fs.labels[int(f)]}")
    st.markdown("\n".join(lines) or "none")


def correlations(fs: FeatureSet, feature: int, atlas, stages: tuple[str, ...]) -> None:
    if fs.rho is None:
        st.caption("No property correlations in this atlas (rebuild the features stage).")
        return
    if not len(fs.rho.columns):
        st.caption("The catalog has no property that varies over the held-out galaxies to correlate with.")
        return
    chart(correlation_bars(fs.rho.iloc[feature]), f"feature {feature}: property correlations", atlas, stages)
    st.caption("Spearman ρ on the held-out galaxies (validation and test splits), which no model here trained on.")


def example_galleries(fs: FeatureSet, feature: int, thumbs: np.ndarray) -> None:
    """Quantile-bin samples (weakest to strongest activation) and random active galaxies."""
    acts = None
    if fs.quantile_examples is not None:
        for b, row in enumerate(fs.quantile_examples[feature]):
            gal = row[row >= 0]
            if len(gal):
                acts = fs.activations(feature) if acts is None else acts
                st.caption(f"activation bin {b + 1}/5 ({'weakest' if b == 0 else 'strongest' if b == 4 else 'middle'})")
                gallery(np.asarray(thumbs[gal]), [f"{a:.3g}" for a in acts[gal]], width=80)
    if fs.random_examples is not None:
        gal = fs.random_examples[feature]
        gal = gal[gal >= 0]
        if len(gal):
            acts = fs.activations(feature) if acts is None else acts
            st.caption("random galaxies on which the feature is active")
            gallery(np.asarray(thumbs[gal]), [f"{a:.3g}" for a in acts[gal]], width=80)
