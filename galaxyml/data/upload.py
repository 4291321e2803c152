"""One image from a user's file (PNG, JPG, TIFF or FITS) in the layout of an atlas's survey, so that the
networks that made the survey's embeddings can encode it.

- A **FITS** file gives fluxes: the first HDU holding a 2-D image (one band) or a 3-D cube (bands
  first, in the survey's band order) is read and resampled to the survey's cutout size (bilinear,
  surface brightness kept: pixels should have the survey's pixel scale and flux units).
- A **PNG / JPG / TIFF** gives display colours. In a survey of display images (bands R, G, B) they are
  used as they are. In a survey of fluxes they are turned back into fluxes by inverting the Lupton et
  al. (2004) asinh stretch with which the atlas draws its thumbnails (``fluxes_to_rgb``): with
  I = mean of the stretched channels' inputs and F(I) = asinh(Q I / stretch) * slope, every channel is
  c_out = c * F(I) / I, so I = sinh(mean(c_out) / slope) * stretch / Q and c = c_out * I / mean(c_out).
  This is exact for an unsaturated thumbnail saved from the atlas, up to 8-bit rounding; saturated
  pixels come back dimmer than they were, and an image stretched any other way only approximately.
  The stretch sets pixels whose flux is below zero to black, which removes half of the sky noise; the
  networks' embeddings depend on the noise level (on the demo, doubling the sky variance of an image
  moves its embedding to a cosine of about 0 with the original), so black pixels are refilled with
  Gaussian sky noise of the survey's level (``sky_noise``), drawn (seeded) under the condition that
  the pixel stays black: mean intensity <= 0 where every channel is black, that band <= 0 elsewhere.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from galaxyml.data.images import to_display_rgb
from galaxyml.data.survey import RGB_BAND_SCALES

MAX_UPLOAD_MB = 16
"""Largest file accepted (also ``server.maxUploadSize`` in ``.streamlit/config.toml``)."""
MAX_PIXELS = 4096 * 4096
"""Largest image (pixels per band) accepted: a cutout, not a survey tile."""
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DISPLAY_BANDS = ("R", "G", "B")


class UploadError(ValueError):
    """The file cannot be used as a galaxy image; the message says why and what would work."""


def read_upload(data: bytes, name: str, bands: tuple[str, ...], size: int, stretch: float = 0.1,
                q: float = 8.0, sky_sigma: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """(C, size, size) float32 image in the survey's units from the bytes of an uploaded file (a colour
    image of a flux survey gets its black pixels refilled with sky noise ``sky_sigma`` per band)."""
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise UploadError(f"{name} is {len(data) / 2**20:.1f} MB; the largest accepted file is {MAX_UPLOAD_MB} MB")
    if not data:
        raise UploadError(f"{name} is empty")
    lower = name.lower()
    if lower.endswith(FITS_SUFFIXES) or data[:9] == b"SIMPLE  =":
        image = _fits_bands(data, name, bands)
        return _resample(image, size)
    if not lower.endswith(IMAGE_SUFFIXES):
        raise UploadError(f"{name}: use a PNG, JPG, TIFF or FITS file")
    rgb = _display_rgb(data, name, size)
    if tuple(bands) == DISPLAY_BANDS:
        return rgb
    flux = invert_lupton(rgb, bands, stretch, q)
    return flux if sky_sigma is None else refill_sky(flux, bands, np.asarray(sky_sigma, np.float64), seed)


def sky_noise(images: np.ndarray, border: int = 6) -> np.ndarray:
    """(C,) sky noise of a survey: the median over ``images`` (N, C, H, W) of each band's standard deviation
    in a ``border``-pixel frame (mostly sky in a galaxy cutout)."""
    x = np.asarray(images, np.float64)
    frame = np.concatenate([x[:, :, :border].reshape(*x.shape[:2], -1), x[:, :, -border:].reshape(*x.shape[:2], -1),
                            x[:, :, :, :border].reshape(*x.shape[:2], -1), x[:, :, :, -border:].reshape(*x.shape[:2], -1)],
                           axis=2)
    return np.median(frame.std(axis=2), axis=0)


def refill_sky(flux: np.ndarray, bands: tuple[str, ...], sigma: np.ndarray, seed: int = 0) -> np.ndarray:
    """Black pixels of an inverted display image refilled with sky noise that keeps them black (see the
    module docstring): joint draws with mean scaled intensity <= 0 (rejection sampling) where every band is
    at or below zero, a negative half-normal draw in a band that alone is."""
    rng = np.random.default_rng(seed)
    out = np.asarray(flux, np.float64).copy()
    scale = np.array([RGB_BAND_SCALES.get(b, 1.0) for b in bands])
    dark = (out <= 0).all(axis=0)
    need, draws = int(dark.sum()), []
    while need > 0:
        d = rng.normal(size=(2 * need + 16, len(bands))) * sigma
        d = d[(d * scale).mean(axis=1) <= 0][:need]
        draws.append(d)
        need -= len(d)
    if draws:
        out[:, dark] = np.concatenate(draws).T
    for b in range(len(bands)):
        alone = (out[b] <= 0) & ~dark & (flux[b] <= 0)
        out[b][alone] = -np.abs(rng.normal(size=int(alone.sum())) * sigma[b])
    return out.astype(np.float32)


def _display_rgb(data: bytes, name: str, size: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise UploadError(f"{name} is {image.width} x {image.height} pixels; upload a cutout of at most "
                                  f"{int(MAX_PIXELS ** 0.5)} x {int(MAX_PIXELS ** 0.5)}")
            image.load()
    except UploadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadError(f"{name} is not a readable image ({type(e).__name__}: {e})") from e
    return to_display_rgb(image, size)


def invert_lupton(rgb: np.ndarray, bands: tuple[str, ...], stretch: float, q: float) -> np.ndarray:
    """(C, H, W) fluxes from a (3, H, W) display image in [0, 1] made by ``fluxes_to_rgb`` (see the module
    docstring); bands the display does not show cannot be recovered and are refused."""
    c = len(bands)
    if c == 1:
        order = [0, 0, 0]
    elif set("grz") <= set(bands):
        order = [bands.index(b) for b in ("z", "r", "g")]
    elif c == 3:
        order = [2, 1, 0]
    else:
        raise UploadError(f"this survey has {c} bands ({', '.join(bands)}); a colour image shows three of them at "
                          f"most: upload a FITS cube with all {c} bands")
    if c > 3 or (c == 3 and sorted(order) != [0, 1, 2]):
        shown = {bands[i] for i in order}
        raise UploadError(f"a colour image shows only the bands {', '.join(sorted(shown))}; this survey also has "
                          f"{', '.join(b for b in bands if b not in shown)}: upload a FITS cube with every band")
    slope = 0.1 * 255.0 / np.arcsinh(0.1 * q)
    out = np.asarray(rgb, np.float64) * 255.0
    level = out.mean(axis=0)
    intensity = np.sinh(level / slope) * stretch / q
    with np.errstate(invalid="ignore", divide="ignore"):
        channels = np.where(level > 0, out * (intensity / level), 0.0)
    flux = np.zeros((c,) + rgb.shape[1:], np.float64)
    if c == 1:
        flux[0] = channels.mean(axis=0) / RGB_BAND_SCALES.get(bands[0], 1.0)
    else:
        for ch, band_index in enumerate(order):
            flux[band_index] = channels[ch] / RGB_BAND_SCALES.get(bands[band_index], 1.0)
    return flux.astype(np.float32)


def _fits_bands(data: bytes, name: str, bands: tuple[str, ...]) -> np.ndarray:
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)  # a truncated file only warns in astropy
            with fits.open(io.BytesIO(data), memmap=False) as hdus:
                image = None
                for hdu in hdus:
                    if hdu.is_image and hdu.data is not None and hdu.data.ndim in (2, 3):
                        image = np.array(hdu.data, dtype=np.float64)
                        break
    except (OSError, ValueError, TypeError, IndexError, AstropyUserWarning) as e:
        raise UploadError(f"{name} is not a readable FITS file ({type(e).__name__}: {e})") from e
    if image is None:
        raise UploadError(f"{name} has no image HDU with a 2-D image or a 3-D cube of bands")
    if image.ndim == 2:
        image = image[None]
    c = len(bands)
    if image.shape[0] != c:
        if tuple(bands) == DISPLAY_BANDS and image.shape[0] == 1:
            image = np.repeat(image, 3, axis=0)
        else:
            raise UploadError(f"{name} has {image.shape[0]} band(s) (shape {tuple(image.shape)}); this survey's images "
                              f"have {c} ({', '.join(bands)}), bands first")
    if image.shape[1] * image.shape[2] > MAX_PIXELS:
        raise UploadError(f"{name} is {image.shape[2]} x {image.shape[1]} pixels; upload a cutout")
    if not np.isfinite(image).any():
        raise UploadError(f"{name} has no finite pixel")
    image = np.where(np.isfinite(image), image, 0.0)
    if tuple(bands) == DISPLAY_BANDS:  # display images: scaled by their own range, as the folder loader does
        lo, hi = image.min(), image.max()
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return image


def _resample(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resampling of every band to size x size (surface brightness kept)."""
    if image.shape[1:] == (size, size):
        return image.astype(np.float32)
    planes = [np.asarray(Image.fromarray(p.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
              for p in image]
    return np.stack(planes).astype(np.float32)
