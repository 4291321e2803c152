"""SFNet throughput: training and inference images/s at 64x64 and 128x128, for the demo network (with
its stride-2 stem, and with a stride-1 stem) and the wider ResNet-18-like widths, on whatever device is
given (2 CPU threads by default).

Training images/s counts a full step (normalised batch in, forward, backward, AdamW update) at batch
64; inference counts the forward pass in eval mode at batch 256. Each figure is the median of
``--repeats`` timed blocks after a warm-up block.

    python bench/sfnet.py                      # 2 threads, both sizes, both widths
    python bench/sfnet.py --threads 16 --device cuda
    python bench/sfnet.py --sweep 5000         # test RMSE for every k on a 5,000-galaxy mock (slow)
    python bench/sfnet.py --sweep 5000 --ks    # only the catalog oracles: what the images allow at best
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from galaxyml.models.sfnet import K_CHOICES, SFNet, SFNetConfig  # noqa: E402
from precompute.stages.sfnet import SFNetStageConfig  # noqa: E402

DEMO = SFNetStageConfig()
NETWORKS = {
    f"demo {DEMO.widths}, stem stride {DEMO.stem_stride}": (DEMO.widths, DEMO.stem_stride),
    f"demo {DEMO.widths}, stem stride 1": (DEMO.widths, 1),
    f"resnet18-like {SFNetConfig().widths}": (SFNetConfig().widths, 1),
}


def throughput(widths: tuple[int, ...], stem_stride: int, size: int, k: int, device: str, repeats: int, steps: int
               ) -> tuple[float, float]:
    torch.manual_seed(0)
    model = SFNet(SFNetConfig(widths=widths, k=k, stem_stride=stem_stride)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(64, 3, size, size, device=device)
    y = torch.randn(64, 1, device=device)

    def train_block() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = F.mse_loss(model(x).prediction, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return steps * len(x) / (time.perf_counter() - t0)

    xi = torch.randn(256, 3, size, size, device=device)

    @torch.no_grad()
    def infer_block() -> float:
        model.eval()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(xi)
        if device == "cuda":
            torch.cuda.synchronize()
        model.train()
        return steps * len(xi) / (time.perf_counter() - t0)

    train_block(), infer_block()  # warm-up
    return (float(np.median([train_block() for _ in range(repeats)])),
            float(np.median([infer_block() for _ in range(repeats)])))


ORACLE_COLUMNS = ["mag_r", "g_r", "r_z", "r_e_disk_arcsec", "bulge_to_total", "agn_flux_fraction"]


def oracle_rmse(catalog, train: np.ndarray, test: np.ndarray, target: str = "oh_12") -> float:
    """Test RMSE of ``target`` from the noiseless catalog quantities an image shows (observed
    magnitude and colours, disk size, B/T, the AGN point source's flux fraction): a reference for what
    a model of the images can reach. The mock's floors assume the stellar mass and SFR are known
    exactly; an image shows neither (no redshift), so this oracle sits above the floor."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    x, y = catalog[ORACLE_COLUMNS].to_numpy(np.float64), catalog[target].to_numpy(np.float64)
    train, test = train[np.isfinite(y[train])], test[np.isfinite(y[test])]
    model = HistGradientBoostingRegressor(max_iter=400, random_state=0).fit(x[train], y[train])
    return float(np.sqrt(np.mean((model.predict(x[test]) - y[test]) ** 2)))


def sweep(n: int, epochs: int, widths: tuple[int, ...], ks: tuple[int, ...] = K_CHOICES, stem_stride: int = 1) -> None:
    """Test RMSE of 12+log(O/H) for every k of the paper's sweep on a fresh mock survey."""
    import tempfile

    from galaxyml.data.mock import MockConfig, write_mock_survey
    from galaxyml.models.sfnet_training import (
        SFNetTrainConfig, fit_sfnet, input_normalisation, predict, regression_metrics)

    with tempfile.TemporaryDirectory() as tmp:
        survey = write_mock_survey(MockConfig(n_galaxies=n), Path(tmp))
        images = np.asarray(survey.images)
        y = survey.catalog["oh_12"].to_numpy()[:, None]
        ok = np.nonzero(np.isfinite(y[:, 0]))[0]
        perm = np.random.default_rng(0).permutation(ok)
        test, train = np.sort(perm[: len(perm) // 5]), np.sort(perm[len(perm) // 5 :])
        norm = input_normalisation(images[:2048], survey.bands)
        floor = survey.meta["prediction_floors"]["oh_12"]
        base = regression_metrics(np.full(len(test), np.median(y[train, 0])), y[test, 0])["rmse"]
        print(f"mock: {n:,} galaxies, {len(train):,} train / {len(test):,} test with a metallicity; "
              f"floor {floor} dex; median baseline RMSE {base:.4f}")
        floors = survey.meta["prediction_floors"]
        for target in ("oh_12", "n2"):
            rmse = oracle_rmse(survey.catalog, train, test, target)
            print(f"catalog oracle for {target} (gradient boosting on the noiseless {', '.join(ORACLE_COLUMNS)}): "
                  f"RMSE {rmse:.4f} = {rmse / floors[target]:.3f} x floor")
        print(f"{'k':>4} {'RMSE':>8} {'/floor':>7} {'NMAD':>7} {'best epoch':>10} {'s':>6}")
        for k in ks:
            t0 = time.time()
            fit = fit_sfnet(images, y, train, SFNetConfig(widths=widths, k=k, stem_stride=stem_stride),
                            SFNetTrainConfig(epochs=epochs), norm)
            pred, _ = predict(fit.model, images[test], norm)
            m = regression_metrics(pred[:, 0], y[test, 0], floor)
            print(f"{k or 'all':>4} {m['rmse']:8.4f} {m['rmse_over_floor']:7.3f} {m['nmad']:7.4f} {fit.best_epoch:>10} "
                  f"{time.time() - t0:6.0f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, the target machine)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="cutout sizes in pixels")
    p.add_argument("--k", type=int, default=8, help="active features (0 = all)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=4, help="batches per timed block")
    p.add_argument("--sweep", type=int, metavar="N", help="instead: train every k on an N-galaxy mock, print RMSE")
    p.add_argument("--epochs", type=int, default=20, help="with --sweep: most epochs per k")
    p.add_argument("--ks", type=int, nargs="*",
                   help="with --sweep: the k values (0 = all; default 1 2 4 8 16 32 all; none: only the oracles)")
    p.add_argument("--stem-stride", type=int, default=DEMO.stem_stride, choices=(1, 2),
                   help=f"with --sweep: stride of the first convolution (default {DEMO.stem_stride}, the demo's)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.sweep:
        ks = tuple(args.ks) if args.ks is not None else K_CHOICES
        sweep(args.sweep, args.epochs, DEMO.widths, ks, args.stem_stride)
        return
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; k = {args.k}; train batch 64, inference batch 256")
    print(f"{'network':<46} {'size':>5} {'train img/s':>12} {'infer img/s':>12} {'infer/train':>11}")
    for label, (widths, stride) in NETWORKS.items():
        for size in args.sizes:
            tr, inf = throughput(widths, stride, size, args.k, args.device, args.repeats, args.steps)
            print(f"{label:<46} {size:>5} {tr:12.1f} {inf:12.1f} {inf / tr:11.2f}", flush=True)


if __name__ == "__main__":
    main()
