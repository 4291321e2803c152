"""Stage ``cluster_fields``: sky tiles with galaxy clusters and their redMaPPer-format catalogues, from
the mock universe or from the user's folder of tiles with a redMaPPer catalogue."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd

from galaxyml.data.cluster_tiles import read_tile_folder
from galaxyml.data.mock.clusters import ClusterFieldConfig, draw_tile, render_tile, tile_wcs
from galaxyml.data.redmapper import mock_to_redmapper, read_clusters, read_members, write_fits_table
from precompute.stage import StageContext, register

FIELDS_FILE = "fields.npy"
TILES_FILE = "tiles.parquet"
CLUSTERS_FILE = "clusters.parquet"
"""The true clusters, one row per cluster: tile, x_px, y_px, z, richness (the mock's truth, or the
user's catalogue's Z_LAMBDA and LAMBDA)."""
GALAXIES_FILE = "galaxies.parquet"
"""Every galaxy of every tile (the mock only: a real folder of tiles has no galaxy catalogue)."""
CATALOG_FITS = "redmapper_catalog.fits"
MEMBERS_FITS = "redmapper_members.fits"
UNITS = {"RA": "deg", "DEC": "deg", "IMAG": "mag"}


def _mock(ctx: StageContext, cfg: ClusterFieldConfig) -> dict:
    images = np.lib.format.open_memmap(ctx.out / FIELDS_FILE, mode="w+", dtype=np.float32,
                                       shape=(cfg.n_fields, 3, cfg.size_px, cfg.size_px))
    records, galaxies = [], []
    for t in range(cfg.n_fields):
        record, gal = draw_tile(cfg, t)
        images[t] = render_tile(cfg, gal, t)
        record["wcs"] = json.dumps(dict(tile_wcs(cfg, record["ra_center"], record["dec_center"]).to_header()))
        records.append(record)
        galaxies.append(gal)
        if t % 10 == 9 or t + 1 == cfg.n_fields:
            ctx.progress(t + 1, cfg.n_fields, f"tile {t + 1}/{cfg.n_fields}")
    images.flush()
    tiles = pd.DataFrame(records)
    tiles["pixel_scale_arcsec"] = cfg.pixel_scale_arcsec
    tiles["near_cluster"] = 0
    gal = pd.concat(galaxies, ignore_index=True)
    catalog, members = mock_to_redmapper(tiles, gal, cfg.seed)
    truth = tiles[tiles["has_cluster"] == 1][["tile", "x_px", "y_px", "z", "richness"]].reset_index(drop=True)
    truth.insert(1, "mem_match_id", catalog["MEM_MATCH_ID"].to_numpy())
    truth.insert(2, "ra", catalog["RA"].to_numpy())
    truth.insert(3, "dec", catalog["DEC"].to_numpy())
    tiles.to_parquet(ctx.out / TILES_FILE, index=False)
    truth.to_parquet(ctx.out / CLUSTERS_FILE, index=False)
    gal.to_parquet(ctx.out / GALAXIES_FILE, index=False)
    write_fits_table(catalog, ctx.out / CATALOG_FITS, UNITS)
    write_fits_table(members, ctx.out / MEMBERS_FITS, UNITS)
    return {"n_fields": cfg.n_fields, "n_clusters": int(tiles["has_cluster"].sum()),
            "n_members": int(len(members)), "n_galaxies": int(len(gal)), "is_mock": True}


def _folder(ctx: StageContext, cfg: ClusterFieldConfig) -> dict:
    catalog = read_clusters(cfg.catalog_path)
    ctx.progress(0, 1, f"reading the tiles in {cfg.tiles_path}")
    images, tiles, truth = read_tile_folder(cfg.tiles_path, catalog, cfg.size_px)
    np.save(ctx.out / FIELDS_FILE, images, allow_pickle=False)
    catalog = catalog[catalog["MEM_MATCH_ID"].isin(truth["mem_match_id"])].copy()
    catalog["TILE"] = catalog["MEM_MATCH_ID"].map(dict(zip(truth["mem_match_id"], truth["tile"]))).astype(np.int32)
    n_members = 0
    if cfg.members_path:
        members = read_members(cfg.members_path)
        unknown = sorted(set(members["MEM_MATCH_ID"]) - set(read_clusters(cfg.catalog_path)["MEM_MATCH_ID"]))
        if unknown:
            raise ValueError(f"{cfg.members_path}: {len(unknown)} members point to clusters not in "
                             f"{cfg.catalog_path} (MEM_MATCH_ID {', '.join(map(str, unknown[:5]))}...)")
        members = members[members["MEM_MATCH_ID"].isin(catalog["MEM_MATCH_ID"])]
        write_fits_table(members, ctx.out / MEMBERS_FITS, UNITS)
        n_members = len(members)
    tiles.to_parquet(ctx.out / TILES_FILE, index=False)
    truth.to_parquet(ctx.out / CLUSTERS_FILE, index=False)
    write_fits_table(catalog, ctx.out / CATALOG_FITS, UNITS)
    ctx.progress(1, 1, f"{len(tiles)} tiles, {len(truth)} catalogued clusters inside them")
    return {"n_fields": int(len(tiles)), "n_clusters": int(len(truth)), "n_members": int(n_members),
            "n_near_cluster": int(tiles["near_cluster"].sum()), "is_mock": False}


@register("cluster_fields", ClusterFieldConfig, version=2)
def build_cluster_fields(ctx: StageContext) -> dict:
    """Sky tiles with clusters (mock or the user's folder); the images, the truth and redMaPPer FITS files."""
    cfg: ClusterFieldConfig = ctx.cfg
    metrics = _mock(ctx, cfg) if cfg.source == "mock" else _folder(ctx, cfg)
    (ctx.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    return metrics
