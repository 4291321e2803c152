"""Surveys from Hugging Face datasets on local disk, in the layout of the Galaxy Zoo Euclid dataset
(``mwalmsley/gz_euclid``): one image column plus catalog columns such as an id and Galaxy Zoo vote
fractions (``smooth-or-featured_smooth_fraction``, ...).

Three local forms are read, never downloaded: a folder written by ``Dataset.save_to_disk``
(``datasets.load_from_disk``), parquet files, and an ``imagefolder`` (images + ``metadata.csv``).
Images are display RGB; they are resized to the survey's cutout size and kept as float32 in [0, 1]
with bands ("R", "G", "B").
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from galaxyml.data.images import to_display_rgb
from galaxyml.data.survey import CATALOG_FILE, IMAGES_FILE, META_FILE, Survey, SurveyError, is_vote_column

RGB_BANDS = ("R", "G", "B")


def open_local_dataset(path: str | Path, split: str = "train"):
    """A ``datasets.Dataset`` from a save_to_disk folder, parquet file(s) or an imagefolder."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local files only: never reach a hub
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise SurveyError(f"dataset path {path} does not exist")
    try:
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
        elif path.suffix == ".parquet" or (path.is_dir() and any(path.glob("**/*.parquet"))):
            files = [str(path)] if path.is_file() else sorted(str(p) for p in path.glob("**/*.parquet"))
            ds = datasets.load_dataset("parquet", data_files=files)
        elif path.is_dir():
            ds = datasets.load_dataset("imagefolder", data_dir=str(path))
        else:
            raise SurveyError(f"{path} is neither a saved dataset folder, parquet, nor an image folder")
    except (OSError, ValueError, FileNotFoundError) as e:
        raise SurveyError(f"cannot read the dataset at {path}: {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise SurveyError(f"dataset at {path} has no split '{split}' (splits: {', '.join(ds)})")
        ds = ds[split]
    return ds


def _to_array(image, size: int) -> np.ndarray:
    if not isinstance(image, Image.Image):
        raise SurveyError(f"image column holds {type(image).__name__}, expected images")
    return to_display_rgb(image, size)


def write_hf_survey(path: str | Path, folder: Path, image_size_px: int = 64, image_column: str = "image",
                    id_column: str = "", split: str = "train",
                    progress: Callable[[int, int, str], None] | None = None, chunk: int = 256) -> Survey:
    """Stream a local Hugging Face dataset into the survey layout in ``folder``. Galaxy ids come from
    ``id_column``, which must exist when it is named; unnamed, from ``id_str`` if the dataset has it, else
    from row numbers."""
    ds = open_local_dataset(path, split)
    columns = list(ds.column_names)
    if image_column not in columns:
        raise SurveyError(f"dataset at {path} has no image column '{image_column}' (columns: {', '.join(columns)}); "
                          f"set survey.image_column")
    if id_column and id_column not in columns:
        raise SurveyError(f"dataset at {path} has no id column '{id_column}' (columns: {', '.join(columns)}); "
                          f"set survey.id_column to one of them, or leave it empty to use id_str or row numbers")
    id_column = id_column or "id_str"
    n = len(ds)
    if n == 0:
        raise SurveyError(f"dataset at {path} ({split}) is empty")
    folder.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(folder / IMAGES_FILE, mode="w+", dtype=np.float32,
                                       shape=(n, 3, image_size_px, image_size_px))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        batch = ds[start:stop][image_column]
        images[start:stop] = np.stack([_to_array(im, image_size_px) for im in batch])
        if progress:
            progress(stop, n, f"read {stop:,}/{n:,} images")
    images.flush()
    del images
    catalog = ds.remove_columns([image_column]).to_pandas()
    scalar = [c for c in catalog.columns if catalog[c].map(np.isscalar).all()]
    catalog = catalog[scalar]
    ids = catalog.pop(id_column).astype(str) if id_column in catalog else pd.Series([f"hf-{i:07d}" for i in range(n)])
    catalog.insert(0, "galaxy_id", ids.to_numpy())
    catalog.to_parquet(folder / CATALOG_FILE, index=False)
    votes = [c for c in catalog.columns if is_vote_column(c)]
    meta = {"source": "hf", "is_mock": False, "flux_unit": "display RGB in [0, 1]", "dataset_path": str(path),
            "units": {c: "fraction" for c in votes}, "vote_columns": votes}
    (folder / META_FILE).write_text(json.dumps({"bands": list(RGB_BANDS), "meta": meta}, indent=1))
    return Survey.load(folder)
