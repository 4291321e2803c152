"""Build a preset from scratch and print seconds per stage and the peak resident memory.

    python bench/precompute.py --preset quick
    python bench/precompute.py --preset demo --threads 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from precompute.config import read_preset, resolve_configs  # noqa: E402
from precompute.runner import run_pipeline  # noqa: E402
from precompute.stage import all_stages  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE")
    p.add_argument("--keep", type=Path, metavar="HOME", help="build into HOME/<preset> and keep it (default: a temporary folder)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = f"GPU {torch.cuda.get_device_name()} (stages with device = auto use it)" if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {gpu}", flush=True)
    stages = all_stages()
    configs = resolve_configs(stages, read_preset(args.preset), args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        home, run = (args.keep, args.preset) if args.keep else (Path(tmp), "bench")
        t0 = time.perf_counter()
        result = run_pipeline(home, run, stages, configs, preset=args.preset)
        total = time.perf_counter() - t0
        from galaxyml.atlas import Atlas

        atlas = Atlas.open(home / run)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"preset {args.preset} · torch threads {torch.get_num_threads()}")
        print(f"{'stage':<18}{'seconds':>9}  key metrics")
        for name, secs in result.seconds.items():
            m = atlas.metrics(name)
            keys = {k: m[k] for k in ("n_galaxies", "val_loss", "fvu", "l0", "dead_fraction", "kind", "median_r2") if k in m}
            keys.update({f"{t} rmse": v["rmse"] for t, v in m.get("test", {}).items()})
            keys.update({f"{t} rmse/floor": v["rmse_over_floor"] for t, v in m.get("test", {}).items()
                         if "rmse_over_floor" in v})
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in keys.items())
            print(f"{name:<18}{secs:>9.2f}  {shown}")
        print(f"{'total':<18}{total:>9.2f}")
        print(f"peak RSS {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
