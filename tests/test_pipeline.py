"""The stage runner: hashing, skip-on-rerun, rerun-on-change, atomicity, locks, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import toy_stages
from galaxyml.atlas import MANIFEST, Atlas, AtlasError
from precompute import lock
from precompute.config import ConfigError, read_preset, resolve_configs
from precompute.lock import BuildLocked
from precompute.progress import read_events
from precompute.runner import run_pipeline, stage_hashes
from precompute.stage import all_stages

ROOT = Path(__file__).resolve().parents[1]


def build(home: Path, overrides: list[str] = (), run: str = "toy"):
    stages = toy_stages.toy_stages()
    toy_stages.CALLS.clear()
    configs = resolve_configs(stages, {}, list(overrides))
    return run_pipeline(home, run, stages, configs, preset="toy")


def test_rerun_skips_unchanged_stages_with_identical_hashes(tmp_path):
    build(tmp_path)
    assert toy_stages.CALLS == ["a", "b", "c"]
    first = json.loads((tmp_path / "toy" / MANIFEST).read_text())
    result = build(tmp_path)
    assert toy_stages.CALLS == []
    assert set(result.actions.values()) == {"skipped"}
    second = json.loads((tmp_path / "toy" / MANIFEST).read_text())
    for name in ("a", "b", "c"):
        assert second["stages"][name]["hash"] == first["stages"][name]["hash"]
        assert second["stages"][name]["files"] == first["stages"][name]["files"]


def test_changed_config_reruns_only_that_stage_and_its_dependents(tmp_path):
    build(tmp_path)
    build(tmp_path, ["a.n=12"])
    assert toy_stages.CALLS == ["a", "b"]  # c does not read a
    build(tmp_path, ["a.n=12", "b.scale=3.0"])
    assert toy_stages.CALLS == ["b"]
    atlas = Atlas.open(tmp_path / "toy")
    assert atlas.metrics("b")["sum"] == pytest.approx(3.0 * sum(range(12)))


def test_hash_depends_on_config_version_and_inputs():
    stages = toy_stages.toy_stages()
    base = stage_hashes(stages, resolve_configs(stages, {}))
    changed = stage_hashes(stages, resolve_configs(stages, {}, ["a.n=11"]))
    assert changed["a"]["hash"] != base["a"]["hash"]
    assert changed["b"]["config_hash"] == base["b"]["config_hash"]
    assert changed["b"]["hash"] != base["b"]["hash"]  # its input changed
    assert changed["c"]["hash"] == base["c"]["hash"]


def _run_toy_subprocess(home: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
        import toy_stages
        from precompute.config import resolve_configs
        from precompute.runner import run_pipeline
        stages = toy_stages.toy_stages()
        run_pipeline(__import__('pathlib').Path({str(home)!r}), 'toy', stages,
                     resolve_configs(stages, {{}}, {overrides!r}), preset='toy')
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_stage_killed_mid_write_leaves_nothing_a_loader_accepts(tmp_path):
    proc = _run_toy_subprocess(tmp_path, ["b.die=true"])
    assert proc.returncode == -9
    run_dir = tmp_path / "toy"
    leftovers = list(run_dir.glob(".tmp-b-*"))
    assert leftovers and (leftovers[0] / "b.npy").exists()  # the partial write is there...
    atlas = Atlas.open(run_dir)
    assert atlas.ready("a") and not atlas.ready("b")  # ...but no loader accepts it
    with pytest.raises(AtlasError, match="no finished 'b' stage"):
        atlas.stage_dir("b")
    assert not (run_dir / "b").exists()
    # The stale lock of the killed process does not block the next run, which completes b.
    result = build(tmp_path)
    assert result.actions == {"a": "skipped", "b": "ran", "c": "ran"}
    assert not list(run_dir.glob(".tmp-*"))
    assert Atlas.open(run_dir).ready("b")


def test_second_concurrent_build_is_refused(tmp_path):
    run_dir = tmp_path / "toy"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from precompute import lock; "
                               f"lock.acquire(__import__('pathlib').Path({str(run_dir)!r})); print('held', flush=True); "
                               "time.sleep(30)"], cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BuildLocked, match=f"already being built by process {holder.pid}"):
            build(tmp_path)
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock; its details stay behind on disk
        holder.wait()
    assert (run_dir / ".lock.json").exists() and lock.read_lock(run_dir) is None
    build(tmp_path)  # nobody holds the lock any more: the next build takes it


def test_corrupt_manifest_gives_clear_error_and_rebuild_recovers_finished_stages(tmp_path):
    build(tmp_path)
    manifest = tmp_path / "toy" / MANIFEST
    manifest.write_text("{not json")
    with pytest.raises(AtlasError, match="corrupt"):
        Atlas.open(tmp_path / "toy")
    result = build(tmp_path)
    assert set(result.actions.values()) == {"skipped"}  # verified from the backup: nothing lost
    assert Atlas.open(tmp_path / "toy").ready("c")
    assert list((tmp_path / "toy").glob("manifest.corrupt-*.json"))


def test_corrupt_manifest_and_damaged_stage_rebuilds_only_that_stage(tmp_path):
    build(tmp_path)
    (tmp_path / "toy" / MANIFEST).write_text("")
    data = (tmp_path / "toy" / "b" / "b.npy").read_bytes()
    (tmp_path / "toy" / "b" / "b.npy").write_bytes(data[:-8] + b"\0" * 8)  # same size, other content
    result = build(tmp_path)
    assert result.actions == {"a": "skipped", "b": "ran", "c": "skipped"}


def test_missing_manifest_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="no finished stage yet"):
        Atlas.open(tmp_path / "empty")


def test_progress_events_have_the_documented_fields(tmp_path):
    build(tmp_path)
    events = read_events(tmp_path / "toy")
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    for e in events:
        assert {"stage", "step", "total", "message", "time"} <= set(e)


def test_failing_stage_reports_error_and_keeps_finished_stages(tmp_path):
    build(tmp_path)
    before = json.loads((tmp_path / "toy" / MANIFEST).read_text())["stages"]
    stages = toy_stages.toy_stages()

    def broken(ctx):
        raise ValueError("catalog has no column 'z'")

    stages["c"] = stages["c"].__class__("c", toy_stages.CCfg, (), broken)
    from precompute.runner import StageFailed

    with pytest.raises(StageFailed, match="stage 'c' failed: ValueError: catalog has no column 'z'"):
        run_pipeline(tmp_path, "toy", stages, resolve_configs(stages, {}, ["c.label=x"]))
    assert read_events(tmp_path / "toy")[-1]["event"] == "failed"
    atlas = Atlas.open(tmp_path / "toy")
    # The failed rebuild of c leaves its earlier build, entry and files, as they were; nothing is unfinished.
    assert atlas.ready("a") and atlas.ready("b") and atlas.ready("c") and not atlas.stale
    assert atlas.manifest["stages"] == before
    assert not list((tmp_path / "toy").glob(".tmp-*"))


def test_unknown_keys_and_bad_values_name_the_field():
    stages = all_stages()
    with pytest.raises(ConfigError, match=r"\[sae\] has no key 'kk' \(valid keys: expansion, k,"):
        resolve_configs(stages, {"sae": {"kk": 3}})
    with pytest.raises(ConfigError, match=r"\[survey\] n_galaxies = 'many': expected int"):
        resolve_configs(stages, {"survey": {"n_galaxies": "many"}})
    with pytest.raises(ConfigError, match="survey.n_galaxies must be positive"):
        resolve_configs(stages, {"survey": {"n_galaxies": -5}})
    with pytest.raises(ConfigError, match="unknown table"):
        resolve_configs(stages, {"sea": {}})
    with pytest.raises(ConfigError, match="too small for the PSF"):
        resolve_configs(stages, {"survey": {"image_size_px": 8}})


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"no preset named 'nope' \(available: demo, full, large, quick"):
        read_preset("nope")


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "precompute", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_cli_bad_input_gives_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[survey\nn_galaxies = 3")
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["--preset", "nope", "--home", str(tmp_path)], "no preset named 'nope'"),
        (["--preset", str(bad), "--home", str(tmp_path)], "is not valid TOML"),
        (["--preset", "quick", "--set", "sae.k=0", "--home", str(tmp_path)], "sae.k"),
        (["--preset", "quick", "--home", str(blocker / "runs")], "cannot write to"),
    ]
    for args, expected in cases:
        proc = _cli(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_help_lists_presets_and_examples():
    proc = _cli("--help")
    assert proc.returncode == 0
    assert "--preset" in proc.stdout and "python -m precompute --preset quick" in proc.stdout


def test_every_shipped_preset_resolves():
    from precompute.config import preset_names

    stages = all_stages()
    assert {"quick", "demo", "large"} <= set(preset_names())
    for name in preset_names():
        configs = resolve_configs(stages, read_preset(name))
        assert set(configs) == set(stages)
    large = resolve_configs(stages, read_preset("large"))
    assert sum(large["matryoshka"].group_sizes) == 2048 and large["matryoshka"].k == 64


@pytest.mark.parametrize("v_applicable", [True, False])
def test_a_deferred_stage_is_built_last_unless_read_and_only_what_is_read_is_hashed(tmp_path, v_applicable):
    stages = toy_stages.deferred_stages()

    def run(overrides):
        toy_stages.CALLS.clear()
        configs = resolve_configs(stages, {}, [f"v.applicable={str(v_applicable).lower()}", *overrides])
        return run_pipeline(tmp_path, "deferred", stages, configs, preset="toy")

    run([])
    assert toy_stages.CALLS == (["v", "e", "d"] if v_applicable else ["v", "d", "e"])
    assert Atlas.open(tmp_path / "deferred").metrics("e")["source"] == ("v" if v_applicable else "d")
    run(["d.n=12"])
    assert toy_stages.CALLS == (["d"] if v_applicable else ["d", "e"])  # e reruns only when it reads d


@pytest.mark.parametrize("v_applicable", [True, False])
def test_only_builds_an_optional_input_just_when_it_is_read(tmp_path, v_applicable):
    from precompute.cli import on_demand_stages

    stages = toy_stages.deferred_stages()
    configs = resolve_configs(stages, {}, [f"v.applicable={str(v_applicable).lower()}"])
    on_demand = on_demand_stages(stages, ["e"], configs)
    assert on_demand == {"d"}  # the deferred input that e reads only when v is not applicable
    assert on_demand_stages(stages, ["d", "e"], configs) == set() and on_demand_stages(stages, [], configs) == set()
    toy_stages.CALLS.clear()
    result = run_pipeline(tmp_path, "only", stages, configs, preset="toy", on_demand=on_demand)
    assert toy_stages.CALLS == (["v", "e"] if v_applicable else ["v", "d", "e"])
    assert result.actions["d"] == ("not needed" if v_applicable else "ran")

    # e told to read d (as embeddings.source = 'encoder'): v, an input nobody reads, is not built at all
    configs = resolve_configs(stages, {}, [f"v.applicable={str(v_applicable).lower()}", "e.source=d"])
    on_demand = on_demand_stages(stages, ["e"], configs)
    assert on_demand == {"v"}
    toy_stages.CALLS.clear()
    result = run_pipeline(tmp_path, "only-d", stages, configs, preset="toy", on_demand=on_demand)
    assert toy_stages.CALLS == ["d", "e"] and result.actions["v"] == "not needed"
    assert Atlas.open(tmp_path / "only-d").metrics("e")["source"] == "d"


@pytest.mark.parametrize(("source", "left_out"), [("auto", {"encoder"}), ("encoder", {"zoobot"}),
                                                   ("zoobot", {"encoder"})])
def test_only_features_leaves_out_the_embedding_network_it_does_not_read(source, left_out):
    """``--only features``: the network that does not make the embeddings is not trained (the encoder
    is still built if the vote network turns out not applicable, see the toy test above)."""
    from precompute.cli import on_demand_stages, select_stages

    stages = select_stages(all_stages(), ["features"], [])
    configs = resolve_configs(stages, read_preset("demo"), [f"embeddings.source={source}"])
    assert {"zoobot", "encoder"} <= set(stages)
    assert on_demand_stages(stages, ["features"], configs) == left_out


def test_force_rebuilds_what_reads_a_stage_only_when_its_outputs_change(tmp_path, monkeypatch):
    stages = toy_stages.toy_stages()
    configs = resolve_configs(stages, {}, [])
    run_pipeline(tmp_path, "f", stages, configs, preset="toy")
    toy_stages.CALLS.clear()
    result = run_pipeline(tmp_path, "f", stages, configs, preset="toy", force=("a",))
    assert toy_stages.CALLS == ["a"] and result.actions["b"] == "skipped"  # the same outputs: b still holds
    monkeypatch.setattr(toy_stages, "A_OFFSET", [1.0])
    toy_stages.CALLS.clear()
    run_pipeline(tmp_path, "f", stages, configs, preset="toy", force=("a",))
    assert toy_stages.CALLS == ["a", "b"]  # new outputs: b is rebuilt from them
    b = Atlas.open(tmp_path / "f")
    assert b.metrics("b")["sum"] == pytest.approx(2.0 * (np.arange(10) + 1.0).sum())


def test_a_stage_named_by_force_is_built_even_if_only_on_demand(tmp_path):
    stages = toy_stages.deferred_stages()
    configs = resolve_configs(stages, {}, [])
    toy_stages.CALLS.clear()
    result = run_pipeline(tmp_path, "fd", stages, configs, preset="toy", on_demand=frozenset({"d"}), force=("d",))
    assert "d" in toy_stages.CALLS and result.actions["d"] == "ran"


def test_a_file_overwritten_with_same_size_garbage_marks_its_stage_stale_and_the_rerun_rebuilds_it(tmp_path):
    build(tmp_path)
    run_dir = tmp_path / "toy"
    target = run_dir / "b" / "b.npy"
    st = target.stat()
    data = target.read_bytes()
    target.write_bytes(data[:-8] + b"\xff" * 8)  # same size, values changed
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its modification time put back
    atlas = Atlas.open(run_dir)
    assert atlas.stale == {"b": ["b.npy"]} and not atlas.ready("b") and atlas.ready("a") and atlas.ready("c")
    with pytest.raises(AtlasError, match="changed on disk since it was built"):
        atlas.load_npy("b", "b.npy")
    result = build(tmp_path)
    assert result.actions == {"a": "skipped", "b": "ran", "c": "skipped"}  # same outputs: c is kept
    assert target.read_bytes() == data and not Atlas.open(run_dir).stale


def test_an_open_atlas_notices_a_file_changed_after_it_was_opened(tmp_path):
    build(tmp_path)
    atlas = Atlas.open(tmp_path / "toy")
    assert atlas.ready("c")
    path = tmp_path / "toy" / "c" / next(iter(atlas.manifest["stages"]["c"]["files"]))
    path.write_bytes(bytes(len(path.read_bytes())))
    assert "c" in atlas.verify() and not atlas.ready("c")


def test_verification_hashes_each_file_version_once(tmp_path, monkeypatch):
    from galaxyml import integrity

    build(tmp_path)
    calls = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or real(p))
    integrity._memory.clear()
    Atlas.open(tmp_path / "toy")
    assert calls == []  # the build recorded its digests with the files' signatures
    (tmp_path / "toy" / "a" / "a.npy").touch()
    Atlas.open(tmp_path / "toy")
    Atlas.open(tmp_path / "toy")
    assert [p.name for p in calls] == ["a.npy"]  # hashed again once, after it was touched
