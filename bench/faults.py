"""Faults against real builds: SIGKILL at random moments across every stage, then resume; same-size
corruption of every kind of artifact; many builders starting at the same instant.

    python bench/faults.py                    # 50 kills, corruption of every kind, 200 lock rounds
    python bench/faults.py --kills 20 --seed 3 --lock-rounds 0

Kills: a build of the quick preset is started with the command line and SIGKILLed while a stage chosen
at random among those not yet finished runs, at a random moment of it (up to 1.05x its length, so that the
commit and the manifest's write are hit too); after each kill the atlas is checked (its manifest reads,
no ready stage serves a file that differs from its record, every ready array and table loads), and the
build is resumed. When a build completes, its files' sha256 are compared with an uninterrupted build's,
and a new build starts in a fresh run until the kills are done.

Lock: ``--procs`` processes wait at a barrier, then all try to take one run's lock at once; the holder
keeps it a few milliseconds. A round with two holders at once is a failure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from galaxyml.atlas import MANIFEST, Atlas, AtlasError, read_manifest  # noqa: E402
from precompute.progress import read_events  # noqa: E402

ARTIFACT_KINDS = {  # one file of each kind in an atlas of the quick preset
    "npy": "sae/codes_values.npy",
    "parquet": "survey/catalog.parquet",
    "safetensors": "sae/sae.safetensors",
    "faiss": "index/embeddings.faiss",
    "fits": "cluster_fields/redmapper_catalog.fits",
    "json": "survey/survey.json",
}


def build_command(home: Path, run: str, preset: str = "quick", extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "precompute", "--preset", preset, "--run", run, "--home", str(home), "--quiet",
            *extra]


def build(home: Path, run: str, preset: str = "quick", extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """An uninterrupted build with the command line."""
    return subprocess.run(build_command(home, run, preset, extra), cwd=ROOT, capture_output=True, text=True)


def file_digests(run_dir: Path) -> dict[str, dict[str, str]]:
    """Per finished stage, its files' recorded sha256."""
    stages = read_manifest(run_dir)["stages"]
    return {name: e["files"] for name, e in stages.items() if not e.get("not_applicable")}


def check_atlas(run_dir: Path) -> str | None:
    """What is wrong with a run after a kill, or None: the manifest must read (or be absent), no ready
    stage may differ from its record, and every ready array and table must load."""
    if not (run_dir / MANIFEST).exists():
        return None
    try:
        atlas = Atlas.open(run_dir)
    except AtlasError as e:
        return f"manifest: {e}"
    for stage in atlas.ready_stages():
        for rel in atlas.manifest["stages"][stage]["files"]:
            path = run_dir / stage / rel
            try:
                if path.suffix == ".npy":
                    np.load(path, mmap_mode="r", allow_pickle=False)
                elif path.suffix == ".parquet":
                    pd.read_parquet(path)
                elif path.suffix == ".json":
                    json.loads(path.read_text())
            except Exception as e:  # noqa: BLE001 (any failure to load is what this looks for)
                return f"{stage}/{rel} does not load: {e}"
    return None


def _wait_for_stage(run_dir: Path, proc: subprocess.Popen, stage: str, timeout: float) -> bool:
    """Wait until the build ``proc`` starts ``stage`` (True), or ends or times out (False)."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        events = read_events(run_dir)  # those of the latest build, from its start event
        if events and events[0].get("pid") == proc.pid and any(
                e.get("event") == "stage_start" and e.get("stage") == stage for e in events):
            return True
        time.sleep(0.02)
    return False


def kill_campaign(home: Path, run: str, reference: dict[str, dict[str, str]], seconds: dict[str, float],
                  rng: np.random.Generator, max_kills: int, log=print) -> dict:
    """Kill and resume one build until it completes (or ``max_kills``); returns what happened."""
    run_dir = home / run
    kills, problems = 0, []
    while True:
        done = set(file_digests(run_dir)) if (run_dir / MANIFEST).exists() else set()
        remaining = [s for s in reference if s not in done]
        proc = subprocess.Popen(build_command(home, run), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if kills >= max_kills or not remaining:
            _, err = proc.communicate()
            if proc.returncode != 0:
                problems.append(f"the resumed build failed: {err.strip().splitlines()[-1:]}")
            break
        target = str(rng.choice(remaining))
        reached = _wait_for_stage(run_dir, proc, target, timeout=120)
        if reached:
            time.sleep(float(rng.uniform(0, 1.05 * max(seconds.get(target, 0.5), 0.2))))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            what = f"kill {kills:>2} in {target:<18}"
        else:
            what = f"build ended before a kill in {target} (exit {proc.returncode}):"
            if proc.returncode != 0:
                problems.append(f"a build failed on its own: {proc.stderr.read().strip().splitlines()[-1:]}")
        proc.wait()
        problem = check_atlas(run_dir)
        log(f"  {what} {'ok' if problem is None else problem}")
        if problem:
            problems.append(problem)
    final = file_digests(run_dir) if not problems else {}
    differ = sorted(f"{s}/{f}" for s in reference for f in reference[s] if final.get(s, {}).get(f) != reference[s][f])
    return {"kills": kills, "problems": problems, "differ": differ}


def kill_test(kills: int, seed: int, workdir: Path, log=print, reference_run: Path | None = None) -> dict:
    """At least ``kills`` SIGKILLs over real builds of the quick preset; the figures of the run."""
    rng = np.random.default_rng(seed)
    home = workdir / "kills"
    if reference_run is None:
        t0 = time.time()
        done = build(workdir / "reference", "quick")
        if done.returncode != 0:
            raise RuntimeError(f"the uninterrupted build failed: {done.stderr}")
        log(f"uninterrupted build: {time.time() - t0:.0f} s")
        reference_run = workdir / "reference" / "quick"
    reference = file_digests(reference_run)
    seconds = {s: e.get("seconds", 0.5) for s, e in read_manifest(reference_run)["stages"].items()}
    total = {"kills": 0, "campaigns": 0, "problems": [], "differ": []}
    while total["kills"] < kills:
        run = f"k{total['campaigns']}"
        out = kill_campaign(home, run, reference, seconds, rng, kills - total["kills"] + 8, log)
        total["kills"] += out["kills"]
        total["campaigns"] += 1
        total["problems"] += out["problems"]
        total["differ"] += [f"{run}: {d}" for d in out["differ"]]
        shutil.rmtree(home / run, ignore_errors=True)
    return total


def corrupt_same_size(path: Path) -> None:
    """Overwrite bytes in the middle of ``path`` with their complement: same size, other content."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16] = bytes(255 - b for b in data[mid:mid + 16])
    path.write_bytes(bytes(data))


def corruption_test(run_dir: Path) -> dict[str, bool]:
    """Per artifact kind (and the manifest): was a same-size corruption detected and not served?"""
    found = {}
    for kind, rel in ARTIFACT_KINDS.items():
        path = run_dir / rel
        original = path.read_bytes()
        corrupt_same_size(path)
        atlas = Atlas.open(run_dir)
        stage = rel.split("/")[0]
        found[kind] = stage in atlas.stale and not atlas.ready(stage)
        path.write_bytes(original)
    manifest = run_dir / MANIFEST
    original = manifest.read_text()
    m = json.loads(original)
    n = m["stages"]["survey"]["metrics"]["n_galaxies"]
    manifest.write_text(original.replace(f'"n_galaxies": {n}', f'"n_galaxies": {(n + 1) % 10 ** len(str(n))}', 1))
    try:
        Atlas.open(run_dir)
        found["manifest"] = False
    except AtlasError as e:
        found["manifest"] = "corrupt" in str(e)
    manifest.write_text(original)
    return found


def _lock_worker(run_dir: str, barrier, holders, violations, acquired, rounds: int) -> None:
    from precompute import lock

    for _ in range(rounds):
        barrier.wait()
        try:
            lock.acquire(Path(run_dir))
        except lock.BuildLocked:
            pass
        else:
            with holders.get_lock():
                holders.value += 1
                acquired.value += 1
                if holders.value > 1:
                    violations.value += 1
            time.sleep(0.005)
            with holders.get_lock():
                holders.value -= 1
            lock.release(Path(run_dir))
        barrier.wait()


def lock_test(rounds: int, procs: int, workdir: Path) -> dict:
    """``procs`` processes try to take one lock at the same instant, ``rounds`` times."""
    run_dir = workdir / "locked"
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    barrier, holders, violations, acquired = ctx.Barrier(procs), ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
    workers = [ctx.Process(target=_lock_worker, args=(str(run_dir), barrier, holders, violations, acquired, rounds))
               for _ in range(procs)]
    t0 = time.time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"rounds": rounds, "procs": procs, "double_holders": violations.value, "acquisitions": acquired.value,
            "seconds": time.time() - t0,
            "workers_failed": sum(w.exitcode != 0 for w in workers)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=50, help="SIGKILLs over real builds (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lock-rounds", type=int, default=200, help="simultaneous-start rounds (default 200)")
    p.add_argument("--procs", type=int, default=40, help="processes starting at once per round (default 40)")
    p.add_argument("--workdir", type=Path, help="where to build (default: a temporary folder, removed after)")
    args = p.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="faults-"))
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    try:
        if args.lock_rounds:
            out = lock_test(args.lock_rounds, args.procs, workdir)
            print(f"lock: {out['rounds']} rounds of {out['procs']} simultaneous starts, "
                  f"{out['double_holders']} with two holders, {out['acquisitions']} acquisitions "
                  f"({out['seconds']:.1f} s)", flush=True)
        if args.kills:
            t0 = time.time()
            out = kill_test(args.kills, args.seed, workdir, log=lambda m: print(m, flush=True))
            print(f"kills: {out['kills']} SIGKILLs over {out['campaigns']} builds of the quick preset, "
                  f"{len(out['problems'])} corrupt atlases, {len(out['differ'])} files differing from the "
                  f"uninterrupted build ({time.time() - t0:.0f} s)")
            for line in [*out["problems"], *out["differ"]][:20]:
                print("  ", line)
            found = corruption_test(workdir / "reference" / "quick")
            print("same-size corruption detected: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in found.items())
                  + f" ({sum(found.values())}/{len(found)})")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
