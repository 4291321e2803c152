"""A new image's place among an atlas's galaxies: its embedding by a forward pass of the network that
made the survey's embeddings (the Zoobot-style vote network's penultimate layer, or the astroPT-style
encoder pooled over patches), and its TopK SAE code. Nothing is trained."""

from __future__ import annotations

import numpy as np
import torch

from galaxyml.search import dense_codes


class QueryImageError(ValueError):
    """The atlas cannot encode a new image (its embeddings were made elsewhere, or a stage is missing)."""


def embed_image(atlas, flux: np.ndarray) -> np.ndarray:
    """(d,) float32 embedding of one (C, H, W) image in the survey's units and size."""
    source = atlas.metrics("embeddings").get("source", "encoder")
    flux = np.asarray(flux, np.float32)[None]
    expected = tuple(atlas.survey().images.shape[1:])
    if flux.shape[1:] != expected:
        raise QueryImageError(f"the image has shape {flux.shape[1:]}, the survey's images {expected}")
    with torch.inference_mode():
        if source == "zoobot":
            from galaxyml.models.sfnet_training import load_sfnet

            model, norm, _ = load_sfnet(atlas.stage_dir("zoobot"))
            return model(norm(flux)).features[0].numpy().astype(np.float32)
        if source == "encoder":
            from galaxyml.models.encoder import load_encoder, patch_light

            model, norm = load_encoder(atlas.stage_dir("encoder"))
            pooling = atlas.metrics("embeddings").get("pooling", "light")
            weights = patch_light(flux, model.cfg.patch_size, model.order.numpy()) if pooling == "light" else None
            return model.embed(norm(flux), weights)[0].numpy().astype(np.float32)
    raise QueryImageError("this atlas's embeddings were read from a file made elsewhere, so there is no network "
                          "here to encode a new image; search by galaxy, position or examples instead")


def code_of(atlas, embedding: np.ndarray) -> np.ndarray:
    """(n_latents,) float32 dense TopK SAE code of one embedding (the ``codes`` search space)."""
    from galaxyml.models.sae import load_sae

    sae, info = load_sae(atlas.stage_dir("sae"))
    scale = np.asarray(info.get("input_scale", 1.0), np.float32)
    with torch.inference_mode():
        values, indices = sae.encode(torch.from_numpy(np.asarray(embedding, np.float32)[None] / scale))
    return dense_codes(indices.numpy(), values.numpy(), info["n_latents"])[0]
