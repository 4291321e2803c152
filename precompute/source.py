"""Which galaxies a run is built from, and keeping them: a run made from the user's own files is rebuilt
from those files unless the user names another source, and never silently switched to another survey.

The CLI records the source options of a build in the manifest (``source``: the ``--set`` overrides and
``--skip`` stages that ``--source`` / ``--images`` / ``--catalog`` / ``--target`` implied, and the user's
own ``survey.*`` and ``*.target`` overrides); a later ``--only``, ``--force`` or plain rerun without source
options reuses the finished survey stage's config with the recorded targets and skipped stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from galaxyml.atlas import MANIFEST
from precompute.config import ConfigError, parse_override

IDENTITY = ("source", "dataset_path", "catalog_path")
"""Survey config keys that say which galaxies these are (a new test CSV re-splits the same galaxies)."""


def recorded(run_dir: Path) -> dict[str, Any]:
    """The manifest of an existing run (an empty dict if there is none or it cannot be read)."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def is_source_override(text: str) -> bool:
    """True for a ``--set`` that chooses the galaxies or a network's target."""
    try:
        stage, key, _ = parse_override(text)
    except ConfigError:
        return False
    return stage == "survey" or key == "target"


def user_survey(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The survey config of the run's finished survey stage (or, without one, of its last build) when it
    was built from the user's files (not the mock)."""
    survey = manifest.get("stages", {}).get("survey", {}).get("config") or manifest.get("config", {}).get("survey", {})
    return survey if survey.get("source", "mock") != "mock" else None


def kept_source(manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The ``--set`` overrides and ``--skip`` stages that rebuild a user-data run from the same files: the
    survey config of its finished survey stage (what is on disk, even if a later build with other options
    failed), with the targets and skipped stages its last build recorded."""
    survey = user_survey(manifest) or {}
    sets = [f"survey.{k}={json.dumps(v)}" for k, v in survey.items() if v is not None]
    rec = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    sets += [o for o in rec.get("sets", []) if not o.strip().startswith("survey.")]
    return sets, list(rec.get("skip", ["cluster_fields"] if survey else []))


def check_replacement(manifest: dict[str, Any], new_survey: Any, run: str, replace: bool) -> None:
    """Refuse to rebuild a run made from the user's files from other galaxies unless ``replace``."""
    old = user_survey(manifest)
    if old is None or replace:
        return
    new = {k: getattr(new_survey, k, None) for k in IDENTITY}
    if all(old.get(k, "") == new[k] for k in IDENTITY):
        return
    was = f"{old.get('source')} {old.get('dataset_path', '')}" + (
        f" + {old['catalog_path']}" if old.get("catalog_path") else "")
    now = "the mock universe" if new["source"] == "mock" else f"{new['source']} {new['dataset_path']}"
    raise ConfigError(f"run '{run}' was built from your files ({was}); this build would replace them with "
                      f"{now}. Use another --run name, or add --replace-survey to replace them.")
