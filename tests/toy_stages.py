"""Tiny stages for pipeline tests (fast; one can be told to die mid-write)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import numpy as np

from precompute.stage import Stage, StageContext, StageNotApplicable

CALLS: list[str] = []


@dataclass(frozen=True)
class ACfg:
    n: int = 10
    """Rows to write."""


@dataclass(frozen=True)
class BCfg:
    scale: float = 2.0
    """Factor applied to stage a's output."""
    die: bool = False
    """Kill the process with SIGKILL halfway through writing."""


@dataclass(frozen=True)
class CCfg:
    label: str = "c"
    """Written into the output."""


A_OFFSET = [0.0]
"""Added to stage a's output: a test changes it to stand for a rebuild that does not reproduce the
last one (training on a GPU, say)."""


def run_a(ctx: StageContext) -> dict:
    CALLS.append("a")
    np.save(ctx.out / "a.npy", np.arange(ctx.cfg.n, dtype=np.float64) + A_OFFSET[0])
    return {"n": ctx.cfg.n}


def run_b(ctx: StageContext) -> dict:
    CALLS.append("b")
    a = np.load(ctx.inputs["a"] / "a.npy")
    with open(ctx.out / "b.npy", "wb") as f:
        np.save(f, a * ctx.cfg.scale)
        if ctx.cfg.die:
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return {"sum": float((a * ctx.cfg.scale).sum())}


def run_c(ctx: StageContext) -> dict:
    CALLS.append("c")
    (ctx.out / "c.txt").write_text(ctx.cfg.label)
    return {}


def toy_stages() -> dict[str, Stage]:
    return {
        "a": Stage("a", ACfg, (), run_a),
        "b": Stage("b", BCfg, ("a",), run_b),
        "c": Stage("c", CCfg, (), run_c),
    }


@dataclass(frozen=True)
class VCfg:
    applicable: bool = True
    """False: the stage is not applicable (as the vote network on a catalog without votes)."""


@dataclass(frozen=True)
class ECfg:
    source: str = "auto"
    """``auto``: v when v is applicable, else d; ``d``: always d (as ``embeddings.source = 'encoder'``)."""


def run_v(ctx: StageContext) -> dict:
    CALLS.append("v")
    if not ctx.cfg.applicable:
        raise StageNotApplicable("told so")
    (ctx.out / "v.txt").write_text("v")
    return {}


def run_d(ctx: StageContext) -> dict:
    CALLS.append("d")
    np.save(ctx.out / "d.npy", np.arange(ctx.cfg.n, dtype=np.float64))
    return {}


def run_e(ctx: StageContext) -> dict:
    CALLS.append("e")
    source = "v" if ctx.cfg.source == "auto" and "v" in ctx.inputs else "d"
    (ctx.out / "source.txt").write_text(source)
    return {"source": source}


def deferred_stages() -> dict[str, Stage]:
    """d is deferred; e reads v when v is applicable, else d (as the embeddings read zoobot or the encoder)."""
    return {
        "d": Stage("d", ACfg, (), run_d, deferred=True),
        "v": Stage("v", VCfg, (), run_v),
        "e": Stage("e", ECfg, ("d", "v"), run_e, optional=("v", "d"),
                   reads=lambda cfg, built: {"v"} if cfg.source == "auto" and "v" in built else {"d"}),
    }
