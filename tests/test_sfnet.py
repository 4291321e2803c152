"""SFNet: exactly k active features, contributions that add up to the prediction, and it learns."""

from __future__ import annotations

import pytest
import torch

from galaxyml.models.sfnet import SFNet, SFNetConfig, topk_mask


@pytest.mark.parametrize("k", [1, 2, 4, 8, 16, 32, 0])
def test_at_most_k_features_and_contributions_sum_to_the_prediction(k):
    torch.manual_seed(0)
    model = SFNet(SFNetConfig(widths=(8, 16, 32, 64), k=k, n_targets=2)).eval()
    out = model(torch.randn(5, 3, 32, 32))
    assert out.prediction.shape == (5, 2) and out.features.shape == (5, 64)
    assert ((out.features != 0).sum(1) <= (k or 64)).all()
    total = model.contributions(out.features).sum(1) + model.head.bias
    assert torch.allclose(total, out.prediction, atol=1e-5)


def test_topk_mask_keeps_the_largest():
    z = torch.tensor([[0.125, 0.5, 0.25, 0.75]])
    assert topk_mask(z, 2).tolist() == [[0.0, 0.5, 0.0, 0.75]]
    assert torch.equal(topk_mask(z, 0), z)


def test_invalid_k_is_named():
    with pytest.raises(ValueError, match="k must be one of"):
        SFNetConfig(k=3)


def test_a_k2_network_learns_a_brightness_like_target():
    torch.manual_seed(0)
    x = torch.rand(128, 3, 16, 16)
    y = x.mean(dim=(1, 2, 3)).unsqueeze(1) * 4
    model = SFNet(SFNetConfig(widths=(8, 8, 16, 16), k=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = torch.nn.functional.mse_loss(model(x).prediction, y).item()
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(model(x).prediction, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
