"""Stage ``autoencoder``: the GalacticForge image autoencoder (16-d latent), scored on test galaxies
beside PCA with as many components (the classical compression an astronomer would try first)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace

import numpy as np
from sklearn.decomposition import PCA

from galaxyml.data.survey import Survey
from galaxyml.models.autoencoder import (
    AutoencoderConfig, encode, fit_autoencoder, reconstruction_error, save_autoencoder)
from galaxyml.models.sfnet_training import training_normalisation
from precompute.stage import StageContext, register

LATENT_FILE = "latent.npy"
HISTORY_FILE = "history.json"


@dataclass(frozen=True)
class AutoencoderStageConfig(AutoencoderConfig):
    """Autoencoder shape (see :class:`AutoencoderConfig`) and its training schedule."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    """Peak AdamW learning rate (one-cycle schedule)."""
    max_train: int = 20000
    """Training galaxies used at most (a seeded sample of the train split)."""
    max_score: int = 2000
    """Test galaxies the reconstruction error is measured on at most."""
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.max_train < 10 or self.max_score < 1:
            raise ValueError("autoencoder: epochs >= 1, batch_size >= 2, lr > 0, max_train >= 10, max_score >= 1")

    def model_config(self) -> AutoencoderConfig:
        return AutoencoderConfig(**{f.name: getattr(self, f.name) for f in fields(AutoencoderConfig)})


def pca_error(model_resample, images: np.ndarray, train: np.ndarray, test: np.ndarray, norm, k: int,
              seed: int) -> np.ndarray:
    """Per-galaxy MSE of a k-component PCA reconstruction fitted on ``train``, in the same input space."""
    def flat(rows: np.ndarray) -> np.ndarray:
        return model_resample(norm(images[np.sort(rows)])).reshape(len(rows), -1).numpy()

    pca = PCA(k, svd_solver="randomized", random_state=seed).fit(flat(train))
    x = flat(test)
    return ((pca.inverse_transform(pca.transform(x)) - x) ** 2).mean(1)


@register("autoencoder", AutoencoderStageConfig, inputs=("survey",))
def train_autoencoder(ctx: StageContext) -> dict:
    """Train the image autoencoder on training galaxies; latents of every galaxy; test error beside PCA."""
    cfg: AutoencoderStageConfig = ctx.cfg
    survey = Survey.load(ctx.inputs["survey"])
    images = survey.images
    split = survey.split()
    rng = np.random.default_rng(cfg.seed)
    train = np.sort(rng.permutation(split.train)[: cfg.max_train])
    val = split.val if len(split.val) else train[: max(1, len(train) // 10)]
    test = np.sort(rng.permutation(split.test)[: cfg.max_score])
    norm = training_normalisation(images, survey.bands, train, cfg.seed)
    model_cfg = replace(cfg.model_config(), in_channels=images.shape[1])
    fit = fit_autoencoder(images, train, val, norm, model_cfg, epochs=cfg.epochs, batch=cfg.batch_size, lr=cfg.lr,
                          seed=cfg.seed, progress=lambda s, t, m: ctx.progress(s, t, m))
    latent = encode(fit.model, images, norm)
    np.save(ctx.out / LATENT_FILE, latent.astype(np.float32), allow_pickle=False)
    test_mse = reconstruction_error(fit.model, images, test, norm) if len(test) else np.zeros(0)
    pca_mse = (pca_error(fit.model.resample, images, train[:5000], test, norm, cfg.latent_dim, cfg.seed)
               if len(test) else np.zeros(0))
    save_autoencoder(fit.model, norm, ctx.out, {"bands": list(survey.bands)})
    (ctx.out / HISTORY_FILE).write_text(json.dumps(fit.history, indent=1))
    return {"latent_dim": cfg.latent_dim, "train_galaxies": int(len(train)), "seconds": round(fit.seconds, 1),
            "test_mse": float(test_mse.mean()) if len(test) else None,
            "pca_test_mse": float(pca_mse.mean()) if len(test) else None,
            "test_galaxies": int(len(test)),
            "scored_on": f"test galaxies; PCA with {cfg.latent_dim} components fitted on training galaxies beside it"}
