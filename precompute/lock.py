"""One builder per run: an exclusive ``flock`` on ``<run>/.lock``.

The kernel gives the lock to one open file at a time and drops it when its holder exits, however it
exits (``kill -9`` included), so there is no window between creating the file and holding it and no
stale lock to clean up; the file itself stays. Who holds it (pid, the process's start time, preset) is
written to ``<run>/.lock.json`` *after* the lock is held, and trusted only while the lock is held and
that pid still has that start time, so that a pid the system has since given to another process is
never taken for the builder.

The app starts a builder holding the lock for it: the child inherits the locked file (its descriptor
number in ``$GALAXYML_LOCK_FD``), so the lock never leaves the pair of them.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from galaxyml.atlas import LOCK, write_json_atomic

HOLDER = ".lock.json"
FD_ENV = "GALAXYML_LOCK_FD"
WAIT_FOR_HOLDER_S = 1.0
"""How long a builder that finds the lock held waits for the holder to write who it is (a prober takes
the lock shared for an instant; a builder that has just taken it has not written its details yet)."""

_held: dict[Path, int] = {}
"""Locks this process holds: run folder -> descriptor."""


class BuildLocked(RuntimeError):
    """Another live process is building this run."""


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return Path(f"/proc/{pid}").exists() or not Path("/proc/self").exists()


def process_start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None
    if there is no such process. A pid and its start time name one process, even after pid reuse."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _key(run_dir: Path) -> Path:
    return Path(run_dir).resolve()


def _open(run_dir: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    return os.open(Path(run_dir) / LOCK, flags | os.O_CLOEXEC, 0o644)


def _record(run_dir: Path) -> dict | None:
    try:
        info = json.loads((Path(run_dir) / HOLDER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _is_current(info: dict | None) -> bool:
    """The record names a live process with the recorded start time."""
    if not info or not isinstance(info.get("pid"), int):
        return False
    start = process_start_time(info["pid"])
    return pid_alive(info["pid"]) and (start is None or start == info.get("start_time"))


def _write_record(run_dir: Path, pid: int, **info) -> None:
    write_json_atomic(Path(run_dir) / HOLDER, {"pid": pid, "start_time": process_start_time(pid),
                                               "started": time.time(), **info})


def is_held(run_dir: Path) -> bool:
    """True while some process holds the run's lock (probed with a shared lock taken for an instant)."""
    if _key(run_dir) in _held:
        return True
    try:
        fd = _open(run_dir, os.O_RDONLY)
    except OSError:  # no lock file (never built), or no such folder
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


def read_lock(run_dir: Path) -> dict | None:
    """Who builds this run: the holder's details while the lock is held (``pid`` None while a builder
    that has just taken it has not yet written them), else None."""
    if not is_held(run_dir):
        return None
    info = _record(run_dir)
    return info if _is_current(info) else {"pid": None, "start_time": None, "started": None}


def acquire(run_dir: Path, **info) -> Path:
    """Take the run's lock for this process and record its details; raises :class:`BuildLocked` if
    another process holds it. Inside a builder started by the app, the inherited lock is taken over."""
    key = _key(run_dir)
    path = Path(run_dir) / LOCK
    if key in _held:
        return path
    inherited = os.environ.pop(FD_ENV, None)
    fd = _inherited_fd(path, inherited) if inherited else None
    fd = _open(run_dir) if fd is None else fd
    deadline = time.monotonic() + WAIT_FOR_HOLDER_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # re-taking an inherited lock succeeds at once
            break
        except BlockingIOError:
            holder = _record(run_dir)
            if _is_current(holder) or time.monotonic() > deadline:
                os.close(fd)
                raise BuildLocked(_locked_message(run_dir, holder if _is_current(holder) else None)) from None
            time.sleep(0.01)
    _held[key] = fd
    _write_record(run_dir, os.getpid(), **info)
    return path


def _inherited_fd(path: Path, value: str) -> int | None:
    """The descriptor named by ``$GALAXYML_LOCK_FD`` if it is open on this run's lock file."""
    try:
        fd = int(value)
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            os.set_inheritable(fd, False)
            return fd
    except (ValueError, OSError):
        pass
    return None


def _locked_message(run_dir: Path, holder: dict | None) -> str:
    if holder is None:
        return (f"run '{Path(run_dir).name}' is already being built by a process that is starting up; "
                f"cancel it or wait for it to finish")
    started = time.strftime("%H:%M:%S", time.localtime(holder.get("started") or 0))
    return (f"run '{Path(run_dir).name}' is already being built by process {holder['pid']} "
            f"(started {started}); cancel it or wait for it to finish")


def hand_over(run_dir: Path, pid: int, **info) -> None:
    """Record ``pid`` (a child that inherited the locked file) as the holder and drop this process's
    descriptor without unlocking: the lock stays with the child."""
    fd = _held.pop(_key(run_dir))
    _write_record(run_dir, pid, **info)
    os.close(fd)


def held_fd(run_dir: Path) -> int:
    """The descriptor of a lock this process holds (to pass to a child)."""
    return _held[_key(run_dir)]


def release(run_dir: Path) -> None:
    """Drop this process's lock on the run (its details first, so that no reader sees them stale)."""
    fd = _held.pop(_key(run_dir), None)
    if fd is None:
        return
    info = _record(run_dir)
    if info and info.get("pid") == os.getpid():
        (Path(run_dir) / HOLDER).unlink(missing_ok=True)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def holds_lock_file(pid: int, run_dir: Path) -> bool:
    """True if process ``pid`` has the run's lock file open (checked in ``/proc/<pid>/fd``)."""
    try:
        target = os.stat(Path(run_dir) / LOCK)
        entries = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in entries:
        try:
            if os.path.samestat(os.stat(fd), target):
                return True
        except OSError:
            continue
    return False
