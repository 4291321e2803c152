"""Assemble the mock catalog and images into a ``Survey`` (in memory or streamed to disk)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from galaxyml import relations
from galaxyml.data.mock.catalog import UNITS, draw_catalog
from galaxyml.data.mock.config import MockConfig
from galaxyml.data.mock.render import render_images
from galaxyml.data.mock.structure import VOTE_COLUMNS
from galaxyml.data.survey import CATALOG_FILE, IMAGES_FILE, META_FILE, Survey

ProgressFn = Callable[[int, int, str], None]


def n2_floor(metallicity_scatter_dex: float, catalog: pd.DataFrame) -> float:
    """Scatter of N2 from the metallicity scatter, through the T04 -> PP04 conversion and the
    Pettini & Pagel (2004) N2 relation: sigma_OH / 0.57 times the RMS over the star-forming
    galaxies of d PP04 / d T04 (the conversion compresses the scale, by about 0.7 on the demo)."""
    oh = catalog["oh_12"].to_numpy(np.float64)
    oh = oh[np.isfinite(oh) & (catalog["agn"].to_numpy() == 0)]
    if not len(oh):
        return metallicity_scatter_dex / 0.57
    h = 1e-3
    slope = (relations.t04_to_pp04(oh + h) - relations.t04_to_pp04(oh - h)) / (2 * h)
    return float(metallicity_scatter_dex / 0.57 * np.sqrt(np.mean(slope**2)))


def prediction_floors(meta: dict, catalog: pd.DataFrame) -> dict[str, float]:
    """The floors recorded in a mock survey's metadata, with N2's derived from its catalog
    (:func:`n2_floor`), so that a survey written before that propagation reads right too."""
    floors = dict(meta.get("prediction_floors", {}))
    scatter = meta.get("config", {}).get("metallicity_scatter_dex")
    if "n2" in floors and scatter is not None and {"oh_12", "agn"} <= set(catalog):
        floors["n2"] = n2_floor(scatter, catalog)
    return floors


def mock_meta(cfg: MockConfig, catalog: pd.DataFrame) -> dict:
    """Survey metadata: units, truth columns and the prediction floor of each property.

    The floor of a property is the scatter injected around the relation that ties it to what is
    visible in the image, propagated to the property; no model can predict it better from the image
    alone.
    """
    return {
        "source": "mock",
        "is_mock": True,
        "flux_unit": "nanomaggy",
        "zero_point_mag": 22.5,
        "pixel_scale_arcsec": cfg.pixel_scale_arcsec,
        "psf_fwhm_arcsec": cfg.psf_fwhm_arcsec,
        "units": dict(UNITS),
        "truth_columns": [c for c in UNITS if c not in ("ra", "dec")],
        "vote_columns": list(VOTE_COLUMNS),
        "prediction_floors": {
            "oh_12": cfg.metallicity_scatter_dex,
            "n2": n2_floor(cfg.metallicity_scatter_dex, catalog),
            "log_sfr": cfg.main_sequence_scatter_dex,
            "log_ssfr": cfg.main_sequence_scatter_dex,
        },
        "config": dataclasses.asdict(cfg),
    }


def make_mock_survey(cfg: MockConfig) -> Survey:
    """Generate the whole mock survey in memory (for small surveys and tests)."""
    catalog = draw_catalog(cfg)
    images = render_images(cfg, catalog, first_index=0)
    return Survey(catalog=catalog, images=images, bands=cfg.bands, meta=mock_meta(cfg, catalog))


def write_mock_survey(cfg: MockConfig, folder: Path, progress: ProgressFn | None = None, chunk: int = 256) -> Survey:
    """Render the mock survey straight into ``folder`` in chunks, images as an npy memmap."""
    folder.mkdir(parents=True, exist_ok=True)
    catalog = draw_catalog(cfg)
    n, size = len(catalog), cfg.image_size_px
    images = np.lib.format.open_memmap(
        folder / IMAGES_FILE, mode="w+", dtype=np.float32, shape=(n, len(cfg.bands), size, size)
    )
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        images[start:stop] = render_images(cfg, catalog.iloc[start:stop], first_index=start)
        if progress:
            progress(stop, n, f"rendered {stop:,}/{n:,} galaxies")
    images.flush()
    del images
    catalog.to_parquet(folder / CATALOG_FILE, index=False)
    (folder / META_FILE).write_text(json.dumps({"bands": list(cfg.bands), "meta": mock_meta(cfg, catalog)}, indent=1))
    return Survey.load(folder)
