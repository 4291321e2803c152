"""What checking an atlas's files against their recorded sha256 costs: the first check (every file
hashed), a cached one (a new process: one stat per file), and the first check extrapolated to 1M
galaxies from this atlas's bytes per galaxy and the measured hashing speed.

    python bench/verify.py                   # builds the quick preset into a temporary folder
    python bench/verify.py --run runs/demo   # an existing atlas
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from galaxyml import integrity  # noqa: E402
from galaxyml.atlas import read_manifest  # noqa: E402


def hash_speed(megabytes: int = 256) -> float:
    """sha256 throughput of this machine in MB/s."""
    block = bytes(range(256)) * (1 << 12)  # 1 MiB
    h = hashlib.sha256()
    t0 = time.perf_counter()
    for _ in range(megabytes):
        h.update(block)
    return megabytes / (time.perf_counter() - t0)


def timed_verify(run_dir: Path, manifest: dict, cold: bool) -> float:
    if cold:
        (run_dir / integrity.CACHE).unlink(missing_ok=True)
    integrity._memory.clear()  # a fresh process: only the on-disk cache is known
    t0 = time.perf_counter()
    stale = integrity.verify_stages(run_dir, manifest)
    assert not stale, f"the atlas has stale stages: {stale}"
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="an atlas folder (default: build the quick preset)")
    args = p.parse_args()
    tmp = None
    run_dir = args.run
    if run_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="verify-"))
        subprocess.run([sys.executable, "-m", "precompute", "--preset", "quick", "--home", str(tmp), "--quiet"],
                       cwd=ROOT, check=True, capture_output=True)
        run_dir = tmp / "quick"
    try:
        manifest = read_manifest(run_dir)
        stages = {n: e for n, e in manifest["stages"].items() if not e.get("not_applicable")}
        n_files = sum(len(e["files"]) for e in stages.values())
        n_bytes = sum(sum(e["bytes"].values()) for e in stages.values())
        n_gal = manifest["stages"]["survey"]["metrics"]["n_galaxies"]
        cold = min(timed_verify(run_dir, manifest, cold=True) for _ in range(2))
        warm = min(timed_verify(run_dir, manifest, cold=False) for _ in range(5))
        speed = hash_speed()
        per_galaxy = n_bytes / n_gal
        at_1m = per_galaxy * 1e6 / 1e6 / speed
        print(f"atlas {run_dir.name}: {n_gal:,} galaxies, {len(stages)} stages, {n_files} files, {n_bytes / 1e6:.1f} MB "
              f"({per_galaxy / 1e3:.1f} kB per galaxy)")
        print(f"first check (every file hashed): {cold * 1e3:.0f} ms = {n_bytes / 1e6 / cold:.0f} MB/s")
        print(f"cached check (one stat per file): {warm * 1e3:.1f} ms ({cold / warm:.0f}x faster)")
        print(f"sha256 on this machine: {speed:.0f} MB/s; at 1M galaxies ({per_galaxy * 1e6 / 1e9:.1f} GB of "
              f"stage files) the first check would take about {at_1m:.0f} s, once per file version; "
              f"later checks cost a stat per file")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
