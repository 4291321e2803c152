"""Search by uploaded image: how close a galaxy's thumbnail, saved as a PNG and uploaded, comes back to
the galaxy itself (test galaxies): the cosine between the upload's embedding and the stored one, and
how often the galaxy is the first hit or among the first ten; with and without refilling the sky
pixels that the display stretch sets to black, and for a FITS cutout of the fluxes themselves.

    python bench/upload.py --run runs/demo [--n 100]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from astropy.io import fits  # noqa: E402
from PIL import Image  # noqa: E402

from galaxyml.atlas import Atlas  # noqa: E402
from galaxyml.data.upload import read_upload, sky_noise  # noqa: E402
from galaxyml.index import normalise  # noqa: E402
from galaxyml.query_image import embed_image  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/demo", help="atlas folder (default runs/demo)")
    p.add_argument("--n", type=int, default=100, help="test galaxies uploaded (default 100)")
    args = p.parse_args()
    atlas = Atlas.open(args.run)
    survey, thumbs = atlas.survey(), atlas.thumbnails()
    bands, size = tuple(survey.bands), survey.images.shape[-1]
    cfg = atlas.manifest["stages"]["thumbnails"]["config"]
    emb = np.asarray(atlas.embeddings())
    mean = emb.mean(0)
    unit = normalise(emb - mean)
    sigma = sky_noise(survey.images[atlas.split().train[:256]])
    rows = atlas.split().test[: args.n]
    print(f"{atlas.name}: {len(rows)} test galaxies, embeddings by {atlas.embeddings_source()}; sky noise per band "
          f"{', '.join(f'{b} {s:.4f}' for b, s in zip(bands, sigma))}")

    def upload(g: int, kind: str) -> np.ndarray:
        buf = io.BytesIO()
        if kind == "fits":
            fits.PrimaryHDU(np.asarray(survey.images[g])).writeto(buf)
            return read_upload(buf.getvalue(), "cutout.fits", bands, size)
        Image.fromarray(np.asarray(thumbs[g])).save(buf, format="PNG")
        return read_upload(buf.getvalue(), "thumb.png", bands, size, cfg["stretch"], cfg["q"],
                           sigma if kind == "png, sky refilled" else None, seed=int(g))

    print(f"\n{'upload':22s} {'median cos':>10s} {'first hit':>9s} {'top 10':>7s}")
    for kind in ("fits", "png, sky refilled", "png, black sky"):
        cos, rank = [], []
        for g in rows:
            q = normalise((embed_image(atlas, upload(g, kind)) - mean)[None])[0]
            sims = unit @ q
            cos.append(sims[g])
            rank.append(int((sims > sims[g]).sum()))
        rank = np.array(rank)
        print(f"{kind:22s} {np.median(cos):10.3f} {np.mean(rank == 0):9.0%} {np.mean(rank < 10):7.0%}")


if __name__ == "__main__":
    main()
