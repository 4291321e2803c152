"""GalacticForge speed: stars per second sampled by each flow of an atlas's ``forge`` stage (for one
test galaxy's context, on this machine's CPU threads), the seconds to draw 1,000,000 stars, and the
training seconds per epoch the stage measured; a Gaussian's sampling speed (numpy) is the baseline.

    python bench/forge.py                    # the demo atlas in ./runs
    python bench/forge.py --run quick --stars 200000

A flow whose 10,000-star timing projects more than ``--max-seconds`` for the full draw is reported
from that timing (marked "projected") instead of being run to the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from galaxyml.atlas import Atlas, home  # noqa: E402
from galaxyml.models.flows import FLOW_NAMES  # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="demo")
    p.add_argument("--stars", type=int, default=1_000_000)
    p.add_argument("--max-seconds", type=float, default=60.0)
    args = p.parse_args()
    atlas = Atlas.open(home() / args.run)
    metrics = atlas.metrics("forge")
    context = np.asarray(atlas.forge_galaxies()["test_context"][0])
    print(f"forge flows of run '{args.run}' on {torch.get_num_threads()} CPU threads; {args.stars:,} stars per flow")
    rng = np.random.default_rng(0)
    cov = np.cov(rng.normal(size=(1000, 10)).T)
    gauss_s = timed(lambda: rng.multivariate_normal(np.zeros(10), cov, args.stars))
    print(f"{'model':<22}{'stars/s':>12}{'1M stars [s]':>14}{'train s/epoch':>15}{'x Gaussian time':>17}")
    print(f"{'Gaussian (numpy)':<22}{args.stars / gauss_s:>12,.0f}{gauss_s * 1e6 / args.stars:>14.2f}")
    for kind, m in metrics["flows"].items():
        forge = atlas.forge_flow(kind)
        forge.sample(context, 1000, seed=0)  # warm-up
        probe = timed(lambda: forge.sample(context, 10_000, seed=0)) / 10_000
        note = ""
        if probe * args.stars <= args.max_seconds:
            per_star = timed(lambda: forge.sample(context, args.stars, seed=0)) / args.stars
        else:
            per_star, note = probe, "  (projected from 10,000)"
        print(f"{FLOW_NAMES[kind]:<22}{1 / per_star:>12,.0f}{per_star * 1e6:>14.2f}{m['seconds_per_epoch']:>15.2f}"
              f"{per_star * args.stars / gauss_s:>17.1f}{note}")


if __name__ == "__main__":
    main()
