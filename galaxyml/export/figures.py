"""Plotly figures as PNG, SVG and PDF through kaleido (Debian ``chromium``), with a publication style."""

from __future__ import annotations

import copy
import threading
import warnings

import plotly.graph_objects as go

from galaxyml.export.provenance import Provenance, stamp
from galaxyml.export.tables import EmptyExport

FIGURE_FORMATS = ("png", "svg", "pdf")
MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
"""Okabe & Ito (2008) colours, distinguishable with the common colour-vision deficiencies."""
SEQUENTIAL = "Cividis"
"""Colour map of continuous colourings in the publication style (Nuñez et al. 2018, made for colour-blind
readers)."""

_server_lock = threading.Lock()
_server_started = False


class ExportUnavailable(RuntimeError):
    """The figure cannot be rendered here (no kaleido or no Chromium)."""


def publication_style(fig: go.Figure, font_size: int = 18) -> go.Figure:
    """A copy of ``fig`` for a paper: white background, larger fonts, colour-blind-safe colours."""
    out = go.Figure(copy.deepcopy(fig.to_dict()))
    out.update_layout(template="simple_white", paper_bgcolor="white", plot_bgcolor="white",
                      font=dict(size=font_size, color="black"), colorway=list(OKABE_ITO))
    out.update_xaxes(showline=True, mirror=True, ticks="outside", linecolor="black", gridcolor="#e5e5e5")
    out.update_yaxes(showline=True, mirror=True, ticks="outside", linecolor="black", gridcolor="#e5e5e5")
    if "coloraxis" in out.layout and out.layout.coloraxis.colorscale is not None:
        out.update_layout(coloraxis_colorscale=SEQUENTIAL)
    for trace in out.data:
        marker = getattr(trace, "marker", None)
        if marker is not None and getattr(marker, "colorscale", None) is not None:
            marker.colorscale = SEQUENTIAL
        if getattr(trace, "colorscale", None) is not None and trace.type in ("heatmap", "histogram2d", "contour",
                                                                             "histogram2dcontour"):
            trace.colorscale = SEQUENTIAL
    return out


def has_data(fig: go.Figure | None) -> bool:
    """Whether any trace of ``fig`` has a point, a bar, a cell or an image to draw."""
    if fig is None:
        return False
    for trace in fig.data:
        for attr in ("x", "y", "z", "values", "lat", "r", "a", "source", "dimensions"):
            value = getattr(trace, attr, None)
            if value is not None and len(value):
                return True
    return False


def renderer_missing() -> str:
    """Why figures cannot be rendered here ('' when they can): kaleido draws them in Chromium."""
    import importlib.util

    from galaxyml.export.screenshot import find_chromium

    if importlib.util.find_spec("kaleido") is None:
        return "Figure files need kaleido (pip install kaleido)."
    if find_chromium() is None:
        return "Figure files are rendered by Chromium, which is not installed here (apt-get install chromium)."
    return ""


def _ensure_server() -> None:
    """Start one kaleido Chromium for the process (the first figure takes seconds, later ones a fraction)."""
    global _server_started
    with _server_lock:
        if _server_started:
            return
        if missing := renderer_missing():
            raise ExportUnavailable(missing)
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        _server_started = True


def figure_bytes(fig: go.Figure, fmt: str, prov: Provenance, scale: float = 2.0, publication: bool = False,
                 width: int | None = None, height: int | None = None) -> bytes:
    """``fig`` as a PNG (``scale`` × its pixel size), SVG or PDF file with its provenance written in."""
    fmt = fmt.lower()
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose one of {', '.join(FIGURE_FORMATS)}")
    if not has_data(fig):
        raise EmptyExport("there is nothing to export: the figure has no data")
    if publication:
        fig = publication_style(fig)
    _ensure_server()
    import plotly.io as pio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kaleido's "kopts is ignored when using a server"
        data = pio.to_image(fig, format=fmt, scale=scale if fmt == "png" else 1, width=width or 900,
                            height=height or fig.layout.height or 560)
    return stamp(data, fmt, prov)
