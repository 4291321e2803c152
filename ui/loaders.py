"""Cached loaders: thin Streamlit caches over the readers of :mod:`galaxyml.atlas`.

Resources (opened atlas, memmaps, FAISS index) are shared with ``st.cache_resource``. Each is
keyed by the hash and finish time of the stage it comes from (or the manifest's modification time for the atlas
itself), so a rebuilt stage shows up without restarting the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml import effects
from galaxyml.atlas import MANIFEST, Atlas
from galaxyml.features import FeatureSet
from galaxyml.index import SimilarityIndex


@st.cache_resource(max_entries=8, show_spinner=False)
def _open_atlas(path: str, stamp: int) -> Atlas:
    return Atlas.open(path)


def open_atlas(run_dir: Path) -> Atlas:
    """The atlas in ``run_dir``, reopened whenever its manifest changes, its files checked against their
    sha256 on every call (a file is hashed again only when it changed, so this costs a few stat calls)."""
    m = run_dir / MANIFEST
    atlas = _open_atlas(str(run_dir), m.stat().st_mtime_ns if m.exists() else 0)
    atlas.verify()
    return atlas


@st.cache_resource(max_entries=32, show_spinner=False)
def _resource(path: str, reader: str, key: str, *args: Any) -> Any:
    return getattr(Atlas.open(path), reader)(*args)


def _stamp(atlas: Atlas, *stages: str) -> str:
    """Cache key of what ``stages`` hold: their hashes and finish times (a forced rebuild keeps the hash)."""
    entries = [atlas.manifest["stages"].get(s, {}) for s in stages]
    return "/".join(f"{e.get('hash', '')}@{e.get('finished', '')}" for e in entries)


def _cached(atlas: Atlas, reader: str, stages: tuple[str, ...], *args: Any) -> Any:
    key = _stamp(atlas, *stages)
    return _resource(str(atlas.path), reader, key, *args)


def thumbnails(atlas: Atlas) -> np.ndarray:
    """(N, H, W, 3) uint8 memmap of display thumbnails."""
    return _cached(atlas, "thumbnails", ("thumbnails",))


def catalog(atlas: Atlas) -> pd.DataFrame:
    """The survey catalog (shared: treat as read-only)."""
    return _cached(atlas, "catalog", ("survey",))


def prediction_floors(atlas: Atlas) -> dict[str, float]:
    """Per property, the scatter no model can predict from the images (mock surveys)."""
    return _cached(atlas, "prediction_floors", ("survey",))


def embeddings(atlas: Atlas) -> np.ndarray:
    """(N, D) float32 memmap of the galaxy embeddings."""
    return _cached(atlas, "embeddings", ("embeddings",))


def feature_set(atlas: Atlas, model: str = "sae") -> FeatureSet:
    return _cached(atlas, "feature_set", ("features", model), model)


def similarity_index(atlas: Atlas, space: str = "embeddings") -> SimilarityIndex:
    """The FAISS index over the embeddings or the sparse codes (shared)."""
    return _cached(atlas, "similarity_index", ("index",), space)


def search_vectors(atlas: Atlas, space: str = "embeddings") -> np.ndarray:
    """The vectors of a search space (shared: treat as read-only)."""
    return _cached(atlas, "search_vectors", ("embeddings", "sae"), space)


def predictions(atlas: Atlas, model: str) -> pd.DataFrame:
    """Per-galaxy predictions of an SFNet stage (shared: treat as read-only)."""
    return _cached(atlas, "predictions", (model,), model)


def sfnet_head(atlas: Atlas, model: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Head weights (T, F), bias (T,) and target names of an SFNet stage."""
    return _cached(atlas, "sfnet_head", (model,), model)


def sfnet_sweep(atlas: Atlas, model: str) -> list[dict]:
    """Test scores of every k trained by an SFNet stage."""
    return _cached(atlas, "load_json", (model,), model, "sweep.json")


def decoder_directions(atlas: Atlas, model: str) -> np.ndarray:
    """(M, D) unit decoder direction of each feature of a model fitted on the embeddings."""
    return _cached(atlas, "decoder_directions", (model,), model)


def feature_directions(atlas: Atlas, model: str) -> np.ndarray:
    """(M, D) embedding-space direction of each feature of a model fitted on the embeddings."""
    return _cached(atlas, "feature_directions", (model,), model)


@st.cache_resource(max_entries=8, show_spinner=False)
def _vote_predictor(path: str, key: str):
    return effects.vote_predictor(Atlas.open(path))


def vote_effects(atlas: Atlas, model: str, feature: int) -> pd.DataFrame:
    """Change of each predicted vote fraction caused by a feature on its top galaxies
    (see :func:`galaxyml.effects.vote_effects`)."""
    key = _stamp(atlas, "zoobot")
    return effects.vote_effects(atlas, model, feature, fs=feature_set(atlas, model),
                                directions=feature_directions(atlas, model),
                                predictor=_vote_predictor(str(atlas.path), key), held_out=split(atlas).held_out)


def split(atlas: Atlas):
    """The survey's train / validation / test split."""
    return _cached(atlas, "split", ("survey",))


def probes(atlas: Atlas) -> pd.DataFrame:
    """Linear-probe scores per property."""
    return _cached(atlas, "probes", ("probes",))


def encoder_probes(atlas: Atlas) -> pd.DataFrame | None:
    """Linear-probe scores of the encoder's embeddings, when they are not the atlas's."""
    return _cached(atlas, "encoder_probes", ("probes",))


@st.cache_resource(max_entries=8, show_spinner=False)
def _galaxy_rows(path: str, key: str) -> dict[str, int]:
    ids = Atlas.open(path).catalog()["galaxy_id"].to_numpy()
    return {g: i for i, g in enumerate(ids)}


def galaxy_rows(atlas: Atlas) -> dict[str, int]:
    """galaxy_id -> survey row (shared: treat as read-only)."""
    return _galaxy_rows(str(atlas.path), _stamp(atlas, "survey"))


@st.cache_data(max_entries=16, show_spinner=False)
def _numeric_columns(path: str, key: str, more_than: int) -> list[str]:
    cat = Atlas.open(path).catalog()
    return [c for c in cat.columns
            if c != "galaxy_id" and pd.api.types.is_numeric_dtype(cat[c]) and cat[c].nunique() > more_than]


def continuous_columns(atlas: Atlas) -> list[str]:
    """Numeric catalog columns with more than five distinct values."""
    return _numeric_columns(str(atlas.path), _stamp(atlas, "survey"), 5)


def varying_columns(atlas: Atlas) -> list[str]:
    """Numeric catalog columns that are not constant."""
    return _numeric_columns(str(atlas.path), _stamp(atlas, "survey"), 1)


def map_coords(atlas: Atlas, space: str = "embeddings") -> np.ndarray:
    """(N, 2) map coordinates of the ``umap`` stage (shared: treat as read-only)."""
    return _cached(atlas, "map_coords", ("umap",), space)


@st.cache_data(max_entries=8, show_spinner=False)
def _sky_noise(path: str, key: str) -> np.ndarray:
    from galaxyml.data.upload import sky_noise

    atlas = Atlas.open(path)
    rows = atlas.split().train[:256]
    return sky_noise(atlas.survey().images[rows])


def sky_noise(atlas: Atlas) -> np.ndarray:
    """Per-band sky noise of the survey (cutout borders of up to 256 training galaxies)."""
    return _sky_noise(str(atlas.path), _stamp(atlas, "survey"))


def forge_flow(atlas: Atlas, kind: str):
    """A conditional flow of the ``forge`` stage (shared, inference only)."""
    return _cached(atlas, "forge_flow", ("forge",), kind)


def forge_galaxies(atlas: Atlas) -> dict:
    return _cached(atlas, "forge_galaxies", ("forge",))


def autoencoder(atlas: Atlas):
    """(model, normalisation, info) of the ``autoencoder`` stage."""
    return _cached(atlas, "autoencoder", ("autoencoder",))


def ae_latent(atlas: Atlas) -> np.ndarray:
    """(N, 16) autoencoder latents of every galaxy."""
    return _cached(atlas, "load_npy", ("autoencoder",), "autoencoder", "latent.npy")


def cached_table(atlas: Atlas, stage: str, name: str) -> pd.DataFrame:
    """A parquet table of a stage (shared: treat as read-only)."""
    return _cached(atlas, "load_table", (stage,), stage, name)


def cluster_fields(atlas: Atlas) -> np.ndarray:
    """(N, C, H, W) memmap of the cluster fields' tiles."""
    return _cached(atlas, "load_npy", ("cluster_fields",), "cluster_fields", "fields.npy")


def cluster_members(atlas: Atlas) -> pd.DataFrame | None:
    return _cached(atlas, "cluster_members", ("cluster_fields",))


def cluster_galaxies(atlas: Atlas) -> pd.DataFrame:
    """Every galaxy of the mock cluster fields."""
    return cached_table(atlas, "cluster_fields", "galaxies.parquet")
