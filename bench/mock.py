"""Speed of the mock renderer: 10,000 galaxies x 3 bands x 64x64, and the per-galaxy ratio against
GalSim rendering the same bulge + disk galaxies (same PSF, pixel scale and stamp).

    python bench/mock.py [--n 10000] [--galsim-n 200]

Goals: under 30 s for 10,000 galaxies on 2 cores; at least 5x faster per galaxy than GalSim.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from galaxyml.data.mock import MockConfig, draw_catalog, render_images  # noqa: E402
from galaxyml.data.mock.render import band_ratios  # noqa: E402


def galsim_render(cat, cfg: MockConfig) -> np.ndarray:
    """Bulge + disk in g, r, z with GalSim, as a GalSim user would draw them."""
    import galsim

    psf = galsim.Gaussian(fwhm=cfg.psf_fwhm_arcsec)
    out = np.empty((len(cat), 3, cfg.image_size_px, cfg.image_size_px), np.float32)
    for i, row in enumerate(cat.itertuples()):
        disk = galsim.Sersic(1.0, half_light_radius=row.r_e_disk_arcsec * np.sqrt(row.q_disk))
        disk = disk.shear(q=row.q_disk, beta=row.pa_deg * galsim.degrees)
        bulge = galsim.Sersic(4.0, half_light_radius=row.r_e_bulge_arcsec * np.sqrt(row.q_bulge))
        bulge = bulge.shear(q=row.q_bulge, beta=row.pa_deg * galsim.degrees)
        d_col = band_ratios(np.array([row.disk_g_r]), np.array([row.z]))[0]
        b_col = band_ratios(np.array([row.bulge_g_r]), np.array([row.z]))[0]
        for c in range(3):
            gal = disk.withFlux((1 - row.bulge_to_total) * row.flux_r * d_col[c]) + bulge.withFlux(
                row.bulge_to_total * row.flux_r * b_col[c])
            img = galsim.Convolve(gal, psf).drawImage(nx=cfg.image_size_px, ny=cfg.image_size_px,
                                                      scale=cfg.pixel_scale_arcsec)
            out[i, c] = img.array
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--galsim-n", type=int, default=200)
    args = ap.parse_args()
    cfg = MockConfig(n_galaxies=args.n)
    t0 = time.perf_counter()
    cat = draw_catalog(cfg)
    t_cat = time.perf_counter() - t0
    t0 = time.perf_counter()
    render_images(cfg, cat, first_index=0)
    t_render = time.perf_counter() - t0
    per_ours = t_render / args.n
    print(f"catalog of {args.n:,} galaxies: {t_cat:.2f} s")
    print(f"render {args.n:,} galaxies x 3 bands x {cfg.image_size_px}x{cfg.image_size_px}: {t_render:.2f} s "
          f"({per_ours * 1e3:.2f} ms/galaxy; goal < 30 s)")
    try:
        import galsim  # noqa: F401
    except ImportError:
        print("galsim is not installed (pip install galsim): no ratio")
        return
    sub = cat.iloc[: args.galsim_n]
    t0 = time.perf_counter()
    galsim_render(sub, cfg)
    per_galsim = (time.perf_counter() - t0) / len(sub)
    t0 = time.perf_counter()
    render_images(cfg, sub, first_index=0)
    per_ours_sub = (time.perf_counter() - t0) / len(sub)
    print(f"GalSim bulge + disk, 3 bands: {per_galsim * 1e3:.2f} ms/galaxy over {len(sub)} galaxies")
    print(f"ours on the same galaxies (with arms, bars, rings, mergers, AGN, dust, artefacts): "
          f"{per_ours_sub * 1e3:.2f} ms/galaxy")
    print(f"speed-up per galaxy: {per_galsim / per_ours:.1f}x (goal >= 5x)")
    oracle(cfg)


def oracle(cfg: MockConfig) -> None:
    """Largest relative difference to GalSim in flux and half-light radius (goal < 2%)."""
    import galsim

    from galaxyml.data.mock.measure import half_light_radius_px
    from galaxyml.data.mock.render import PAD_PX, gaussian_convolve, sersic_images

    worst_flux = worst_hlr = 0.0
    g = cfg.image_size_px + 2 * PAD_PX
    for n in (1.0, 4.0):
        for r_e, q, pa in [(0.3, 1.0, 0.0), (0.6, 1.0, 0.0), (1.0, 1.0, 0.0), (2.5, 1.0, 0.0), (1.5, 0.5, 30.0)]:
            ours = sersic_images(np.array([1.0]), np.array([r_e / cfg.pixel_scale_arcsec]), n, np.array([q]),
                                 np.radians([pa]), g, cfg.oversample)
            ours = gaussian_convolve(ours, cfg.psf_sigma_px)[0, PAD_PX:-PAD_PX, PAD_PX:-PAD_PX]
            gal = galsim.Sersic(n=n, half_light_radius=r_e * np.sqrt(q)).shear(q=q, beta=pa * galsim.degrees)
            ref = galsim.Convolve(gal, galsim.Gaussian(fwhm=cfg.psf_fwhm_arcsec)).drawImage(
                nx=cfg.image_size_px, ny=cfg.image_size_px, scale=cfg.pixel_scale_arcsec).array
            worst_flux = max(worst_flux, abs(ours.sum() / ref.sum() - 1))
            worst_hlr = max(worst_hlr, abs(half_light_radius_px(ours) / half_light_radius_px(ref) - 1))
    print(f"oracle (Sersic n=1 and 4, r_e 0.3-2.5 arcsec): worst flux difference {worst_flux:.2%}, "
          f"worst half-light-radius difference {worst_hlr:.2%} (goal < 2%)")


if __name__ == "__main__":
    main()
