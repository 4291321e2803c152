"""Stage ``embeddings``: encode every galaxy with the trained encoder, streamed into an npy memmap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from galaxyml.data.survey import Survey
from galaxyml.models.encoder import load_encoder
from precompute.stage import StageContext, register

EMBEDDINGS_FILE = "embeddings.npy"


@dataclass(frozen=True)
class EmbeddingsConfig:
    """How the survey is encoded."""

    batch_size: int = 256
    """Galaxies encoded per batch."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("embeddings.batch_size must be >= 1")


@register("embeddings", EmbeddingsConfig, inputs=("survey", "encoder"))
def embed_survey(ctx: StageContext) -> dict:
    """Mean-pooled final hidden states of the encoder for every galaxy."""
    survey = Survey.load(ctx.inputs["survey"])
    model, norm = load_encoder(ctx.inputs["encoder"])
    n = len(survey)
    out = np.lib.format.open_memmap(ctx.out / EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(n, model.cfg.n_embd))
    with torch.inference_mode():
        for start in range(0, n, ctx.cfg.batch_size):
            stop = min(start + ctx.cfg.batch_size, n)
            out[start:stop] = model.embed(norm(survey.images[start:stop])).numpy()
            ctx.progress(stop, n, f"{stop:,}/{n:,} galaxies encoded")
    out.flush()
    finite = bool(np.isfinite(out).all())
    if not finite:
        raise FloatingPointError("the encoder produced non-finite embeddings; retrain with a lower encoder.lr")
    return {"n": n, "dim": int(model.cfg.n_embd)}
