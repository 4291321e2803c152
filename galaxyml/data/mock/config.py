"""Configuration of the mock universe (see MOCK_UNIVERSE.md in the project documentation)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The mock renders the three Legacy-Survey-like bands in this order.
BANDS: tuple[str, ...] = ("g", "r", "z")


@dataclass(frozen=True)
class MockConfig:
    """Parameters of the mock survey. Defaults give the demo survey.

    Every relation has an explicit scatter; those scatters are recorded in the survey metadata
    as the floor on how well any model can predict the quantity from images.
    """

    n_galaxies: int = 5000
    """Number of galaxies in the survey."""
    seed: int = 0
    """Master seed: the same seed and config give byte-identical output."""
    image_size_px: int = 64
    """Side of each square cutout [pixel]."""
    pixel_scale_arcsec: float = 0.262
    """Pixel scale [arcsec / pixel] (DESI Legacy Surveys)."""
    psf_fwhm_arcsec: float = 1.2
    """FWHM of the Gaussian PSF [arcsec]."""
    sky_sigma_nmgy: tuple[float, float, float] = (0.004, 0.006, 0.014)
    """Per-pixel Gaussian sky noise in g, r, z [nanomaggies]."""
    oversample: int = 1
    """Sub-pixel sampling per axis when integrating profiles over pixels (the central 6x6 pixels of
    every centred profile are always integrated 12x finer; GalSim agrees within 0.5% at 1)."""
    z_min: float = 0.02
    """Lowest redshift."""
    z_max: float = 0.25
    """Highest redshift."""
    log_mstar_min: float = 8.5
    """Lowest stellar mass [log10 Msun]."""
    log_mstar_max: float = 11.8
    """Highest stellar mass [log10 Msun]."""
    mag_r_limit: float = 19.0
    """Flux limit of the survey: galaxies fainter than this r magnitude [AB] are not observed."""
    main_sequence_scatter_dex: float = 0.3
    """Scatter of log SFR about the star-forming main sequence [dex] (Renzini & Peng 2015)."""
    metallicity_scatter_dex: float = 0.1
    """Scatter of 12+log(O/H) about the Tremonti et al. (2004) relation [dex]."""
    mannucci_alpha: float = 0.0
    """SFR term of the fundamental metallicity relation: x = log M* - alpha log SFR (0 disables)."""
    agn_fraction: float = 0.06
    """Mean share of galaxies hosting an AGN (weighted towards massive, bulgy ones)."""
    bar_fraction: float = 0.3
    """Share of disks with a bar."""
    spiral_fraction: float = 0.8
    """Share of star-forming, not edge-on disks with spiral arms."""
    ring_fraction: float = 0.1
    """Share of disks with a ring."""
    merger_fraction: float = 0.05
    """Share of galaxies in a merger (companion + tidal tail)."""
    artefact_fraction: float = 0.03
    """Share of cutouts with an artefact (satellite trail, bright star or bad column)."""
    n_volunteers: int = 40
    """Volunteers answering each Galaxy-Zoo-like question (sets the vote-fraction noise)."""
    footprint_ra_deg: tuple[float, float] = (140.0, 160.0)
    """Right-ascension range of the survey footprint [deg]."""
    footprint_dec_deg: tuple[float, float] = (-5.0, 15.0)
    """Declination range of the survey footprint [deg]."""
    block_size: int = 1024
    """Galaxies drawn per random block; galaxy i is the same whatever n_galaxies is."""
    bands: tuple[str, ...] = field(default=BANDS)
    """Band names, in image-channel order."""

    def __post_init__(self) -> None:
        if self.n_galaxies <= 0:
            raise ValueError(f"survey.n_galaxies must be positive, got {self.n_galaxies}")
        if self.oversample < 1:
            raise ValueError(f"survey.oversample must be >= 1, got {self.oversample}")
        if self.pixel_scale_arcsec <= 0 or self.psf_fwhm_arcsec <= 0:
            raise ValueError("survey.pixel_scale_arcsec and survey.psf_fwhm_arcsec must be positive")
        psf_px = self.psf_fwhm_arcsec / self.pixel_scale_arcsec
        if self.image_size_px < 4 * psf_px or self.image_size_px < 16:
            raise ValueError(
                f"survey.image_size_px={self.image_size_px} is too small for the PSF "
                f"(FWHM {psf_px:.1f} px): use at least {max(16, int(4 * psf_px) + 1)} px"
            )
        if not 0 <= self.z_min < self.z_max:
            raise ValueError(f"survey.z_min ({self.z_min}) must be >= 0 and below survey.z_max ({self.z_max})")
        if not self.log_mstar_min < self.log_mstar_max:
            raise ValueError("survey.log_mstar_min must be below survey.log_mstar_max")
        if len(self.sky_sigma_nmgy) != len(self.bands) or min(self.sky_sigma_nmgy) < 0:
            raise ValueError("survey.sky_sigma_nmgy needs one non-negative value per band")
        if self.main_sequence_scatter_dex < 0 or self.metallicity_scatter_dex < 0:
            raise ValueError("survey scatters must be non-negative")
        for name in ("agn_fraction", "bar_fraction", "spiral_fraction", "ring_fraction", "merger_fraction",
                     "artefact_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"survey.{name} must be a fraction in [0, 1], got {value}")
        if self.n_volunteers < 1:
            raise ValueError(f"survey.n_volunteers must be >= 1, got {self.n_volunteers}")
        if self.block_size <= 0:
            raise ValueError(f"survey.block_size must be positive, got {self.block_size}")
        if tuple(self.bands) != BANDS:
            raise ValueError(f"survey.bands must be {BANDS}: the mock renders exactly these bands")

    @property
    def psf_sigma_px(self) -> float:
        """Gaussian PSF sigma [pixel]."""
        return self.psf_fwhm_arcsec / self.pixel_scale_arcsec / 2.3548200450309493
