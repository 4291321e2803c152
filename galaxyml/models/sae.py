"""TopK sparse autoencoder (Gao et al. 2024, arXiv:2406.04093): z = TopK(ReLU(W_enc (x - b_pre) + b_enc)),
x_hat = W_dec^T z + b_pre, with unit-norm decoder rows and the AuxK loss that revives dead latents;
and the Matryoshka TopK SAE (Bussmann et al. 2025, arXiv:2503.17547), whose latents form nested
groups and whose loss sums the FVU of the reconstructions from every prefix of groups,
L = sum_g FVU(x, W_dec[:m_g]^T z[:m_g] + b_pre), so the first groups learn the broadest features.

Decoding is sparse: ``F.embedding_bag`` sums the k decoder rows of each sample weighted by their
activations. For embeddings of 256 dimensions and more the backward passes are embedding_bag kernels
too, so no dense (B, M) tensor is formed; below that, one scattered (B, M) gradient and GEMMs are
cheaper (d = 128: 1.21x sparsify's training throughput against 1.00x, ``bench/sae.py --run demo``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


def fvu(x: Tensor, x_hat: Tensor) -> Tensor:
    """Fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the batch."""
    return (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()


def grouped_topk(x: Tensor, k: int, group: int = 8) -> tuple[Tensor, Tensor]:
    """Exact top-k along the last axis via group maxima: the top k values lie in the groups whose
    maxima are among the k largest, so only k * group candidates need a second top-k. A CPU
    optimisation: on a GPU one ``topk`` kernel is used."""
    b, m = x.shape
    if m % group or m // group < k or x.device.type != "cpu":
        return x.topk(k, dim=-1, sorted=False)
    maxima = x.view(b, m // group, group).amax(-1)
    _, groups = maxima.topk(k, dim=-1, sorted=False)  # (B, k)
    candidates = (groups.unsqueeze(-1) * group + torch.arange(group, device=x.device)).view(b, k * group)
    values, pos = x.gather(1, candidates).topk(k, dim=-1, sorted=False)
    return values, candidates.gather(1, pos)


def dead_mask(galaxies_since_fired: Tensor, threshold: int) -> Tensor:
    """Latents that have not fired for more than ``threshold`` galaxies."""
    return galaxies_since_fired > threshold


def update_since_fired(galaxies_since_fired: Tensor, top_acts: Tensor, top_indices: Tensor) -> Tensor:
    """Add the batch's galaxies to every latent's count and reset those that fired, in place."""
    fired = torch.zeros_like(galaxies_since_fired, dtype=torch.bool)
    fired[top_indices[top_acts > 0]] = True
    galaxies_since_fired += len(top_acts)
    galaxies_since_fired[fired] = 0
    return galaxies_since_fired


EMBEDDING_BAG_MIN_D = 256
"""From this embedding size up, the weight gradients go through embedding_bag's backward kernels;
below it, through one dense GEMM with the (B, M) scattered gradient, which is cheaper there (measured,
``bench/sae.py``)."""


def _dense(values: Tensor, indices: Tensor, n: int) -> Tensor:
    """(B, k) values at (B, k) indices -> (B, n) dense rows."""
    return values.new_zeros(values.shape[0], n).scatter_(1, indices, values)


class SparseDecode(torch.autograd.Function):
    """sum_j acts_j W[idx_j] per sample (an embedding_bag), with a backward that, for small embeddings,
    forms the decoder's weight gradient as one GEMM of the scattered activations (B, M) with the output
    gradient instead of embedding_bag's sort-based kernel."""

    @staticmethod
    def forward(ctx, acts: Tensor, indices: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(acts, indices, weight)
        return F.embedding_bag(indices, weight, per_sample_weights=acts, mode="sum")

    @staticmethod
    def backward(ctx, g: Tensor):
        acts, indices, weight = ctx.saved_tensors
        grad_acts = (g @ weight.T).gather(1, indices)  # d(out)/d(acts_j) = W[idx_j] . g
        grad_w = _dense(acts, indices, weight.shape[0]).T @ g
        return grad_acts, None, grad_w


def sparse_decode(acts: Tensor, indices: Tensor, weight: Tensor) -> Tensor:
    """(B, k) activations of the latents ``indices`` -> (B, d) sum of their rows of ``weight``."""
    if weight.shape[1] < EMBEDDING_BAG_MIN_D and torch.is_grad_enabled():
        return SparseDecode.apply(acts, indices, weight)
    return F.embedding_bag(indices, weight, per_sample_weights=acts, mode="sum")


class SparseEncode(torch.autograd.Function):
    """relu(x W^T + b) followed by top-k, differentiated only through the k kept latents.

    Forward: (B, d) -> values (B, k), indices (B, k), pre-activations before the ReLU (B, M), which
    only the AuxK loss uses. Backward: the input
    gradient is an embedding_bag of W's selected rows, and W's gradient is accumulated per latent by
    embedding_bag's backward kernel (no (B, M) gradient is formed), as in sparsify's fused encoder.
    A gradient on the pre-activations (the AuxK loss) is added densely when present.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, k: int, bf16: bool = False):
        if bf16:
            # The encoder GEMM in bf16 (faster on CPUs with AVX512-BF16/AMX); everything else fp32.
            pre = F.linear(x.bfloat16(), weight.bfloat16(), bias.bfloat16()).float()
        else:
            pre = F.linear(x, weight, bias)
        values, indices = grouped_topk(pre, k)
        values = F.relu(values)
        ctx.save_for_backward(x, weight, values, indices)
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)  # pre-activations get a gradient only from AuxK
        return values, indices, pre

    @staticmethod
    def backward(ctx, g_values: Tensor, g_indices: Tensor, g_pre: Tensor | None):
        x, weight, values, indices = ctx.saved_tensors
        g = torch.zeros_like(values) if g_values is None else g_values * (values > 0)  # ReLU
        if x.shape[1] < EMBEDDING_BAG_MIN_D:
            # Small d: one dense (B, M) gradient, with the AuxK one added, and GEMMs (measured, bench/sae.py).
            dense = _dense(g, indices, weight.shape[0])
            if g_pre is not None:
                dense = dense + g_pre  # the pre-activations are linear: no ReLU mask
            return dense @ weight, dense.T @ x, dense.sum(0), None, None
        grad_x = F.embedding_bag(indices, weight, per_sample_weights=g, mode="sum")
        with torch.enable_grad():
            w = weight.detach().requires_grad_()
            (grad_w,) = torch.autograd.grad(
                F.embedding_bag(indices, w, per_sample_weights=g.detach(), mode="sum"), w, grad_outputs=x)
        grad_b = g.new_zeros(weight.shape[0]).index_add_(0, indices.flatten(), g.flatten())
        if g_pre is not None:
            gp = g_pre  # the pre-activations are linear: no ReLU mask
            grad_x = grad_x + gp @ weight
            grad_w = grad_w + gp.T @ x
            grad_b = grad_b + gp.sum(0)
        return grad_x, grad_w, grad_b, None, None


def bf16_is_fast() -> bool:
    """True on CPUs with native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class ForwardOutput(NamedTuple):
    """Output of :meth:`TopKSAE.forward`."""

    x_hat: Tensor
    """(B, d) reconstruction."""
    top_acts: Tensor
    """(B, k) activations of the active latents."""
    top_indices: Tensor
    """(B, k) indices of the active latents."""
    fvu: Tensor
    """Scalar fraction of variance unexplained."""
    auxk_loss: Tensor
    """Scalar AuxK loss (0 when no latent is dead)."""
    recon_loss: Tensor
    """Scalar reconstruction loss to minimise (the FVU; the sum over prefixes for Matryoshka)."""
    group_fvu: Tensor | None = None
    """(G,) FVU using only the first g groups (Matryoshka only)."""


class TopKSAE(nn.Module):
    r"""TopK sparse autoencoder.

    Scaling and evaluating sparse autoencoders (Gao et al., 2024)
    https://arxiv.org/abs/2406.04093

    Arguments:
        d_in: The embedding size d.
        n_latents: The number of latents M (the demo uses 8 d).
        k: The number of active latents per sample.

    Shapes: x (B, d) -> codes (B, k) indices and values -> x_hat (B, d).
    """

    def __init__(self, d_in: int, n_latents: int, k: int):
        super().__init__()
        if not 0 < k <= n_latents:
            raise ValueError(f"sae.k must be in [1, n_latents={n_latents}], got {k}")
        self.d_in, self.n_latents, self.k = d_in, n_latents, k
        self.encoder = nn.Linear(d_in, n_latents)
        self.encoder.bias.data.zero_()
        # Decoder rows start as the normalised encoder rows (the scheme of OpenAI and sparsify).
        self.W_dec = nn.Parameter(self.encoder.weight.data.clone())
        self.b_pre = nn.Parameter(torch.zeros(d_in))
        self.bf16 = False
        """Select latents with a bf16 encoder GEMM (values stay fp32); see :class:`SparseEncode`."""
        self.set_decoder_norm_to_unit_norm()

    def pre_acts(self, x: Tensor) -> Tensor:
        """(B, d) -> (B, M) non-negative pre-activations."""
        return F.relu(self.encoder(x - self.b_pre))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, d) -> sparse codes: values (B, k) and latent indices (B, k)."""
        values, indices, _ = SparseEncode.apply(x - self.b_pre, self.encoder.weight, self.encoder.bias, self.k, self.bf16)
        return values, indices

    def decode(self, top_acts: Tensor, top_indices: Tensor) -> Tensor:
        """Sparse codes (B, k) -> (B, d), via embedding_bag (see :func:`sparse_decode`)."""
        return sparse_decode(top_acts, top_indices, self.W_dec) + self.b_pre

    def forward(self, x: Tensor, dead: Tensor | None = None) -> ForwardOutput:
        top_acts, top_indices, pre = SparseEncode.apply(x - self.b_pre, self.encoder.weight, self.encoder.bias, self.k, self.bf16)
        x_hat = self.decode(top_acts, top_indices)
        e = x - x_hat
        total_variance = (x - x.mean(0)).pow(2).sum()
        auxk_loss = self.auxk(pre, e, total_variance, dead)
        fvu_ = e.pow(2).sum() / total_variance
        return ForwardOutput(x_hat, top_acts, top_indices, fvu_, auxk_loss, fvu_)

    def auxk(self, pre: Tensor, e: Tensor, total_variance: Tensor, dead: Tensor | None) -> Tensor:
        """AuxK loss: the dead latents' reconstruction of the residual ``e``.

        ``pre`` are the pre-activations *before* the ReLU: a latent whose pre-activation is negative
        on every galaxy would get no gradient through a ReLU and could never be revived (measured on
        the demo embeddings: 72% of latents stayed dead), so AuxK uses the linear values.
        """
        auxk_loss = e.new_tensor(0.0)
        if dead is not None and (n_dead := int(dead.sum())) > 0:
            # AuxK (Gao et al. 2024, appendix B.1, as in sparsify): the top k_aux dead latents
            # model the residual of the live ones; k_aux = d/2, scaled down when few are dead.
            k_aux = self.d_in // 2
            scale = min(n_dead / k_aux, 1.0)
            aux_pre = torch.where(dead[None], pre, -torch.inf)
            aux_acts, aux_idx = aux_pre.topk(min(k_aux, n_dead), sorted=False)
            # No b_pre here: the residual e already accounts for it (as in sparsify).
            e_hat = sparse_decode(aux_acts, aux_idx, self.W_dec)
            auxk_loss = scale * (e_hat - e.detach()).pow(2).sum() / total_variance
        return auxk_loss

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True).clamp_min(torch.finfo(self.W_dec.dtype).eps)

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """Project out the gradient component that would change the decoder rows' norms."""
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec.data).sum(dim=1, keepdim=True)
        self.W_dec.grad -= parallel * self.W_dec.data

    def config(self) -> dict[str, int]:
        return {"d_in": self.d_in, "n_latents": self.n_latents, "k": self.k}


class MatryoshkaSAE(TopKSAE):
    r"""TopK SAE with nested groups of latents.

    Learning Multi-Level Features with Matryoshka Sparse Autoencoders (Bussmann et al., 2025)
    https://arxiv.org/abs/2503.17547

    Arguments:
        d_in: The embedding size d.
        group_sizes: Sizes of the nested groups; the latents are their concatenation.
        k: The number of active latents per sample (chosen over all latents).

    Shapes: x (B, d) -> codes (B, k) -> prefix reconstructions (G, B, d).
    """

    def __init__(self, d_in: int, group_sizes: tuple[int, ...], k: int):
        super().__init__(d_in, int(sum(group_sizes)), k)
        if not group_sizes or min(group_sizes) < 1:
            raise ValueError(f"matryoshka.group_sizes must be positive sizes, got {group_sizes}")
        self.group_sizes = tuple(int(g) for g in group_sizes)
        self.register_buffer("prefix_ends", torch.tensor(self.group_sizes).cumsum(0), persistent=False)

    def prefix_decode(self, top_acts: Tensor, top_indices: Tensor, n_groups: int) -> Tensor:
        """Reconstruction from the latents of the first ``n_groups`` groups only."""
        keep = top_indices < self.prefix_ends[n_groups - 1]
        return self.decode(top_acts * keep, top_indices)

    def forward(self, x: Tensor, dead: Tensor | None = None) -> ForwardOutput:
        top_acts, top_indices, pre = SparseEncode.apply(x - self.b_pre, self.encoder.weight, self.encoder.bias, self.k, self.bf16)
        total_variance = (x - x.mean(0)).pow(2).sum()
        group_fvu = torch.stack([
            (x - self.prefix_decode(top_acts, top_indices, g)).pow(2).sum() / total_variance
            for g in range(1, len(self.group_sizes) + 1)
        ])
        x_hat = self.decode(top_acts, top_indices)
        e = x - x_hat
        auxk_loss = self.auxk(pre, e, total_variance, dead)
        return ForwardOutput(x_hat, top_acts, top_indices, group_fvu[-1], auxk_loss, group_fvu.sum(), group_fvu)

    def config(self) -> dict:
        return {**super().config(), "group_sizes": list(self.group_sizes)}


def train_step(sae: TopKSAE, optimiser: torch.optim.Optimizer, x: Tensor, galaxies_since_fired: Tensor,
               dead_after: int, auxk_alpha: float) -> ForwardOutput:
    """One optimisation step on the batch ``x``: minimise recon_loss + auxk_alpha AuxK (AuxK on the
    latents silent for more than ``dead_after`` galaxies), keep the decoder rows at unit norm, and
    update the dead-latent counters in place."""
    out = sae(x, dead=dead_mask(galaxies_since_fired, dead_after))
    optimiser.zero_grad(set_to_none=True)
    (out.recon_loss + auxk_alpha * out.auxk_loss).backward()
    sae.remove_gradient_parallel_to_decoder_directions()
    optimiser.step()
    sae.set_decoder_norm_to_unit_norm()
    update_since_fired(galaxies_since_fired, out.top_acts, out.top_indices)
    return out


def default_lr(n_latents: int) -> float:
    """Learning-rate scaling law of Gao et al. (2024): 2e-4 / sqrt(M / 2^14)."""
    return 2e-4 / math.sqrt(n_latents / 2**14)


WEIGHTS_FILE = "sae.safetensors"
CONFIG_FILE = "config.json"


def save_sae(sae: TopKSAE, folder: Path, **extra) -> None:
    """Weights as safetensors plus a JSON config (as sparsify's ``save_to_disk``)."""
    save_file({k: v.detach().cpu().contiguous() for k, v in sae.state_dict().items()}, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps({**sae.config(), **extra}, indent=1))


def load_sae(folder: Path) -> tuple[TopKSAE, dict]:
    """Read a SAE written by :func:`save_sae`; returns the model and its config (with extras)."""
    info = json.loads((folder / CONFIG_FILE).read_text())
    if "group_sizes" in info:
        sae = MatryoshkaSAE(info["d_in"], tuple(info["group_sizes"]), info["k"])
    else:
        sae = TopKSAE(info["d_in"], info["n_latents"], info["k"])
    sae.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return sae.eval(), info
