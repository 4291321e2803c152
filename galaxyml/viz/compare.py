"""Figures comparing feature models (TopK SAE, Matryoshka SAE, PCA) on one atlas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

COLOURS = {"sae": "#7aa2f7", "matryoshka": "#9ece6a", "pca": "#e0af68", "probe": "#8c8fa1"}
NAMES = {"sae": "TopK SAE", "matryoshka": "Matryoshka SAE", "pca": "PCA", "probe": "linear probe, all dimensions"}
SYMBOLS = {"sae": "circle", "matryoshka": "diamond", "pca": "square"}
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


def property_dots(values: dict[str, pd.Series], xaxis: str) -> go.Figure:
    """One row per property (the first series' strongest on top), one marker per model: readable with
    dozens of properties, where grouped bars would need rotated labels."""
    order = next(iter(values.values())).index[::-1]
    fig = go.Figure([go.Scatter(name=NAMES.get(m, m), x=s.reindex(order).values, y=list(order), mode="markers",
                                marker=dict(color=COLOURS.get(m), size=9, symbol=SYMBOLS.get(m, "circle")))
                     for m, s in values.items()])
    plot_height = 19 * len(order)
    fig.update_layout(xaxis_title=xaxis, xaxis_range=[0, 1.02], height=plot_height + 110,
                      margin=dict(MARGIN, t=100), xaxis=dict(side="top", showgrid=True),
                      yaxis=dict(showgrid=True, dtick=1, range=[-0.6, len(order) - 0.4]),  # every property named
                      legend=dict(orientation="h", yanchor="bottom", x=0, y=1 + 62 / plot_height))  # above the axis
    return fig


def _outline_histograms(values: dict[str, pd.Series], edges: np.ndarray, names: dict[str, str]) -> go.Figure:
    """Share of each model's values per bin, as step outlines so that no model hides another."""
    fig = go.Figure()
    for m, s in values.items():
        counts, _ = np.histogram(np.clip(s, edges[0], edges[-1]), bins=edges)
        share = counts / max(len(s), 1)
        fig.add_trace(go.Scatter(x=edges, y=np.append(share, share[-1]), name=names.get(m, NAMES.get(m, m)),
                                 mode="lines", line=dict(color=COLOURS.get(m), shape="hv", width=2)))
    fig.update_layout(height=300, margin=MARGIN, legend=dict(orientation="h", yanchor="bottom", y=1.02))
    return fig


def novelty_histograms(novelty: dict[str, pd.Series], n_bins: int = 40) -> go.Figure:
    """Share of each model's live features per novelty bin."""
    fig = _outline_histograms(novelty, np.linspace(0.0, 1.0, n_bins + 1), {})
    fig.update_layout(xaxis_title="novelty = 1 − R² on all catalog properties", xaxis_range=[0, 1],
                      yaxis_title="share of live features")
    return fig


def density_histograms(density: dict[str, pd.Series], dense_threshold: float = 0.1, n_bins: int = 40) -> go.Figure:
    """Share of each model's live features per log10 density (the share of galaxies a feature fires on),
    with the dense threshold marked; the legend counts the dead features left out."""
    live = {m: np.log10(s[s > 0]) for m, s in density.items()}
    lo = min([float(v.min()) for v in live.values() if len(v)] + [-1.0])
    edges = np.linspace(np.floor(lo * 2) / 2, 0.0, n_bins + 1)
    names = {m: f"{NAMES.get(m, m)} ({int((s <= 0).sum())} dead)" for m, s in density.items()}
    fig = _outline_histograms(live, edges, names)
    fig.add_vline(x=np.log10(dense_threshold), line=dict(color="#8c8fa1", dash="dot"),
                  annotation_text=f"dense (> {dense_threshold:.0%})", annotation_position="top left")
    fig.update_layout(xaxis_title="log10 feature density (share of galaxies it fires on)",
                      yaxis_title="share of live features")
    return fig
