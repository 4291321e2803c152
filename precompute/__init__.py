"""The precompute pipeline: stages that turn a survey into an atlas (``python -m precompute``).

Importing this package is cheap (no torch): the app imports :mod:`precompute.jobs` to start,
follow and cancel builds, which run in their own process.
"""
