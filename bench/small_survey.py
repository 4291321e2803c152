"""A small labelled survey, as real ones often are: a few hundred mock galaxies through the real stages,
repeated over seeds, against the classical baselines.

For each seed this builds the survey (``--n`` galaxies: the survey split gives 70% train, 10% validation,
20% test), the vote network, the SAEs and the metallicity SFNet with the demo settings (the small-survey
rules apply by themselves), then prints on the test galaxies the SFNet's RMSE and bias next to the
photometric baseline's and the training median's, and the share of dead SAE latents; then the mean over
seeds.

    python bench/small_survey.py --n 500 --seeds 3
    python bench/small_survey.py --n 500 --seeds 3 --set sfnet_metallicity.epochs=30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from galaxyml.atlas import Atlas  # noqa: E402
from precompute.cli import main as build  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="galaxies in the mock survey")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE")
    p.add_argument("--home", type=Path, help="keep the runs here (default: a temporary folder)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        for seed in range(args.seeds):
            sets = [f"survey.n_galaxies={args.n}", *(f"{s}.seed={seed}" for s in
                                                    ("zoobot", "sae", "matryoshka", "sfnet_metallicity")),
                    *args.overrides]
            t0 = time.perf_counter()
            code = build(["--preset", "demo", "--home", str(home), "--run", f"small{args.n}-{seed}", "--quiet",
                          "--only", "sae", "--only", "matryoshka", "--only", "sfnet_metallicity",
                          *(a for s in sets for a in ("--set", s))])
            if code:
                raise SystemExit(f"the build failed (exit {code})")
            atlas = Atlas.open(home / f"small{args.n}-{seed}")
            met = atlas.metrics("sfnet_metallicity")
            t = met["targets"][0]
            photo = met["photometric_baseline"][t]
            row = {"seed": seed, "sfnet": met["test"][t]["rmse"], "bias": met["test"][t]["bias"],
                   "photometric": photo["rmse"], "method": photo["method"], "median": met["baseline_median_rmse"][t],
                   "floor": met["test"][t].get("floor", np.nan), "n_test": met["n_test"],
                   "sae_dead": atlas.metrics("sae")["dead_fraction"], "sae_latents": atlas.metrics("sae")["n_latents"],
                   "matryoshka_dead": atlas.metrics("matryoshka")["dead_fraction"]}
            rows.append(row)
            print(f"seed {seed}: SFNet RMSE {row['sfnet']:.4f} (bias {row['bias']:+.4f}), photometric "
                  f"{row['photometric']:.4f} ({row['method']}), training median {row['median']:.4f}, floor "
                  f"{row['floor']:.3f}, {row['n_test']} test galaxies; SAE {row['sae_latents']} latents, "
                  f"{row['sae_dead']:.1%} dead, Matryoshka {row['matryoshka_dead']:.1%} dead "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("sfnet", "bias", "photometric", "median", "sae_dead",
                                                              "matryoshka_dead")}
    print(f"\nmean of {len(rows)} seeds on {args.n} galaxies: SFNet {mean['sfnet']:.4f} (bias {mean['bias']:+.4f}), "
          f"photometric {mean['photometric']:.4f} (SFNet / photometric {mean['sfnet'] / mean['photometric']:.3f}), "
          f"median {mean['median']:.4f}; dead latents TopK {mean['sae_dead']:.1%}, "
          f"Matryoshka {mean['matryoshka_dead']:.1%}")


if __name__ == "__main__":
    main()
