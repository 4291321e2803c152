"""Run stages into a run directory: hashing, skip-on-rerun, atomic commits, manifest, progress.

A stage's hash covers its name, version, canonical config and the hashes of the stages it reads,
so a changed config reruns that stage and everything downstream of it, and nothing else. Stages are
built in registry order, except deferred ones (the encoder), which are built last unless a stage
about to be built reads them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from galaxyml import integrity
from galaxyml.atlas import (
    TMP_PREFIX, commit_stage_dir, empty_manifest, read_manifest, sha256_file, stage_files, stage_is_ready,
    write_manifest, AtlasError, MANIFEST,
)
from precompute import lock
from precompute.config import canonical_json, sha256_text
from precompute.progress import ProgressLog
from precompute.stage import Stage, StageContext, StageNotApplicable, external_fingerprint, log

LIBRARIES = ("numpy", "torch", "faiss-cpu", "astropy", "pandas", "scikit-learn", "safetensors")


class BuildCancelled(Exception):
    """The build was asked to stop (SIGTERM / SIGINT)."""


class StageFailed(RuntimeError):
    """A stage raised; the message names the stage and the cause."""


def stage_hashes(stages: dict[str, Stage], configs: dict[str, Any],
                 reads: dict[str, set[str]] | None = None) -> dict[str, dict[str, Any]]:
    """For every stage: config_hash, input_hashes and the combined hash, in registry order. ``reads``
    restricts the inputs a stage's hash covers to those it reads (see ``Stage.reads``), so that a change
    to an input it does not read leaves it, and what follows it, as it was."""
    reads = reads or {}
    out: dict[str, dict[str, Any]] = {}
    for name, stage in stages.items():
        described = {"stage": name, "version": stage.version, "config": configs[name]}
        external = external_fingerprint(configs[name])
        if external:  # only stages that read the user's files carry it, so other hashes stay as they were
            described["external_files"] = external
        config_hash = sha256_text(canonical_json(described))
        inputs = {dep: out[dep]["hash"] for dep in stage.inputs  # an optional input may be left out
                  if dep in out and (name not in reads or dep in reads[name])}
        out[name] = {
            "config_hash": config_hash,
            "input_hashes": inputs,
            "hash": sha256_text(canonical_json({"config": config_hash, "inputs": inputs})),
        }
    return out


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass
class RunResult:
    """What :func:`run_pipeline` did: per stage, 'ran', 'skipped', 'not applicable' or 'not needed'
    (an ``on_demand`` stage nothing read), and seconds."""

    run_dir: Path
    actions: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_run_dir(home: Path, run: str) -> Path:
    if not run or "/" in run or run.startswith("."):
        raise ValueError(f"run name {run!r} must be a plain folder name (letters, digits, - and _)")
    run_dir = home / run
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{uuid.uuid4().hex[:6]}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"cannot write to {run_dir} ({e.strerror}); set GALAXYML_HOME to a writable folder") from e
    return run_dir


BACKUP = "manifest.backup.json"


def save_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest and its backup copy, each atomically."""
    write_manifest(run_dir / MANIFEST, manifest)
    write_manifest(run_dir / BACKUP, manifest)


def _verified(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Keep only the stages whose files are on disk with the recorded sha256."""
    for name in list(manifest["stages"]):
        entry = manifest["stages"][name]
        if not entry.get("not_applicable") and (
                not stage_is_ready(run_dir, manifest, name) or integrity.stage_mismatches(run_dir, name, entry)):
            del manifest["stages"][name]
    return manifest


def _load_or_new_manifest(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / MANIFEST).exists():
        return empty_manifest(run_dir.name)
    try:
        return read_manifest(run_dir)
    except AtlasError:
        # A corrupt manifest is set aside (never deleted); finished stages are recovered from the
        # backup copy after checking every file's sha256, and only the rest is rebuilt.
        broken = run_dir / f"manifest.corrupt-{int(time.time())}.json"
        os.replace(run_dir / MANIFEST, broken)
        log.warning("manifest was corrupt; kept as %s", broken.name)
        try:
            return _verified(run_dir, read_manifest(run_dir, BACKUP))
        except AtlasError:
            return empty_manifest(run_dir.name)


def _install_signal_handlers() -> Callable[[], None]:
    def handler(signum, frame):
        raise BuildCancelled(f"cancelled by signal {signal.Signals(signum).name}")

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, handler)
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _not_applicable(manifest: dict, run_dir: Path, name: str, stage: Stage, h: dict, configs: dict, why: str) -> None:
    """Record that a stage has nothing to do on this survey (no folder; loaders treat it as absent)."""
    shutil.rmtree(run_dir / name, ignore_errors=True)  # an earlier build's folder no longer applies
    manifest["stages"][name] = {**h, "version": stage.version, "config": asdict(configs[name]), "files": {},
                                "bytes": {}, "metrics": {}, "not_applicable": why, "finished": time.time()}
    save_manifest(run_dir, manifest)


def run_pipeline(
    home: Path, run: str, stages: dict[str, Stage], configs: dict[str, Any], preset: str = "",
    on_event: Callable[[dict[str, Any]], None] | None = None, force: tuple[str, ...] = (),
    on_demand: frozenset[str] = frozenset(), source: dict[str, Any] | None = None,
) -> RunResult:
    """Build ``stages`` into ``home/run``, skipping those whose hash is unchanged.

    ``source`` (the command line's source options, see :mod:`precompute.source`) is recorded in the
    manifest, so that a later build reuses it. Stages named in ``on_demand`` are built only when another stage reads them (``--only`` uses this,
    so that an optional input nothing reads in this build is left as it was). A stage rebuilt with other
    outputs than before (``force``) has the stages that read it rebuilt as well.

    Raises :class:`precompute.lock.BuildLocked` if another process builds this run,
    :class:`StageFailed` if a stage raises, :class:`BuildCancelled` on SIGTERM/SIGINT.
    """
    on_demand = frozenset(on_demand) - set(force)  # a stage asked for by name is built
    run_dir = prepare_run_dir(home, run)
    lock.acquire(run_dir, preset=preset)
    restore_signals = _install_signal_handlers()
    progress = ProgressLog(run_dir)

    def emit(event: str, **kw: Any) -> None:
        progress.emit(event, **kw)
        if on_event:
            on_event({"event": event, **kw})

    result = RunResult(run_dir)
    t_run = time.time()
    current = ""
    try:
        for stale in run_dir.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build
        manifest = _load_or_new_manifest(run_dir)
        manifest.update(run=run, preset=preset, versions=library_versions(), stage_order=list(stages),
                        config={k: asdict(v) for k, v in configs.items()})
        if source is not None:
            manifest["source"] = source
        save_manifest(run_dir, manifest)
        stale = integrity.verify_stages(run_dir, manifest)  # files changed since built: rebuilt, never reused
        hashes = stage_hashes(stages, configs)
        emit("start", message=f"building '{run}' ({preset or 'custom'})", stages=list(stages), preset=preset, pid=os.getpid())
        # Deferred stages are built after the rest unless read sooner; on-demand ones only if read.
        pending = [n for n, st in stages.items() if st.deferred or n in on_demand]
        built: set[str] = set()  # applicable stages that are ready in this build
        changed: set[str] = set()  # stages rebuilt here with other outputs: what reads them is rebuilt too
        read_sets: dict[str, set[str]] = {}  # what each stage with ``reads`` reads in this build
        count = iter(range(1, len(stages) + 1))
        total = len(stages) - len(on_demand & stages.keys())  # grows if one is read

        def build(name: str) -> None:
            nonlocal current, hashes, total
            current, stage = name, stages[name]
            reads = set(stage.inputs) if stage.reads is None else stage.reads(configs[name], built)
            if stage.reads is not None:  # its hash, and those after it, cover only the inputs it reads
                read_sets[name] = reads
                hashes = stage_hashes(stages, configs, read_sets)
            h = hashes[name]
            entry = manifest["stages"].get(name, {})
            if name in stale:
                why = f"{name}: files changed on disk since it was built ({integrity.describe({name: stale[name]})}); rebuilding it"
                log.warning(why)
                emit("progress", stage=name, step=0, total=1, message=why)
            elif name not in force and not (reads & changed) and entry.get("hash") == h["hash"] and (
                    entry.get("not_applicable") or stage_is_ready(run_dir, manifest, name)):
                result.actions[name] = "skipped"
                if not entry.get("not_applicable"):
                    built.add(name)
                emit("stage_skip", stage=name, message=f"{name}: unchanged, kept")
                return
            for dep in [d for d in pending if d in reads]:  # a deferred input this stage reads: build it now
                pending.remove(dep)
                total += dep in on_demand
                build(dep)
                current = name
            absent = {d for d in stage.inputs if d not in stages or manifest["stages"].get(d, {}).get("not_applicable")}
            missing = [d for d in stage.inputs if d in absent and d not in stage.optional]
            if missing:
                _not_applicable(manifest, run_dir, name, stage, h, configs, f"its input {missing[0]} is not applicable")
                result.actions[name] = "not applicable"
                emit("stage_skip", stage=name, message=f"{name}: not applicable (input {missing[0]} is not)")
                return
            absent |= set(pending)  # deferred and not read: not built yet in this build
            emit("stage_start", stage=name, step=0, total=1, message=f"{name}: starting ({next(count)}/{total})")
            # The old entry and folder stay until the new folder is complete: a stage that fails or is
            # killed leaves them as they were. Between the folder's rename and the manifest's write, the
            # old entry's sha256 no longer match, so no loader serves the pair.
            old_files = manifest["stages"].get(name, {}).get("files")
            tmp = run_dir / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            ctx = StageContext(
                name=name, cfg=configs[name], out=tmp,
                inputs={dep: run_dir / dep for dep in stage.inputs if dep not in absent},
                report=lambda step, total, message, _n=name: emit("progress", stage=_n, step=step, total=total, message=message),
            )
            t0 = time.time()
            try:
                metrics = stage.run(ctx) or {}
            except BuildCancelled:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            except StageNotApplicable as e:
                shutil.rmtree(tmp, ignore_errors=True)
                _not_applicable(manifest, run_dir, name, stage, h, configs, str(e))
                result.actions[name] = "not applicable"
                emit("stage_skip", stage=name, message=f"{name}: not applicable: {e}")
                return
            except Exception as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StageFailed(f"stage '{name}' failed: {e.__class__.__name__}: {e}") from e
            seconds = time.time() - t0
            files = stage_files(tmp)
            commit_stage_dir(run_dir, name, tmp)
            digests = {rel: sha256_file(run_dir / name / rel) for rel in files}
            manifest["stages"][name] = {
                **h, "version": stage.version, "config": asdict(configs[name]),
                "files": digests,
                "bytes": {rel: (run_dir / name / rel).stat().st_size for rel in files},
                "seconds": round(seconds, 3), "metrics": json.loads(json.dumps(metrics, default=float)),
                "finished": time.time(),
            }
            save_manifest(run_dir, manifest)
            integrity.remember(run_dir, name, digests)
            stale.pop(name, None)
            built.add(name)
            if manifest["stages"][name]["files"] != old_files:  # a rebuild with new outputs (say --force on a GPU)
                changed.add(name)
            result.actions[name], result.seconds[name] = "ran", seconds
            emit("stage_done", stage=name, step=1, total=1, message=f"{name}: done in {seconds:.1f} s", seconds=seconds, metrics=metrics)

        for name in [n for n in stages if n not in pending]:
            build(name)
        while pending:
            name = pending.pop(0)
            if name in on_demand:
                result.actions[name] = "not needed"
                emit("stage_skip", stage=name, message=f"{name}: not read by the stages asked for, left as it was")
            else:
                build(name)
        emit("done", message=f"'{run}' is complete ({time.time() - t_run:.1f} s)")
        return result
    except BuildCancelled as e:
        emit("cancelled", stage=current, message=str(e))
        raise
    except Exception as e:
        emit("failed", stage=current, message="build failed", error=str(e).splitlines()[0] if str(e) else e.__class__.__name__)
        raise
    finally:
        restore_signals()
        lock.release(run_dir)
