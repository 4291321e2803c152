"""Throughput of the embeddings stage (the encoder over every galaxy, in shard tasks) on the local
executor and on a Ray instance of 1 and 2 workers started on this machine, with the file hash each
writes (they must agree). On 2 cores expect little gain from the second worker: the point is that the
shards run anywhere and give the same bytes, and the shape of the curve.

    python bench/executors.py                    # 8,000 mock galaxies, shards of 1,000
    python bench/executors.py --galaxies 20000 --shard-rows 2500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from precompute.config import read_preset, resolve_configs  # noqa: E402
from precompute.executor import LocalExecutor, RayExecutor  # noqa: E402
from precompute.runner import run_pipeline  # noqa: E402
from precompute.cli import on_demand_stages, select_stages  # noqa: E402
from precompute.stage import all_stages  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--galaxies", type=int, default=8000)
    p.add_argument("--shard-rows", type=int, default=1000)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray workers to try (default 1 2)")
    args = p.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    overrides = [f"survey.n_galaxies={args.galaxies}", "embeddings.source=encoder",
                 f"embeddings.shard_rows={args.shard_rows}"]
    stages = select_stages(all_stages(), ["embeddings"], [])
    configs = {n: c for n, c in resolve_configs(all_stages(), read_preset("quick"), overrides).items() if n in stages}
    lazy = on_demand_stages(stages, ["embeddings"], configs)
    with tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        run_pipeline(Path(home), "bench", stages, configs, preset="quick", on_demand=lazy)
        print(f"quick preset with {args.galaxies:,} galaxies up to the embeddings: {time.perf_counter() - t0:.0f} s; "
              f"{os.cpu_count()} CPUs; shards of {args.shard_rows:,} galaxies, 1 thread per task")
        print(f"{'executor':<24}{'seconds':>9}{'galaxies/s':>12}{'speed-up':>10}  embeddings.npy sha256")
        base = None
        for name, workers in [("local", 0)] + [("ray", w) for w in args.workers]:
            ex = LocalExecutor() if name == "local" else RayExecutor(num_cpus=workers)
            try:
                run_pipeline(Path(home), "bench", stages, configs, preset="quick", force=("embeddings",),
                             on_demand=lazy, executor=ex)
            finally:
                ex.close()
            entry = json.loads((Path(home) / "bench" / "manifest.json").read_text())["stages"]["embeddings"]
            s = entry["seconds"]
            base = base or s
            label = "local (in process)" if name == "local" else f"ray, {workers} worker{'s' * (workers > 1)}"
            print(f"{label:<24}{s:>9.1f}{args.galaxies / s:>12.0f}{base / s:>9.2f}x  {entry['files']['embeddings.npy'][:16]}")


if __name__ == "__main__":
    main()
