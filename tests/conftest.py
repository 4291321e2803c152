"""Shared fixtures: one quick atlas per test session, built by the real pipeline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from precompute.config import read_preset, resolve_configs
from precompute.runner import run_pipeline
from precompute.stage import all_stages

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def quick_home(tmp_path_factory) -> Path:
    """A home folder holding run 'quick', built once by the quick preset (treat as read-only)."""
    home = tmp_path_factory.mktemp("home")
    stages = all_stages()
    run_pipeline(home, "quick", stages, resolve_configs(stages, read_preset("quick")), preset="quick")
    return home


@pytest.fixture
def quick_copy(quick_home, tmp_path) -> Path:
    """A private copy of the quick atlas home that a test may damage."""
    home = tmp_path / "home"
    shutil.copytree(quick_home, home)
    return home


@pytest.fixture
def sync_api():
    """Playwright's sync API with the Debian chromium; skipped without it (failed where
    ``GALAXYML_REQUIRE_BROWSER`` is set, as in CI, which installs it)."""
    from galaxyml.export.screenshot import find_chromium

    if find_chromium() is None:
        if os.environ.get("GALAXYML_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return pytest.importorskip("playwright.sync_api")
