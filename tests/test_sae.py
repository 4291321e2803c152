"""TopK SAE: exact sparsity, sparse decode, unit-norm decoder, AuxK revival of dead latents."""

from __future__ import annotations

import copy

import pytest
import torch

from galaxyml.models.sae import MatryoshkaSAE, TopKSAE, dead_mask, fvu, train_step, update_since_fired

cuda = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_topk_keeps_exactly_k_nonzeros_and_decodes_like_dense():
    torch.manual_seed(0)
    sae = TopKSAE(d_in=16, n_latents=128, k=5)
    x = torch.randn(64, 16)
    acts, idx = sae.encode(x)
    assert acts.shape == idx.shape == (64, 5)
    dense = torch.zeros(64, 128).scatter(1, idx, acts)
    assert ((dense != 0).sum(1) <= 5).all() and ((dense > 0).sum(1) == (acts > 0).sum(1)).all()
    # The k kept are the k largest pre-activations.
    pre = sae.pre_acts(x)
    assert torch.allclose(acts.sort(1).values, pre.topk(5).values.sort(1).values)
    assert torch.allclose(sae.decode(acts, idx), dense @ sae.W_dec + sae.b_pre, atol=1e-5)


def test_decoder_rows_stay_unit_norm_after_a_step():
    torch.manual_seed(0)
    sae = TopKSAE(8, 64, 4)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    out = sae(torch.randn(32, 8))
    out.fvu.backward()
    sae.remove_gradient_parallel_to_decoder_directions()
    opt.step()
    sae.set_decoder_norm_to_unit_norm()
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)


def test_dead_latent_bookkeeping():
    since = torch.tensor([0, 5, 100, 7])
    update_since_fired(since, torch.tensor([[1.0, 0.0], [2.0, 0.5]]), torch.tensor([[1, 2], [1, 3]]))
    assert since.tolist() == [2, 0, 102, 0]  # latent 2 was selected with activation 0: not fired
    assert dead_mask(since, 100).tolist() == [False, False, True, False]


def test_fvu_definition():
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    assert fvu(x, x) == 0
    assert torch.isclose(fvu(x, x.mean(0).expand_as(x)), torch.tensor(1.0))


def _train(auxk_alpha: float, steps: int = 300, device: str = "cpu") -> float:
    """Train on a toy problem where half the latents start dead; return the dead fraction."""
    torch.manual_seed(0)
    d, m, k = 16, 64, 4
    atoms = torch.nn.functional.normalize(torch.randn(48, d), dim=1)
    sae = TopKSAE(d, m, k)
    with torch.no_grad():  # half of the latents start dead: far too weak to ever reach the top k
        sae.encoder.weight[32:] *= 0.02
    sae.to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=3e-3)
    since = torch.zeros(m, dtype=torch.long, device=device)
    for _ in range(steps):
        codes = torch.zeros(256, 48).scatter(1, torch.randint(0, 48, (256, 3)), torch.rand(256, 3) + 0.5)
        x = codes @ atoms
        train_step(sae, opt, x.to(device), since, 512, auxk_alpha)
    with torch.no_grad():
        codes = torch.zeros(4096, 48).scatter(1, torch.randint(0, 48, (4096, 3)), torch.rand(4096, 3) + 0.5)
        acts, idx = sae.encode((codes @ atoms).to(device))
    alive = torch.zeros(m, dtype=torch.bool, device=device)
    alive[idx[acts > 0]] = True
    return 1.0 - alive.float().mean().item()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_auxk_revives_dead_latents(device):
    without, with_auxk = _train(0.0, device=device), _train(1 / 32, device=device)  # 1/32: the default AuxK weight
    assert without >= 0.45  # the weakened half stays dead without AuxK
    assert with_auxk < without - 0.3


@pytest.mark.parametrize("min_d", [0, 10**6])  # embedding_bag path, dense-GEMM path
@pytest.mark.parametrize("model", ["topk", "matryoshka"])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_step_on_the_gpu_matches_the_cpu(monkeypatch, min_d, model):
    import galaxyml.models.sae as sae_module

    monkeypatch.setattr(sae_module, "EMBEDDING_BAG_MIN_D", min_d)
    torch.manual_seed(1)
    cpu = TopKSAE(12, 96, 6) if model == "topk" else MatryoshkaSAE(12, (16, 32, 48), 6)
    gpu = copy.deepcopy(cpu).cuda()
    x = torch.randn(40, 12)
    dead = torch.zeros(96, dtype=torch.bool)
    dead[::3] = True
    outs = []
    for sae, xx, dd in ((cpu, x, dead), (gpu, x.cuda(), dead.cuda())):
        out = sae(xx, dead=dd)
        (out.recon_loss + 0.5 * out.auxk_loss).backward()
        outs.append(out)
    c, g = outs
    assert torch.equal(c.top_indices.sort(1).values, g.top_indices.sort(1).values.cpu())
    torch.testing.assert_close(g.x_hat.cpu(), c.x_hat, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g.auxk_loss.cpu(), c.auxk_loss, atol=1e-5, rtol=1e-4)
    for (name, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("min_d", [0, 10**6])  # embedding_bag path, dense-GEMM path
def test_sparse_encoder_gradients_match_dense_autograd(monkeypatch, min_d):
    import galaxyml.models.sae as sae_module

    monkeypatch.setattr(sae_module, "EMBEDDING_BAG_MIN_D", min_d)
    torch.manual_seed(1)
    sae = TopKSAE(12, 96, 6)
    x = torch.randn(40, 12)
    dead = torch.zeros(96, dtype=torch.bool)
    dead[::3] = True
    out = sae(x, dead=dead)
    (out.fvu + 0.5 * out.auxk_loss).backward()
    fused = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    # The same loss through plain autograd (dense top-k selection).
    raw = sae.encoder(x - sae.b_pre)
    pre = torch.relu(raw)
    acts, idx = pre.topk(6, dim=-1, sorted=False)
    x_hat = torch.nn.functional.embedding_bag(idx, sae.W_dec, per_sample_weights=acts, mode="sum") + sae.b_pre
    e = x - x_hat
    tv = (x - x.mean(0)).pow(2).sum()
    # AuxK written out with dense products: the top d/2 dead pre-activations model the residual.
    aux_acts, aux_idx = torch.where(dead[None], raw, -torch.inf).topk(6, dim=-1)
    e_hat = (torch.zeros(40, 96).scatter(1, aux_idx, aux_acts)) @ sae.W_dec
    aux = (e_hat - e.detach()).pow(2).sum() / tv
    (e.pow(2).sum() / tv + 0.5 * aux).backward()
    for name, param in sae.named_parameters():
        assert torch.allclose(fused[name], param.grad, atol=1e-5), name


def test_grouped_topk_is_exact():
    from galaxyml.models.sae import grouped_topk

    torch.manual_seed(0)
    x = torch.relu(torch.randn(64, 512))
    v, i = grouped_topk(x, 16)
    ref_v, ref_i = x.topk(16, dim=-1)
    assert torch.equal(v.sort(1).values, ref_v.sort(1).values)
    assert torch.equal(i.sort(1).values, ref_i.sort(1).values)


def test_device_settings_are_checked_and_recorded(quick_home):
    from galaxyml.atlas import Atlas
    from galaxyml.models.device import resolve_device
    from precompute.stages.sae import SAEConfig

    with pytest.raises(ValueError, match="sae.device must be 'auto', 'cpu' or 'cuda'"):
        SAEConfig(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sae.device = 'cuda' but torch sees no CUDA device"):
            resolve_device("cuda", "sae.device")
    atlas = Atlas.open(quick_home / "quick")
    expected = f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"
    for stage in ("encoder", "zoobot", "sae", "matryoshka", "sfnet_metallicity"):
        assert atlas.metrics(stage)["device"] == expected, stage  # the manifest says where each model trained
