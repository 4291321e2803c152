"""Figures of the survey map: the 2-D UMAP scatter coloured by a property, and a property's distribution
in a selection against the survey."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

MISSING_COLOUR = "rgba(160,160,160,0.5)"


def map_figure(coords: np.ndarray, rows: np.ndarray, labels: np.ndarray, values: np.ndarray | None,
               colour_title: str, selected: np.ndarray | None = None, height: int = 620,
               dragmode: str = "lasso") -> go.Figure:
    """WebGL scatter of the ``rows`` of ``coords`` (customdata: the survey row; hover: ``labels``), coloured
    by ``values`` with a colour bar titled ``colour_title`` (galaxies without a value in grey, in a trace
    of their own); where the boolean mask ``selected`` (over ``rows``) is given, the rest is dimmed. A drag
    does ``dragmode`` (lasso, select, pan or zoom); the axes keep the user's zoom across redraws."""
    rows = np.asarray(rows, np.int64)
    xy = np.asarray(coords[rows], np.float32)
    size = 4 if len(rows) < 20000 else 2.5
    v = np.full(len(rows), np.nan) if values is None else np.asarray(values, np.float64)
    finite = np.isfinite(v)
    fig = go.Figure()
    for part, colour in ((~finite, None), (finite, v)):
        if not part.any():
            continue
        marker: dict = {"size": size, "opacity": 0.85}
        if colour is None:
            marker["color"] = MISSING_COLOUR if values is not None else "#7aa2f7"
        else:
            lo, hi = np.percentile(colour[part], [1, 99])
            marker.update(color=colour[part].astype(np.float32), colorscale="Viridis", cmin=lo,
                          cmax=hi if hi > lo else lo + 1,
                          colorbar={"title": {"text": colour_title, "side": "right"}, "thickness": 14})
        chosen = None if selected is None else np.flatnonzero(np.asarray(selected)[part])
        name = "no value" if colour is None and values is not None else "galaxies"
        fig.add_trace(go.Scattergl(x=xy[part, 0], y=xy[part, 1], mode="markers", marker=marker, name=name,
                                   customdata=rows[part], text=labels[part],
                                   hovertemplate="galaxy %{text}<extra></extra>", showlegend=name == "no value",
                                   selectedpoints=chosen, unselected={"marker": {"opacity": 0.1}}))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode=dragmode,
                      xaxis={"title": "UMAP 1", "showticklabels": False, "zeroline": False, "uirevision": "map"},
                      yaxis={"title": "UMAP 2", "showticklabels": False, "zeroline": False, "scaleanchor": "x",
                             "uirevision": "map"},
                      hovermode="closest", uirevision=dragmode, legend={"orientation": "h", "y": 1.02, "x": 0})
    return fig


def rows_in_shapes(coords: np.ndarray, rows: np.ndarray, boxes: list[dict], lassos: list[dict]) -> np.ndarray:
    """The ``rows`` whose map position lies in any box ({x: [x0, x1], y: [y0, y1]}) or lasso polygon
    ({x: [...], y: [...]}) of a plotly selection event (sorted)."""
    xy = np.asarray(coords[rows], np.float64)
    inside = np.zeros(len(rows), bool)
    for box in boxes:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        inside |= (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    for lasso in lassos:
        if len(lasso["x"]) >= 3:
            inside |= in_polygon(xy, np.asarray(lasso["x"], np.float64), np.asarray(lasso["y"], np.float64))
    return np.sort(np.asarray(rows)[inside])


def in_polygon(xy: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule: points of ``xy`` inside the closed polygon (px, py) (ray casting, one edge at a time)."""
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), bool)
    for i in range(len(px)):
        x0, y0, x1, y1 = px[i - 1], py[i - 1], px[i], py[i]
        if y0 == y1:
            continue
        crosses = (y0 > y) != (y1 > y)
        inside ^= crosses & (x < x0 + (y - y0) * (x1 - x0) / (y1 - y0))
    return inside


def selection_histogram(selection: np.ndarray, survey: np.ndarray, title: str) -> go.Figure:
    """Probability densities of one property in the selection and in the survey (in view)."""
    both = np.concatenate([selection, survey])
    both = both[np.isfinite(both)]
    edges = np.histogram_bin_edges(both, bins=30) if len(both) else np.linspace(0, 1, 31)
    fig = go.Figure()
    for name, v, colour in (("survey (in view)", survey, "#9aa5ce"), ("selection", selection, "#ff9e64")):
        counts, _ = np.histogram(v[np.isfinite(v)], bins=edges, density=True)
        fig.add_trace(go.Bar(x=0.5 * (edges[1:] + edges[:-1]), y=counts, width=np.diff(edges), name=name,
                             marker_color=colour, opacity=0.6))
    fig.update_layout(barmode="overlay", height=240, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title={"text": title, "font": {"size": 13}}, xaxis_title=title, yaxis_title="density",
                      legend={"orientation": "h", "y": -0.35})
    return fig
