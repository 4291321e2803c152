"""Fault injection against real builds: SIGKILL at random moments, same-size corruption of every kind of
artifact, simultaneous builders, and a stale lock whose pid now belongs to another process.

The kills are seeded (``GALAXYML_FAULT_SEED``, default 0); ``bench/faults.py`` runs more of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from galaxyml.atlas import Atlas
from precompute import lock
from precompute.config import read_preset, resolve_configs
from precompute.jobs import build_status, cancel_build
from precompute.runner import run_pipeline
from precompute.stage import all_stages

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import faults  # noqa: E402  (bench/faults.py: the harness shared with the benchmark)

SEED = int(os.environ.get("GALAXYML_FAULT_SEED", "0"))


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_files(quick_home, tmp_path):
    out = faults.kill_test(20, SEED, tmp_path, log=print, reference_run=quick_home / "quick")
    assert out["kills"] >= 20
    assert out["problems"] == []  # after every kill: the manifest reads, nothing ready differs, all loads
    assert out["differ"] == []  # the resumed builds end with the uninterrupted build's files, byte for byte


def test_same_size_corruption_of_every_artifact_kind_is_detected_and_rebuilt(quick_copy):
    run_dir = quick_copy / "quick"
    found = faults.corruption_test(run_dir)
    assert found == {kind: True for kind in [*faults.ARTIFACT_KINDS, "manifest"]}
    digest = Atlas.open(run_dir).manifest["stages"]["index"]["files"]["embeddings.faiss"]
    faults.corrupt_same_size(run_dir / "index" / "embeddings.faiss")
    stages = all_stages()
    result = run_pipeline(quick_copy, "quick", stages, resolve_configs(stages, read_preset("quick")), preset="quick")
    assert [s for s, a in result.actions.items() if a == "ran"] == ["index"]
    atlas = Atlas.open(run_dir)
    assert not atlas.stale and atlas.manifest["stages"]["index"]["files"]["embeddings.faiss"] == digest


def test_forty_builders_starting_at_once_never_share_the_lock(tmp_path):
    out = faults.lock_test(rounds=10, procs=40, workdir=tmp_path)
    assert out["workers_failed"] == 0
    assert out["double_holders"] == 0
    assert out["acquisitions"] >= out["rounds"]  # and someone gets it every round


def _holder(run_dir: Path) -> subprocess.Popen:
    """A process that takes the run's lock, prints 'held', and keeps it for a minute."""
    return subprocess.Popen([sys.executable, "-c", "import time, pathlib; from precompute import lock; "
                             f"lock.acquire(pathlib.Path({str(run_dir)!r})); print('held', flush=True); "
                             "time.sleep(60)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_stale_lock_naming_a_reused_pid_is_taken_over_and_that_process_never_signalled(tmp_path):
    import toy_stages

    run_dir = tmp_path / "toy"
    run_dir.mkdir()
    other = _sleeper()  # an unrelated process that now has the pid a dead builder recorded
    try:
        (run_dir / ".lock").write_text("")
        (run_dir / ".lock.json").write_text(
            f'{{"pid": {other.pid}, "start_time": {lock.process_start_time(other.pid)}, "started": 0}}')
        assert lock.read_lock(run_dir) is None and build_status(run_dir).state != "running"
        assert cancel_build(run_dir) is False
        stages = toy_stages.toy_stages()
        run_pipeline(tmp_path, "toy", stages, resolve_configs(stages, {}))  # the build takes the lock over
        assert Atlas.open(run_dir).ready("c")

        # A live builder holds the lock while its record names the other process: still never signalled.
        holder = _holder(run_dir)
        try:
            assert holder.stdout.readline().strip() == "held"
            (run_dir / ".lock.json").write_text(
                f'{{"pid": {other.pid}, "start_time": {lock.process_start_time(other.pid)}, "started": 0}}')
            assert cancel_build(run_dir) is False
            assert other.poll() is None and holder.poll() is None
        finally:
            holder.kill()
            holder.wait()
    finally:
        other.kill()
        other.wait()


def test_cancel_signals_the_builder_that_holds_the_lock(tmp_path):
    run_dir = tmp_path / "toy"
    run_dir.mkdir()
    holder = _holder(run_dir)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock.read_lock(run_dir)["pid"] == holder.pid
        assert cancel_build(run_dir) is True
        assert holder.wait(timeout=10) == -15  # SIGTERM
    finally:
        holder.kill()
        holder.wait()
    assert lock.read_lock(run_dir) is None
