"""Inputs of the cluster finders: stretched tiles, member sets and binned field catalogues."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from galaxyml.data.cluster_tiles import resample_tiles
from galaxyml.models.clusters import MEMBER_FEATURES

COLOUR_EDGES = np.array([0.2, 0.6, 0.9, 1.1, 1.3, 1.5, 1.9])
"""g - r bins of the catalogue network's input (the red sequence runs from 0.9 at z = 0.1 to 1.5 at z = 0.6)."""


def stretch_tiles(images: np.ndarray, size: int) -> np.ndarray:
    """(N, C', size, size) float32: each tile resampled by area averaging, its median sky subtracted and
    asinh-stretched in units of 3 sky sigma (1.4826 MAD), per band, so mock and real tiles look alike;
    with three bands, two colour maps follow (:func:`colour_maps`): C' = 5."""
    n_out = 5 if images.shape[1] == 3 else images.shape[1]
    out = np.empty((len(images), n_out, size, size), np.float32)
    for i in range(0, len(images), 64):
        t = torch.as_tensor(resample_tiles(images[i:i + 64], size))
        flat = t.flatten(2)
        med = flat.median(dim=2, keepdim=True).values
        mad = (flat - med).abs().median(dim=2, keepdim=True).values * 1.4826
        z = ((flat - med) / (3 * mad.clamp(min=1e-8))).reshape(t.shape)
        out[i:i + 64, : t.shape[1]] = torch.asinh(z).numpy()
        if n_out == 5:
            out[i:i + 64, 3:] = colour_maps(z.numpy())
    return out


def colour_maps(snr3: np.ndarray, min_snr: float = 5.0) -> np.ndarray:
    """(N, 2, H, W) g - r and r - z [mag] of the pixels detected at ``min_snr`` in r (0 elsewhere), offset
    by (1.0, 0.6) and clipped to +-1.5: the red sequence, where a cluster shows, is a colour (from (N, 3,
    H, W) fluxes in units of 3 sky sigma)."""
    g, r, z = (np.maximum(snr3[:, b], 1e-3) for b in range(3))
    det = snr3[:, 1] * 3 >= min_snr
    gr = np.where(det, np.clip(-2.5 * np.log10(g / r) - 1.0, -1.5, 1.5), 0.0)
    rz = np.where(det, np.clip(-2.5 * np.log10(r / z) - 0.6, -1.5, 1.5), 0.0)
    return np.stack([gr, rz], 1).astype(np.float32)


def dihedral(images: np.ndarray, xy: list[np.ndarray], rng: np.random.Generator,
             roll: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """A random flip / quarter turn per tile, applied to the images and to their points (x, y in continuous
    pixel coordinates, pixel edges at integers): the sky has no preferred orientation. With ``roll``, also
    a random cyclic shift (the field is uniform, so where a cluster sits carries no information)."""
    size = images.shape[-1]
    out, pts = images.copy(), []
    for i in range(len(images)):
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        p = np.asarray(xy[i], float).reshape(-1, 2).copy()
        img = images[i]
        if roll:
            dx, dy = (int(v) for v in rng.integers(0, size, 2))
            img = np.roll(img, (dy, dx), axis=(1, 2))
            p = (p + [dx, dy]) % size
        if flip:
            img = img[:, :, ::-1]
            p[:, 0] = size - p[:, 0]
        for _ in range(k):  # np.rot90 over (rows, cols): (x, y) -> (y, size - x)
            img = np.rot90(img, 1, axes=(1, 2))
            p = np.stack([p[:, 1], size - p[:, 0]], axis=1)
        out[i] = img
        pts.append(p)
    return out, pts


def member_sets(members: pd.DataFrame, cluster_ids: np.ndarray, max_members: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(B, max_members, len(MEMBER_FEATURES)) member features and a (B, max_members) mask, one row per
    cluster id: offsets [arcmin] from the P-weighted centre, r magnitude - 20, g - r, r - z and P. A
    cluster with more members keeps the ``max_members`` most probable."""
    x = np.zeros((len(cluster_ids), max_members, len(MEMBER_FEATURES)), np.float32)
    mask = np.zeros((len(cluster_ids), max_members), np.float32)
    groups = dict(tuple(members.groupby("MEM_MATCH_ID")))
    for i, cid in enumerate(cluster_ids):
        m = groups.get(cid)
        if m is None or len(m) == 0:
            continue
        m = m.sort_values("P", ascending=False, kind="stable").iloc[:max_members]
        p = m["P"].to_numpy(float)
        ra, dec = m["RA"].to_numpy(float), m["DEC"].to_numpy(float)
        ra0, dec0 = np.average(ra, weights=p + 1e-9), np.average(dec, weights=p + 1e-9)
        g, r, zb = (m[f"MODEL_MAG_{b}"].to_numpy(float) for b in "GRZ")
        feats = np.stack([(ra - ra0) * np.cos(np.radians(dec0)) * 60, (dec - dec0) * 60, r - 20, g - r, r - zb, p], 1)
        n = len(m)
        x[i, :n] = np.nan_to_num(feats)
        mask[i, :n] = 1
    return x, mask


def field_features(galaxies: pd.DataFrame, tiles: np.ndarray, size_px: int, grid: int = 8, mag_max: float = 22.5) -> np.ndarray:
    """(len(tiles), grid * grid * colours) log(1 + counts) of a tile's galaxies brighter than ``mag_max`` on
    a ``grid`` x ``grid`` sky grid per g - r bin: the catalogue network's input."""
    n_col = len(COLOUR_EDGES) - 1
    out = np.zeros((len(tiles), grid, grid, n_col), np.float32)
    pos = {t: i for i, t in enumerate(tiles)}
    g = galaxies[(galaxies["mag_r"] < mag_max) & galaxies["tile"].isin(pos)]
    ti = g["tile"].map(pos).to_numpy()
    gx = np.clip(((g["x_px"].to_numpy() + 0.5) / size_px * grid).astype(int), 0, grid - 1)
    gy = np.clip(((g["y_px"].to_numpy() + 0.5) / size_px * grid).astype(int), 0, grid - 1)
    gc = np.digitize(g["g_r"].to_numpy(), COLOUR_EDGES) - 1
    ok = (gc >= 0) & (gc < n_col) & (gx >= 0) & (gy >= 0)
    np.add.at(out, (ti[ok], gy[ok], gx[ok], gc[ok]), 1.0)
    return np.log1p(out).reshape(len(tiles), -1)
