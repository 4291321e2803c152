"""Star particles of mock galaxies, in the 10-D layout of GalacticFlow (Buck et al. 2024):
x, y, z [kpc], vx, vy, vz [km/s], Z [mass fraction], [Fe/H], [O/Fe] [dex], age [Gyr].

Each galaxy is an exponential disk (scale length h_R = r_e,disk / 1.678, the same disk as its image)
with a thin vertical profile, plus a Hernquist (1990) bulge holding the bulge-to-total share of the
particles. Disk stars rotate on a rotation curve v(R) = v_flat tanh(R / (0.7 h_R)), with v_flat from a
Tully-Fisher-like relation, plus dispersion; bulge stars are isotropic. Ages are inside-out (old
bulge, younger outer disk, younger still when the specific SFR is high); [Fe/H] follows an
age-metallicity relation with a negative radial gradient; [O/Fe] is ~0.3 for old stars and ~0 for
young ones. The frame is the galaxy's own: the disk lies in the x-y plane; :func:`project` puts
particles on the sky with the image's inclination and position angle.

Particles are generated on demand, from a generator seeded by (seed, stream, galaxy index), so a
survey never holds them all and the same galaxy always gives the same stars.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from astropy.cosmology import Planck18
from scipy import stats

PARTICLE_COLUMNS = ("x", "y", "z", "vx", "vy", "vz", "Z", "feh", "ofe", "age")
PARTICLE_UNITS = ("kpc", "kpc", "kpc", "km/s", "km/s", "km/s", "mass fraction", "dex", "dex", "Gyr")
CONDITION_COLUMNS = ("log_mstar", "age_median_gyr", "age_p10_gyr", "mean_Z")
Z_SUN = 0.0142
"""Solar metallicity mass fraction (Asplund et al. 2009)."""
_STREAM_PARTICLES = 3


def disk_scale_length_kpc(row: Mapping) -> float:
    """h_R of the disk: the exponential profile's half-light radius is 1.678 h_R."""
    return float(row["r_e_disk_kpc"]) / 1.678


def flat_velocity_kms(log_mstar: float) -> float:
    """Tully-Fisher-like v_flat = 200 km/s (M* / 10^10.5 Msun)^0.25 (M* proportional to v^4)."""
    return 200.0 * 10 ** (0.25 * (log_mstar - 10.5))


def rotation_curve_kms(radius_kpc: np.ndarray, h_kpc: float, v_flat: float) -> np.ndarray:
    """Circular velocity of the disk, v(R) = v_flat tanh(R / (0.7 h_R))."""
    return v_flat * np.tanh(radius_kpc / (0.7 * h_kpc))


def _truncated(dist, lo: float, hi: float, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Draws of the frozen scipy distribution ``dist`` restricted to [lo, hi], by inverting its CDF."""
    a, b = dist.cdf(lo), dist.cdf(hi)
    u = rng.uniform(a, b, n if n is not None else np.shape(a))
    return np.clip(dist.ppf(u), lo, hi)


def galaxy_particles(row: Mapping, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 10) star particles of the galaxy described by catalog ``row`` (columns as PARTICLE_COLUMNS)."""
    if n < 1:
        raise ValueError(f"the number of particles must be >= 1, got {n}")
    bt = float(row["bulge_to_total"])
    n_bulge = int(round(bt * n))
    n_disk = n - n_bulge
    h = disk_scale_length_kpc(row)
    v_flat = flat_velocity_kms(float(row["log_mstar"]))
    t_universe = float(Planck18.age(float(row["z"])).value)

    # Disk: R ~ Gamma(2, h) is the exponential surface density; z ~ Laplace(0.1 h).
    radius = rng.gamma(2.0, h, n_disk)
    phi = rng.uniform(0, 2 * np.pi, n_disk)
    zd = rng.laplace(0.0, 0.1 * h, n_disk)
    v_rot = rotation_curve_kms(radius, h, v_flat)
    v_r = rng.normal(0.0, 0.12 * v_flat, n_disk)
    v_phi = v_rot + rng.normal(0.0, 0.08 * v_flat, n_disk)
    disk_pos = np.stack([radius * np.cos(phi), radius * np.sin(phi), zd], 1)
    disk_vel = np.stack([v_r * np.cos(phi) - v_phi * np.sin(phi), v_r * np.sin(phi) + v_phi * np.cos(phi),
                         rng.normal(0.0, 0.08 * v_flat, n_disk)], 1)

    # Bulge: Hernquist radii r = a sqrt(u) / (1 - sqrt(u)), a = r_e / 1.8153; isotropic, no rotation.
    a = float(row["r_e_bulge_kpc"]) / 1.8153
    su = np.sqrt(rng.uniform(0, 0.995, n_bulge))
    r_b = a * su / (1 - su)
    direction = rng.normal(size=(n_bulge, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    bulge_pos = r_b[:, None] * direction
    bulge_vel = rng.normal(0.0, 0.55 * v_flat, (n_bulge, 3))

    # Ages: inside-out disks, younger when the specific SFR is high; old bulges.
    young = 1.0 / (1.0 + np.exp(-(float(row["log_ssfr"]) + 10.5) / 0.4))
    disk_mean_age = t_universe * (0.75 - 0.45 * young) * np.exp(-0.12 * radius / h)
    # Drawn from distributions truncated at the age of the Universe (inverse CDF), not clipped to it:
    # clipping would pile a quarter of the disk onto one age, a spike no simulated galaxy has.
    disk_age = _truncated(stats.gamma(4.0, scale=disk_mean_age / 4.0), 0.01, t_universe, rng)
    bulge_age = _truncated(stats.norm(0.85 * t_universe, 0.08 * t_universe), 0.5, t_universe, rng, n_bulge)
    age = np.concatenate([disk_age, bulge_age])
    r_all = np.concatenate([radius, r_b])

    # Chemistry: age-metallicity relation, a negative radial gradient, alpha-enhanced old stars.
    feh0 = 0.25 * (float(row["log_mstar"]) - 10.5) + 0.15
    feh = feh0 - 0.06 * age - 0.05 * r_all / h + rng.normal(0.0, 0.08, n)
    ofe = 0.3 / (1.0 + np.exp(-(age - 8.0) / 1.2)) + rng.normal(0.0, 0.03, n)
    # Total metallicity from [Fe/H] and the alpha enhancement (Salaris et al. 1993).
    z_total = Z_SUN * 10 ** (feh + np.log10(0.638 * 10**ofe + 0.362))

    pos = np.concatenate([disk_pos, bulge_pos])
    vel = np.concatenate([disk_vel, bulge_vel])
    return np.column_stack([pos, vel, z_total, feh, ofe, age]).astype(np.float32)


def particle_conditions(particles: np.ndarray, log_mstar: float) -> dict[str, float]:
    """Per-galaxy conditions as GalacticFlow computes them: total stellar mass, median age,
    10th-percentile age and mean metallicity of the star particles (equal-mass particles)."""
    age = particles[:, PARTICLE_COLUMNS.index("age")]
    return {"log_mstar": float(log_mstar), "age_median_gyr": float(np.median(age)),
            "age_p10_gyr": float(np.percentile(age, 10)),
            "mean_Z": float(particles[:, PARTICLE_COLUMNS.index("Z")].mean())}


def project(particles: np.ndarray, cos_incl: float, pa_deg: float) -> np.ndarray:
    """Sky-plane positions (n, 2) [kpc]: incline the disk about the x axis, then rotate by the
    position angle, as the image renderer orients the same galaxy."""
    x, y, z = particles[:, 0], particles[:, 1], particles[:, 2]
    sin_i = np.sqrt(1.0 - cos_incl**2)
    y_sky = y * cos_incl - z * sin_i
    pa = np.radians(pa_deg)
    return np.stack([x * np.cos(pa) - y_sky * np.sin(pa), x * np.sin(pa) + y_sky * np.cos(pa)], 1)


def mock_particles(catalog_row: Mapping, seed: int, index: int, n: int = 20_000) -> np.ndarray:
    """Star particles of mock galaxy ``index`` (deterministic in (seed, index))."""
    rng = np.random.default_rng([seed, _STREAM_PARTICLES, index])
    return galaxy_particles(catalog_row, n, rng)


def survey_particles(meta: Mapping, catalog_row: Mapping, index: int, n: int = 20_000) -> np.ndarray:
    """Star particles of galaxy ``index`` of a mock survey, from its metadata's seed."""
    return mock_particles(catalog_row, int(meta["config"]["seed"]), index, n)
