"""TopK SAE training throughput and held-out FVU against EleutherAI's sparsify, in one run.

Both train on the same batches (M = 8 d latents, k = 32, batch 256, Adam with lr 2e-4/sqrt(M/2^14),
50 warm-up steps then linear decay, AuxK 1/32), alternating in chunks of 13 steps with a rotating
order so that machine noise hits both alike; sparsify's side replays the per-step sequence of its
``Trainer.fit`` with ``loss_fn="fvu"`` (its Trainer needs a Hugging Face model).

    pip install eai-sparsify          # for this benchmark only
    python bench/sae.py                               # synthetic data, d = 256 (see shared notes)
    python bench/sae.py --run demo --home runs        # an atlas's embeddings
    python bench/sae.py --embeddings emb.npy --device cuda   # an (N, d) .npy file, on a GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from galaxyml.models.sae import TopKSAE, default_lr, fvu, train_step  # noqa: E402

K, EXPANSION, BATCH, WARMUP, AUXK, DEAD_AFTER = 32, 8, 256, 50, 1 / 32, 10_000
BF16 = False
DEVICE = torch.device("cpu")


def synthetic(d: int, n: int, seed: int) -> np.ndarray:
    """x = sum c_i a_i + mu + noise over 4096 unit atoms, ~16 active, c ~ Exp(1), |mu| = 4."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(4096, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    mu = rng.normal(size=d)
    mu *= 4 / np.linalg.norm(mu)
    x = np.empty((n, d), np.float32)
    for s in range(0, n, 4096):
        m = min(4096, n - s)
        active = rng.random((m, 4096)) < 16 / 4096
        x[s : s + m] = (active * rng.exponential(1.0, (m, 4096))) @ atoms + mu + rng.normal(0, 0.02, (m, d))
    return x


def lr_at(step: int, total: int, peak: float) -> float:
    return peak * (step + 1) / WARMUP if step < WARMUP else peak * max(0.0, (total - step) / (total - WARMUP))


class Ours:
    name = "galaxyml"

    def __init__(self, x: np.ndarray, total: int):
        d = x.shape[1]
        self.sae = TopKSAE(d, EXPANSION * d, K)
        self.sae.bf16 = BF16
        with torch.no_grad():
            self.sae.b_pre.copy_(torch.from_numpy(x[:4096].mean(0)))
        self.sae.to(DEVICE)
        self.lr = default_lr(self.sae.n_latents)
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=self.lr, fused=True)
        self.since = torch.zeros(self.sae.n_latents, dtype=torch.long, device=DEVICE)
        self.total, self.t = total, 0

    def step(self, xb: torch.Tensor) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.t, self.total, self.lr)
        train_step(self.sae, self.opt, xb, self.since, DEAD_AFTER, AUXK)
        self.t += 1

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.sae.decode(*self.sae.encode(x))

    def dead_fraction(self, x: torch.Tensor) -> float:
        with torch.no_grad():
            _, idx = self.sae.encode(x)
        return 1.0 - torch.bincount(idx.flatten(), minlength=self.sae.n_latents).gt(0).float().mean().item()


class Sparsify:
    name = "sparsify"

    def __init__(self, x: np.ndarray, total: int):
        from sparsify import SparseCoder, SparseCoderConfig

        d = x.shape[1]
        self.sae = SparseCoder(d, SparseCoderConfig(expansion_factor=EXPANSION, k=K))
        with torch.no_grad():
            self.sae.b_dec.data = torch.from_numpy(x[:4096].mean(0))
        self.sae.to(DEVICE)
        self.lr = 2e-4 / (self.sae.num_latents / 2**14) ** 0.5
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=self.lr)  # as sparsify's Trainer
        self.since = torch.zeros(self.sae.num_latents, dtype=torch.long, device=DEVICE)
        self.total, self.t = total, 0

    def step(self, xb: torch.Tensor) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.t, self.total, self.lr)
        self.sae.set_decoder_norm_to_unit_norm()
        out = self.sae(xb, dead_mask=self.since > DEAD_AFTER)
        (out.fvu + AUXK * out.auxk_loss).backward()
        self.sae.remove_gradient_parallel_to_decoder_directions()
        self.opt.step()
        self.opt.zero_grad()
        fired = torch.zeros_like(self.since, dtype=torch.bool)
        fired[out.latent_indices.flatten()] = True
        self.since += len(xb)
        self.since[fired] = 0
        self.t += 1

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.sae.set_decoder_norm_to_unit_norm()
        return self.sae(x).sae_out

    def dead_fraction(self, x: torch.Tensor) -> float:
        with torch.no_grad():
            idx = self.sae.encode(x).top_indices
        return 1.0 - torch.bincount(idx.flatten(), minlength=self.sae.num_latents).gt(0).float().mean().item()


def synchronise() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def run(x: np.ndarray, held: np.ndarray, epochs: int, seed: int) -> dict:
    n_steps = epochs * (len(x) // BATCH)
    xs = torch.from_numpy(x).to(DEVICE)  # both read their batches from the same device-resident copy
    for cls in (Ours, Sparsify):  # untimed warm-up on throwaway copies: kernel compilation, library handles
        tr = cls(x, 10)
        for _ in range(5):
            tr.step(xs[:BATCH])
    torch.manual_seed(seed)
    trainers = [Ours(x, n_steps), Sparsify(x, n_steps)]
    seconds = {t.name: 0.0 for t in trainers}
    rng = np.random.default_rng(seed)
    batches = [rng.permutation(len(x)) for _ in range(epochs)]
    order = [i for e in batches for i in np.array_split(e[: len(e) // BATCH * BATCH], len(e) // BATCH)]
    order = [torch.from_numpy(i).to(DEVICE) for i in order]
    chunk = 13
    for c, start in enumerate(range(0, n_steps, chunk)):
        rotation = trainers if c % 2 == 0 else trainers[::-1]
        for tr in rotation:
            synchronise()
            t0 = time.perf_counter()
            for idx in order[start : start + chunk]:
                tr.step(xs[idx])
            synchronise()
            seconds[tr.name] += time.perf_counter() - t0
    h = torch.from_numpy(held).to(DEVICE)
    return {tr.name: {"samples_per_s": n_steps * BATCH / seconds[tr.name],
                      "fvu": float(fvu(h, tr.reconstruct(h))), "dead": tr.dead_fraction(h)} for tr in trainers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="use this atlas's embeddings instead of synthetic data")
    ap.add_argument("--home", type=Path, default=Path("runs"))
    ap.add_argument("--embeddings", type=Path, help="use an (N, d) float .npy file of embeddings")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--d", type=int, default=256, help="synthetic embedding size")
    ap.add_argument("--n", type=int, default=50_000, help="synthetic training rows")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                    help="bf16 latent selection in our encoder (auto: where the CPU has AVX512-BF16/AMX)")
    args = ap.parse_args()
    global BF16, DEVICE
    from galaxyml.models.device import resolve_device
    from galaxyml.models.sae import bf16_is_fast

    DEVICE = resolve_device(args.device, "--device")
    BF16 = DEVICE.type == "cpu" and (bf16_is_fast() if args.bf16 == "auto" else args.bf16 == "on")
    try:
        import sparsify  # noqa: F401
    except ImportError:
        sys.exit("eai-sparsify is not installed: pip install eai-sparsify (only for this benchmark)")
    if args.run or args.embeddings:
        if args.embeddings:
            emb, what = np.load(args.embeddings, allow_pickle=False).astype(np.float32), str(args.embeddings)
        else:
            from galaxyml.atlas import Atlas

            emb, what = np.asarray(Atlas.open(args.home / args.run).embeddings(), np.float32), f"atlas '{args.run}'"
        emb = (emb - emb.mean(0)) / np.sqrt(emb.var(0).mean())
        cut = int(0.9 * len(emb))
        x, held, what = emb[:cut], emb[cut:], f"{what} embeddings, d = {emb.shape[1]}"
    else:
        data = synthetic(args.d, args.n + 5000, 0)
        x, held, what = data[: args.n], data[args.n :], f"synthetic, d = {args.d}"
    where = (torch.cuda.get_device_name() if DEVICE.type == "cuda" else f"CPU, {torch.get_num_threads()} threads")
    print(f"{what}: {len(x):,} train / {len(held):,} held out, M = {EXPANSION} d, k = {K}, batch {BATCH}, "
          f"{args.epochs} epochs, {where}, torch {torch.__version__}, bf16 selection {'on' if BF16 else 'off'}")
    ratios = []
    for seed in range(args.seeds):
        r = run(x, held, args.epochs, seed)
        ratio = r["galaxyml"]["samples_per_s"] / r["sparsify"]["samples_per_s"]
        ratios.append(ratio)
        for name, v in r.items():
            print(f"seed {seed} {name:>9}: {v['samples_per_s']:>9,.0f} samples/s  held-out FVU {v['fvu']:.4f}  "
                  f"dead {v['dead']:.1%}")
        print(f"seed {seed} throughput ratio galaxyml / sparsify: {ratio:.2f}x")
    print(f"median ratio over {args.seeds} seed(s): {np.median(ratios):.2f}x (goal >= 1.0 at equal FVU)")


if __name__ == "__main__":
    main()
