"""GalacticForge: star particles in, flows fitted on them, and their scores (``python -m galaxyml.forge``)."""
