"""One line per page for exports: figures (PNG / SVG / PDF), galleries (PNG / PDF grid) and tables (CSV /
parquet / FITS), each with the view's provenance, and a screenshot of the whole view."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from galaxyml.atlas import Atlas
from galaxyml.export import (FIGURE_FORMATS, GALLERY_FORMATS, TABLE_FORMATS, EmptyExport, Provenance, figure_bytes,
                             gallery_bytes, table_bytes)
from galaxyml.export import figures as figure_export_mod
from galaxyml.export import tables as table_mod

GALLERY_MIME = {"png": "image/png", "pdf": "application/pdf"}


def view_link() -> str:
    """The deep link of the current view: the page's address with its query parameters."""
    url = str(getattr(st.context, "url", "") or "")
    base = url.split("?", 1)[0]
    query = urllib.parse.urlencode(st.query_params.to_dict())
    return f"{base}?{query}" if query else base


def provenance(atlas: Atlas, stages: Sequence[str], title: str) -> Provenance:
    """The provenance of a figure of ``atlas`` made from ``stages``, for the current view."""
    return Provenance.of(atlas.name, atlas.manifest, list(stages), link=view_link(), title=title)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60] or "figure"


def _sidecar_button(prov: Provenance, file_name: str, key: str) -> None:
    st.download_button("Provenance (JSON)", prov.sidecar(), file_name=file_name, mime="application/json",
                       on_click="ignore", key=f"{key}_json")


def export_figure(fig: go.Figure | None, title: str, atlas: Atlas, stages: Sequence[str], key: str | None = None) -> None:
    """An *Export* button under a figure: PNG (chosen scale), SVG or PDF, optionally in the publication
    style, with the view's provenance in the file and as a sidecar JSON."""
    key = f"fig_{key or slug(title)}"
    with st.popover("Export figure", icon=":material/download:", key=f"{key}_pop", type="tertiary"):
        if not figure_export_mod.has_data(fig):
            st.caption("There is nothing to export: the figure is empty.")
            return
        if missing := figure_export_mod.renderer_missing():
            st.caption(missing + " The chart's camera icon still saves a PNG.")
            return
        fmt = st.segmented_control("Format", [f.upper() for f in FIGURE_FORMATS], default="PNG",
                                   key=f"{key}_fmt") or "PNG"
        scale = st.select_slider("PNG scale", [1, 2, 3, 4], value=2, key=f"{key}_scale",
                                 help="Pixel density: 3 gives about 300 dpi at a one-column width",
                                 disabled=fmt != "PNG")
        publication = st.toggle("Publication style", key=f"{key}_pub",
                                help="White background, larger fonts, colour-blind-safe colours (Okabe-Ito, cividis)")
        prov = provenance(atlas, stages, title)
        ext = fmt.lower()
        st.download_button(f"Download {fmt}", lambda: figure_bytes(fig, ext, prov, scale=scale, publication=publication),
                           file_name=f"{atlas.name}_{slug(title)}.{ext}", mime=figure_export_mod.MIME[ext],
                           on_click="ignore", key=f"{key}_dl", icon=":material/download:")
        _sidecar_button(prov, f"{atlas.name}_{slug(title)}.json", key)


def export_gallery(images: np.ndarray, ids: Sequence[str], title: str, atlas: Atlas, stages: Sequence[str],
                   values: Sequence[float] | None = None, value_label: str = "", key: str | None = None) -> None:
    """An *Export* button under a gallery: a PNG or PDF grid with ids, values and a scale bar in arcsec."""
    key = f"gal_{key or slug(title)}"
    with st.popover("Export gallery", icon=":material/download:", key=f"{key}_pop"):
        if len(images) == 0:
            st.caption("There is nothing to export: the gallery is empty.")
            return
        fmt = st.segmented_control("Format", [f.upper() for f in GALLERY_FORMATS], default="PNG",
                                   key=f"{key}_fmt") or "PNG"
        publication = st.toggle("Publication style", key=f"{key}_pub", help="White background")
        prov = provenance(atlas, stages, title)
        arcsec = thumbnail_arcsec_per_px(atlas, np.asarray(images).shape[-2])
        ext = fmt.lower()
        st.download_button(f"Download {fmt}", lambda: gallery_bytes(np.asarray(images), list(ids), ext, prov, values,
                                                                    value_label, arcsec, publication=publication),
                           file_name=f"{atlas.name}_{slug(title)}.{ext}", mime=GALLERY_MIME[ext], on_click="ignore",
                           key=f"{key}_dl", icon=":material/download:")
        _sidecar_button(prov, f"{atlas.name}_{slug(title)}.json", key)


def export_table(table: pd.DataFrame | None, title: str, atlas: Atlas, stages: Sequence[str],
                 units: dict[str, str] | None = None, key: str | None = None, label: str | None = None) -> None:
    """An *Export* button (``label``, else from the title) for a table: CSV, parquet or FITS (with units), with
    provenance."""
    key = f"tab_{key or slug(title)}"
    label = label or (f"Export {title[0].lower() + title[1:]}" if len(title) < 28 else "Export table")
    with st.popover(label, icon=":material/table_view:", key=f"{key}_pop"):
        if table is None or len(table) == 0:
            st.caption("There is nothing to export: the table is empty.")
            return
        fmt = st.segmented_control("Format", [f.upper() for f in TABLE_FORMATS], default="CSV", key=f"{key}_fmt") or "CSV"
        st.caption(f"{len(table):,} rows × {table.shape[1]} columns")
        prov = provenance(atlas, stages, title)
        units = {**atlas.survey_meta().get("units", {}), **(units or {})} if atlas.ready("survey") else units
        ext = fmt.lower()

        def data() -> bytes:
            try:
                return table_bytes(table, ext, prov, units)
            except EmptyExport as e:  # pragma: no cover - checked above
                return str(e).encode()

        st.download_button(f"Download {fmt}", data, file_name=f"{atlas.name}_{slug(title)}.{ext}",
                           mime=table_mod.MIME[ext], on_click="ignore", key=f"{key}_dl", icon=":material/download:")


def thumbnail_arcsec_per_px(atlas: Atlas, thumb_px: int) -> float | None:
    """Arcseconds per pixel of the atlas's thumbnails (the survey pixel scale × cutout / thumbnail size)."""
    if not atlas.ready("survey"):
        return None
    meta, m = atlas.survey_meta(), atlas.metrics("survey")
    scale, size = meta.get("pixel_scale_arcsec"), m.get("image_size_px")
    try:
        return float(scale) * float(size) / float(thumb_px) if scale and size and thumb_px else None
    except (TypeError, ValueError):
        return None


def chart(fig: go.Figure, title: str, atlas: Atlas, stages: Sequence[str], where=None, **kwargs):
    """``st.plotly_chart`` (full width unless told) with its *Export figure* button under it; returns the
    chart's selection event where ``on_select`` asks for one."""
    where = where if where is not None else st.container()
    event = where.plotly_chart(fig, **{"width": "stretch", **kwargs})
    with where:
        export_figure(fig, title, atlas, stages, key=kwargs.get("key"))
    return event


def screenshot_control() -> None:
    """*Screenshot this view*: the same capture as ``python -m galaxyml.export``, from the running app."""
    from galaxyml.export.screenshot import ScreenshotError, capture

    with st.popover("Screenshot this view", icon=":material/screenshot_monitor:", width="stretch"):
        link = view_link()
        if not link.startswith("http"):
            st.caption("This view has no address to open (the app is not served over HTTP).")
            return
        fmt = st.segmented_control("Format", ["PNG", "PDF"], default="PNG", key="shot_fmt") or "PNG"
        element = st.text_input("Only the section of", placeholder="a heading or label, e.g. Top 30 galaxies",
                                key="shot_element").strip() or None
        st.caption(f"Command line: `python -m galaxyml.export '{link}' -o view.{fmt.lower()}`"
                   + (f" `--element '{element}'`" if element else ""))
        if st.button("Take screenshot", icon=":material/photo_camera:", key="shot_take"):
            import tempfile
            from pathlib import Path

            with st.spinner("Opening the view in headless Chromium…"), tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / f"view.{fmt.lower()}"
                try:
                    capture(link, out, element=element)
                    st.session_state["shot"] = (out.read_bytes(), fmt.lower(), link)
                except ScreenshotError as e:
                    st.error(str(e))
        shot = st.session_state.get("shot")
        if shot and shot[2] == link:
            data, ext, _ = shot
            name = slug(urllib.parse.urlsplit(link).path.strip("/") or "home")
            st.download_button(f"Download {ext.upper()}", data, file_name=f"{name}.{ext}",
                               mime="image/png" if ext == "png" else "application/pdf", on_click="ignore",
                               key="shot_dl", icon=":material/download:")
