"""Progress events: JSON lines appended to ``<run>/progress.jsonl``, and the reader the app uses.

Every line has ``event``, ``stage``, ``step``, ``total``, ``message`` and ``time`` (Unix seconds).
Events: ``start``, ``stage_start``, ``progress``, ``stage_skip``, ``stage_done``, ``done``,
``failed`` (with ``error``), ``cancelled``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from galaxyml.atlas import PROGRESS

TERMINAL = ("done", "failed", "cancelled")


class ProgressLog:
    """Appends events to a run's progress file; ``progress`` events are throttled."""

    def __init__(self, run_dir: Path, min_interval_s: float = 0.25):
        self.path = run_dir / PROGRESS
        self.min_interval_s = min_interval_s
        self._last = 0.0

    def emit(self, event: str, stage: str = "", step: int = 0, total: int = 0, message: str = "", **extra: Any) -> None:
        now = time.time()
        if event == "progress" and 0 < step < total and now - self._last < self.min_interval_s:
            return
        self._last = now
        line = {"event": event, "stage": stage, "step": step, "total": total, "message": message, "time": now, **extra}
        with open(self.path, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_events(run_dir: Path, tail_bytes: int = 1 << 20) -> list[dict[str, Any]]:
    """Events of the latest build in this run (from its last ``start`` event)."""
    path = run_dir / PROGRESS
    if not path.is_file():
        return []
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - tail_bytes))
        lines = f.read().decode(errors="replace").splitlines()
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn first line after seeking, or a line cut by a kill
    starts = [i for i, e in enumerate(events) if e.get("event") == "start"]
    return events[starts[-1]:] if starts else events


@dataclass
class BuildProgress:
    """The state of the latest build, summarised from its events."""

    state: str = "idle"
    """idle | running | done | failed | cancelled | stopped (ended without a final event)."""
    preset: str = ""
    stages: list[str] = field(default_factory=list)
    stage: str = ""
    step: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    started: float = 0.0
    updated: float = 0.0
    finished_stages: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Overall fraction done, counting each stage equally."""
        if self.state == "done":
            return 1.0
        if not self.stages:
            return 0.0
        within = self.step / self.total if self.total else 0.0
        done = len([s for s in self.finished_stages if s in self.stages])
        return min(1.0, (done + (within if self.stage not in self.finished_stages else 0.0)) / len(self.stages))


def summarise(events: list[dict[str, Any]], alive: bool) -> BuildProgress:
    """Fold events into a :class:`BuildProgress`; ``alive`` says whether the builder still runs."""
    p = BuildProgress()
    for e in events:
        kind = e.get("event")
        p.updated = e.get("time", p.updated)
        if kind == "start":
            p = BuildProgress(state="running", preset=e.get("preset", ""), stages=list(e.get("stages", [])),
                              started=e.get("time", 0.0), updated=e.get("time", 0.0))
        elif kind in ("stage_start", "progress"):
            p.stage, p.step, p.total, p.message = e["stage"], e.get("step", 0), e.get("total", 0), e.get("message", "")
        elif kind in ("stage_done", "stage_skip"):
            p.finished_stages.append(e["stage"])
            p.stage, p.message = e["stage"], e.get("message", "")
        elif kind in TERMINAL:
            p.state, p.message, p.error = kind, e.get("message", ""), e.get("error", "")
    if p.state == "running" and not alive:
        p.state = "stopped"
        p.error = "the build process ended without finishing (killed or crashed); start it again to resume"
    return p
