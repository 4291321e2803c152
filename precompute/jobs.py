"""Start, follow and cancel builds as separate OS processes (used by the app's sidebar).

A build started here runs ``python -m precompute`` in its own session, so it survives reruns,
page switches and browser refreshes, and a cancel stops its whole process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from precompute import lock
from precompute.config import ConfigError, preset_path, read_preset
from precompute.progress import TERMINAL, BuildProgress, ProgressLog, read_events, summarise
from precompute.source import recorded, user_survey

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG_FILE = "build.log"


def build_status(run_dir: Path) -> BuildProgress:
    """State of the latest build of ``run_dir`` (running only while its process lives)."""
    alive = lock.read_lock(run_dir) is not None
    status = summarise(read_events(run_dir), alive)
    if alive and status.state != "running":
        status.state, status.message = "running", "starting…"
    if status.state == "idle" and (run_dir / LOG_FILE).is_file():
        tail = [line for line in (run_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
                if line.startswith("error:")]
        if tail:
            status.state, status.error = "failed", tail[-1].removeprefix("error:").strip()
    return status


def _refuse_replacing_user_data(run_dir: Path, source: str) -> None:
    """A preset build into a run made from the user's own files would replace its survey: refuse."""
    built = user_survey(recorded(run_dir)) or {}
    if built.get("source", "mock") not in ("mock", source):
        raise ConfigError(f"atlas '{run_dir.name}' was built from your files (survey.source = {built['source']}, "
                          f"{built.get('dataset_path', '')}); this preset would replace them with the mock universe. "
                          f"Choose another run name, or rebuild it from the command line with its --source options.")


def start_build(home: Path, run: str, preset: str, overrides: tuple[str, ...] = ()) -> int:
    """Spawn a build of ``preset`` into ``home/run``; returns the builder's pid.

    Raises :class:`precompute.lock.BuildLocked` if this run is being built, and
    :class:`precompute.config.ConfigError` for an unknown or malformed preset.
    """
    preset_file = preset_path(preset)
    wanted = read_preset(preset).get("survey", {}).get("source", "mock")  # a malformed preset fails here
    _refuse_replacing_user_data(home / run, wanted)
    from precompute.runner import prepare_run_dir

    run_dir = prepare_run_dir(home, run)
    lock.acquire(run_dir, preset=preset)  # the child inherits the locked file and takes the lock over
    fd = lock.held_fd(run_dir)
    preset_arg = str(preset_file.resolve()) if preset_file.suffix == ".toml" and Path(preset).suffix else preset
    cmd = [sys.executable, "-m", "precompute", "--preset", preset_arg, "--run", run, "--home", str(home), "--quiet"]
    for o in overrides:
        cmd += ["--set", o]
    env = {**os.environ, lock.FD_ENV: str(fd), "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        with open(run_dir / LOG_FILE, "w") as log_file:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(fd,))
    except OSError:
        lock.release(run_dir)
        raise
    lock.hand_over(run_dir, proc.pid, preset=preset)
    return proc.pid


def cancel_build(run_dir: Path) -> bool:
    """Ask the build of ``run_dir`` to stop (SIGTERM to its process group, or to it alone when it does not
    lead one); False if none runs or the holder cannot be identified for certain.

    The signal goes only to the process that holds the lock: its pid, with the start time it recorded,
    and with the run's lock file open; never to a process that was given a dead builder's pid."""
    holder = lock.read_lock(run_dir)
    pid = (holder or {}).get("pid")
    if not pid or lock.process_start_time(pid) != holder.get("start_time") or not lock.holds_lock_file(pid, run_dir):
        return False
    events = read_events(run_dir)
    started = bool(events) and events[-1].get("event") not in TERMINAL  # else the last events are an older build's
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    if not started:  # stopped while still loading: it records nothing itself, so the run would look untouched
        ProgressLog(run_dir).emit("cancelled", message="cancelled before its first stage")
    return True
