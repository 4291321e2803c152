"""Cached loaders: thin Streamlit caches over the readers of :mod:`galaxyml.atlas`.

Resources (opened atlas, memmaps, FAISS index) are shared with ``st.cache_resource``; each is
keyed by the manifest's modification time so a finished stage shows up without a restart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml.atlas import MANIFEST, Atlas
from galaxyml.features import FeatureSet


def manifest_stamp(run_dir: Path) -> float:
    m = run_dir / MANIFEST
    return m.stat().st_mtime_ns if m.exists() else 0.0


@st.cache_resource(max_entries=8, show_spinner=False)
def _open_atlas(path: str, stamp: float) -> Atlas:
    return Atlas.open(path)


def open_atlas(run_dir: Path) -> Atlas:
    """The atlas in ``run_dir``, reopened whenever its manifest changes."""
    return _open_atlas(str(run_dir), manifest_stamp(run_dir))


def _stage_key(atlas: Atlas, stage: str) -> str:
    return atlas.manifest["stages"].get(stage, {}).get("hash", "")


@st.cache_resource(max_entries=8, show_spinner=False)
def _thumbnails(path: str, key: str) -> np.ndarray:
    return Atlas.open(path).thumbnails()


def thumbnails(atlas: Atlas) -> np.ndarray:
    """(N, H, W, 3) uint8 memmap of display thumbnails."""
    return _thumbnails(str(atlas.path), _stage_key(atlas, "thumbnails"))


@st.cache_resource(max_entries=8, show_spinner=False)
def _catalog(path: str, key: str) -> pd.DataFrame:
    return Atlas.open(path).catalog()


def catalog(atlas: Atlas) -> pd.DataFrame:
    """The survey catalog (shared, treat as read-only)."""
    return _catalog(str(atlas.path), _stage_key(atlas, "survey"))


@st.cache_resource(max_entries=8, show_spinner=False)
def _feature_set(path: str, model: str, key: str) -> FeatureSet:
    return Atlas.open(path).feature_set(model)


def feature_set(atlas: Atlas, model: str = "sae") -> FeatureSet:
    return _feature_set(str(atlas.path), model, _stage_key(atlas, "features") + _stage_key(atlas, model))


@st.cache_resource(max_entries=4, show_spinner=False)
def _index(path: str, key: str):
    return Atlas.open(path).similarity_index()


def similarity_index(atlas: Atlas):
    """The FAISS index over the embeddings (shared)."""
    return _index(str(atlas.path), _stage_key(atlas, "index"))


@st.cache_resource(max_entries=4, show_spinner=False)
def _embeddings(path: str, key: str) -> np.ndarray:
    return Atlas.open(path).embeddings()


def embeddings(atlas: Atlas) -> np.ndarray:
    """(N, D) float32 memmap of the encoder embeddings."""
    return _embeddings(str(atlas.path), _stage_key(atlas, "embeddings"))
