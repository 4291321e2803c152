"""Figures of a survey's catalog: the scaling relations of the mock universe and property histograms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from galaxyml import relations as rel

STRUCTURE_FLAGS = ("spiral", "bar", "ring", "merger", "edge_on", "dust_lane", "agn", "artefact", "quenched")


def _scatter(df: pd.DataFrame, x: str, y: str, color: str, name: str, max_points: int = 3000) -> go.Scattergl:
    sub = df[[x, y]].dropna().iloc[:max_points]
    return go.Scattergl(x=sub[x], y=sub[y], mode="markers", name=name, marker=dict(size=3, color=color, opacity=0.5))


def relations_figure(cat: pd.DataFrame) -> go.Figure:
    """Mass-metallicity, main sequence, BPT and size-mass panels with the injected relations."""
    fig = make_subplots(rows=2, cols=2, horizontal_spacing=0.1, vertical_spacing=0.14, subplot_titles=(
        "Mass-metallicity (Tremonti et al. 2004)", "Star-forming main sequence (Renzini & Peng 2015)",
        "BPT diagram (Kauffmann 2003, Kewley 2001)", "Size-mass (Shen et al. 2003)"))
    sf, q = cat[cat["quenched"] == 0], cat[cat["quenched"] == 1]
    m = np.linspace(8.5, 11.5, 100)
    fig.add_trace(_scatter(sf, "log_mstar", "oh_12", "#7aa2f7", "star-forming"), 1, 1)
    fig.add_trace(go.Scatter(x=m, y=rel.tremonti_oh(m), name="Tremonti", line=dict(color="white")), 1, 1)
    fig.add_trace(_scatter(sf, "log_mstar", "log_sfr", "#7aa2f7", "star-forming"), 1, 2)
    fig.add_trace(_scatter(q, "log_mstar", "log_sfr", "#f7768e", "quenched"), 1, 2)
    fig.add_trace(go.Scatter(x=m, y=rel.main_sequence_log_sfr(m), name="main sequence", line=dict(color="white")), 1, 2)
    if "bpt_class" in cat:
        fig.add_trace(_scatter(cat[cat["bpt_class"] == 0], "n2", "o3", "#7aa2f7", "BPT star-forming"), 2, 1)
        fig.add_trace(_scatter(cat[cat["bpt_class"] == 1], "n2", "o3", "#e0af68", "BPT AGN"), 2, 1)
        n2 = np.linspace(-1.3, 0.0, 100)
        fig.add_trace(go.Scatter(x=n2, y=rel.kauffmann_o3(n2), name="Kauffmann", line=dict(color="white", dash="dash")), 2, 1)
        n2 = np.linspace(-1.3, 0.4, 100)
        fig.add_trace(go.Scatter(x=n2, y=rel.kewley_o3(n2), name="Kewley", line=dict(color="white")), 2, 1)
    late = cat.assign(log_r50=np.log10(cat["r50_kpc"]))
    fig.add_trace(_scatter(late[late["bulge_to_total"] <= 0.5], "log_mstar", "log_r50", "#7aa2f7", "late type"), 2, 2)
    fig.add_trace(_scatter(late[late["bulge_to_total"] > 0.5], "log_mstar", "log_r50", "#f7768e", "early type"), 2, 2)
    fig.add_trace(go.Scatter(x=m, y=np.log10(rel.shen_late_r50_kpc(m)), name="Shen late", line=dict(color="white")), 2, 2)
    fig.add_trace(go.Scatter(x=m, y=np.log10(rel.shen_early_r50_kpc(m)), name="Shen early",
                             line=dict(color="white", dash="dot")), 2, 2)
    labels = [("log M* [Msun]", "12+log(O/H)"), ("log M* [Msun]", "log SFR [Msun/yr]"),
              ("log [NII]/Hα", "log [OIII]/Hβ"), ("log M* [Msun]", "log R50 [kpc]")]
    for i, (xl, yl) in enumerate(labels):
        fig.update_xaxes(title_text=xl, row=i // 2 + 1, col=i % 2 + 1)
        fig.update_yaxes(title_text=yl, row=i // 2 + 1, col=i % 2 + 1)
    fig.update_yaxes(range=[-1.5, 1.2], row=2, col=1)
    fig.update_layout(height=720, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def histogram_figure(cat: pd.DataFrame, column: str, unit: str = "") -> go.Figure:
    """Histogram of one catalog property, with its unit on the axis."""
    fig = go.Figure(go.Histogram(x=cat[column].dropna(), nbinsx=50, marker_color="#7aa2f7"))
    fig.update_layout(xaxis_title=f"{column} [{unit}]" if unit else column, yaxis_title="galaxies", height=280,
                      margin=dict(l=10, r=10, t=10, b=10), bargap=0.02)
    return fig


def flag_examples(cat: pd.DataFrame, per_flag: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of up to ``per_flag`` random galaxies carrying each structure flag present."""
    rng = np.random.default_rng(seed)
    out = {}
    for flag in STRUCTURE_FLAGS:
        if flag in cat:
            idx = np.nonzero(cat[flag].to_numpy() > 0)[0]
            if len(idx):
                out[flag] = np.sort(rng.choice(idx, min(per_flag, len(idx)), replace=False))
    return out
