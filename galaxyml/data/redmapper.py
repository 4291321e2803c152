"""Read and write cluster catalogues in the layout of the public redMaPPer SDSS DR8 release
(Rykoff et al. 2014): a cluster catalogue (one row per cluster) and a members file (one row per
member galaxy), FITS binary tables joined on MEM_MATCH_ID.

The same reader serves the real files (``redmapper_dr8_public_v6.3_catalog.fits`` and
``..._members.fits``) and the mock universe's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.table import Table

CATALOG_REQUIRED = ("MEM_MATCH_ID", "RA", "DEC", "Z_LAMBDA", "LAMBDA")
MEMBERS_REQUIRED = ("MEM_MATCH_ID", "RA", "DEC", "P")


class RedMaPPerError(ValueError):
    """A cluster catalogue cannot be read; the message names the file and the problem."""


def _read(path: Path, required: tuple[str, ...], kind: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise RedMaPPerError(f"{path} does not exist")
    try:
        with warnings.catch_warnings(), fits.open(path, memmap=False) as hdul:
            warnings.simplefilter("error", VerifyWarning)  # a damaged header is an error here
            if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
                raise RedMaPPerError(f"{path} has no binary table in HDU 1; is it a redMaPPer {kind} file?")
            table = Table(hdul[1].data)
            table.convert_bytestring_to_unicode()
    except RedMaPPerError:
        raise
    except (OSError, ValueError, TypeError, VerifyWarning) as e:
        raise RedMaPPerError(f"{path} is not a readable FITS file (truncated or corrupt?): {e}") from e
    missing = [c for c in required if c not in table.colnames]
    if missing:
        raise RedMaPPerError(f"{path} has no column {', '.join(missing)} (found: {', '.join(table.colnames[:12])}); "
                             f"a redMaPPer {kind} file needs {', '.join(required)}")
    scalar = [c for c in table.colnames if table[c].ndim == 1]  # vector columns stay in the FITS file
    df = table[scalar].to_pandas()
    return df


def read_clusters(path: str | Path) -> pd.DataFrame:
    """The cluster catalogue as a DataFrame (scalar columns)."""
    return _read(Path(path), CATALOG_REQUIRED, "cluster catalogue")


def read_members(path: str | Path) -> pd.DataFrame:
    """The members file as a DataFrame (scalar columns)."""
    return _read(Path(path), MEMBERS_REQUIRED, "members")


def write_fits_table(df: pd.DataFrame, path, units: dict[str, str] | None = None) -> None:
    """Write a DataFrame as a FITS binary table (HDU 1), with units where given, to a path or a binary file."""
    table = Table.from_pandas(df)
    for col, unit in (units or {}).items():
        if col in table.colnames:
            table[col].unit = unit
    table.write(path, format="fits", overwrite=True)


def detections_catalog(det: pd.DataFrame) -> pd.DataFrame:
    """Detections (method, tile, ra, dec, z, lambda, score) in the redMaPPer catalogue layout: one row per
    detection, MEM_MATCH_ID numbered from 1 by descending score (LAMBDA is NaN where a method does not
    estimate it)."""
    d = det.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    return pd.DataFrame({"MEM_MATCH_ID": np.arange(1, len(d) + 1, dtype=np.int32), "RA": d["ra"].to_numpy(float),
                         "DEC": d["dec"].to_numpy(float), "Z_LAMBDA": d["z"].to_numpy(np.float32),
                         "LAMBDA": d["lambda"].to_numpy(np.float32), "SCORE": d["score"].to_numpy(np.float32),
                         "TILE": d["tile"].to_numpy(np.int32), "METHOD": d["method"].astype(str).to_numpy()})


def mock_to_redmapper(tiles: pd.DataFrame, galaxies: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cluster catalogue and members file of the mock fields, with redMaPPer column names.

    The mock has g, r, z: MODEL_MAG_I is interpolated between r and z and MODEL_MAG_U is not
    simulated (NaN). Z_LAMBDA and LAMBDA carry redMaPPer-like measurement errors.
    """
    rng = np.random.default_rng([seed, 7])
    cl = tiles[tiles["has_cluster"] == 1].reset_index(drop=True)
    ids = np.arange(1, len(cl) + 1)
    z_err = 0.01 * (1 + cl["z"].to_numpy())
    lam_err = np.sqrt(cl["richness"].to_numpy())
    members = galaxies[galaxies["is_member"] == 1]
    bcg = members[members["is_bcg"] == 1].set_index("tile")
    catalog = pd.DataFrame({
        "MEM_MATCH_ID": ids.astype(np.int32),
        "RA": bcg.loc[cl["tile"], "ra"].to_numpy(), "DEC": bcg.loc[cl["tile"], "dec"].to_numpy(),
        "Z_LAMBDA": (cl["z"].to_numpy() + rng.normal(0, z_err)).astype(np.float32),
        "Z_LAMBDA_ERR": z_err.astype(np.float32),
        "LAMBDA": np.maximum(cl["richness"].to_numpy() + rng.normal(0, lam_err), 1.0).astype(np.float32),
        "LAMBDA_ERR": lam_err.astype(np.float32),
        "Z_SPEC": bcg.loc[cl["tile"], "z"].to_numpy().astype(np.float32),
        "TILE": cl["tile"].to_numpy().astype(np.int32),
    })
    id_of_tile = dict(zip(cl["tile"], ids))
    mag_i = members["mag_r"] - 0.45 * members["r_z"]
    mem = pd.DataFrame({
        "MEM_MATCH_ID": members["tile"].map(id_of_tile).to_numpy().astype(np.int32),
        "RA": members["ra"].to_numpy(), "DEC": members["dec"].to_numpy(),
        "P": members["p_mem"].to_numpy().astype(np.float32),
        "IMAG": mag_i.to_numpy().astype(np.float32),
        "MODEL_MAG_U": np.full(len(members), np.nan, np.float32),
        "MODEL_MAG_G": members["mag_g"].to_numpy().astype(np.float32),
        "MODEL_MAG_R": members["mag_r"].to_numpy().astype(np.float32),
        "MODEL_MAG_I": mag_i.to_numpy().astype(np.float32),
        "MODEL_MAG_Z": members["mag_z"].to_numpy().astype(np.float32),
        "Z_SPEC": members["z"].to_numpy().astype(np.float32),
    })
    return catalog, mem
