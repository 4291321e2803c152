"""What a stage is: a name, a config dataclass, the stages it reads, and one function."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("precompute")


@dataclass
class StageContext:
    """Everything a stage function gets: its config, where to write, what it reads."""

    name: str
    cfg: Any
    out: Path
    """Temporary folder to write into; renamed into place when the function returns."""
    inputs: dict[str, Path]
    """Folders of the finished stages this stage reads, by stage name (an optional input that was not
    applicable is absent)."""
    report: Callable[[int, int, str], None] = field(default=lambda step, total, message: None)
    """Report progress as (step, total, message)."""
    executor: Any = None
    """Where shard tasks run (:mod:`precompute.executor`); None: in this process."""
    scratch: Path | None = None
    """The run's folder for this stage's shards (kept across an interrupted build, removed once the stage
    is committed); None: a folder inside ``out``."""

    def shard_executor(self) -> Any:
        from precompute.executor import LocalExecutor

        return self.executor or LocalExecutor()

    def shard_folder(self) -> Path:
        return self.scratch or self.out / ".shards"

    def progress(self, step: int, total: int, message: str = "") -> None:
        self.report(step, total, message)


class StageNotApplicable(Exception):
    """Raised by a stage that has nothing to do on this survey (e.g. the catalog has no column for
    its target); the build records the reason and goes on, and the app shows it."""


StageFn = Callable[[StageContext], dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    """A pipeline stage; ``run`` writes artifacts into ``ctx.out`` and returns its metrics."""

    name: str
    config_cls: type
    inputs: tuple[str, ...]
    run: StageFn
    version: int = 1
    description: str = ""
    optional: tuple[str, ...] = ()
    """Inputs this stage can do without: when one is not applicable, the stage still runs (without it)."""
    deferred: bool = False
    """Built after the stages that do not read it, so that what can be browsed is ready sooner; a stage
    that reads it (see ``reads``) has it built first."""
    reads: Callable[[Any, set[str]], set[str]] | None = None
    """Which of its inputs this stage will read, given its config and the applicable stages built so
    far (all of its inputs when None); a deferred input it does not read is not built ahead of it, and
    the stage's hash covers only the inputs it reads."""


REGISTRY: dict[str, Stage] = {}


def register(name: str, config_cls: type, inputs: tuple[str, ...] = (), version: int = 1,
             optional: tuple[str, ...] = (), deferred: bool = False,
             reads: Callable[[Any, set[str]], set[str]] | None = None) -> Callable[[StageFn], StageFn]:
    """Decorator adding a stage function to :data:`REGISTRY` (in dependency order); ``optional`` names
    the ``inputs`` whose being not applicable does not make this stage not applicable; see
    :class:`Stage` for ``deferred`` and ``reads``."""

    def wrap(fn: StageFn) -> StageFn:
        for dep in inputs:
            if dep not in REGISTRY:
                raise RuntimeError(f"stage '{name}' reads '{dep}', which must be registered before it")
        doc = (fn.__doc__ or "").strip().splitlines()
        if set(optional) - set(inputs):
            raise RuntimeError(f"stage '{name}': optional inputs must be among its inputs")
        REGISTRY[name] = Stage(name, config_cls, tuple(inputs), fn, version, doc[0] if doc else "", tuple(optional),
                               deferred, reads)
        return fn

    return wrap


def path_fingerprint(path: str | os.PathLike) -> list:
    """Size and modification time of a file, or of every file under a folder (sorted walk): what a
    rerun compares to notice that the user's data changed in place."""
    p = os.fspath(os.path.expanduser(path))
    if os.path.isfile(p):
        st = os.stat(p)
        return [st.st_size, st.st_mtime_ns]
    if not os.path.isdir(p):
        return ["missing"]
    entries = []
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            entries.append([os.path.relpath(os.path.join(root, name), p), st.st_size, st.st_mtime_ns])
    return entries


def external_fingerprint(cfg: Any) -> dict[str, list] | None:
    """Fingerprints of the files outside the run that a stage's config names (its ``input_files()``,
    if it has one), so that editing a CSV or adding images reruns the stage; None when it names none."""
    files = [f for f in getattr(cfg, "input_files", lambda: [])() if f]
    return {f: path_fingerprint(f) for f in files} or None


def all_stages() -> dict[str, Stage]:
    """The registry with every built-in stage imported."""
    import precompute.stages  # noqa: F401  (registers the stages)

    return REGISTRY
