"""Figures of the forge page: sampled stars against true ones (pairs, profiles), a rendering of star
particles as an image, and the table comparing the flows with their references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from galaxyml.data.mock.particles import project
from galaxyml.forge.evaluate import PROFILE_ERRORS, profile_error_label
from galaxyml.forge.tables import UNITS
from galaxyml.models.flows import FLOW_NAMES

TRUE_COLOUR, SAMPLED_COLOUR = "#1f77b4", "#ff7f0e"
PAIRS = (("x", "y"), ("x", "z"), ("vx", "vy"), ("age", "feh"), ("age", "Z"), ("feh", "ofe"))


def _label(col: str) -> str:
    unit = UNITS.get(col, "")
    return f"{col} [{unit}]" if unit else col


def pair_figure(true: np.ndarray | None, sampled: np.ndarray, columns: tuple[str, ...], max_points: int = 3000,
                seed: int = 0) -> go.Figure:
    """Scatter panels of column pairs: true stars (when there are any) and sampled stars (at most
    ``max_points`` each); the axes span the true stars, or the sampled ones when alone."""
    pairs = [p for p in PAIRS if set(p) <= set(columns)]
    rng = np.random.default_rng(seed)
    s = sampled[rng.permutation(len(sampled))[:max_points]]
    t = s if true is None else true[rng.permutation(len(true))[:max_points]]
    shown = ((s, "sampled", SAMPLED_COLOUR),) if true is None else \
        ((t, "true (held out)", TRUE_COLOUR), (s, "sampled", SAMPLED_COLOUR))
    cols = 3
    rows = int(np.ceil(len(pairs) / cols))
    fig = make_subplots(rows, cols, horizontal_spacing=0.08, vertical_spacing=0.14)
    for k, (a, b) in enumerate(pairs):
        r, c = k // cols + 1, k % cols + 1
        ia, ib = columns.index(a), columns.index(b)
        for data, name, colour in shown:
            fig.add_trace(go.Scattergl(x=data[:, ia], y=data[:, ib], mode="markers", name=name, legendgroup=name,
                                       showlegend=k == 0, marker={"size": 2, "color": colour, "opacity": 0.35}), r, c)
        fig.update_xaxes(title_text=_label(a), range=list(np.percentile(t[:, ia], [0.5, 99.5])), row=r, col=c)
        fig.update_yaxes(title_text=_label(b), range=list(np.percentile(t[:, ib], [0.5, 99.5])), row=r, col=c)
    fig.update_layout(height=330 * rows, margin={"t": 30, "b": 10}, legend={"orientation": "h", "y": 1.06})
    return fig


def profile_figure(true: dict[str, np.ndarray] | None, sampled: dict[str, np.ndarray]) -> go.Figure:
    """Radial profiles (from :func:`galaxyml.forge.evaluate.radial_profiles`), true (when there are true
    stars) against sampled."""
    panels = [("surface_density", "Σ [share of stars / kpc²]", True), ("v_phi", "rotation v_φ [km/s]", False),
              ("age", "median age [Gyr]", False), ("log_Z", "median log10 Z", False)]
    panels = [p for p in panels if p[0] in sampled]
    shown = ((sampled, "sampled", SAMPLED_COLOUR),) if true is None else \
        ((true, "true (held out)", TRUE_COLOUR), (sampled, "sampled", SAMPLED_COLOUR))
    fig = make_subplots(1, len(panels), horizontal_spacing=0.07)
    for k, (key, label, log) in enumerate(panels):
        for prof, name, colour in shown:
            fig.add_trace(go.Scatter(x=prof["r_kpc"], y=prof[key], mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=k == 0, line={"color": colour}), 1, k + 1)
        fig.update_xaxes(title_text="cylindrical radius R [kpc]", row=1, col=k + 1)
        fig.update_yaxes(title_text=label, type="log" if log else "linear", row=1, col=k + 1)
    fig.update_layout(height=340, margin={"t": 30, "b": 10}, legend={"orientation": "h", "y": 1.12})
    return fig


def render_particles(particles: np.ndarray, columns: tuple[str, ...], cos_incl: float = 1.0, pa_deg: float = 0.0,
                     colour: str = "age", half_size_kpc: float = 15.0, pixels: int = 128,
                     colour_range: tuple[float, float] | None = None, scale: str = "Viridis") -> np.ndarray:
    """(pixels, pixels, 3) uint8 image of star particles seen at inclination arccos(``cos_incl``) and
    position angle ``pa_deg``: brightness is the log projected surface density, hue the mean of
    ``colour`` (``age`` [Gyr] or ``Z`` as log10) of the stars in each pixel."""
    pos = project(particles, cos_incl, pa_deg)
    edges = np.linspace(-half_size_kpc, half_size_kpc, pixels + 1)
    counts, _, _ = np.histogram2d(pos[:, 1], pos[:, 0], bins=[edges, edges])
    value = particles[:, columns.index(colour)].astype(np.float64)
    if colour == "Z":
        value = np.log10(np.maximum(value, 1e-12))
    sums, _, _ = np.histogram2d(pos[:, 1], pos[:, 0], bins=[edges, edges], weights=value)
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    lo, hi = colour_range or (np.percentile(value, 2), np.percentile(value, 98))
    frac = np.clip((mean - lo) / max(hi - lo, 1e-9), 0, 1)
    lut = np.array([[int(v) for v in c[4:-1].split(",")] for c in sample_colorscale(scale, np.linspace(0, 1, 256))])
    rgb = lut[(frac * 255).astype(int)].astype(np.float64)
    density = np.log1p(counts)
    bright = density / max(density.max(), 1e-9)
    img = rgb * bright[..., None]
    return np.clip(img[::-1], 0, 255).astype(np.uint8)  # north (+y) up


PROFILE_COLUMNS = {key: profile_error_label(key) for key in PROFILE_ERRORS}
"""Table headers of the radial-profile errors (mean |sampled - true| over radial bins)."""


def _profiles(m: dict) -> dict[str, float]:
    return {PROFILE_COLUMNS[k]: v for k, v in m.get("profile_error", {}).items() if k in PROFILE_COLUMNS}


def flows_table(metrics: dict) -> pd.DataFrame:
    """One row per flow and per reference: held-out C2ST AUC, NLL, mean W1, profile errors, speeds."""
    rows = []
    for kind, m in metrics.get("flows", {}).items():
        rows.append({"model": FLOW_NAMES.get(kind, kind), "C2ST AUC": m["c2st_auc"], "NLL [nats/star]": m["nll"],
                     "W1 [std]": m["w1"], **_profiles(m), "stars / s": m["stars_per_second"],
                     "train [s]": m["train_seconds"], "s / epoch": m["seconds_per_epoch"],
                     "best step": f"{m['best_step']} / {m['steps']}"})
    refs = metrics.get("references", {})
    if "gaussian" in refs:
        g = refs["gaussian"]
        rows.append({"model": "Gaussian fitted to the galaxy's own stars", "C2ST AUC": g["c2st_auc"],
                     "NLL [nats/star]": g["nll"], "W1 [std]": g["w1"], **_profiles(g)})
    if "real" in refs:
        rows.append({"model": "true stars against true stars (ceiling)", "C2ST AUC": refs["real"]["c2st_auc"],
                     "W1 [std]": refs["real"]["w1"], **_profiles(refs["real"])})
    return pd.DataFrame(rows)
