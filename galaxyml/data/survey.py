"""``Survey``: the one data type every precompute stage consumes.

A survey is N galaxies: a catalog (one row per galaxy, string ``galaxy_id``, optional ``ra``/``dec``
in degrees, numeric properties whose units are in ``meta["units"]``) and N x C x H x W float32
images in flux units per band. Saved as ``catalog.parquet`` + ``images.npy`` + ``survey.json``;
loading memory-maps the images so a survey of millions of galaxies never has to fit in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.visualization import make_lupton_rgb

from galaxyml.data.split import Split, survey_split

CATALOG_FILE = "catalog.parquet"
IMAGES_FILE = "images.npy"
META_FILE = "survey.json"

# Display mapping for the Legacy-Survey-like bands: z -> red, r -> green, g -> blue, with per-band
# scales that balance a typical galaxy's colours (after the legacysurvey.org viewer).
RGB_BAND_SCALES: dict[str, float] = {"z": 0.9, "r": 1.3, "g": 2.1}


class SurveyError(ValueError):
    """A survey on disk or in memory is malformed; the message names the file or column."""


@dataclass
class Survey:
    """N galaxies with a catalog and multi-band images.

    Parameters
    ----------
    catalog : DataFrame with a string ``galaxy_id`` column, one row per galaxy.
    images : (N, C, H, W) float32 fluxes, in ``meta["flux_unit"]`` per pixel.
    bands : the C band names, in channel order.
    meta : units per column (``units``), ``pixel_scale_arcsec``, ``is_mock``, ``truth_columns``,
        ``prediction_floors`` (per property, the irreducible scatter [property units]), ``source``,
        ``vote_columns`` (Galaxy Zoo vote fractions, when the survey has them).
    """

    catalog: pd.DataFrame
    images: np.ndarray
    bands: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bands = tuple(self.bands)
        if "galaxy_id" not in self.catalog.columns:
            found = ", ".join(map(str, self.catalog.columns[:8]))
            raise SurveyError(f"catalog has no column 'galaxy_id' (found: {found}); rename the id column")
        if self.images.ndim != 4:
            raise SurveyError(f"images must be (N, C, H, W), got shape {self.images.shape}")
        if len(self.catalog) != len(self.images):
            raise SurveyError(f"catalog has {len(self.catalog)} rows but there are {len(self.images)} images")
        if self.images.shape[1] != len(self.bands):
            raise SurveyError(f"images have {self.images.shape[1]} channels but {len(self.bands)} bands are named")
        if self.images.dtype != np.float32:
            raise SurveyError(f"images must be float32 fluxes, got {self.images.dtype}")
        ids = self.catalog["galaxy_id"]
        if not all(isinstance(v, str) for v in ids.iloc[:1000]):
            raise SurveyError("catalog column 'galaxy_id' must hold strings (64-bit ids lose precision as floats)")
        if ids.duplicated().any():
            dup = ids[ids.duplicated()].iloc[0]
            raise SurveyError(f"catalog column 'galaxy_id' has duplicates (e.g. {dup!r})")

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def is_mock(self) -> bool:
        """True for the mock universe: the app labels such data as mock everywhere."""
        return bool(self.meta.get("is_mock", False))

    def properties(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The physical properties (float64) of the galaxies ``rows`` (all by default), index reset: the
        numeric columns that are not identifiers, angles or codes (:data:`NOT_PROPERTIES`) and that vary
        over those galaxies."""
        cat = self.catalog if rows is None else self.catalog.iloc[rows].reset_index(drop=True)
        cols = [c for c in self.property_columns() if c not in NOT_PROPERTIES and cat[c].nunique() > 1]
        return cat[cols].astype(np.float64)

    def property_columns(self) -> list[str]:
        """Numeric catalog columns (the properties features are compared with)."""
        skip = {"galaxy_id", "ra", "dec"}
        return [c for c in self.catalog.columns if c not in skip and pd.api.types.is_numeric_dtype(self.catalog[c])]

    def prediction_floors(self) -> dict[str, float]:
        """Per property, the scatter no model can predict from the images (mock surveys, see
        :func:`galaxyml.data.mock.survey.prediction_floors`; empty otherwise)."""
        if not self.is_mock:
            return dict(self.meta.get("prediction_floors", {}))
        from galaxyml.data.mock.survey import prediction_floors

        return prediction_floors(self.meta, self.catalog)

    def split(self) -> Split:
        """The survey's train / validation / test split (:mod:`galaxyml.data.split`)."""
        return survey_split(self.catalog)

    def vote_columns(self) -> list[str]:
        """The Galaxy Zoo vote-fraction columns: those the survey's metadata lists (the mock and Hugging
        Face sources record them), else every column named ``<question>_<answer>_fraction``."""
        listed = self.meta.get("vote_columns")
        if listed is not None:
            return [c for c in listed if c in self.catalog]
        return [c for c in self.catalog.columns if is_vote_column(str(c))]

    def particles(self, index: int, n: int = 20_000) -> np.ndarray:
        """(n, 10) star particles of galaxy ``index`` in the GalacticFlow layout (mock surveys).

        Generated on demand and deterministic per galaxy; see :mod:`galaxyml.data.mock.particles`.
        """
        if not self.is_mock:
            raise SurveyError("this survey has no star particles (only the mock universe generates them)")
        if not 0 <= index < len(self):
            raise IndexError(f"galaxy index {index} is outside the survey (0-{len(self) - 1})")
        from galaxyml.data.mock.particles import survey_particles

        return survey_particles(self.meta, self.catalog.iloc[index], index, n)

    def rgb(self, index: slice | np.ndarray | None = None) -> np.ndarray:
        """Display thumbnails of the selected galaxies as (n, H, W, 3) uint8."""
        sel = self.images if index is None else self.images[index]
        return fluxes_to_rgb(np.asarray(sel), self.bands)

    def save(self, path: str | Path) -> None:
        """Write the survey into the folder ``path`` (which the caller makes atomic)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.catalog.to_parquet(path / CATALOG_FILE, index=False)
        np.save(path / IMAGES_FILE, np.ascontiguousarray(self.images), allow_pickle=False)
        (path / META_FILE).write_text(json.dumps({"bands": list(self.bands), "meta": self.meta}, indent=1))

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> "Survey":
        """Read a survey written by :meth:`save`; images are memory-mapped unless ``mmap=False``."""
        path = Path(path)
        for name in (CATALOG_FILE, IMAGES_FILE, META_FILE):
            if not (path / name).is_file():
                raise SurveyError(f"{path / name} is missing: the survey folder is incomplete; rebuild it")
        try:
            info = json.loads((path / META_FILE).read_text())
            images = np.load(path / IMAGES_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
            catalog = pd.read_parquet(path / CATALOG_FILE)
        except (ValueError, OSError) as e:
            raise SurveyError(f"cannot read the survey in {path}: {e}") from e
        return cls(catalog=catalog, images=images, bands=tuple(info["bands"]), meta=info.get("meta", {}))


NOT_PROPERTIES = {"ra", "dec", "artefact_seed", "arm_phase_rad", "bar_pa_offset_deg", "companion_pa_deg", "pa_deg",
                  "artefact_type", "bpt_class", "flux_g", "flux_r", "flux_z",
                  *(f"{s}_{q}" for s in ("bar", "ring", "spiral", "merger") for q in ("snr", "resolved", "visible"))}
"""Numeric catalog columns that are identifiers, angles or codes rather than physical properties, or
that repeat another column (fluxes are the magnitudes again), and the mock's visibility of each
structure (truth about the image, scored as truth alignment, not a property)."""


FRACTION_SUFFIX = "_fraction"


def is_vote_column(name: str) -> bool:
    """True for a column named like a Galaxy Zoo vote fraction, ``<question>_<answer>_fraction``."""
    return name.endswith(FRACTION_SUFFIX) and "_" in name[: -len(FRACTION_SUFFIX)]


def vote_label(column: str) -> str:
    """``has-spiral-arms_yes_fraction`` -> ``has-spiral-arms: yes``."""
    question, _, answer = column.removesuffix(FRACTION_SUFFIX).rpartition("_")
    return f"{question}: {answer}" if question else answer


def fluxes_to_rgb(images: np.ndarray, bands: tuple[str, ...], stretch: float = 0.1, q: float = 8.0) -> np.ndarray:
    """Map (n, C, H, W) fluxes to (n, H, W, 3) uint8 with the Lupton et al. (2004) asinh stretch.

    With three bands named g, r, z the reddest goes to red; any other set uses the last three
    channels in order (reddest last) and a single band is shown as grey. Display images (bands
    R, G, B in [0, 1]) are returned as they are.
    """
    n, c, h, w = images.shape
    if tuple(bands) == ("R", "G", "B"):  # display images already: no stretch
        return (np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    if c == 1:
        chans = [images[:, 0]] * 3
    else:
        order = [bands.index(b) for b in ("z", "r", "g")] if set("grz") <= set(bands) else [c - 1, c - 2, c - 3 if c > 2 else c - 2]
        chans = [images[:, i] * RGB_BAND_SCALES.get(bands[i], 1.0) for i in order]
    # make_lupton_rgb works on 2-D planes: stack the galaxies vertically and split them back.
    planes = [np.asarray(ch, dtype=np.float32).reshape(n * h, w) for ch in chans]
    with np.errstate(invalid="ignore", divide="ignore"):  # blank pixels give 0/0 inside astropy
        rgb = make_lupton_rgb(*planes, minimum=0.0, stretch=stretch, Q=q)
    return rgb.reshape(n, h, w, 3)
