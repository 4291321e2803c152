"""Figures comparing feature models (TopK SAE, Matryoshka SAE, PCA) on one atlas."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

COLOURS = {"sae": "#7aa2f7", "matryoshka": "#9ece6a", "pca": "#e0af68", "probe": "#8c8fa1"}
NAMES = {"sae": "TopK SAE", "matryoshka": "Matryoshka SAE", "pca": "PCA", "probe": "linear probe, all dimensions"}
MARGIN = dict(l=10, r=10, t=30, b=10)


def grouped_bars(values: dict[str, pd.Series], yaxis: str, height: int = 340, yrange=None) -> go.Figure:
    """One bar per model for every index entry (property or factor)."""
    fig = go.Figure([go.Bar(name=NAMES.get(m, m), x=s.index, y=s.values, marker_color=COLOURS.get(m))
                     for m, s in values.items()])
    fig.update_layout(barmode="group", yaxis_title=yaxis, height=height, margin=MARGIN, yaxis_range=yrange,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02))  # above the bars, never over them
    return fig


def training_curves(histories: dict[str, list[dict]]) -> go.Figure:
    fig = go.Figure([go.Scatter(x=[h["epoch"] for h in hist], y=[h["fvu"] for h in hist], name=NAMES.get(m, m),
                                line=dict(color=COLOURS.get(m))) for m, hist in histories.items()])
    fig.update_layout(xaxis_title="epoch", yaxis_title="training FVU (mean over the epoch)", yaxis_type="log",
                      height=300, margin=MARGIN, legend=dict(orientation="h", yanchor="bottom", y=1.02))
    fig.update_yaxes(dtick=1, tickformat=".0e", minor=dict(ticks="inside", showgrid=True))  # label decades only
    return fig


def group_fvu(fvus: list[float], group_sizes: list[int]) -> go.Figure:
    ends = pd.Series(group_sizes).cumsum()
    fig = go.Figure(go.Scatter(x=ends, y=fvus, mode="lines+markers", line=dict(color=COLOURS["matryoshka"])))
    fig.update_layout(xaxis_title="latents used (first g groups)", yaxis_title="FVU", yaxis_type="log", height=300,
                      margin=MARGIN)
    return fig


def novelty_histograms(novelty: dict[str, pd.Series]) -> go.Figure:
    fig = go.Figure([go.Histogram(x=s, name=NAMES.get(m, m), marker_color=COLOURS.get(m), opacity=0.6,
                                  xbins=dict(start=0, end=1, size=0.025), histnorm="probability")
                     for m, s in novelty.items()])
    fig.update_layout(barmode="overlay", xaxis_title="novelty = 1 − R² on all catalog properties",
                      yaxis_title="share of live features", height=300, margin=MARGIN,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02))
    return fig
