"""Presets: TOML files of overrides on each stage's config dataclass.

A preset holds only what differs from the defaults, as tables named after stages::

    description = "A 1,000-galaxy atlas for tests"
    [survey]
    n_galaxies = 1000

Unknown stages or keys are errors that list the valid ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from precompute.stage import Stage

CONFIG_DIR = Path(__file__).parent / "configs"
TOP_LEVEL_KEYS = ("description",)


class ConfigError(ValueError):
    """A preset or an override is invalid; the message names the file, stage and key."""


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def preset_path(preset: str) -> Path:
    """Path of a preset given by name (``demo``) or as a path to a TOML file."""
    p = Path(preset)
    if p.suffix == ".toml" and p.is_file():
        return p
    path = CONFIG_DIR / f"{preset}.toml"
    if not path.is_file():
        raise ConfigError(f"no preset named '{preset}' (available: {', '.join(preset_names())}; or give a path to a .toml file)")
    return path


def read_preset(preset: str) -> dict[str, Any]:
    path = preset_path(preset)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``stage.key=value`` (value in TOML syntax; bare words are strings)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"override '{text}' must look like stage.key=value (e.g. survey.n_galaxies=2000)")
    target, raw = text.split("=", 1)
    stage, key = target.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return stage, key, value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _coerce(stage: str, f: dataclasses.Field, value: Any) -> Any:
    """Convert a TOML value to the type of the field's default, or raise naming the field."""
    default = _field_default(f)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"[{stage}] {f.name} = {value!r}: expected {type(default).__name__}")
    return value


def build_config(stage: Stage, overrides: dict[str, Any]) -> Any:
    """Instantiate ``stage.config_cls`` with ``overrides``; unknown keys and bad values raise."""
    fields = {f.name: f for f in dataclasses.fields(stage.config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"[{stage.name}] has no key {', '.join(map(repr, unknown))} (valid keys: {', '.join(fields)})")
    kwargs = {k: _coerce(stage.name, fields[k], v) for k, v in overrides.items()}
    try:
        return stage.config_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{stage.name}] {e}") from e


def resolve_configs(stages: dict[str, Stage], preset: dict[str, Any], overrides: list[str] = ()) -> dict[str, Any]:
    """Config object of every stage: defaults, then the preset's tables, then ``overrides``."""
    tables: dict[str, dict[str, Any]] = {}
    for key, value in preset.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if key not in stages or not isinstance(value, dict):
            raise ConfigError(f"preset has an unknown table [{key}] (valid: {', '.join(stages)}; top-level keys: {', '.join(TOP_LEVEL_KEYS)})")
        tables[key] = dict(value)
    for text in overrides:
        stage, key, value = parse_override(text)
        if stage not in stages:
            raise ConfigError(f"override '{text}' names an unknown stage '{stage}' (valid: {', '.join(stages)})")
        tables.setdefault(stage, {})[key] = value
    # The SAEs and PCA are compared at the same L0: a k set for the TopK SAE carries over to the
    # Matryoshka SAE's k and PCA's component count unless those are set too.
    for stage, key in FOLLOW_SAE_K:
        if "k" in tables.get("sae", {}) and stage in stages and key not in tables.get(stage, {}):
            tables.setdefault(stage, {})[key] = tables["sae"]["k"]
    return {name: build_config(stage, tables.get(name, {})) for name, stage in stages.items()}


FOLLOW_SAE_K = (("matryoshka", "k"), ("pca", "n_components"))
"""Settings that take ``sae.k`` when it is set and they are not (equal L0 across the feature models)."""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for hashing."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
