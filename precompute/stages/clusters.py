"""Stage ``cluster_fields``: mock sky tiles with galaxy clusters and redMaPPer-format catalogues."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd

from galaxyml.data.mock.clusters import ClusterFieldConfig, draw_tile, render_tile, tile_wcs
from galaxyml.data.redmapper import mock_to_redmapper, write_fits_table
from precompute.stage import StageContext, register

FIELDS_FILE = "fields.npy"
TILES_FILE = "tiles.parquet"
GALAXIES_FILE = "galaxies.parquet"
CATALOG_FITS = "redmapper_catalog.fits"
MEMBERS_FITS = "redmapper_members.fits"


@register("cluster_fields", ClusterFieldConfig)
def build_cluster_fields(ctx: StageContext) -> dict:
    """Render mock sky tiles with clusters; write the images, the truth and redMaPPer FITS files."""
    cfg: ClusterFieldConfig = ctx.cfg
    images = np.lib.format.open_memmap(ctx.out / FIELDS_FILE, mode="w+", dtype=np.float32,
                                       shape=(cfg.n_fields, 3, cfg.size_px, cfg.size_px))
    records, galaxies = [], []
    for t in range(cfg.n_fields):
        record, gal = draw_tile(cfg, t)
        images[t] = render_tile(cfg, gal, t)
        record["wcs"] = json.dumps(dict(tile_wcs(cfg, record["ra_center"], record["dec_center"]).to_header()))
        records.append(record)
        galaxies.append(gal)
        ctx.progress(t + 1, cfg.n_fields, f"tile {t + 1}/{cfg.n_fields}")
    images.flush()
    tiles = pd.DataFrame(records)
    gal = pd.concat(galaxies, ignore_index=True)
    tiles.to_parquet(ctx.out / TILES_FILE, index=False)
    gal.to_parquet(ctx.out / GALAXIES_FILE, index=False)
    catalog, members = mock_to_redmapper(tiles, gal, cfg.seed)
    write_fits_table(catalog, ctx.out / CATALOG_FITS, {"RA": "deg", "DEC": "deg"})
    write_fits_table(members, ctx.out / MEMBERS_FITS, {"RA": "deg", "DEC": "deg", "IMAG": "mag"})
    (ctx.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    return {"n_fields": cfg.n_fields, "n_clusters": int(tiles["has_cluster"].sum()),
            "n_members": int(len(members)), "n_galaxies": int(len(gal)), "is_mock": True}
