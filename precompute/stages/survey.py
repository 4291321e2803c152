"""Stage ``survey``: the galaxies every later stage reads: the mock universe, a local Hugging Face
dataset, or a folder of cutouts named by objID with a CSV catalog (the SFNets layout)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from galaxyml.data.hf import write_hf_survey
from galaxyml.data.mock import MockConfig, write_mock_survey
from galaxyml.data.split import SPLIT_COLUMN, assign_split, survey_split
from galaxyml.data.survey import CATALOG_FILE, Survey
from precompute.stage import StageContext, register


@dataclass(frozen=True)
class SurveyConfig(MockConfig):
    """Where the galaxies come from, and the mock universe's parameters."""

    source: Literal["mock", "hf", "folder"] = "mock"
    """``mock``: the mock universe from the fields above; ``hf``: a local Hugging Face dataset in the
    Galaxy Zoo Euclid layout at ``dataset_path``; ``folder``: cutouts ``<objID>.jpg`` in the folder
    ``dataset_path`` with the CSV ``catalog_path``. Images are resized to ``image_size_px``."""
    dataset_path: str = ""
    """With source = hf: a save_to_disk folder, parquet file(s) or image folder; with folder: the
    folder of cutouts."""
    image_column: str = "image"
    """With source = hf: the image column."""
    id_column: str = ""
    """The galaxy id column; empty: id_str (hf; row numbers if absent) or objID (folder)."""
    split: str = "train"
    """With source = hf: the split to read."""
    catalog_path: str = ""
    """With source = folder: the CSV with the id column and the targets (training galaxies, or all)."""
    test_catalog_path: str = ""
    """With source = folder: an optional CSV of test galaxies; without it a seeded test_fraction is held out."""
    test_fraction: float = 0.2
    """Share of the galaxies in the test split (never trained on, scored), unless the catalog names its
    test galaxies (a test CSV, or a ``split`` column)."""
    val_fraction: float = 0.1
    """Share of the galaxies in the validation split (early stopping, hyper-parameters, and the choice of
    a best feature, scored then on the test split)."""
    bpt_min_snr: float = 3.0
    """With source = folder: S/N every BPT line needs for N2 and O3 to be computed from the fluxes."""

    def input_files(self) -> list[str]:
        """The user's files this survey is read from (a change to them rebuilds the survey)."""
        if self.source == "folder":
            return [self.dataset_path, self.catalog_path, self.test_catalog_path]
        return [self.dataset_path] if self.source == "hf" else []

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source not in ("mock", "hf", "folder"):
            raise ValueError(f"survey.source must be 'mock', 'hf' or 'folder', got {self.source!r}")
        if self.source in ("hf", "folder") and not self.dataset_path:
            raise ValueError(f"survey.source = '{self.source}' needs survey.dataset_path")
        if self.source == "folder" and not self.catalog_path:
            raise ValueError("survey.source = 'folder' needs survey.catalog_path (the CSV with objID and targets)")
        if not (0.0 < self.test_fraction < 0.9 and 0.0 <= self.val_fraction < 0.5
                and self.test_fraction + self.val_fraction < 0.95):
            raise ValueError(f"survey.test_fraction ({self.test_fraction}) must be in (0, 0.9) and "
                             f"survey.val_fraction ({self.val_fraction}) in [0, 0.5), with their sum below 0.95")


@register("survey", SurveyConfig, version=5)
def build_survey(ctx: StageContext) -> dict:
    """Generate the mock survey, or read a local dataset, into the stage folder; draw its split."""
    metrics = _write_source(ctx)
    survey = Survey.load(ctx.out)
    cat = survey.catalog
    cat[SPLIT_COLUMN] = assign_split(cat, ctx.cfg.val_fraction, ctx.cfg.test_fraction, ctx.cfg.seed)
    cat.to_parquet(ctx.out / CATALOG_FILE, index=False)
    split = survey_split(cat)
    given = ctx.cfg.source == "folder" and bool(ctx.cfg.test_catalog_path)
    metrics["split"] = {**split.counts(), "seed": ctx.cfg.seed, "test_galaxies": "given" if given else "seeded"}
    return metrics


def _write_source(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    if cfg.source == "folder":
        from galaxyml.data.folder import write_folder_survey

        survey = write_folder_survey(cfg.dataset_path, cfg.catalog_path, ctx.out, cfg.image_size_px,
                                     test_catalog_csv=cfg.test_catalog_path or None, id_column=cfg.id_column or "objID",
                                     test_fraction=cfg.test_fraction, seed=cfg.seed, min_snr=cfg.bpt_min_snr,
                                     val_fraction=cfg.val_fraction, progress=ctx.progress)
        skipped = survey.meta.get("skipped", {})
        return {"n_galaxies": len(survey), "bands": "".join(survey.bands), "image_size_px": cfg.image_size_px,
                "is_mock": False, "missing_image": skipped.get("missing_image", 0),
                "unreadable_image": skipped.get("unreadable_image", 0)}
    if cfg.source == "hf":
        survey = write_hf_survey(cfg.dataset_path, ctx.out, cfg.image_size_px, cfg.image_column,
                                 cfg.id_column, cfg.split, progress=ctx.progress)
        return {"n_galaxies": len(survey), "bands": "".join(survey.bands), "image_size_px": cfg.image_size_px,
                "is_mock": False}
    fields = {f.name for f in dataclasses.fields(MockConfig)}
    mock_cfg = MockConfig(**{k: v for k, v in dataclasses.asdict(ctx.cfg).items() if k in fields})
    survey = write_mock_survey(mock_cfg, ctx.out, progress=ctx.progress)
    n, c, h, w = survey.images.shape
    return {"n_galaxies": n, "bands": "".join(survey.bands), "image_size_px": h,
            "quenched_fraction": float(survey.catalog["quenched"].mean()), "is_mock": True}
