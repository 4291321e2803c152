"""Data sources: the ``Survey`` type, the mock universe and real-survey readers."""

from galaxyml.data.survey import Survey, SurveyError, fluxes_to_rgb

__all__ = ["Survey", "SurveyError", "fluxes_to_rgb"]
