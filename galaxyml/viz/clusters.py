"""Figures of the clusters page: the sky of the test tiles, one tile with its true and detected
clusters and members, predicted against catalogue z and lambda, completeness and purity curves, the
colour-magnitude diagram with the red sequence, and the table of every method against the baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from galaxyml.data.mock.clusters import m_star_r

METHOD_NAMES = {"classifier": "CNN classifier", "detector": "CenterNet detector", "catalogue": "catalogue MLP",
                "red_sequence": "red-sequence finder (baseline)",
                "fused": "detector + red sequence (fused)", "deepsets_sets": "DeepSets (members)",
                "janossy_sets": "Janossy, k = 2 (members)", "red_sequence_sets": "red-sequence fit (members, baseline)"}
COLOURS = {"detector": "#d62728", "catalogue": "#2ca02c", "red_sequence": "#7f7f7f", "fused": "#9467bd",
           "deepsets": "#1f77b4", "janossy": "#ff7f0e"}
TRUE_COLOUR = "#17becf"


def methods_table(summary: dict) -> pd.DataFrame:
    """One row per method: AUROC of tile scores, completeness and purity at lambda >= 20, median offset,
    sigma_z, richness scatter, share of z within the predicted 1 sigma (test tiles)."""
    rows = []
    for key, r in summary["table"].items():
        rows.append({"method": METHOD_NAMES.get(key, key), "AUROC": r.get("auroc"),
                     "completeness λ≥20": r.get("completeness_l20"), "purity λ≥20": r.get("purity_l20"),
                     "offset [arcsec]": r.get("median_offset_arcsec"), "σz/(1+z)": r.get("sigma_z"),
                     "λ scatter [dex]": r.get("richness_scatter_dex"), "z within 1σ": r.get("z_within_1sigma")})
    table = pd.DataFrame(rows)
    return table.astype({c: float for c in table.columns[1:]})  # a figure a method has not: NaN, shown blank


def sky_figure(tiles: pd.DataFrame, truth: pd.DataFrame, det: pd.DataFrame, method: str) -> go.Figure:
    """Test tiles (squares), true clusters (circles sized by lambda) and the method's detections above its
    threshold (crosses), on the sky; every marker carries its tile in ``customdata``."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=tiles["ra_center"], y=tiles["dec_center"], mode="markers", name="test tile",
                             marker=dict(symbol="square-open", size=14, color="#bbbbbb"), customdata=tiles["tile"],
                             hovertemplate="tile %{customdata}<extra></extra>"))
    fig.add_trace(go.Scatter(x=truth["ra"], y=truth["dec"], mode="markers", name="true cluster",
                             marker=dict(size=6 + 2 * np.sqrt(truth["richness"]), color=TRUE_COLOUR, opacity=0.6),
                             customdata=truth["tile"],
                             text=[f"λ = {lam:.0f}, z = {z:.3f}" for lam, z in zip(truth["richness"], truth["z"])],
                             hovertemplate="tile %{customdata}: %{text}<extra></extra>"))
    d = det[(det["method"] == method) & det["above_threshold"]]
    fig.add_trace(go.Scatter(x=d["ra"], y=d["dec"], mode="markers", name="detected",
                             marker=dict(symbol="x", size=9, color=COLOURS.get(method, "#d62728")),
                             customdata=d["tile"], text=[f"score {s:.2f}" for s in d["score"]],
                             hovertemplate="tile %{customdata}: %{text}<extra></extra>"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.08),
                      xaxis=dict(title="RA [deg]", autorange="reversed"), yaxis=dict(title="Dec [deg]"),
                      clickmode="event+select")
    return fig


def tile_figure(rgb: np.ndarray, scale_arcsec: float, truth: pd.DataFrame, det: pd.DataFrame,
                members: pd.DataFrame | None = None) -> go.Figure:
    """The tile (display RGB, north up) with true clusters (circle of r_lambda), detections (boxes of their
    half-size, labelled by method and score) and members coloured by membership probability. Axes in arcsec
    from the tile's lower-left corner."""
    size = rgb.shape[1]
    extent = size * scale_arcsec
    fig = go.Figure(go.Image(z=(np.clip(rgb, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)[::-1], dx=scale_arcsec,
                             dy=scale_arcsec, x0=scale_arcsec / 2, y0=scale_arcsec / 2, hoverinfo="skip"))

    def arcsec(v):
        return (np.asarray(v, float) + 0.5) * scale_arcsec

    for c in truth.itertuples():
        x, y, r = arcsec(c.x_px), arcsec(c.y_px), float(c.r_lambda_arcsec)
        fig.add_shape(type="circle", x0=x - r, x1=x + r, y0=y - r, y1=y + r, line=dict(color=TRUE_COLOUR, dash="dot"))
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=f"true: λ {c.richness:.0f}, z {c.z:.3f}",
                                 marker=dict(symbol="circle-open", size=16, color=TRUE_COLOUR, line=dict(width=2))))
    if members is not None and len(members):
        fig.add_trace(go.Scatter(x=arcsec(members["x_px"]), y=arcsec(members["y_px"]), mode="markers", name="members",
                                 marker=dict(size=6, color=members["P"], colorscale="Viridis", cmin=0, cmax=1,
                                             colorbar=dict(title="P", x=1.02, len=0.6)),
                                 hovertemplate="P = %{marker.color:.2f}<extra></extra>"))
    for d in det.itertuples():
        x, y = arcsec(d.x_px), arcsec(d.y_px)
        half = float(d.half_size_px) * scale_arcsec if np.isfinite(d.half_size_px) else 60.0
        colour = COLOURS.get(d.method, "#d62728")
        fig.add_shape(type="rect", x0=x - half, x1=x + half, y0=y - half, y1=y + half, line=dict(color=colour))
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker=dict(symbol="x", size=11, color=colour),
                                 name=f"{METHOD_NAMES.get(d.method, d.method)}: score {d.score:.2f}, z {d.z:.3f}"))
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.12),
                      xaxis=dict(title="x [arcsec]", range=[0, extent], scaleanchor="y", constrain="domain"),
                      yaxis=dict(title="y [arcsec] (north up)", range=[0, extent]))
    return fig


def sets_figure(sets: pd.DataFrame, methods: tuple[str, ...] = ("deepsets", "janossy", "red_sequence")) -> go.Figure:
    """Predicted against catalogue redshift and richness of the test clusters, with predicted 1-sigma bars."""
    fig = make_subplots(1, 2, subplot_titles=("redshift", "richness λ"), horizontal_spacing=0.1)
    for m in methods:
        if f"{m}_z" not in sets:
            continue
        name = METHOD_NAMES.get(f"{m}_sets", m)
        fig.add_trace(go.Scatter(x=sets["z_true"], y=sets[f"{m}_z"], mode="markers", name=name, legendgroup=m,
                                 marker=dict(size=5, color=COLOURS.get(m)),
                                 error_y=dict(array=sets[f"{m}_z_sigma"], thickness=0.6, width=0)), 1, 1)
        fig.add_trace(go.Scatter(x=sets["lambda_true"], y=sets[f"{m}_lambda"], mode="markers", name=name,
                                 legendgroup=m, showlegend=False, marker=dict(size=5, color=COLOURS.get(m))), 1, 2)
    lo, hi = float(sets["z_true"].min()), float(sets["z_true"].max())
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="black", dash="dot"),
                             showlegend=False, hoverinfo="skip"), 1, 1)
    lo, hi = float(sets["lambda_true"].min()), float(sets["lambda_true"].max())
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="black", dash="dot"),
                             showlegend=False, hoverinfo="skip"), 1, 2)
    fig.update_xaxes(title_text="catalogue z", row=1, col=1)
    fig.update_yaxes(title_text="predicted z", row=1, col=1)
    ticks = dict(type="log", tickvals=[10, 20, 30, 50, 100, 200, 300], ticktext=["10", "20", "30", "50", "100", "200", "300"])
    fig.update_xaxes(title_text="catalogue λ", row=1, col=2, **ticks)
    fig.update_yaxes(title_text="predicted λ", row=1, col=2, **ticks)
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def curves_figure(curves: pd.DataFrame) -> go.Figure:
    """Completeness (per true lambda / z bin) and purity (per detected bin) of every detection method."""
    fig = make_subplots(1, 2, subplot_titles=("by richness λ", "by redshift z"), horizontal_spacing=0.1)
    for col, by in ((1, "richness"), (2, "z")):
        for m, c in curves[curves["by"] == by].groupby("method", sort=False):
            label = [f"{lo:g}–{hi:g}" if np.isfinite(hi) else f"≥ {lo:g}" for lo, hi in zip(c["lo"], c["hi"])]
            colour = COLOURS.get(m)
            fig.add_trace(go.Scatter(x=label, y=c["completeness"], mode="lines+markers", legendgroup=m,
                                     name=f"{METHOD_NAMES.get(m, m)}: completeness", showlegend=col == 1,
                                     line=dict(color=colour)), 1, col)
            fig.add_trace(go.Scatter(x=label, y=c["purity"], mode="lines+markers", legendgroup=m,
                                     name=f"{METHOD_NAMES.get(m, m)}: purity", showlegend=col == 1,
                                     line=dict(color=colour, dash="dash")), 1, col)
    fig.update_yaxes(title_text="fraction", range=[0, 1.05])
    fig.update_xaxes(title_text="λ", row=1, col=1)
    fig.update_xaxes(title_text="z", row=1, col=2)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def cmd_figure(galaxies: pd.DataFrame, z: float, red_sequence: dict | None) -> go.Figure:
    """g - r against r of a tile's galaxies (members by P), with the red-sequence model at the cluster's z and
    its 2-sigma band, and m*(z) + 1.75 (0.2 L*)."""
    fig = go.Figure()
    field = galaxies[galaxies.get("P", 0) <= 0] if "P" in galaxies else galaxies
    fig.add_trace(go.Scattergl(x=field["mag_r"], y=field["g_r"], mode="markers", name="field",
                               marker=dict(size=4, color="#bbbbbb")))
    if "P" in galaxies:
        mem = galaxies[galaxies["P"] > 0]
        fig.add_trace(go.Scattergl(x=mem["mag_r"], y=mem["g_r"], mode="markers", name="members",
                                   marker=dict(size=6, color=mem["P"], colorscale="Viridis", cmin=0, cmax=1,
                                               colorbar=dict(title="P"))))
    if red_sequence is not None and np.isfinite(z):
        gr = float(np.polyval(red_sequence["gr"], z))
        s = red_sequence["s_gr"]
        lo, hi = float(np.nanmin(galaxies["mag_r"])), float(m_star_r(z) + 1.75)
        for off, dash in ((0, "solid"), (-2 * s, "dot"), (2 * s, "dot")):
            fig.add_trace(go.Scatter(x=[lo, hi], y=[gr + off] * 2, mode="lines", showlegend=off == 0,
                                     name=f"red sequence at z = {z:.3f}", line=dict(color="#d62728", dash=dash)))
        fig.add_vline(x=hi, line=dict(color="#d62728", dash="dash"), annotation_text="m* + 1.75")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="r [AB mag]",
                      yaxis_title="g − r [mag]", legend=dict(orientation="h", y=1.1))
    return fig
