"""astroPT-style encoder: patch order, next-patch loss, embeddings, safetensors round trip."""

from __future__ import annotations

import numpy as np
import torch

from galaxyml.models.encoder import AstroPT, AstroPTConfig, Normalisation, load_encoder, patchify, save_encoder, spiral_order


def test_spiral_order_is_a_permutation_starting_at_the_centre():
    order = spiral_order(8)
    assert sorted(order.tolist()) == list(range(64))
    rows, cols = np.divmod(order[:4], 8)
    assert set(rows) <= {3, 4} and set(cols) <= {3, 4}  # the four central patches come first
    rows, cols = np.divmod(order[-28:], 8)
    assert np.all((rows == 0) | (rows == 7) | (cols == 0) | (cols == 7))  # the outer ring comes last


def test_patchify_shapes_and_content():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    p = patchify(x, 8, torch.arange(4))
    assert p.shape == (2, 4, 8 * 8 * 3)
    assert torch.equal(p[0, 1].reshape(8, 8, 3)[..., 0], x[0, 0, :8, 8:])


def test_training_step_reduces_loss_and_embed_shape():
    torch.manual_seed(0)
    cfg = AstroPTConfig(image_size=16, patch_size=4, n_layer=1, n_head=2, n_embd=16)
    model = AstroPT(cfg)
    x = torch.randn(8, 3, 16, 16).cumsum(-1) / 4  # smooth, predictable images
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = model(x).loss.item()
    for _ in range(60):
        loss = model(x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first
    assert model.embed(x).shape == (8, 16)


def test_causal_prediction_ignores_future_patches():
    torch.manual_seed(0)
    model = AstroPT(AstroPTConfig(image_size=16, patch_size=4, n_layer=2, n_head=2, n_embd=16)).eval()
    x = torch.randn(1, 3, 16, 16)
    p = patchify(x, 4, model.order)
    h1 = model.hidden_states(p)
    p2 = p.clone()
    p2[:, -1] += 5.0
    h2 = model.hidden_states(p2)
    assert torch.allclose(h1[:, :-1], h2[:, :-1], atol=1e-5) and not torch.allclose(h1[:, -1], h2[:, -1])


def test_save_load_roundtrip(tmp_path):
    model = AstroPT(AstroPTConfig(image_size=16, patch_size=4, n_layer=1, n_head=2, n_embd=16)).eval()
    flux = np.random.default_rng(0).normal(0, 0.1, (4, 3, 16, 16)).astype(np.float32)
    norm = Normalisation.fit(flux, 0.02)
    save_encoder(model, norm, tmp_path)
    back, back_norm = load_encoder(tmp_path)
    assert back_norm == norm
    assert torch.allclose(back.embed(norm(flux)), model.embed(norm(flux)))


def test_light_weights_pool_over_the_galaxy_not_the_sky():
    from galaxyml.models.encoder import patch_light

    flux = np.random.default_rng(0).normal(0, 0.01, (2, 3, 16, 16)).astype(np.float32)
    flux[0, :, 4:8, 4:8] += 5.0  # all the light in raster patch 5 of a 4x4 grid
    order = spiral_order(4)
    w = patch_light(flux, 4, order)
    assert w.shape == (2, 16) and torch.allclose(w.sum(1), torch.ones(2))
    assert w[0, list(order).index(5)] > 0.95
    model = AstroPT(AstroPTConfig(image_size=16, patch_size=4, n_layer=1, n_head=2, n_embd=8)).eval()
    x = torch.from_numpy(flux)
    assert model.embed(x, w).shape == (2, 8)
    uniform = torch.full((2, 16), 1 / 16)
    assert torch.allclose(model.embed(x, uniform), model.embed(x), atol=1e-6)
