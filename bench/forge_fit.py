"""One flow per simulated galaxy, as ``python -m galaxyml.forge fit`` does it, on particle tables written
in the Illustris cutout layout (ckpc/h, km/s sqrt(a), 1e10 Msun/h, formation scale factor, wind-phase
cells): held-out C2ST AUC per galaxy for the flow, a Gaussian fitted to the same training stars, and
true stars against other true stars (the ceiling at this sample size).

    python bench/forge_fit.py                       # 4 mock galaxies, 20,000 stars each, NSF
    python bench/forge_fit.py --flow maf --steps 1000 --galaxies 2

The galaxies are mock disk + bulge galaxies of a 64-galaxy mock universe (seed 3), the first
``--galaxies`` with log M* >= 10 (massive galaxies hold the most stars in a simulation).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxyml.data.mock import MockConfig, make_mock_survey  # noqa: E402
from galaxyml.data.mock.particles import PARTICLE_COLUMNS  # noqa: E402
from galaxyml.forge.cli import main as forge_main  # noqa: E402
from galaxyml.forge.tables import write_illustris  # noqa: E402
from galaxyml.models.flows import FLOW_KINDS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--galaxies", type=int, default=4)
    p.add_argument("--stars", type=int, default=20_000, help="star particles per galaxy (plus 2%% wind cells)")
    p.add_argument("--flow", choices=FLOW_KINDS, default="nsf")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    survey = make_mock_survey(MockConfig(n_galaxies=64, seed=3))
    rows = np.flatnonzero(survey.catalog["log_mstar"].to_numpy() >= 10.0)[: args.galaxies]
    print(f"{args.flow.upper()}, {args.steps} steps, {args.stars:,} stars per galaxy, {torch.get_num_threads()} threads")
    print(f"{'galaxy':>8}{'log M*':>8}{'B/T':>6}{'flow':>8}{'Gaussian':>10}{'real':>8}{'train s':>9}{'best step':>11}")
    aucs = []
    with tempfile.TemporaryDirectory() as tmp:
        for g in rows:
            table = Path(tmp) / f"galaxy_{g}.txt"
            write_illustris(table, survey.particles(int(g), args.stars), PARTICLE_COLUMNS, hubble=0.704,
                            wind_cells=args.stars // 50, seed=int(g))
            out = Path(tmp) / f"fit_{g}"
            argv = ["fit", str(table), "--hubble", "0.704", "--flow", args.flow, "--steps", str(args.steps),
                    "--seed", str(args.seed), "--out", str(out)] + (["--lr", str(args.lr)] if args.lr else [])
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                if forge_main(argv) != 0:
                    raise SystemExit(f"fit of galaxy {g} failed")
            m = json.loads((out / "metrics.json").read_text())
            row = survey.catalog.iloc[int(g)]
            aucs.append(m["c2st_auc"])
            print(f"{g:>8}{row['log_mstar']:>8.2f}{row['bulge_to_total']:>6.2f}{m['c2st_auc']:>8.3f}"
                  f"{m['c2st_auc_gaussian']:>10.3f}{m['c2st_auc_real']:>8.3f}{time.perf_counter() - t0:>9.0f}"
                  f"{m['best_step']:>11}")
    print(f"worst galaxy C2ST AUC {max(aucs):.3f}, mean {np.mean(aucs):.3f} (held-out stars of each galaxy)")


if __name__ == "__main__":
    main()
