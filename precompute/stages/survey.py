"""Stage ``survey``: the galaxies every later stage reads (today: the mock universe)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from galaxyml.data.mock import MockConfig, write_mock_survey
from precompute.stage import StageContext, register


@dataclass(frozen=True)
class SurveyConfig(MockConfig):
    """Where the galaxies come from, and the mock universe's parameters."""

    source: Literal["mock"] = "mock"
    """Data source; ``mock`` generates the mock universe from the fields above."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source != "mock":
            raise ValueError(f"survey.source = {self.source!r}: the only source available is 'mock'")


@register("survey", SurveyConfig)
def build_survey(ctx: StageContext) -> dict:
    """Generate the mock survey (catalog + g, r, z images) into the stage folder."""
    fields = {f.name for f in dataclasses.fields(MockConfig)}
    mock_cfg = MockConfig(**{k: v for k, v in dataclasses.asdict(ctx.cfg).items() if k in fields})
    survey = write_mock_survey(mock_cfg, ctx.out, progress=ctx.progress)
    n, c, h, w = survey.images.shape
    return {"n_galaxies": n, "bands": "".join(survey.bands), "image_size_px": h,
            "quenched_fraction": float(survey.catalog["quenched"].mean()), "is_mock": True}
