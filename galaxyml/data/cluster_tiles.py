"""Sky tiles from the user's files with a redMaPPer catalogue: the cluster finders' real-data source.

A folder of tiles holds either FITS images (one image HDU, 2-D or (bands, H, W), with a celestial WCS
in its header) or JPG / PNG images with a ``tiles.csv`` beside them (columns ``file, ra, dec,
pixel_scale_arcsec``: the centre and the scale of a north-up, east-left image). Every tile is resampled
to ``size_px`` x ``size_px``; all must have the same number of bands.

A catalogued cluster whose centre falls inside a tile is a positive of that tile. A tile with none is
a negative only if it also lies away from every catalogued cluster: no cluster in its HEALPix pixel
or the eight around it (astropy-healpix, nested, ``nside`` chosen so a pixel is at least as wide as
the tile); the other empty tiles are "near" and left out of the classifier's scores.
:func:`negative_field_centres` draws such clean pixels for cutting new negative fields.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from astropy.coordinates import ICRS
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy_healpix import HEALPix
from PIL import Image

FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fz")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TILES_CSV = "tiles.csv"


class ClusterTileError(ValueError):
    """Tiles cannot be read; the message names the file and the problem."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".fits.gz" if name.endswith(".fits.gz") else path.suffix.lower()


def resample_tiles(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, size, size) float32 by area averaging (bilinear when enlarging)."""
    t = torch.from_numpy(np.array(images, np.float32))  # a copy: memory-mapped tiles are read-only
    if t.shape[-2:] == (size, size):
        return t.numpy()
    mode = "area" if min(t.shape[-2:]) >= size else "bilinear"
    return F.interpolate(t, size=(size, size), mode=mode).numpy()


def _read_fits_tile(path: Path) -> tuple[np.ndarray, WCS]:
    try:
        with warnings.catch_warnings(), fits.open(path, memmap=False) as hdul:
            warnings.simplefilter("ignore", FITSFixedWarning)
            hdu = next((h for h in hdul if h.is_image and h.data is not None and h.data.ndim in (2, 3)), None)
            if hdu is None:
                raise ClusterTileError(f"{path} holds no 2-D or 3-D image")
            data = np.asarray(hdu.data, np.float32)
            wcs = WCS(hdu.header).celestial
    except ClusterTileError:
        raise
    except (OSError, ValueError, TypeError) as e:
        raise ClusterTileError(f"{path} is not a readable FITS image (truncated or corrupt?): {e}") from e
    if not wcs.has_celestial or wcs.naxis != 2:
        raise ClusterTileError(f"{path} has no celestial WCS in its header (CTYPE RA---TAN / DEC--TAN ...)")
    data = data[None] if data.ndim == 2 else data
    return np.nan_to_num(data), wcs


def _jpg_wcs(ra: float, dec: float, scale: float, width: int, height: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(width + 1) / 2.0, (height + 1) / 2.0]
    w.wcs.cdelt = [-scale / 3600.0, scale / 3600.0]
    return w


def _read_image_tile(path: Path, row: pd.Series) -> tuple[np.ndarray, WCS]:
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            rgb = np.asarray(im.convert("RGB"), np.float32)[::-1]  # rows from the south: FITS order
    except (OSError, ValueError) as e:
        raise ClusterTileError(f"{path} is not a readable image (truncated or corrupt?): {e}") from e
    h, w = rgb.shape[:2]
    return rgb.transpose(2, 0, 1), _jpg_wcs(float(row["ra"]), float(row["dec"]), float(row["pixel_scale_arcsec"]), w, h)


def _tiles_csv(folder: Path) -> pd.DataFrame:
    path = folder / TILES_CSV
    if not path.is_file():
        raise ClusterTileError(f"{folder} has JPG / PNG tiles but no {TILES_CSV} (columns file, ra, dec, "
                               "pixel_scale_arcsec) to place them on the sky")
    table = pd.read_csv(path)
    missing = [c for c in ("file", "ra", "dec", "pixel_scale_arcsec") if c not in table.columns]
    if missing:
        raise ClusterTileError(f"{path} has no column {', '.join(missing)} (found: {', '.join(table.columns)})")
    return table.set_index("file")


def healpix_for(tile_arcsec: float) -> HEALPix:
    """The nested HEALPix grid whose pixels are at least as wide as a tile of ``tile_arcsec``."""
    nside = 1
    while HEALPix(nside=nside * 2, order="nested").pixel_resolution.to_value(u.arcsec) >= tile_arcsec and nside < 2**20:
        nside *= 2
    return HEALPix(nside=nside, order="nested", frame=ICRS())


def near_clusters(hp: HEALPix, ra: np.ndarray, dec: np.ndarray, cl_ra: np.ndarray, cl_dec: np.ndarray) -> np.ndarray:
    """Whether each position shares its HEALPix pixel, or one of the 8 around it, with a catalogued cluster."""
    taken = set(hp.lonlat_to_healpix(np.asarray(cl_ra) * u.deg, np.asarray(cl_dec) * u.deg).tolist())
    pix = hp.lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    around = hp.neighbours(pix)  # (8, n), -1 where a pixel has only 7
    return np.array([p in taken or any(q in taken for q in around[:, i] if q >= 0) for i, p in enumerate(pix)], bool)


def negative_field_centres(catalog: pd.DataFrame, n: int, tile_arcsec: float, dec_range: tuple[float, float] = (-10, 70),
                           ra_range: tuple[float, float] = (0, 360), seed: int = 0) -> pd.DataFrame:
    """``n`` centres (ra, dec, healpix) of HEALPix pixels away from every catalogued cluster (see
    :func:`near_clusters`), inside the given footprint, for cutting negative fields."""
    hp = healpix_for(tile_arcsec)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(100):
        ra = rng.uniform(*ra_range, 4 * n)
        sin_dec = rng.uniform(*np.sin(np.radians(dec_range)), 4 * n)
        dec = np.degrees(np.arcsin(sin_dec))
        pix = hp.lonlat_to_healpix(ra * u.deg, dec * u.deg)
        clean = ~near_clusters(hp, ra, dec, catalog["RA"].to_numpy(), catalog["DEC"].to_numpy())
        out.extend(np.unique(pix[clean]).tolist())
        out = list(dict.fromkeys(out))
        if len(out) >= n:
            break
    pix = np.array(out[:n], np.int64)
    lon, lat = hp.healpix_to_lonlat(pix)
    return pd.DataFrame({"ra": lon.to_value(u.deg), "dec": lat.to_value(u.deg), "healpix": pix})


def read_tile_folder(folder: str | Path, catalog: pd.DataFrame, size_px: int) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """(N, C, size_px, size_px) float32 images, the tiles table (``tile, file, ra_center, dec_center,
    pixel_scale_arcsec, wcs, has_cluster, near_cluster``) and the catalogued clusters inside tiles
    (``tile, x_px, y_px`` in resampled pixels, ``z``, ``richness`` from Z_LAMBDA / LAMBDA, ...)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ClusterTileError(f"{folder} is not a folder of tiles")
    files = sorted(p for p in folder.iterdir() if _suffix(p) in FITS_SUFFIXES + IMAGE_SUFFIXES)
    if not files:
        raise ClusterTileError(f"{folder} holds no FITS, JPG or PNG tiles")
    table = _tiles_csv(folder) if any(_suffix(p) in IMAGE_SUFFIXES for p in files) else None
    images, records, clusters = [], [], []
    for t, path in enumerate(files):
        if _suffix(path) in FITS_SUFFIXES:
            data, wcs = _read_fits_tile(path)
        else:
            if path.name not in table.index:
                raise ClusterTileError(f"{path.name} has no row in {folder / TILES_CSV}")
            data, wcs = _read_image_tile(path, table.loc[path.name])
        if images and data.shape[0] != images[0].shape[0]:
            raise ClusterTileError(f"{path} has {data.shape[0]} bands where {files[0].name} has {images[0].shape[0]}; "
                                   "every tile needs the same bands")
        if data.shape[0] not in (1, 3):
            raise ClusterTileError(f"{path} has {data.shape[0]} bands; tiles need 1 or 3 (g, r, z)")
        h, w = data.shape[1:]
        if h != w or h < 32:
            raise ClusterTileError(f"{path} is {w} x {h} pixels; tiles must be square and at least 32 pixels")
        scale = float(np.mean([abs(q.to_value(u.arcsec)) for q in wcs.proj_plane_pixel_scales()]))
        ra0, dec0 = (float(v) for v in wcs.wcs_pix2world([[(w - 1) / 2, (h - 1) / 2]], 0)[0])
        x, y = wcs.wcs_world2pix(catalog["RA"].to_numpy(float), catalog["DEC"].to_numpy(float), 0)
        inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
        f = size_px / w
        for i in np.flatnonzero(inside):
            row = catalog.iloc[i]
            clusters.append({"tile": t, "mem_match_id": int(row["MEM_MATCH_ID"]), "ra": float(row["RA"]),
                             "dec": float(row["DEC"]), "x_px": (x[i] + 0.5) * f - 0.5, "y_px": (y[i] + 0.5) * f - 0.5,
                             "z": float(row["Z_LAMBDA"]), "richness": float(row["LAMBDA"])})
        records.append({"tile": t, "file": path.name, "ra_center": ra0, "dec_center": dec0,
                        "pixel_scale_arcsec": scale / f, "has_cluster": int(inside.any()),
                        "wcs": _resampled_header(wcs, f)})
        images.append(resample_tiles(data[None], size_px)[0])
    tiles = pd.DataFrame(records)
    hp = healpix_for(size_px * tiles["pixel_scale_arcsec"].max())
    near = near_clusters(hp, tiles["ra_center"], tiles["dec_center"], catalog["RA"], catalog["DEC"])
    tiles["near_cluster"] = (near & (tiles["has_cluster"] == 0)).astype(int)
    cols = ["tile", "mem_match_id", "ra", "dec", "x_px", "y_px", "z", "richness"]
    return np.stack(images).astype(np.float32), tiles, pd.DataFrame(clusters, columns=cols)


def _resampled_header(wcs: WCS, f: float) -> str:
    """The tile's WCS for its resampled pixels, as a JSON FITS header."""
    w = wcs.deepcopy()
    w.wcs.crpix = (np.asarray(w.wcs.crpix) - 0.5) * f + 0.5
    if w.wcs.has_cd():
        w.wcs.cd = np.asarray(w.wcs.cd) / f
    else:
        w.wcs.cdelt = np.asarray(w.wcs.cdelt) / f
    return json.dumps(dict(w.to_header()))
