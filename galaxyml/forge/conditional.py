"""Conditional flows over many galaxies: each galaxy's context is GalacticFlow's conditions (total
stellar mass, median and 10th-percentile stellar age, mean metallicity), optionally its redshift, and
the 16-d latent of its image; one flow learns p(star | context) from the training galaxies and
samples stars for any context, including galaxies it never saw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from galaxyml.data.mock.particles import particle_conditions
from galaxyml.forge.prep import Standardiser
from galaxyml.models.flows import FlowSpec, load_flow, sample

CONDITIONS = ("log_mstar", "age_median_gyr", "age_p10_gyr", "log_mean_Z")
"""GalacticFlow's conditions (mean metallicity as log10 of the mass fraction)."""
CONDITION_UNITS = {"log_mstar": "log10 Msun", "age_median_gyr": "Gyr", "age_p10_gyr": "Gyr",
                   "log_mean_Z": "log10 mass fraction", "z": ""}


def galaxy_conditions(particles: np.ndarray, log_mstar: float) -> dict[str, float]:
    """GalacticFlow's conditions of one galaxy from its (cleaned) stars in the 10-D layout."""
    c = particle_conditions(particles, log_mstar)
    return {"log_mstar": c["log_mstar"], "age_median_gyr": c["age_median_gyr"], "age_p10_gyr": c["age_p10_gyr"],
            "log_mean_Z": float(np.log10(max(c["mean_Z"], 1e-12)))}


@dataclass
class ContextScaler:
    """Names of the context entries (conditions, extras, ``latent_0..``) and their training mean / std."""

    names: tuple[str, ...]
    mean_: tuple[float, ...] = ()
    std_: tuple[float, ...] = ()
    low_: tuple[float, ...] = ()
    high_: tuple[float, ...] = ()
    """Range over the training galaxies (outside it a flow extrapolates)."""

    def fit(self, raw: np.ndarray) -> ContextScaler:
        raw = np.asarray(raw, np.float64)
        self.mean_ = tuple(raw.mean(0).tolist())
        self.std_ = tuple(np.maximum(raw.std(0), 1e-8).tolist())
        self.low_, self.high_ = tuple(raw.min(0).tolist()), tuple(raw.max(0).tolist())
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, np.float64) - self.mean_) / self.std_).astype(np.float32)

    def outside(self, raw: np.ndarray) -> list[str]:
        """Names of the entries of one raw context vector outside the training range."""
        raw = np.asarray(raw, np.float64)
        return [n for n, v, lo, hi in zip(self.names, raw, self.low_, self.high_) if not lo <= v <= hi]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "mean_": list(self.mean_), "std_": list(self.std_),
                "low_": list(self.low_), "high_": list(self.high_)}

    @classmethod
    def from_dict(cls, d: dict) -> ContextScaler:
        return cls(tuple(d["names"]), tuple(d["mean_"]), tuple(d["std_"]), tuple(d["low_"]), tuple(d["high_"]))


def context_vector(conditions: dict[str, float], extras: dict[str, float], latent: np.ndarray | None,
                   names: tuple[str, ...]) -> np.ndarray:
    """The raw context of one galaxy in the order of ``names``."""
    values = {**conditions, **extras}
    if latent is not None:
        values.update({f"latent_{i}": float(v) for i, v in enumerate(np.ravel(latent))})
    missing = [n for n in names if n not in values]
    if missing:
        raise KeyError(f"the context lacks {', '.join(missing)}")
    return np.array([values[n] for n in names], np.float64)


@dataclass
class ConditionalForge:
    """A trained conditional flow with what turns physical stars and contexts into its inputs."""

    flow: object
    spec: FlowSpec
    stars: Standardiser
    context: ContextScaler

    @classmethod
    def load(cls, path: str | Path) -> ConditionalForge:
        flow, spec, extra = load_flow(path)
        return cls(flow, spec, Standardiser.from_dict(extra["standardiser"]), ContextScaler.from_dict(extra["context"]))

    def sample(self, raw_context: np.ndarray, n: int, seed: int | None = None, progress=None) -> np.ndarray:
        """(n, D) stars in physical units for one galaxy's raw context."""
        z = sample(self.flow, n, self.context.transform(raw_context[None])[0], progress=progress, seed=seed)
        return self.stars.inverse(z)
