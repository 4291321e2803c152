"""Shard tasks on the local and Ray executors: an interrupted build redoes only its missing shards, no
half-written shard is read, Ray missing or unreachable is a clear error, and a two-node Ray cluster on
this machine writes the same files as the local executor."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from precompute.cli import main
from precompute.executor import ExecutorError, LocalExecutor, RayExecutor
from precompute.shards import run_sharded, shard_path


def rows_task(start: int, stop: int, path: str, fail_at: int = -1) -> dict:
    """A shard task: rows [start, stop) of a known array; raises on the shard starting at ``fail_at`` (a worker
    killed mid-build)."""
    if start == fail_at:
        raise RuntimeError("worker lost")
    from precompute.shards import write_npy_atomic

    from pathlib import Path
    write_npy_atomic(Path(path), np.arange(start * 3, stop * 3, dtype=np.float32).reshape(-1, 3))
    return {"start": start}


def test_an_interrupted_sharded_build_redoes_only_missing_or_damaged_shards(tmp_path):
    scratch, out = tmp_path / "shards", tmp_path / "x.npy"
    args = lambda fail: (lambda a, b, p: (a, b, str(p), fail))  # noqa: E731
    with pytest.raises(RuntimeError, match="worker lost"):
        run_sharded(LocalExecutor(), rows_task, args(20), 50, 3, 10, scratch, out, lambda *a: None)
    assert sorted(p.name for p in scratch.iterdir()) == [shard_path(scratch, 0, 10).name, shard_path(scratch, 10, 20).name]
    # One finished shard is cut short on disk, and a killed task left its temporary file.
    damaged = shard_path(scratch, 10, 20)
    damaged.write_bytes(damaged.read_bytes()[:100])
    (scratch / f".{shard_path(scratch, 30, 40).name}.dead.tmp").write_bytes(b"half")
    steps = []
    records = run_sharded(LocalExecutor(), rows_task, args(-1), 50, 3, 10, scratch, out,
                          lambda i, n, msg: steps.append(msg))
    assert [r["computed"] for r in records] == [False, True, True, True, True]
    assert steps[0] == "1 of 5 shards already done, 4 to compute"
    np.testing.assert_array_equal(np.load(out), np.arange(150, dtype=np.float32).reshape(50, 3))
    assert not list(scratch.glob(".*.tmp"))


def test_ray_missing_or_unreachable_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as in the default install
    with pytest.raises(ExecutorError, match="pip install -r requirements-ray.txt"):
        RayExecutor()
    monkeypatch.undo()
    if shutil.which("ray") is None:
        pytest.skip("Ray is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    code = main(["--preset", "quick", "--home", str(tmp_path), "--only", "survey", "--executor", "ray",
                 "--ray-address", f"127.0.0.1:{port}", "--quiet"])
    assert code == 2 and "cannot reach the Ray cluster" in capsys.readouterr().err
    assert not (tmp_path / "quick" / "survey").exists()


@pytest.mark.slow
def test_a_two_node_ray_cluster_writes_the_same_files_as_the_local_executor(tmp_path):
    if shutil.which("ray") is None:
        pytest.skip("Ray is not installed (pip install -r requirements-ray.txt)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    home = tmp_path / "runs"
    common = [sys.executable, "-m", "precompute", "--preset", "quick", "--home", str(home), "--only", "embeddings",
              "--set", "embeddings.source=encoder", "--set", "embeddings.shard_rows=300", "--quiet"]
    subprocess.run(common, check=True, env=env, timeout=600)
    manifest = home / "quick" / "manifest.json"
    local = json.loads(manifest.read_text())["stages"]
    assert local["embeddings"]["metrics"]["executor"] == "local"
    try:
        subprocess.run(["ray", "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard",
                        "false", "--disable-usage-stats"], check=True, env=env, timeout=120, capture_output=True)
        subprocess.run(["ray", "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--disable-usage-stats"],
                       check=True, env=env, timeout=120, capture_output=True)
        subprocess.run([*common, "--force", "embeddings", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"],
                       check=True, env=env, timeout=600)
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, timeout=120, capture_output=True)
    ray = json.loads(manifest.read_text())["stages"]
    assert ray["embeddings"]["metrics"]["executor"] == "ray"
    assert len(ray["embeddings"]["metrics"]["shards"]) == 4  # 1,000 galaxies in shards of 300
    assert {n: e["files"] for n, e in ray.items()} == {n: e["files"] for n, e in local.items()}
    assert not (home / "quick" / ".shards").exists()
