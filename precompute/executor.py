"""Where a stage's embarrassingly parallel work runs: in this process (``local``) or as Ray tasks
(``ray``, Moritz et al. 2018) on a cluster, one task per shard of galaxies.

A shard task is a plain module-level function of plain arguments (paths, row ranges) that writes its
own file atomically (:func:`precompute.shards.write_npy_atomic`) and returns a small record, so

- the same function runs on either executor, on the same shards with the same thread count, and the
  two give byte-identical files;
- a worker lost mid-shard leaves no half-written file (Ray retries the task; a rerun of the build
  finds the finished shards and runs only the others).

Ray is an optional dependency (``pip install -r requirements-ray.txt``). Workers import this
repository's modules, so on a multi-machine cluster every node needs the code and the run folder on a
shared filesystem (see the README, "Running on a Ray cluster").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class ExecutorError(RuntimeError):
    """The executor cannot run (Ray missing, the cluster unreachable) or a task failed on it."""


class LocalExecutor:
    """Every task in this process, one after another."""

    name = "local"

    def map(self, fn: Callable[..., Any], jobs: Sequence[tuple]) -> Iterator[Any]:
        for args in jobs:
            yield fn(*args)

    def close(self) -> None:
        pass


class RayExecutor:
    """Tasks on a Ray cluster: the one at ``address`` (``ray.init(address=...)``, e.g. ``auto`` or
    ``ray://head:10001``; ``$RAY_ADDRESS`` when unset) or, without one, a Ray instance started on this
    machine for the build (``num_cpus`` workers; all CPUs by default). Results are yielded as tasks finish."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_task: float = 1.0, max_retries: int = 3,
                 num_cpus: int | None = None):
        try:
            import ray
        except ImportError as e:
            raise ExecutorError("--executor ray needs Ray, which the default install leaves out: "
                                "pip install -r requirements-ray.txt") from e
        self.ray, self.cpus, self.retries = ray, cpus_per_task, max_retries
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.started = not ray.is_initialized()
        if self.started and address and address != "auto":
            _check_reachable(address)
        if self.started:
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}}
            try:
                local = {} if address else {"num_cpus": num_cpus, "include_dashboard": False}
                ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False, **local)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                raise ExecutorError(f"cannot connect to {where}: {e}. Start it with `ray start --head` (and "
                                    "`ray start --address=HEAD:6379` on each worker); a cluster started so uses token "
                                    "authentication: set RAY_AUTH_MODE=token here too. Or build with --executor local") from e

    def map(self, fn: Callable[..., Any], jobs: Sequence[tuple]) -> Iterator[Any]:
        remote = self.ray.remote(num_cpus=self.cpus, max_retries=self.retries)(fn)
        pending = {remote.remote(*args): args for args in jobs}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                args = pending.pop(ref)
                try:
                    yield self.ray.get(ref)
                except self.ray.exceptions.RayError as e:
                    for other in pending:
                        self.ray.cancel(other)
                    raise ExecutorError(f"a Ray task failed ({fn.__name__}{args[-3:]}): {e}") from e

    def workers(self) -> int:
        """CPUs the cluster offers (what can run at once)."""
        return int(self.ray.cluster_resources().get("CPU", 0))

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a cluster address nothing answers at (``ray.init`` would keep retrying for minutes)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"the Ray address {address!r} is not host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ExecutorError(f"cannot reach the Ray cluster at {address!r} ({e}); start it with `ray start --head`, "
                            "or build with --executor local") from e


def make_executor(name: str, address: str | None = None) -> LocalExecutor | RayExecutor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise ExecutorError(f"unknown executor {name!r}: use 'local' or 'ray'")
