"""Search by an uploaded image: reading PNG / JPG / FITS into the survey's layout, the forward pass of
the atlas's embedding network, and clear refusals of files that cannot be used."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from galaxyml.atlas import Atlas
from galaxyml.data.survey import fluxes_to_rgb
from galaxyml.data.upload import MAX_UPLOAD_MB, UploadError, invert_lupton, read_upload, sky_noise
from galaxyml.index import normalise
from galaxyml.query_image import QueryImageError, code_of, embed_image


def fits_bytes(*hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buf)
    return buf.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def quick(quick_home):
    return Atlas.open(quick_home / "quick")


def cosine_to_stored(atlas: Atlas, embedding: np.ndarray, row: int) -> tuple[float, int]:
    """Cosine (centred) between an embedding and a galaxy's stored one, and that galaxy's rank among all."""
    emb = np.asarray(atlas.embeddings())
    mean = emb.mean(0)
    sims = normalise(emb - mean) @ normalise((embedding - mean)[None])[0]
    return float(sims[row]), int((sims > sims[row]).sum())


def test_a_fits_cutout_of_a_galaxy_finds_that_galaxy_first(quick):
    survey = quick.survey()
    g = int(quick.split().test[0])
    flux = read_upload(fits_bytes(fits.PrimaryHDU(np.asarray(survey.images[g]))), "cutout.fits",
                       tuple(survey.bands), survey.images.shape[-1])
    embedding = embed_image(quick, flux)
    cos, rank = cosine_to_stored(quick, embedding, g)
    assert cos > 0.999 and rank == 0
    _, nn = quick.similarity_index("embeddings").search(embedding, 1)
    assert nn[0, 0] == g
    code = code_of(quick, embedding)
    stored = quick.search_vectors("codes")[g]
    assert set(np.flatnonzero(code)) == set(np.flatnonzero(stored))  # the same SAE features fire


def test_a_saved_thumbnail_comes_back_close_to_its_galaxy(quick):
    survey, thumbs = quick.survey(), quick.thumbnails()
    bands, size = tuple(survey.bands), survey.images.shape[-1]
    sigma = sky_noise(survey.images[quick.split().train[:128]])
    refilled, black = [], []
    for g in quick.split().test[:12]:
        data = png_bytes(np.asarray(thumbs[g]))
        flux = read_upload(data, "thumb.png", bands, size, sky_sigma=sigma, seed=int(g))
        rgb = np.asarray(thumbs[g]).astype(int)
        lit = (rgb.max(-1) < 250) & (rgb.min(-1) > 40)  # light well above the sky, not saturated
        if lit.sum() >= 5:  # the stretch is inverted: the galaxy's light comes back
            ratio = flux[:, lit].sum() / np.asarray(survey.images[g])[:, lit].sum()
            assert 0.9 < ratio < 1.1, ratio
        refilled.append(cosine_to_stored(quick, embed_image(quick, flux), g)[0])
        black.append(cosine_to_stored(quick, embed_image(quick, read_upload(data, "t.png", bands, size)), g)[0])
    assert np.median(refilled) > np.median(black)  # refilling the clipped sky brings it closer


def test_lupton_inversion_recovers_unsaturated_fluxes():
    rng = np.random.default_rng(0)
    flux = np.abs(rng.normal(0.05, 0.02, size=(1, 3, 16, 16))).astype(np.float32)
    rgb = fluxes_to_rgb(flux, ("g", "r", "z"))[0].transpose(2, 0, 1) / 255.0
    back = invert_lupton(rgb, ("g", "r", "z"), 0.1, 8.0)
    np.testing.assert_allclose(back, flux[0], rtol=0.05, atol=2e-3)


def test_files_that_cannot_be_used_are_refused_with_the_reason():
    bands, size = ("g", "r", "z"), 32
    cube = np.ones((3, 40, 40), np.float32)
    good = fits_bytes(fits.PrimaryHDU(cube))
    cases = [
        (b"", "x.png", "is empty"),
        (b"hello, not an image", "x.png", "not a readable image"),
        (b"hello", "notes.txt", "PNG, JPG, TIFF or FITS"),
        (b"\0" * (MAX_UPLOAD_MB * 2**20 + 1), "big.png", f"largest accepted file is {MAX_UPLOAD_MB} MB"),
        (fits_bytes(fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])),
         "table.fits", "no image HDU"),
        (fits_bytes(fits.PrimaryHDU(cube[:2])), "two.fits", "has 2 band"),
        (good[: len(good) // 2], "cut.fits", "not a readable FITS file"),
        (fits_bytes(fits.PrimaryHDU(np.full((3, 8, 8), np.nan, np.float32))), "nan.fits", "no finite pixel"),
        (png_bytes(np.zeros((8, 8, 3), np.uint8)), "x.png", "upload a FITS cube"),
    ]
    for data, name, message in cases:
        with pytest.raises(UploadError, match=message):
            read_upload(data, name, bands if "FITS cube" not in message else ("u", "g", "r", "i", "z"), size)
    out = read_upload(good, "ok.fits", bands, size)  # resampled to the survey's size, surface brightness kept
    assert out.shape == (3, size, size) and np.allclose(out, 1.0)
    grey = read_upload(png_bytes(np.full((8, 8), 200, np.uint8)), "grey.png", ("R", "G", "B"), size)
    assert grey.shape == (3, size, size) and np.allclose(grey, 200 / 255, atol=1e-6)


def test_an_atlas_with_embeddings_from_a_file_says_it_cannot_encode_images(quick, monkeypatch):
    monkeypatch.setattr(quick, "metrics", lambda stage: {"source": "file"})
    flux = np.asarray(quick.survey().images[0])
    with pytest.raises(QueryImageError, match="made elsewhere"):
        embed_image(quick, flux)
    with pytest.raises(QueryImageError, match="shape"):
        embed_image(quick, flux[:, :8, :8])
