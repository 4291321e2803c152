"""One builder per run: a lock file holding the builder's pid, created with O_EXCL."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from galaxyml.atlas import LOCK


class BuildLocked(RuntimeError):
    """Another live process is building this run."""


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False
    return True


def read_lock(run_dir: Path) -> dict | None:
    """The lock's content if a live process holds it, else None."""
    path = run_dir / LOCK
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return info if pid_alive(int(info.get("pid", -1))) else None


def acquire(run_dir: Path, pid: int | None = None, **info) -> Path:
    """Create the lock for ``pid`` (default: this process); a stale lock is taken over.

    A lock already naming ``pid`` (written by the app that spawned this process) is accepted.
    """
    pid = os.getpid() if pid is None else pid
    path = run_dir / LOCK
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(run_dir)
            if holder is None:
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if int(holder["pid"]) == pid:
                return path
            if str(holder["pid"]) == os.environ.get("GALAXYML_LOCK_PARENT"):
                rewrite(run_dir, pid, **info)  # the app that spawned us held it for us
                return path
            started = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
            raise BuildLocked(f"run '{run_dir.name}' is already being built by process {holder['pid']} "
                              f"(started {started}); cancel it or wait for it to finish") from None
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": pid, "started": time.time(), **info}, f)
        return path
    raise BuildLocked(f"could not take the lock {path}")


def rewrite(run_dir: Path, pid: int, **info) -> None:
    """Hand the lock to another pid (the spawned builder), atomically."""
    path = run_dir / LOCK
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": pid, "started": time.time(), **info}))
    os.replace(tmp, path)


def release(run_dir: Path, pid: int | None = None) -> None:
    """Remove the lock if it belongs to ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    path = run_dir / LOCK
    try:
        if int(json.loads(path.read_text()).get("pid", -1)) == pid:
            path.unlink()
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        pass
