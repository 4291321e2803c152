"""Stage ``survey``: the galaxies every later stage reads (today: the mock universe)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from galaxyml.data.hf import write_hf_survey
from galaxyml.data.mock import MockConfig, write_mock_survey
from precompute.stage import StageContext, register


@dataclass(frozen=True)
class SurveyConfig(MockConfig):
    """Where the galaxies come from, and the mock universe's parameters."""

    source: Literal["mock", "hf"] = "mock"
    """``mock``: the mock universe from the fields above; ``hf``: a local Hugging Face dataset in the
    Galaxy Zoo Euclid layout at ``dataset_path`` (images resized to ``image_size_px``)."""
    dataset_path: str = ""
    """With source = hf: a save_to_disk folder, parquet file(s) or image folder."""
    image_column: str = "image"
    """With source = hf: the image column."""
    id_column: str = "id_str"
    """With source = hf: the galaxy id column (row numbers are used if it is absent)."""
    split: str = "train"
    """With source = hf: the split to read."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source not in ("mock", "hf"):
            raise ValueError(f"survey.source must be 'mock' or 'hf', got {self.source!r}")
        if self.source == "hf" and not self.dataset_path:
            raise ValueError("survey.source = 'hf' needs survey.dataset_path")


@register("survey", SurveyConfig, version=2)
def build_survey(ctx: StageContext) -> dict:
    """Generate the mock survey, or read a local dataset, into the stage folder."""
    cfg = ctx.cfg
    if cfg.source == "hf":
        survey = write_hf_survey(cfg.dataset_path, ctx.out, cfg.image_size_px, cfg.image_column, cfg.id_column,
                                 cfg.split, progress=ctx.progress)
        return {"n_galaxies": len(survey), "bands": "".join(survey.bands), "image_size_px": cfg.image_size_px,
                "is_mock": False}
    fields = {f.name for f in dataclasses.fields(MockConfig)}
    mock_cfg = MockConfig(**{k: v for k, v in dataclasses.asdict(ctx.cfg).items() if k in fields})
    survey = write_mock_survey(mock_cfg, ctx.out, progress=ctx.progress)
    n, c, h, w = survey.images.shape
    return {"n_galaxies": n, "bands": "".join(survey.bands), "image_size_px": h,
            "quenched_fraction": float(survey.catalog["quenched"].mean()), "is_mock": True}
