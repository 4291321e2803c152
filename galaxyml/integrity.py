"""Are a run's files the ones its manifest recorded? Every file of a finished stage is checked against
the sha256 the build recorded, so that a file overwritten in place (even with bytes of the same size)
marks its stage stale instead of being served.

Hashing is paid once per file version: a digest is cached with the file's size, modification and
change times and inode (``<run>/.verified.json``, and in memory), and a file is hashed again only when
one of those moved. The change time cannot be set from user space, so an overwrite that restores the
modification time is caught too. ``bench/verify.py`` prints what a first and a cached check cost.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from galaxyml.atlas import sha256_file, write_json_atomic

CACHE = ".verified.json"

_memory: dict[str, list] = {}
_lock = threading.Lock()


def _signature(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load_cache(run_dir: Path) -> dict[str, list]:
    try:
        data = json.loads((run_dir / CACHE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5} if isinstance(data, dict) else {}


def _save_cache(run_dir: Path, cache: dict[str, list]) -> None:
    try:
        write_json_atomic(run_dir / CACHE, cache)
    except OSError:
        pass  # a read-only atlas is checked again next time; nothing else depends on the cache


def file_digest(path: Path, cache: dict[str, list], key: str) -> str | None:
    """sha256 of ``path`` (None if it is missing), from ``cache[key]`` while the file's signature holds."""
    try:
        sig = _signature(os.stat(path))
    except OSError:
        return None
    hit = cache.get(key) or _memory.get(str(path))
    if hit and hit[:4] == sig:
        cache[key] = hit
        return hit[4]
    digest = sha256_file(path)
    cache[key] = _memory[str(path)] = [*sig, digest]
    return digest


def remember(run_dir: Path, stage: str, digests: dict[str, str]) -> None:
    """Record digests the build has just computed for ``stage``'s files, so opening it costs no hashing."""
    with _lock:
        cache = _load_cache(run_dir)
        for rel, digest in digests.items():
            path = run_dir / stage / rel
            try:
                cache[f"{stage}/{rel}"] = _memory[str(path)] = [*_signature(os.stat(path)), digest]
            except OSError:
                continue
        _save_cache(run_dir, cache)


def stage_mismatches(run_dir: Path, stage: str, entry: dict[str, Any], cache: dict[str, list] | None = None
                     ) -> list[str]:
    """Files of ``stage`` that are missing or whose sha256 differs from the manifest ``entry``."""
    own = cache is None
    cache = _load_cache(run_dir) if own else cache
    bad = [rel for rel, digest in entry.get("files", {}).items()
           if file_digest(run_dir / stage / rel, cache, f"{stage}/{rel}") != digest]
    if own:
        _save_cache(run_dir, cache)
    return bad


def verify_stages(run_dir: Path, manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Every finished stage whose files differ from the manifest, with the files that do."""
    run_dir = Path(run_dir)
    with _lock:
        cache = _load_cache(run_dir)
        before = json.dumps(cache, sort_keys=True)
        stale = {}
        for stage, entry in manifest.get("stages", {}).items():
            if entry.get("not_applicable"):
                continue
            bad = stage_mismatches(run_dir, stage, entry, cache)
            if bad:
                stale[stage] = bad
        known = {f"{s}/{rel}" for s, e in manifest.get("stages", {}).items() for rel in e.get("files", {})}
        cache = {k: v for k, v in cache.items() if k in known}  # forget files of stages rebuilt since
        if json.dumps(cache, sort_keys=True) != before:
            _save_cache(run_dir, cache)
    return stale


def describe(stale: dict[str, list[str]]) -> str:
    """One line naming the stale stages and a file of each."""
    parts = [f"{s} ({files[0]}{f' and {len(files) - 1} more' if len(files) > 1 else ''})" for s, files in stale.items()]
    return ", ".join(parts)
