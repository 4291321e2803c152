"""Stage ``embeddings``: encode every galaxy with the trained encoder, streamed into an npy memmap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from galaxyml.atlas import sha256_file
from galaxyml.data.external_embeddings import load_aligned
from galaxyml.data.survey import Survey
from galaxyml.models.encoder import load_encoder, patch_light
from precompute.stage import StageContext, register

EMBEDDINGS_FILE = "embeddings.npy"


@dataclass(frozen=True)
class EmbeddingsConfig:
    """How the survey is encoded: by the trained encoder, or from a file of embeddings made elsewhere."""

    source: Literal["encoder", "file"] = "encoder"
    """``encoder``: the astroPT-style encoder of this atlas; ``file``: precomputed embeddings at ``path``."""
    path: str = ""
    """With source = file: a .parquet (galaxy_id + vector) or .npy (+ .ids.txt) file. A rerun notices
    when the file changes (size or modification time) and recomputes the stage."""
    id_column: str = "galaxy_id"
    """With source = file: the id column of a parquet file."""
    pooling: Literal["light", "mean"] = "light"
    """Pool the encoder's final states over patches weighted by their light (``light``, see
    ``galaxyml.models.encoder.patch_light``) or with a plain mean (``mean``, as astroPT)."""
    batch_size: int = 256
    """Galaxies encoded per batch."""

    def input_files(self) -> list[str]:
        """The embeddings file read with source = file (a change to it recomputes the stage)."""
        if self.source != "file":
            return []
        return [self.path, str(Path(self.path).with_suffix(".ids.txt"))] if self.path.endswith(".npy") else [self.path]

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("embeddings.batch_size must be >= 1")
        if self.source not in ("encoder", "file"):
            raise ValueError(f"embeddings.source must be 'encoder' or 'file', got {self.source!r}")
        if self.pooling not in ("light", "mean"):
            raise ValueError(f"embeddings.pooling must be 'light' or 'mean', got {self.pooling!r}")
        if self.source == "file" and not self.path:
            raise ValueError("embeddings.source = 'file' needs embeddings.path")


@register("embeddings", EmbeddingsConfig, inputs=("survey", "encoder"), version=2)
def embed_survey(ctx: StageContext) -> dict:
    """Final hidden states, pooled over patches (by their light by default), of the encoder for every galaxy (or embeddings from a file)."""
    survey = Survey.load(ctx.inputs["survey"])
    if ctx.cfg.source == "file":
        x = load_aligned(Path(ctx.cfg.path).expanduser(), survey.catalog["galaxy_id"], ctx.cfg.id_column)
        np.save(ctx.out / EMBEDDINGS_FILE, x, allow_pickle=False)
        return {"n": len(x), "dim": int(x.shape[1]), "source": "file", "file_sha256": sha256_file(Path(ctx.cfg.path))}
    model, norm = load_encoder(ctx.inputs["encoder"])
    n = len(survey)
    out = np.lib.format.open_memmap(ctx.out / EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(n, model.cfg.n_embd))
    with torch.inference_mode():
        for start in range(0, n, ctx.cfg.batch_size):
            stop = min(start + ctx.cfg.batch_size, n)
            flux = np.asarray(survey.images[start:stop])
            weights = None
            if ctx.cfg.pooling == "light":
                weights = patch_light(flux, model.cfg.patch_size, model.order.numpy())
            out[start:stop] = model.embed(norm(flux), weights).numpy()
            ctx.progress(stop, n, f"{stop:,}/{n:,} galaxies encoded")
    out.flush()
    finite = bool(np.isfinite(out).all())
    if not finite:
        raise FloatingPointError("the encoder produced non-finite embeddings; retrain with a lower encoder.lr")
    return {"n": n, "dim": int(model.cfg.n_embd), "source": "encoder", "pooling": ctx.cfg.pooling}
