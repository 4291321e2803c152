"""Plotly figures of predictions against truth: density scatter with the 1:1 line and the floor
band, binned residuals, RMSE against k, the BPT diagram, one galaxy's feature contributions and the
linear-probe scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from galaxyml.relations import BPT_CLASSES, kauffmann_o3, kewley_o3

MARGIN = dict(l=10, r=10, t=30, b=10)
TARGET_NAMES = {"oh_p50": "12+log(O/H)", "oh_12": "12+log(O/H)", "n2": "log [NII]/Hα", "o3": "log [OIII]/Hβ"}


MAX_POINTS = 20_000
"""Most points a scatter draws (a seeded random subset beyond that); statistics use every galaxy."""


def _subsample(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def axis_label(column: str, unit: str = "") -> str:
    """Display name of a column with its unit (a unit that only repeats the name, like 12+log(O/H), is dropped)."""
    name = TARGET_NAMES.get(column, column)
    return f"{name} [{unit}]" if unit and unit != name and not unit.startswith("12+log") else name


def predicted_vs_true(true: np.ndarray, pred: np.ndarray, label: str, floor: float | None = None,
                      bins: int = 60) -> go.Figure:
    """2-D histogram of predicted against true, with the 1:1 line and, given a floor, the ±floor band."""
    lo, hi = np.nanpercentile(np.concatenate([true, pred]), [0.5, 99.5])
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    edges = np.linspace(lo, hi, bins + 1)
    counts, _, _ = np.histogram2d(true, pred, bins=[edges, edges])
    centres = 0.5 * (edges[1:] + edges[:-1])
    fig = go.Figure(go.Heatmap(x=centres, y=centres, z=np.where(counts > 0, counts, np.nan).T, colorscale="Viridis",
                               colorbar=dict(title="galaxies"), hoverongaps=False,
                               hovertemplate="true %{x:.3f}<br>predicted %{y:.3f}<br>%{z} galaxies<extra></extra>"))
    line = np.array([lo, hi])
    if floor:
        fig.add_trace(go.Scatter(x=np.r_[line, line[::-1]], y=np.r_[line + floor, line[::-1] - floor], mode="lines",
                                 fill="toself",
                                 line=dict(width=0), fillcolor="rgba(255,255,255,0.15)", hoverinfo="skip",
                                 name=f"±floor ({floor:.3g})"))
    fig.add_trace(go.Scatter(x=line, y=line, mode="lines", line=dict(color="white", dash="dash"), name="1:1"))
    fig.update_layout(xaxis_title=f"true {label}", yaxis_title=f"predicted {label}", height=420, margin=MARGIN,
                      xaxis_range=[lo, hi], yaxis_range=[lo, hi], legend=dict(orientation="h", yanchor="bottom", y=1.02))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def binned_residuals(x: np.ndarray, resid: np.ndarray, x_label: str, y_label: str, bins: int = 12,
                     floor: float | None = None) -> go.Figure:
    """Residuals against a property: points, the binned median and the 16-84th percentile band."""
    ok = np.isfinite(x) & np.isfinite(resid)
    x, resid = x[ok], resid[ok]
    shown = _subsample(len(x))
    edges = np.unique(np.nanpercentile(x, np.linspace(0, 100, bins + 1)))
    which = np.clip(np.digitize(x, edges[1:-1]), 0, len(edges) - 2)
    rows = [(x[which == b].mean(), *np.percentile(resid[which == b], [16, 50, 84]))
            for b in range(len(edges) - 1) if (which == b).sum() >= 5]
    fig = go.Figure(go.Scattergl(x=x[shown], y=resid[shown], mode="markers", name="galaxies" + (
        f" ({len(shown):,} of {len(x):,} drawn)" if len(shown) < len(x) else ""),
        marker=dict(size=3, color="#7aa2f7", opacity=0.35)))
    if rows:
        c, p16, p50, p84 = map(np.array, zip(*rows))
        fig.add_trace(go.Scatter(x=np.r_[c, c[::-1]], y=np.r_[p84, p16[::-1]], fill="toself", line=dict(width=0),
                                 fillcolor="rgba(224,175,104,0.3)", name="16–84th percentile", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=c, y=p50, mode="lines+markers", line=dict(color="#e0af68"), name="median"))
    fig.add_hline(y=0, line=dict(color="white", dash="dash"))
    if floor:
        for s in (-floor, floor):
            fig.add_hline(y=s, line=dict(color="grey", dash="dot"))
    fig.update_layout(xaxis_title=x_label, yaxis_title=y_label, height=360, margin=MARGIN,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02))
    return fig


def rmse_vs_k(sweep: list[dict], target: str, unit: str = "", floor: float | None = None) -> go.Figure:
    """Test RMSE against the number of active features k (k = 0, no top-k, drawn as 'all')."""
    rows = sorted(sweep, key=lambda r: r["k"] or 10 ** 6)
    labels = [str(r["k"]) if r["k"] else "all" for r in rows]
    fig = go.Figure(go.Scatter(x=labels, y=[r[target]["rmse"] for r in rows], mode="lines+markers",
                               line=dict(color="#7aa2f7"), name="test RMSE"))
    if floor:
        fig.add_hline(y=floor, line=dict(color="grey", dash="dot"), annotation_text="injected floor")
        fig.add_hline(y=1.2 * floor, line=dict(color="grey", dash="dash"), annotation_text="1.2 × floor")
    fig.update_layout(xaxis_title="active features k", xaxis_type="category",
                      yaxis_title=f"test RMSE{f' [{unit}]' if unit else ''}", height=320, margin=MARGIN)
    return fig


def bpt_diagram(n2: np.ndarray, o3: np.ndarray, agrees: np.ndarray, title: str) -> go.Figure:
    """Galaxies in the BPT plane, coloured by whether the predicted class equals the true class,
    with the Kauffmann et al. (2003) and Kewley et al. (2001) lines."""
    fig = go.Figure()
    drawn = np.zeros(len(n2), bool)
    drawn[_subsample(len(n2))] = True
    for mask, name, colour in ((agrees, "predicted class = true class", "#9ece6a"),
                               (~agrees, "predicted class ≠ true class", "#f7768e")):
        fig.add_trace(go.Scattergl(x=n2[mask & drawn], y=o3[mask & drawn], mode="markers",
                                   name=f"{name} ({mask.sum():,})", marker=dict(size=4, color=colour, opacity=0.6)))
    x1 = np.linspace(-2.0, 0.04, 200)
    x2 = np.linspace(-2.0, 0.46, 200)
    fig.add_trace(go.Scatter(x=x1, y=kauffmann_o3(x1), mode="lines", line=dict(color="white", dash="dash"),
                             name="Kauffmann et al. 2003"))
    fig.add_trace(go.Scatter(x=x2, y=kewley_o3(x2), mode="lines", line=dict(color="white"), name="Kewley et al. 2001"))
    fig.update_layout(title=title, xaxis_title="log [NII]6584/Hα", yaxis_title="log [OIII]5007/Hβ", height=420,
                      xaxis_range=[-1.6, 0.6], yaxis_range=[-1.3, 1.4], margin=MARGIN,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def bpt_confusion(true_cls: np.ndarray, pred_cls: np.ndarray) -> pd.DataFrame:
    """Counts of true (rows) against predicted (columns) BPT classes."""
    ok = (true_cls >= 0) & (pred_cls >= 0)
    table = pd.crosstab(pd.Categorical(np.asarray(BPT_CLASSES)[true_cls[ok]], BPT_CLASSES),
                        pd.Categorical(np.asarray(BPT_CLASSES)[pred_cls[ok]], BPT_CLASSES), dropna=False)
    table.index.name, table.columns.name = "true", "predicted"
    return table


def contributions_bars(names: list[str], contributions: np.ndarray, bias: float, label: str) -> go.Figure:
    """One bar per active feature: its contribution (activation x head weight) to the prediction,
    which is the bias plus the sum of the bars (the title states both)."""
    order = np.argsort(np.abs(contributions))
    c = np.asarray(contributions)[order]
    fig = go.Figure(go.Bar(x=c, y=[names[i] for i in order], orientation="h",
                           marker_color=["#7aa2f7" if v >= 0 else "#f7768e" for v in c],
                           text=[f"{v:+.4f}" for v in c], textposition="outside", cliponaxis=False))
    fig.update_layout(title=f"prediction {bias + float(np.sum(contributions)):.3f} = bias {bias:.3f} "
                            f"+ Σ contributions {float(np.sum(contributions)):+.4f}",
                      xaxis_title=f"contribution to {label}", height=max(260, 34 * len(c) + 90), margin=MARGIN,
                      xaxis_range=_padded_range(c))
    return fig


def _padded_range(values: np.ndarray, pad: float = 0.4) -> list[float] | None:
    """An axis range that holds zero and every value, with room for a text label beyond either end."""
    if not len(values):
        return None
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    span = (hi - lo) or 1.0
    return [lo - pad * span, hi + pad * span]


def probe_scores(table: pd.DataFrame) -> go.Figure:
    """Cross-validated R2 of the continuous properties (chance: 0) and AUROC of the binary flags
    (chance: 0.5) of the linear probes, side by side, each on its own scale."""
    from plotly.subplots import make_subplots

    cont = table[table["kind"] == "continuous"].sort_values("score")
    binary = table[table["kind"] == "binary"].sort_values("auroc")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.3,
                        subplot_titles=("continuous properties: R²", "flags: AUROC"))
    fig.add_trace(go.Bar(x=cont["score"], y=cont["property"], orientation="h", marker_color="#7aa2f7",
                         showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=binary["auroc"], y=binary["property"], orientation="h", marker_color="#9ece6a",
                         showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="cross-validated R² (0: the mean)", range=[min(0.0, float(cont["score"].min()))
                     if len(cont) else 0.0, 1.0], row=1, col=1)
    fig.update_xaxes(title_text="cross-validated AUROC (0.5: chance)", range=[0.5, 1.0], row=1, col=2)
    fig.update_yaxes(dtick=1)
    fig.update_layout(height=max(300, 60 + 18 * max(len(cont), len(binary))), margin=dict(MARGIN, t=30))
    return fig
