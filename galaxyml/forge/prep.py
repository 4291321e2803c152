"""Cleaning and standardisation of star particles before a flow sees them.

Cleaning follows GalacticFlow (Buck et al. 2024, ``Processor_cond.constraindata``): keep stars within
the 95th-percentile 3-D radius, capped at 27.7 kpc (a second 95th-percentile cut when the cap bites);
drop the 10 most metal-rich stars; keep [Fe/H] >= -8 and [O/Fe] >= -1; a galaxy needs 500 stars left.

Standardisation: per column a fixed transform, then (value - mean) / std over the training stars, both
stored with the model. The transforms are ours, chosen by held-out C2ST on the mock: asinh(x / s) for
positions (s the median |x|: cored, heavy-tailed bulges), log10 for Z (a mass fraction spanning
decades), log for age (bounded below by 0); velocities and abundances stay linear as in GalacticFlow.
NLLs are reported in this standardised space (nats per star).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from galaxyml.forge.tables import ParticleError, ParticleSet

TRANSFORMS = {"x": "asinh", "y": "asinh", "z": "asinh", "Z": "log10", "age": "log"}
"""Transform of each particle column before standardisation (others: identity)."""
AGE_FLOOR_GYR = 1e-3


@dataclass(frozen=True)
class CleanConfig:
    """GalacticFlow's outlier cuts (``percentile1/2 = 95``, ``r_max = 27.7``, 10 top-Z stars, ``N_min = 500``)."""

    r_percentile: float = 95.0
    """Stars beyond this percentile of the 3-D radius are cut (100: no cut)."""
    r_max_kpc: float = 27.7
    """Cap on the radius cut [kpc]."""
    drop_top_z: int = 10
    """The most metal-rich stars dropped (count)."""
    feh_min: float = -8.0
    ofe_min: float = -1.0
    min_particles: int = 500
    """Fewest stars a galaxy must keep to be fitted."""

    def __post_init__(self) -> None:
        if not 50 <= self.r_percentile <= 100 or self.r_max_kpc <= 0 or self.drop_top_z < 0 or self.min_particles < 10:
            raise ValueError("clean: 50 <= r_percentile <= 100, r_max_kpc > 0, drop_top_z >= 0, min_particles >= 10")


def clean(ps: ParticleSet, cfg: CleanConfig = CleanConfig()) -> tuple[ParticleSet, dict[str, float]]:
    """GalacticFlow's cuts; returns the kept stars and how many each cut removed (with the radius cut
    as ``r_max_kpc``)."""
    x = ps.data
    r = np.sqrt((x[:, :3].astype(np.float64) ** 2).sum(1))
    keep = np.ones(len(x), bool)
    removed: dict[str, float] = {}
    if cfg.r_percentile < 100:
        r_max = min(np.percentile(r, cfg.r_percentile), cfg.r_max_kpc)
        cut = r <= r_max
        if r_max == cfg.r_max_kpc:
            r_max = np.percentile(r[cut], cfg.r_percentile)
            cut &= r <= r_max
        removed["radius"] = int((~cut).sum())
        removed["r_max_kpc"] = float(r_max)
        keep &= cut
    if "Z" in ps.columns and cfg.drop_top_z:
        top = np.argsort(ps.column("Z"))[-cfg.drop_top_z:]
        removed["top_metallicity"] = int(keep[top].sum())
        keep[top] = False
    for col, lo in (("feh", cfg.feh_min), ("ofe", cfg.ofe_min)):
        if col in ps.columns:
            bad = ps.column(col) < lo
            removed[col] = int((bad & keep).sum())
            keep &= ~bad
    if keep.sum() < cfg.min_particles:
        raise ParticleError(f"only {int(keep.sum()):,} stars are left after cleaning ({len(x):,} before); a flow "
                            f"needs at least {cfg.min_particles:,}")
    return ps.subset(np.nonzero(keep)[0]), removed


def _forward(kind: str, v: np.ndarray, scale: float) -> np.ndarray:
    if kind == "asinh":
        return np.arcsinh(v / scale)
    if kind == "log10":
        return np.log10(np.maximum(v, 1e-12))
    if kind == "log":
        return np.log(np.maximum(v, AGE_FLOOR_GYR))
    return v


def _inverse(kind: str, v: np.ndarray, scale: float) -> np.ndarray:
    if kind == "asinh":
        return np.sinh(v) * scale
    if kind == "log10":
        return 10.0**v
    if kind == "log":
        return np.exp(v)
    return v


@dataclass
class Standardiser:
    """Per-column transform then standard score, fitted on training stars (scikit-learn's shape:
    ``fit`` returns self, learned state ends in ``_``)."""

    columns: tuple[str, ...]
    transforms: tuple[str, ...] = ()
    scale_: tuple[float, ...] = ()
    mean_: tuple[float, ...] = ()
    std_: tuple[float, ...] = ()

    def fit(self, data: np.ndarray) -> Standardiser:
        data = np.asarray(data, np.float64)
        self.transforms = tuple(TRANSFORMS.get(c, "identity") for c in self.columns)
        self.scale_ = tuple(float(max(np.median(np.abs(data[:, i])), 1e-6)) for i in range(data.shape[1]))
        t = self._apply(data)
        self.mean_ = tuple(float(m) for m in t.mean(0))
        self.std_ = tuple(float(max(s, 1e-8)) for s in t.std(0))
        return self

    def _apply(self, data: np.ndarray) -> np.ndarray:
        return np.column_stack([_forward(k, data[:, i], s) for i, (k, s) in
                                enumerate(zip(self.transforms, self.scale_ or (1.0,) * len(self.transforms)))])

    def transform(self, data: np.ndarray) -> np.ndarray:
        if not self.mean_:
            raise RuntimeError("Standardiser.transform before fit")
        return ((self._apply(np.asarray(data, np.float64)) - self.mean_) / self.std_).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        t = np.asarray(z, np.float64) * self.std_ + self.mean_
        return np.column_stack([_inverse(k, t[:, i], s) for i, (k, s) in
                                enumerate(zip(self.transforms, self.scale_))]).astype(np.float32)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["columns"] = list(self.columns)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Standardiser:
        return cls(tuple(d["columns"]), tuple(d["transforms"]), tuple(d["scale_"]), tuple(d["mean_"]), tuple(d["std_"]))


def sample_inside(draw, n: int, std: Standardiser, r_max_kpc: float | None, max_rounds: int = 20) -> np.ndarray:
    """``n`` standardised draws from ``draw(k)`` whose 3-D radius is within the cleaning cut ``r_max_kpc``
    (rejection sampling: the flow was fitted to stars inside it, so this is its density on that domain)."""
    if r_max_kpc is None:
        return draw(n)
    pos = [std.columns.index(c) for c in ("x", "y", "z")]
    kept: list[np.ndarray] = []
    have = 0
    for _ in range(max_rounds):
        z = draw(int((n - have) * 1.1) + 16)
        phys = std.inverse(z)
        z = z[np.sqrt((phys[:, pos].astype(np.float64) ** 2).sum(1)) <= r_max_kpc]
        kept.append(z)
        have += len(z)
        if have >= n:
            break
    return np.concatenate(kept)[:n]
