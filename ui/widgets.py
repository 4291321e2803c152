"""Small reusable pieces of UI: the mock badge, galleries, 'waiting for a stage' notices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st


def bad_link(message: str) -> None:
    """Say that part of the link names something this atlas does not have, with a way back home."""
    run = st.query_params.get("run")
    home_link = f"/?run={run}" if run else "/"
    st.warning(f"{message} [Open the home page]({home_link}) to see what this atlas holds.", icon=":material/link_off:")


def linked_choice(key: str, options: Sequence[str], default: str, what: str) -> str:
    """The value of ``?key=`` when it is one of ``options``, else ``default``; a value that is not one of
    them is named in a warning, so that a deep link never shows something else without saying so."""
    wanted = st.query_params.get(key)
    if wanted is None:
        return default
    if wanted in options:
        return wanted
    shown = ", ".join(map(str, list(options)[:6])) + (", ..." if len(options) > 6 else "")
    bad_link(f"?{key}={wanted} is not {what} ({shown}); showing {default}.")
    return default


def mock_badge(is_mock: bool) -> None:
    if is_mock:
        st.badge("MOCK DATA · simulated galaxies with known truth", icon=":material/science:", color="orange")


def gallery(images: np.ndarray, captions: Sequence[str], width: int = 104) -> None:
    """Thumbnails in a grid, each with its caption."""
    st.image([np.asarray(im) for im in images], caption=list(captions), width=width)


def waiting_for(stages: str | tuple[str, ...], selection) -> None:
    """Say which stage a view needs (any one of ``stages``) and, if a build is running, how far it is."""
    stages = (stages,) if isinstance(stages, str) else tuple(stages)
    stage = stages[0] + "** stage" + (f" (or **{'**, **'.join(stages[1:])}**)" if len(stages) > 1 else "")
    status = selection.status
    atlas = selection.atlas
    reasons = [atlas.manifest["stages"].get(s, {}).get("not_applicable") for s in stages] if atlas else []
    if reasons and all(reasons):
        st.info(f"Atlas '{selection.run}' has no **{stage}: it does not apply to this survey ({reasons[0]}).",
                icon=":material/info:")
    elif status.state == "running":
        st.info(f"This view needs the **{stage}, which the running build has not finished yet. "
                f"It appears here as soon as it is done.", icon=":material/hourglass_top:")
        st.progress(status.fraction, text=f"{status.stage}: {status.message}")
    else:
        st.warning(f"This view needs the **{stage}, which atlas '{selection.run}' does not have. "
                   f"Start a build from the sidebar (preset *demo*) to add it.", icon=":material/construction:")


def cutout_uploader(key: str | None = None):
    """The file picker for a galaxy cutout (display images or FITS fluxes), the same on every page."""
    from galaxyml.data.upload import FITS_SUFFIXES, IMAGE_SUFFIXES

    return st.file_uploader("A galaxy cutout: PNG, JPG or TIFF (display colours), or FITS (fluxes in the survey's "
                            "bands, bands first)", type=[s.lstrip(".") for s in IMAGE_SUFFIXES + FITS_SUFFIXES
                                                         if s.count(".") == 1], key=key)


def read_cutout(atlas, upload, size: int | None = None) -> np.ndarray | None:
    """An uploaded cutout as (bands, size, size) fluxes in the survey's bands (display images turned back into
    fluxes through the atlas's thumbnail stretch, sky noise refilled); None, with the reason shown, when the
    file cannot be used."""
    from galaxyml.data.upload import UploadError, read_upload
    from ui import loaders

    survey = atlas.survey()
    stretch = atlas.manifest["stages"]["thumbnails"]["config"]
    try:
        return read_upload(upload.getvalue(), upload.name, tuple(survey.bands), size or survey.images.shape[-1],
                           stretch["stretch"], stretch["q"], loaders.sky_noise(atlas))
    except UploadError as e:
        st.error(str(e))
        return None


def linked_selectbox(label: str, options: Sequence[str], param: str, default: str | None = None, what: str = "",
                     where=st, **kwargs) -> str:
    """A select box whose choice lives in ``?param=`` (so that the link reproduces it)."""
    options = list(options)
    wanted = linked_choice(param, options, default if default in options else options[0], what or f"a {label.lower()}")
    value = where.selectbox(label, options, index=options.index(wanted), **kwargs)
    st.query_params[param] = value
    return value


def linked_int(param: str, default: int, lo: int, hi: int | None = None) -> int:
    """The integer in ``?param=`` when it is one within [lo, hi], else ``default`` (a bad value is named)."""
    raw = st.query_params.get(param)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        bad_link(f"?{param}={raw} is not a whole number from {lo:,}" + (f" to {hi:,}" if hi is not None else "")
                 + f"; showing {default:,}.")
        return default
    return value
