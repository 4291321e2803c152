"""The mock universe: a survey with known ground truth (see MOCK_UNIVERSE.md)."""

from galaxyml.data.mock.catalog import draw_catalog
from galaxyml.data.mock.config import MockConfig
from galaxyml.data.mock.render import render_images
from galaxyml.data.mock.survey import make_mock_survey, mock_meta, write_mock_survey

__all__ = ["MockConfig", "draw_catalog", "make_mock_survey", "mock_meta", "render_images", "write_mock_survey"]
