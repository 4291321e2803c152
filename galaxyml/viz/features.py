"""Plotly figures of one feature: activation histogram and property correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from galaxyml.data.survey import vote_label

MARGIN = dict(l=10, r=10, t=10, b=10)


def activation_histogram(edges: np.ndarray, counts: np.ndarray) -> go.Figure:
    """Bar histogram of a feature's non-zero activations (log counts when they span decades)."""
    fig = go.Figure(go.Bar(x=0.5 * (edges[1:] + edges[:-1]), y=counts, width=np.diff(edges), marker_color="#7aa2f7"))
    fig.update_layout(xaxis_title="activation (arbitrary units)", yaxis_title="galaxies", height=300, margin=MARGIN)
    if counts.max() > 50:
        fig.update_yaxes(type="log", dtick=1)  # label the decades only
    return fig


def correlation_bars(rho_row: pd.Series, top: int = 10) -> go.Figure:
    """The ``top`` properties with the largest |Spearman rho| for one feature."""
    row = rho_row.reindex(rho_row.abs().sort_values(ascending=False).index[:top])[::-1]
    colors = ["#7aa2f7" if v > 0 else "#f7768e" for v in row.values]
    fig = go.Figure(go.Bar(x=row.values, y=row.index, orientation="h", marker_color=colors))
    fig.update_layout(xaxis_title="Spearman ρ with the activation", xaxis_range=[-1, 1], height=300,
                      margin=MARGIN)
    return fig


def vote_effect_bars(effects: pd.DataFrame) -> go.Figure:
    """Change of each predicted vote fraction caused by a feature (``answer``, ``delta`` columns)."""
    row = effects.iloc[::-1]
    fig = go.Figure(go.Bar(x=row["delta"], y=[vote_label(a) for a in row["answer"]], orientation="h",
                           marker_color=["#7aa2f7" if v > 0 else "#f7768e" for v in row["delta"]]))
    fig.update_layout(xaxis_title="change in predicted vote fraction (feature present − removed)",
                      height=40 + 24 * len(row), margin=MARGIN)
    return fig
