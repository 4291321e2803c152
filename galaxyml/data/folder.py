"""Surveys from a folder of cutouts and a CSV catalog, the layout of the SFNets paper (Wu 2024):
images named ``<objID>.jpg`` (or .jpeg / .png) and a CSV with an ``objID`` column plus targets such
as ``oh_p50`` (MPA-JHU median 12+log(O/H)) or the emission-line fluxes of the BPT diagram.

SDSS objIDs are 64-bit integers, beyond the 2^53 that a float holds exactly, so ids are read as
text and never pass through a float; a CSV whose ids were already written as floats is refused.
Images of any size are resized to the survey's cutout size and kept as display RGB in [0, 1].
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from galaxyml.data.hf import RGB_BANDS
from galaxyml.data.images import to_display_rgb
from galaxyml.data.split import SPLIT_COLUMN, assign_split
from galaxyml.data.survey import CATALOG_FILE, IMAGES_FILE, META_FILE, Survey, SurveyError

log = logging.getLogger("galaxyml.data.folder")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
BPT_LINES = {"nii": "nii_6584_flux", "ha": "h_alpha_flux", "oiii": "oiii_5007_flux", "hb": "h_beta_flux"}
"""MPA-JHU DR8 (galSpecLine) flux columns; their errors are ``<name>_err``."""
_INTEGER = re.compile(r"^[+-]?\d+$")
_INTEGER_DOT_ZERO = re.compile(r"^([+-]?\d+)\.0*$")


class FolderSourceError(SurveyError):
    """The image folder or the CSV cannot be used; the message names the file, column and rows."""


def _clean_ids(raw: pd.Series, column: str, path: Path) -> pd.Series:
    """The ids as stripped integer text; "123.0" becomes "123", floats such as "1.2e+18" are refused."""
    ids = raw.fillna("").astype(str).str.strip()  # an empty cell is shown as '' in the error
    ids = ids.str.replace(_INTEGER_DOT_ZERO, r"\1", regex=True)  # "123.0" keeps every digit: accept it
    bad = ~ids.str.match(_INTEGER)
    if bad.any():
        example = ids[bad].iloc[0]
        lossy = ids[bad].str.contains(r"[eE]|\.", regex=True).any()
        why = (" The ids lost precision when written as floats: re-export the CSV with integer ids"
               if lossy else " Ids must be integers")
        raise FolderSourceError(f"{path}: column '{column}' has {int(bad.sum())} id(s) that are not integers "
                                f"(e.g. {example!r}).{why} (64-bit objIDs do not fit in a float).")
    return ids


def read_catalog_csv(path: str | Path, id_column: str = "objID") -> pd.DataFrame:
    """Read the CSV with the ids as exact strings (a column ``galaxy_id`` is added first)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FolderSourceError(f"catalog {path} does not exist")
    try:
        cat = pd.read_csv(path, dtype={id_column: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise FolderSourceError(f"cannot read the catalog {path}: {e}") from e
    if id_column not in cat.columns:
        raise FolderSourceError(f"{path} has no id column '{id_column}' (columns: {', '.join(map(str, cat.columns))}); "
                                f"set survey.id_column")
    if cat.empty:
        raise FolderSourceError(f"{path} has no rows")
    ids = _clean_ids(cat[id_column], id_column, path)
    if ids.duplicated().any():
        raise FolderSourceError(f"{path}: column '{id_column}' repeats ids (e.g. {ids[ids.duplicated()].iloc[0]})")
    if id_column != "galaxy_id" and "galaxy_id" in cat.columns:
        raise FolderSourceError(f"{path} has a column 'galaxy_id' besides the id column '{id_column}'; rename it "
                                f"or set id_column = 'galaxy_id'")
    cat[id_column] = ids
    cat = cat.drop(columns="galaxy_id", errors="ignore")
    cat.insert(0, "galaxy_id", ids.to_numpy())
    return cat


def bpt_ratios(catalog: pd.DataFrame, min_snr: float = 3.0) -> pd.DataFrame:
    """Add N2 = log10([NII]6584/Halpha), O3 = log10([OIII]5007/Hbeta) and ``bpt_snr_ok`` from the line
    fluxes, when the catalog has the four MPA-JHU line columns and their ``_err``.

    A ratio is kept only where all four lines have flux / error >= ``min_snr`` (the S/N > 3 cut of
    Kauffmann et al. 2003 and Brinchmann et al. 2004); elsewhere it is NaN. Catalogs without the
    line columns are returned unchanged (existing ``n2`` / ``o3`` columns are then used as they are).
    """
    cols = [*BPT_LINES.values(), *(f"{c}_err" for c in BPT_LINES.values())]
    if not set(cols) <= set(catalog.columns):
        return catalog
    out = catalog.copy()
    flux = {k: pd.to_numeric(out[c], errors="coerce").to_numpy(np.float64) for k, c in BPT_LINES.items()}
    err = {k: pd.to_numeric(out[f"{c}_err"], errors="coerce").to_numpy(np.float64) for k, c in BPT_LINES.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.logical_and.reduce([(err[k] > 0) & (flux[k] / err[k] >= min_snr) for k in BPT_LINES])
        n2 = np.log10(flux["nii"] / flux["ha"])
        o3 = np.log10(flux["oiii"] / flux["hb"])
    out["n2"] = np.where(ok, n2, np.nan)
    out["o3"] = np.where(ok, o3, np.nan)
    out["bpt_snr_ok"] = ok
    return out


def _image_files(images_dir: Path) -> dict[str, Path]:
    """id -> file for every image in the folder (one directory listing)."""
    files = {}
    for p in images_dir.iterdir():
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            files.setdefault(_INTEGER_DOT_ZERO.sub(r"\1", p.stem), p)
    return files


def _read_image(path: Path, size: int) -> np.ndarray:
    """(3, size, size) float32 display RGB in [0, 1] from an image file of any size and mode."""
    with Image.open(path) as im:
        return to_display_rgb(im, size)


# What PIL raises for a file it cannot decode: unknown format (UnidentifiedImageError is an OSError),
# truncated data (OSError), broken PNG chunks (SyntaxError) and oversized images.
_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _read_catalogs(catalog_csv: str | Path, test_catalog_csv: str | Path | None, id_column: str,
                   val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """The catalog rows with a string ``split``: "test" for the test CSV's rows (or the CSV's own
    ``split`` column), the rest drawn by :func:`galaxyml.data.split.assign_split`."""
    cat = read_catalog_csv(catalog_csv, id_column)
    if test_catalog_csv:
        test = read_catalog_csv(test_catalog_csv, id_column)
        both = set(cat["galaxy_id"]) & set(test["galaxy_id"])
        if both:
            raise FolderSourceError(f"{len(both)} objID(s) are in both {catalog_csv} and {test_catalog_csv} "
                                    f"(e.g. {sorted(both)[0]}); a test galaxy must not be trained on")
        cat = pd.concat([cat.assign(split="train"), test.assign(split="test")], ignore_index=True)
    try:
        cat[SPLIT_COLUMN] = assign_split(cat, val_fraction, test_fraction, seed)
    except ValueError as e:
        raise FolderSourceError(str(e)) from e
    return cat


def _read_images(paths: list[Path], out: np.ndarray, size: int, progress: Callable[[int, int, str], None] | None,
                 chunk: int) -> tuple[np.ndarray, list[str]]:
    """Fill ``out[i]`` from ``paths[i]`` chunk by chunk; returns the readable mask and the failures."""
    n = len(paths)
    readable = np.ones(n, bool)
    failed: list[str] = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = np.zeros((stop - start, 3, size, size), np.float32)
        for j, path in enumerate(paths[start:stop]):
            try:
                block[j] = _read_image(path, size)
            except _UNREADABLE as e:  # counted and reported, never silently kept as a blank image
                readable[start + j] = False
                failed.append(f"{path.name} ({e.__class__.__name__}: {e})")
        out[start:stop] = block
        if progress:
            progress(stop, n, f"read {stop:,}/{n:,} images")
    return readable, failed


def write_folder_survey(images_dir: str | Path, catalog_csv: str | Path, folder: Path, image_size_px: int = 64,
                        test_catalog_csv: str | Path | None = None, id_column: str = "objID",
                        test_fraction: float = 0.2, seed: int = 0, min_snr: float = 3.0, val_fraction: float = 0.1,
                        progress: Callable[[int, int, str], None] | None = None, chunk: int = 256) -> Survey:
    """Read the cutouts named in the CSV(s) into the survey layout in ``folder``.

    Rows get ``split`` = "train" / "val" / "test": test from the test CSV when given, else a seeded
    ``test_fraction``; ``val_fraction`` of the rest is drawn for validation (:mod:`galaxyml.data.split`).
    Each image is resized to ``image_size_px`` x
    ``image_size_px`` pixels (bilinear) and stored as display RGB in [0, 1]. Rows whose image is
    missing or unreadable are dropped and counted in ``meta["skipped"]``; ``n2`` / ``o3`` [dex]
    come from the line fluxes with the ``min_snr`` cut (:func:`bpt_ratios`).
    """
    images_dir = Path(images_dir).expanduser()
    if not images_dir.is_dir():
        raise FolderSourceError(f"image folder {images_dir} does not exist")
    cat = _read_catalogs(catalog_csv, test_catalog_csv, id_column, val_fraction, test_fraction, seed)
    files = _image_files(images_dir)
    have = cat["galaxy_id"].isin(files).to_numpy()
    if not have.any():
        found = ", ".join(sorted(p.name for p in files.values())[:3]) or "no .jpg/.jpeg/.png files"
        raise FolderSourceError(f"none of the {len(cat):,} objIDs has an image in {images_dir} (expected e.g. "
                                f"{cat['galaxy_id'].iloc[0]}.jpg; found: {found})")
    cat = cat[have].reset_index(drop=True)
    paths = [files[g] for g in cat["galaxy_id"]]
    folder.mkdir(parents=True, exist_ok=True)
    shape = (len(paths), 3, image_size_px, image_size_px)
    draft = folder / f".draft-{IMAGES_FILE}"
    images = np.lib.format.open_memmap(draft, mode="w+", dtype=np.float32, shape=shape)
    readable, failed = _read_images(paths, images, image_size_px, progress, chunk)
    if readable.all():
        images.flush()
        del images
        draft.rename(folder / IMAGES_FILE)
    else:  # compact: only the readable images, in the order of the kept catalog rows
        keep = np.flatnonzero(readable)
        if len(keep):
            final = np.lib.format.open_memmap(folder / IMAGES_FILE, mode="w+", dtype=np.float32,
                                              shape=(len(keep), *shape[1:]))
            for s in range(0, len(keep), chunk):
                final[s : s + chunk] = images[keep[s : s + chunk]]
            final.flush()
            del final
        del images
        draft.unlink()
        if not len(keep):
            raise FolderSourceError(f"none of the {len(paths):,} matched images in {images_dir} could be read "
                                    f"(e.g. {failed[0]})")
        cat = cat[readable].reset_index(drop=True)
    cat = bpt_ratios(cat, min_snr)
    cat.to_parquet(folder / CATALOG_FILE, index=False)
    skipped = {"missing_image": int((~have).sum()), "unreadable_image": len(failed), "examples": failed[:5]}
    if skipped["missing_image"] or skipped["unreadable_image"]:
        log.warning("skipped %d catalog rows without an image in %s and %d unreadable images (e.g. %s)",
                    skipped["missing_image"], images_dir, skipped["unreadable_image"], ", ".join(failed[:3]) or "-")
    units = {c: u for c, u in (("oh_p50", "dex"), ("n2", "dex"), ("o3", "dex")) if c in cat}
    meta = {"source": "folder", "is_mock": False, "flux_unit": "display RGB in [0, 1]", "images_dir": str(images_dir),
            "catalogs": [str(catalog_csv), *([str(test_catalog_csv)] if test_catalog_csv else [])],
            "units": units, "skipped": skipped, "bpt_min_snr": min_snr,
            "split": "given" if test_catalog_csv else "seeded"}
    (folder / META_FILE).write_text(json.dumps({"bands": list(RGB_BANDS), "meta": meta}, indent=1))
    return Survey.load(folder)
