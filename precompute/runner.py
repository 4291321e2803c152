"""Run stages into a run directory: hashing, skip-on-rerun, atomic commits, manifest, progress.

A stage's hash covers its name, version, canonical config and the hashes of the stages it reads,
so a changed config reruns that stage and everything downstream of it, and nothing else. Stages are
built in registry order, except deferred ones (the encoder), which are built last unless a stage
about to be built reads them.
"""

from __future__ import annotations

import contextlib
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
    MANIFEST, TMP_PREFIX, AtlasError, commit_stage_dir, empty_manifest, read_manifest, sha256_file, stage_files,
    stage_is_ready, write_manifest,
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
SHARDS_DIR = ".shards"
"""Folder of a run holding the shards of stages being built (see :mod:`precompute.shards`)."""


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


class _Build:
    """One build of a run: the state the steps share, and one method per step.

    ``build(name)`` is the heart of it: skip the stage if it is unchanged, else build the deferred
    inputs it reads, record it not applicable if an input it needs is, else run it into a temporary
    folder and commit that folder and its manifest entry."""

    def __init__(self, run_dir: Path, stages: dict[str, Stage], configs: dict[str, Any], force: tuple[str, ...],
                 on_demand: frozenset[str], emit: Callable[..., None], executor: Any = None):
        self.run_dir, self.stages, self.configs, self.force, self.on_demand = run_dir, stages, configs, force, on_demand
        self.executor = executor
        self.emit = emit
        self.manifest: dict[str, Any] = {}
        self.result = RunResult(run_dir)
        self.current = ""
        self.pending = [n for n, st in stages.items() if st.deferred or n in on_demand]
        """Deferred stages (built after the rest unless read sooner) and on-demand ones (only if read)."""
        self.built: set[str] = set()  # applicable stages that are ready in this build
        self.changed: set[str] = set()  # rebuilt here with other outputs: what reads them is rebuilt too
        self.read_sets: dict[str, set[str]] = {}  # what each stage with ``reads`` reads in this build
        self.stale: dict[str, list[str]] = {}  # finished stages whose files differ from their record
        self.count = iter(range(1, len(stages) + 1))
        self.total = len(stages) - len(on_demand & stages.keys())  # grows if an on-demand stage is read
        self.hashes: dict[str, dict[str, Any]] = {}

    def open(self, run: str, preset: str, source: dict[str, Any] | None) -> None:
        """Clear a killed build's leftovers, load (or recover) the manifest and check the finished files."""
        for leftover in self.run_dir.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self.manifest = _load_or_new_manifest(self.run_dir)
        self.manifest.update(run=run, preset=preset, versions=library_versions(), stage_order=list(self.stages),
                             config={k: asdict(v) for k, v in self.configs.items()})
        if source is not None:
            self.manifest["source"] = source
        save_manifest(self.run_dir, self.manifest)
        self.stale = integrity.verify_stages(self.run_dir, self.manifest)  # rebuilt, never reused
        self.hashes = stage_hashes(self.stages, self.configs)

    def run(self) -> RunResult:
        for name in [n for n in self.stages if n not in self.pending]:
            self.build(name)
        while self.pending:
            name = self.pending.pop(0)
            if name in self.on_demand:
                self.result.actions[name] = "not needed"
                self.emit("stage_skip", stage=name, message=f"{name}: not read by the stages asked for, left as it was")
            else:
                self.build(name)
        return self.result

    def build(self, name: str) -> None:
        self.current, stage = name, self.stages[name]
        reads = set(stage.inputs) if stage.reads is None else stage.reads(self.configs[name], self.built)
        if stage.reads is not None:  # its hash, and those after it, cover only the inputs it reads
            self.read_sets[name] = reads
            self.hashes = stage_hashes(self.stages, self.configs, self.read_sets)
        if self.unchanged(name, reads):
            return
        for dep in [d for d in self.pending if d in reads]:  # a deferred input this stage reads: build it now
            self.pending.remove(dep)
            self.total += dep in self.on_demand
            self.build(dep)
            self.current = name
        absent = {d for d in stage.inputs
                  if d not in self.stages or self.manifest["stages"].get(d, {}).get("not_applicable")}
        missing = [d for d in stage.inputs if d in absent and d not in stage.optional]
        if missing:
            self.not_applicable(name, f"its input {missing[0]} is not applicable",
                                f"not applicable (input {missing[0]} is not)")
            return
        self.run_stage(name, absent | set(self.pending))  # deferred and not read: not built yet

    def unchanged(self, name: str, reads: set[str]) -> bool:
        """Keep the stage if its hash, inputs and files are as recorded (and it was not forced)."""
        entry = self.manifest["stages"].get(name, {})
        if name in self.stale:
            why = f"{name}: files changed on disk since it was built ({integrity.describe({name: self.stale[name]})}); rebuilding it"
            log.warning(why)
            self.emit("progress", stage=name, step=0, total=1, message=why)
            return False
        if name in self.force or reads & self.changed or entry.get("hash") != self.hashes[name]["hash"] or not (
                entry.get("not_applicable") or stage_is_ready(self.run_dir, self.manifest, name)):
            return False
        self.result.actions[name] = "skipped"
        if not entry.get("not_applicable"):
            self.built.add(name)
        self.emit("stage_skip", stage=name, message=f"{name}: unchanged, kept")
        return True

    def not_applicable(self, name: str, why: str, message: str) -> None:
        """Record that a stage has nothing to do on this survey (no folder; loaders treat it as absent)."""
        stage = self.stages[name]
        shutil.rmtree(self.run_dir / name, ignore_errors=True)  # an earlier build's folder no longer applies
        self.manifest["stages"][name] = {**self.hashes[name], "version": stage.version,
                                         "config": asdict(self.configs[name]), "files": {}, "bytes": {},
                                         "metrics": {}, "not_applicable": why, "finished": time.time()}
        save_manifest(self.run_dir, self.manifest)
        self.result.actions[name] = "not applicable"
        self.emit("stage_skip", stage=name, message=f"{name}: {message}")

    def run_stage(self, name: str, absent: set[str]) -> None:
        """Run the stage into a temporary folder; commit it, or leave everything as it was."""
        stage = self.stages[name]
        self.emit("stage_start", stage=name, step=0, total=1, message=f"{name}: starting ({next(self.count)}/{self.total})")
        # The old entry and folder stay until the new folder is complete: a stage that fails or is
        # killed leaves them as they were. Between the folder's rename and the manifest's write, the
        # old entry's sha256 no longer match, so no loader serves the pair.
        tmp = self.run_dir / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        scratch = self.run_dir / SHARDS_DIR / f"{name}-{self.hashes[name]['hash'][:16]}"
        for old in (self.run_dir / SHARDS_DIR).glob(f"{name}-*"):  # shards of another config or input: never reused
            if old != scratch:
                shutil.rmtree(old, ignore_errors=True)
        ctx = StageContext(
            name=name, cfg=self.configs[name], out=tmp,
            inputs={dep: self.run_dir / dep for dep in stage.inputs if dep not in absent},
            report=lambda step, total, message: self.emit("progress", stage=name, step=step, total=total,
                                                          message=message),
            executor=self.executor, scratch=scratch,
        )
        t0 = time.time()
        try:
            metrics = stage.run(ctx) or {}
        except BuildCancelled:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except StageNotApplicable as e:
            shutil.rmtree(tmp, ignore_errors=True)
            self.not_applicable(name, str(e), f"not applicable: {e}")
            return
        except Exception as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StageFailed(f"stage '{name}' failed: {e.__class__.__name__}: {e}") from e
        self.commit(name, tmp, metrics, time.time() - t0)
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            scratch.parent.rmdir()  # when no other stage's shards are left

    def commit(self, name: str, tmp: Path, metrics: dict[str, Any], seconds: float) -> None:
        """Rename the finished folder into place, then record its files' sha256 in the manifest."""
        stage = self.stages[name]
        old_files = self.manifest["stages"].get(name, {}).get("files")
        files = stage_files(tmp)
        commit_stage_dir(self.run_dir, name, tmp)
        digests = {rel: sha256_file(self.run_dir / name / rel) for rel in files}
        self.manifest["stages"][name] = {
            **self.hashes[name], "version": stage.version, "config": asdict(self.configs[name]),
            "files": digests,
            "bytes": {rel: (self.run_dir / name / rel).stat().st_size for rel in files},
            "seconds": round(seconds, 3), "metrics": json.loads(json.dumps(metrics, default=float)),
            "finished": time.time(),
        }
        save_manifest(self.run_dir, self.manifest)
        integrity.remember(self.run_dir, name, digests)
        self.stale.pop(name, None)
        self.built.add(name)
        if digests != old_files:  # a rebuild with new outputs (say --force on a GPU)
            self.changed.add(name)
        self.result.actions[name], self.result.seconds[name] = "ran", seconds
        self.emit("stage_done", stage=name, step=1, total=1, message=f"{name}: done in {seconds:.1f} s",
                  seconds=seconds, metrics=metrics)


def run_pipeline(
    home: Path, run: str, stages: dict[str, Stage], configs: dict[str, Any], preset: str = "",
    on_event: Callable[[dict[str, Any]], None] | None = None, force: tuple[str, ...] = (),
    on_demand: frozenset[str] = frozenset(), source: dict[str, Any] | None = None, executor: Any = None,
) -> RunResult:
    """Build ``stages`` into ``home/run``, skipping those whose hash is unchanged.

    ``source`` (the command line's source options, see :mod:`precompute.source`) is recorded in the
    manifest, so that a later build reuses it. Stages named in ``on_demand`` are built only when another
    stage reads them (``--only`` uses this, so that an optional input nothing reads in this build is left
    as it was). A stage rebuilt with other outputs than before (``force``) has the stages that read it
    rebuilt as well. ``executor`` runs the stages' shard tasks (:mod:`precompute.executor`; None: in this
    process); shards are kept in ``<run>/.shards`` until their stage is committed.

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

    t_run = time.time()
    job = _Build(run_dir, stages, configs, tuple(force), on_demand, emit, executor)
    try:
        job.open(run, preset, source)
        emit("start", message=f"building '{run}' ({preset or 'custom'})", stages=list(stages), preset=preset,
             pid=os.getpid())
        result = job.run()
        emit("done", message=f"'{run}' is complete ({time.time() - t_run:.1f} s)")
        return result
    except BuildCancelled as e:
        emit("cancelled", stage=job.current, message=str(e))
        raise
    except Exception as e:
        emit("failed", stage=job.current, message="build failed",
             error=str(e).splitlines()[0] if str(e) else e.__class__.__name__)
        raise
    finally:
        restore_signals()
        lock.release(run_dir)
