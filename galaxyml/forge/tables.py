"""Star-particle tables in: the mock's particles, ``.npy`` arrays in GalacticFlow's column order, and
the text tables of Illustris / IllustrisTNG galaxy cutouts, converted to physical units.

Every reader returns a :class:`ParticleSet` in the GalacticFlow layout (Buck et al. 2024) restricted
to the dimensions the file has: x, y, z [kpc], vx, vy, vz [km/s], Z [metal mass fraction], [Fe/H],
[O/Fe] [dex], age [Gyr]. A dimension a table lacks is left out, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.cosmology import FlatLambdaCDM

from galaxyml.data.mock.particles import PARTICLE_COLUMNS, PARTICLE_UNITS

UNITS = dict(zip(PARTICLE_COLUMNS, PARTICLE_UNITS))
ILLUSTRIS_COLUMNS = ("x", "y", "z", "vx", "vy", "vz", "mass", "a_form", "Z")
"""Column order of an Illustris / TNG cutout text table: positions [ckpc/h], velocities [km/s sqrt(a)],
mass [1e10 Msun/h], formation time [scale factor; <= 0 marks a wind-phase gas cell], metallicity
[metal mass fraction]."""
ILLUSTRIS_OMEGA_M = 0.2726
"""Omega_m of Illustris-1 (WMAP-9, h = 0.704)."""
TNG_OMEGA_M = 0.3089
"""Omega_m of IllustrisTNG (Planck 2015, h = 0.6774)."""
Z_FLOOR = 1e-7
"""Metal mass fractions below this (primordial stars, Z = 0) are raised to it so that log10(Z) exists."""
MAX_PARTICLES = 20_000_000


class ParticleError(ValueError):
    """A particle file cannot be used; the message says what is wrong and what would fix it."""


@dataclass
class ParticleSet:
    """Star particles of one galaxy in physical units (columns a subset of ``PARTICLE_COLUMNS``)."""

    data: np.ndarray
    """(n, d) float32."""
    columns: tuple[str, ...]
    mass_msun: np.ndarray | None = None
    """(n,) particle masses [Msun] when the file has them (equal masses assumed otherwise)."""
    notes: list[str] = field(default_factory=list)
    """What reading did to the file (rows dropped and why, units converted), for the user to read."""

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[1] != len(self.columns):
            raise ParticleError(f"particles must be (n, {len(self.columns)}), got {self.data.shape}")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(UNITS[c] for c in self.columns)

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.columns.index(name)]

    def subset(self, rows: np.ndarray) -> ParticleSet:
        mass = None if self.mass_msun is None else self.mass_msun[rows]
        return ParticleSet(self.data[rows], self.columns, mass, list(self.notes))


def _drop_nonfinite(data: np.ndarray, notes: list[str], what: str) -> np.ndarray:
    ok = np.isfinite(data).all(1)
    if not ok.all():
        notes.append(f"dropped {int((~ok).sum()):,} {what} with NaN or infinite values")
    return ok


def _check_count(n: int, path: Path) -> None:
    if n == 0:
        raise ParticleError(f"{path}: no star particles left to use")
    if n > MAX_PARTICLES:
        raise ParticleError(f"{path}: {n:,} particles is more than the {MAX_PARTICLES:,} this reader takes at "
                            "once; subsample the table first")


def read_npy(path: str | Path, columns: tuple[str, ...] = PARTICLE_COLUMNS) -> ParticleSet:
    """An (n, len(columns)) ``.npy`` array of star particles (GalacticFlow's column order by default),
    read without unpickling; rows with NaN are dropped and counted."""
    path = Path(path)
    unknown = set(columns) - set(PARTICLE_COLUMNS)
    if unknown:
        raise ParticleError(f"unknown particle columns {sorted(unknown)} (known: {', '.join(PARTICLE_COLUMNS)})")
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise ParticleError(f"{path}: not a readable .npy array ({e})") from e
    if data.ndim != 2 or data.shape[1] != len(columns):
        raise ParticleError(f"{path}: expected an (n, {len(columns)}) array with columns {', '.join(columns)}, "
                            f"got shape {data.shape}")
    _check_count(len(data), path)
    data = np.asarray(data, np.float32)
    notes: list[str] = []
    keep = _drop_nonfinite(data, notes, "rows")
    _check_count(int(keep.sum()), path)
    return ParticleSet(np.ascontiguousarray(data[keep]), tuple(columns), None, notes)


def parse_column_map(text: str | None) -> dict[str, int]:
    """``"x=0,y=1,...,Z=8"`` -> {name: zero-based column}; None gives the Illustris order."""
    if not text:
        return {name: i for i, name in enumerate(ILLUSTRIS_COLUMNS)}
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, index = part.partition("=")
        if name.strip() not in ILLUSTRIS_COLUMNS or not index.strip().isdigit():
            raise ParticleError(f"column map entry '{part}' must be NAME=INDEX with NAME one of "
                                f"{', '.join(ILLUSTRIS_COLUMNS)} (e.g. x=0,y=1,z=2,vx=3,vy=4,vz=5,mass=6,a_form=7,Z=8)")
        out[name.strip()] = int(index)
    missing = [c for c in ILLUSTRIS_COLUMNS if c not in out]
    if missing:
        raise ParticleError(f"the column map lacks {', '.join(missing)}")
    return out


def cosmology_for(hubble: float, omega_m: float | None = None) -> FlatLambdaCDM:
    """Flat LCDM with H0 = 100 h; Omega_m defaults to Illustris-1's for h = 0.704, else TNG's."""
    if not 0.3 < hubble < 1.5:
        raise ParticleError(f"the Hubble parameter h = {hubble} is not a plausible H0 / (100 km/s/Mpc)")
    if omega_m is None:
        omega_m = ILLUSTRIS_OMEGA_M if abs(hubble - 0.704) < 1e-3 else TNG_OMEGA_M
    return FlatLambdaCDM(H0=100.0 * hubble, Om0=omega_m)


def shrinking_sphere_centre(pos: np.ndarray, mass: np.ndarray, shrink: float = 0.975, min_particles: int = 1000,
                            max_iter: int = 200) -> np.ndarray:
    """Centre of the densest part of a particle distribution by shrinking spheres (Power et al. 2003,
    MNRAS 338, 14): the centre of mass of the particles inside a sphere shrunk by ``shrink`` each step."""
    centre = np.average(pos, axis=0, weights=mass)
    radius = np.sqrt(((pos - centre) ** 2).sum(1)).max()
    for _ in range(max_iter):
        inside = ((pos - centre) ** 2).sum(1) < radius**2
        if inside.sum() < min_particles:
            break
        centre = np.average(pos[inside], axis=0, weights=mass[inside])
        radius *= shrink
    return centre


def read_illustris(path: str | Path, hubble: float, snapshot_z: float = 0.0, omega_m: float | None = None,
                   column_map: str | None = None, centre: bool = True) -> ParticleSet:
    """A whitespace-separated Illustris / TNG star-particle table (:data:`ILLUSTRIS_COLUMNS`), in kpc,
    km/s, Msun, Gyr and metal mass fraction.

    Conversions, with a = 1 / (1 + snapshot_z): r = a r_comoving / h; v = sqrt(a) v_code (the
    snapshot's peculiar velocity); m = 1e10 m_code / h; age = t(snapshot_z) - t(a_form) in the given
    cosmology. Rows with a formation time <= 0 are wind-phase gas cells, not stars: dropped and counted.
    With ``centre`` the positions are put on the shrinking-sphere centre and the velocities on the mean
    velocity of the stars within the radius holding half of them.
    """
    path = Path(path)
    cols = parse_column_map(column_map)
    try:
        table = pd.read_csv(path, sep=r"\s+", comment="#", header=None, dtype=np.float64, engine="c")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ParticleError(f"{path}: not a readable whitespace-separated number table ({e})") from e
    need = max(cols.values()) + 1
    if table.shape[1] < need:
        raise ParticleError(f"{path}: {table.shape[1]} columns, but the layout needs {need} "
                            f"({', '.join(f'{k}={v}' for k, v in cols.items())}); give --columns for another layout")
    raw = table.to_numpy()
    _check_count(len(raw), path)
    notes: list[str] = []
    keep = _drop_nonfinite(raw[:, list(cols.values())], notes, "rows")
    a_form = raw[:, cols["a_form"]]
    wind = keep & (a_form <= 0)
    if wind.any():
        notes.append(f"dropped {int(wind.sum()):,} wind-phase gas cells (formation time <= 0)")
    keep &= ~wind
    if not keep.any():
        raise ParticleError(f"{path}: every row is a wind-phase gas cell or invalid; there are no star particles")
    raw = raw[keep]
    a_snap = 1.0 / (1.0 + snapshot_z)
    if (raw[:, cols["a_form"]] > a_snap * (1 + 1e-6)).any():
        raise ParticleError(f"{path}: formation times after the snapshot (a_form > {a_snap:.4f}); is --snapshot-z right?")
    cosmo = cosmology_for(hubble, omega_m)
    pos = raw[:, [cols["x"], cols["y"], cols["z"]]] * a_snap / hubble
    vel = raw[:, [cols["vx"], cols["vy"], cols["vz"]]] * np.sqrt(a_snap)
    mass = raw[:, cols["mass"]] * 1e10 / hubble
    t_snap = cosmo.age(snapshot_z).value
    age = t_snap - cosmo.age(1.0 / np.clip(raw[:, cols["a_form"]], 1e-6, a_snap) - 1.0).value
    metal = raw[:, cols["Z"]]
    low = metal < Z_FLOOR
    if low.any():
        notes.append(f"raised {int(low.sum()):,} metallicities below {Z_FLOOR:g} (primordial) to {Z_FLOOR:g}")
    if centre:
        c = shrinking_sphere_centre(pos, mass)
        pos = pos - c
        r = np.sqrt((pos**2).sum(1))
        inner = r <= np.median(r)
        vel = vel - np.average(vel[inner], axis=0, weights=mass[inner])
        notes.append(f"centred on the shrinking-sphere centre ({c[0]:.2f}, {c[1]:.2f}, {c[2]:.2f}) kpc")
    notes.append(f"units: h = {hubble}, Omega_m = {cosmo.Om0:.4f}, snapshot z = {snapshot_z:g} (age {t_snap:.2f} Gyr)")
    data = np.column_stack([pos, vel, np.maximum(metal, Z_FLOOR), np.clip(age, 0.0, None)]).astype(np.float32)
    return ParticleSet(data, ("x", "y", "z", "vx", "vy", "vz", "Z", "age"), mass, notes)


def write_illustris(path: str | Path, particles: np.ndarray, columns: tuple[str, ...], hubble: float,
                    mass_msun: float | np.ndarray = 1e5, snapshot_z: float = 0.0, omega_m: float | None = None,
                    wind_cells: int = 0, offset_kpc: tuple[float, float, float] = (0.0, 0.0, 0.0),
                    seed: int = 0) -> None:
    """Write star particles (physical units, columns including x..vz, Z, age) as an Illustris cutout
    text table: the inverse of :func:`read_illustris`, with ``wind_cells`` extra rows of formation
    time <= 0 and the galaxy placed at ``offset_kpc`` in the box. For tests and examples."""
    idx = {c: columns.index(c) for c in ("x", "y", "z", "vx", "vy", "vz", "Z", "age")}
    cosmo = cosmology_for(hubble, omega_m)
    a_snap = 1.0 / (1.0 + snapshot_z)
    p = np.asarray(particles, np.float64)
    pos = (p[:, [idx["x"], idx["y"], idx["z"]]] + np.asarray(offset_kpc)) * hubble / a_snap
    vel = p[:, [idx["vx"], idx["vy"], idx["vz"]]] / np.sqrt(a_snap)
    t_form = cosmo.age(snapshot_z).value - p[:, idx["age"]]
    grid_z = np.linspace(0, 20, 4000)
    grid_t = cosmo.age(grid_z).value
    z_form = np.interp(t_form, grid_t[::-1], grid_z[::-1])
    a_form = 1.0 / (1.0 + z_form)
    mass = np.broadcast_to(np.asarray(mass_msun, np.float64), (len(p),)) * hubble / 1e10
    rows = np.column_stack([pos, vel, mass, a_form, p[:, idx["Z"]]])
    if wind_cells:
        rng = np.random.default_rng(seed)
        wind = rows[rng.integers(0, len(rows), wind_cells)].copy()
        wind[:, 7] = -rng.uniform(0.0, 1.0, wind_cells)
        rows = np.concatenate([rows, wind])
        rows = rows[rng.permutation(len(rows))]
    header = ("x y z [ckpc/h]  vx vy vz [km/s sqrt(a)]  mass [1e10 Msun/h]  formation time [a]  "
              "metallicity [mass fraction]")
    np.savetxt(path, rows, fmt="%.8g", header=header)
