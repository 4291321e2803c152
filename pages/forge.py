"""Forge page: sample star particles of a galaxy from a conditional flow (GalacticForge) and compare
them with the galaxy's true stars: pairs, profiles, a rendered image, the flows' held-out scores.

A galaxy can also start from an uploaded image: the autoencoder encodes it to the 16-d latent, the
conditions are set with sliders, and the flow samples stars for it (there are no true stars to compare).

Deep links: ``/forge?run=demo&flow=nsf&galaxy=<galaxy_id>``, ``/forge?run=demo&source=image``.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml.data.mock.particles import PARTICLE_COLUMNS
from galaxyml.forge.conditional import CONDITION_UNITS, CONDITIONS, context_vector, galaxy_conditions
from galaxyml.forge.evaluate import radial_profiles
from galaxyml.forge.prep import CleanConfig, clean
from galaxyml.forge.tables import UNITS as STAR_UNITS
from galaxyml.forge.tables import ParticleSet
from galaxyml.data.survey import fluxes_to_rgb
from galaxyml.models.autoencoder import encode, reconstruct, to_flux
from galaxyml.models.flows import FLOW_NAMES
from galaxyml.viz.forge import PROFILE_COLUMNS, flows_table, pair_figure, profile_figure, render_particles
from ui import loaders
from ui.sidebar import page
from ui.export import chart, export_table
from ui.widgets import cutout_uploader, linked_choice, linked_int, read_cutout

MAX_STARS = 2_000_000
AUTO_STARS = 200_000
SOURCES = {"galaxy": "a galaxy of the survey", "image": "an uploaded image"}
atlas = page("Forge", needs="forge")
STAGES = ("forge", "autoencoder", "survey")
metrics = atlas.metrics("forge")
catalog = loaders.catalog(atlas)
galaxies = loaders.forge_galaxies(atlas)
names = tuple(galaxies["context_names"])
latent = loaders.ae_latent(atlas) if any(n.startswith("latent_") for n in names) else None


def flow_scores() -> None:
    st.markdown("**Flows on held-out galaxies**")
    st.dataframe(flows_table(metrics), hide_index=True, width="stretch",
                 column_config={"C2ST AUC": st.column_config.NumberColumn(format="%.3f"),
                                "NLL [nats/star]": st.column_config.NumberColumn(format="%.2f"),
                                "W1 [std]": st.column_config.NumberColumn(format="%.3f"),
                                **{c: st.column_config.NumberColumn(format="%.2f") for c in PROFILE_COLUMNS.values()}})
    export_table(flows_table(metrics), "Flows on held-out galaxies", atlas, STAGES, key="flows")
    g = metrics["galaxies"]
    st.caption(f"Trained on the stars of {g['train']} training galaxies, checkpoints and the best flow "
               f"(**{FLOW_NAMES[metrics['best_flow']]}**) chosen on {g['val']} validation galaxies, every number "
               f"on {g['test']} test galaxies the flows never saw (C2ST: a gradient-boosted classifier telling "
               "true from sampled stars, 0.5 = indistinguishable). The Gaussian is fitted to each test galaxy's "
               "own stars; the last row compares true stars with other true stars: the best any model can score. "
               "The profile errors are mean absolute differences from the true radial profiles over 12 bins "
               "out to the 95th-percentile radius.")


def choose_galaxy() -> int:
    ids = catalog["galaxy_id"].astype(str).to_numpy()
    test_rows = galaxies["test"]
    options = [ids[r] for r in test_rows] + [ids[r] for r in np.setdiff1d(atlas.split().test, test_rows)[:200]]
    gid = linked_choice("galaxy", options, options[0], "a test galaxy of this atlas")
    gid = st.selectbox("Galaxy (test galaxies; the first ones are those the flows were scored on)", options,
                       index=options.index(gid))
    st.query_params["galaxy"] = gid
    return int(np.nonzero(ids == gid)[0][0])


def conditions_of(row: int) -> tuple[np.ndarray, ParticleSet]:
    """The galaxy's true stars (cleaned as for training) and its raw context."""
    true = atlas.survey().particles(row, 20_000)
    stars, _ = clean(ParticleSet(true, PARTICLE_COLUMNS), CleanConfig(min_particles=50))
    cond = galaxy_conditions(stars.data, float(catalog.iloc[row]["log_mstar"]))
    extras = {n: float(catalog.iloc[row][n]) for n in names if n not in CONDITIONS and not n.startswith("latent_")}
    return context_vector(cond, extras, None if latent is None else latent[row], names), stars


def edit_conditions(raw: np.ndarray, forge, expanded: bool = False) -> np.ndarray:
    """Sliders over GalacticFlow's conditions and the catalog extras (the image latent stays the image's own)."""
    raw = raw.copy()
    editable = [n for n in names if not n.startswith("latent_")]
    with st.expander("Move the conditions", expanded=expanded):
        cols = st.columns(len(editable))
        for k, name in enumerate(editable):
            i = names.index(name)
            lo, hi = forge.context.low_[i], forge.context.high_[i]
            pad = 0.25 * (hi - lo)
            unit = CONDITION_UNITS.get(name, "")
            raw[i] = cols[k].slider(f"{name} [{unit}]" if unit else name, float(lo - pad), float(hi + pad),
                                    float(raw[i]), key=f"cond_{name}")
    outside = forge.context.outside(raw)
    if outside:
        st.warning(f"{', '.join(outside)} outside the range of the training galaxies: the flow extrapolates.",
                   icon=":material/warning:")
    return raw


def how_many() -> int:
    n = int(st.number_input("Stars to sample", min_value=1, value=linked_int("n", 20_000, 1), step=10_000))
    st.query_params["n"] = str(n)
    if n > MAX_STARS:
        st.warning(f"{n:,} stars is more than this page draws at once; sampling {MAX_STARS:,}.")
        n = MAX_STARS
    return n


def draw(forge, kind: str, raw: np.ndarray, n: int, seed: int) -> np.ndarray | None:
    """The sampled stars (kept while the choice is unchanged); above AUTO_STARS only on request."""
    key = (kind, tuple(np.round(raw, 6)), n, seed)
    if st.session_state.get("forge_key") != key:
        if n > AUTO_STARS and not st.button(f"Sample {n:,} stars", type="primary"):
            st.info(f"{n:,} stars take a while to draw (progress is shown); press the button to start.")
            return None
        bar = st.progress(0.0, text="sampling")
        stars = forge.sample(raw, n, seed=seed, progress=lambda d, t, m: bar.progress(d / t, text=f"sampling {m}"))
        bar.empty()
        st.session_state["forge_key"], st.session_state["forge_stars"] = key, stars
    return st.session_state["forge_stars"]


def image_tab(sampled: np.ndarray, true: np.ndarray | None, row: int | None, picture: np.ndarray) -> None:
    """The sampled (and true) stars rendered as images beside the survey or uploaded picture."""
    c = st.columns(3)
    info = catalog.iloc[row] if row is not None else {}
    incl = c[0].slider("Inclination [deg]", 0, 90, int(np.degrees(np.arccos(info.get("cos_incl", 1.0)))))
    pa = c[1].slider("Position angle [deg]", 0, 180, int(info.get("pa_deg", 0.0)) % 180)
    colour = c[2].segmented_control("Colour by", ["age", "Z"], default="age") or "age"
    ref = sampled if true is None else true
    half = float(np.percentile(np.hypot(ref[:, 0], ref[:, 1]), 95))
    vals = ref[:, PARTICLE_COLUMNS.index(colour)]
    vals = np.log10(vals) if colour == "Z" else vals
    rng = tuple(np.percentile(vals, [2, 98]))
    kw = dict(cos_incl=float(np.cos(np.radians(incl))), pa_deg=float(pa), colour=colour, half_size_kpc=half,
              colour_range=rng)
    cols = st.columns(3)
    cols[0].image(render_particles(sampled, PARTICLE_COLUMNS, **kw), caption="sampled stars", width="stretch")
    if true is not None:
        cols[1].image(render_particles(true, PARTICLE_COLUMNS, **kw), caption="true stars", width="stretch")
    cols[2].image(picture, caption="survey image" if row is not None else "uploaded image", width="stretch")
    st.caption(f"Projected stellar surface density (brightness, log) coloured by mean "
               f"{'age [Gyr]' if colour == 'age' else 'log10 Z'} ({rng[0]:.2f} to {rng[1]:.2f}, viridis), "
               f"±{half:.1f} kpc" + ("; the survey image's orientation is the catalog's." if row is not None else "."))


def from_upload(forge) -> tuple[np.ndarray, np.ndarray] | None:
    """(flux image, raw context) of an uploaded cutout: its autoencoder latent, and the training galaxies'
    mean conditions to start the sliders from; None until a usable file is given."""
    if latent is None:
        st.info("The flows of this atlas were trained without the image latent, so an image cannot condition "
                "them; rebuild the forge stage with `forge.use_latent = true` and the autoencoder stage.")
        return None
    upload = cutout_uploader()
    if upload is None:
        st.info("Upload a cutout centred on a galaxy: the autoencoder encodes it to its 16-d latent (a forward "
                "pass, no training), you set the physical conditions, and the flow samples the galaxy's stars.")
        return None
    flux = read_cutout(atlas, upload)
    if flux is None:
        return None
    model, norm, _ = loaders.autoencoder(atlas)
    lat = encode(model, flux[None], norm)[0]
    mean = dict(zip(forge.context.names, forge.context.mean_))
    raw = context_vector({n: mean[n] for n in CONDITIONS}, {n: mean[n] for n in names if n not in CONDITIONS
                                                            and not n.startswith("latent_")}, lat, names)
    return flux, raw


def autoencoder_tab(image: np.ndarray) -> None:
    model, norm, info = loaders.autoencoder(atlas)
    x, rec = reconstruct(model, np.asarray(image)[None], norm)
    bands = tuple(info.get("bands", ("g", "r", "z")))
    cols = st.columns(3)
    cols[0].image(fluxes_to_rgb(to_flux(x, norm), bands)[0], caption="input (resampled)", width="stretch")
    cols[1].image(fluxes_to_rgb(to_flux(rec, norm), bands)[0], caption="reconstruction", width="stretch")
    ae = atlas.metrics("autoencoder")
    cols[2].metric("Test MSE", f"{ae['test_mse']:.3f}", help="Mean squared reconstruction error on test galaxies")
    cols[2].metric("PCA-16 test MSE", f"{ae['pca_test_mse']:.3f}", help="PCA with as many components")
    z = encode(model, np.asarray(image)[None], norm)[0]
    st.caption("Latent: " + ", ".join(f"{v:+.2f}" for v in z))


def export(sampled: np.ndarray, gid: str, kind: str) -> None:
    """The sampled stars: a table (parquet, FITS or CSV, with units and provenance) or a bare npy array."""
    npy = io.BytesIO()
    np.save(npy, sampled, allow_pickle=False)
    c = st.columns([1, 1, 3])
    with c[0]:
        export_table(pd.DataFrame(sampled, columns=list(PARTICLE_COLUMNS)), f"{FLOW_NAMES[kind]} stars of {gid}",
                     atlas, STAGES, units=STAR_UNITS, key="stars")
    c[1].download_button("Sampled stars (npy)", npy.getvalue(), f"forge_{gid}_{kind}.npy", on_click="ignore")


flow_scores()
left, right = st.columns([2, 1])
with right:
    kinds = list(metrics["flows"])
    kind = linked_choice("flow", kinds, metrics["best_flow"], "a flow of this atlas")
    kind = st.selectbox("Flow", kinds, index=kinds.index(kind), format_func=FLOW_NAMES.get)
    st.query_params["flow"] = kind
forge = loaders.forge_flow(atlas, kind)
with left:
    source = linked_choice("source", list(SOURCES), "galaxy", "a start for the stars")
    source = st.segmented_control("Start from", list(SOURCES), default=source, format_func=SOURCES.get) or source
    st.query_params["source"] = source
    if source == "galaxy":
        row = choose_galaxy()
        gid = str(catalog.iloc[row]["galaxy_id"])
        raw, true_set = conditions_of(row)
        true, picture, image = true_set.data, loaders.thumbnails(atlas)[row], atlas.survey().images[row]
    else:
        st.query_params.pop("galaxy", None)
        got = from_upload(forge)
        if got is None:
            st.stop()
        image, raw = got
        row, gid, true = None, "upload", None
        look = atlas.manifest["stages"]["thumbnails"]["config"]
        picture = fluxes_to_rgb(image[None], tuple(atlas.survey().bands), look["stretch"], look["q"])[0]
raw = edit_conditions(raw, forge, expanded=source == "image")
c = st.columns(2)
with c[0]:
    n = how_many()
seed = int(c[1].number_input("Seed", min_value=0, value=linked_int("seed", 0, 0)))
st.query_params["seed"] = str(seed)
sampled = draw(forge, kind, raw, n, seed)
if sampled is None:
    st.stop()
if true is None:
    st.caption(f"{len(sampled):,} stars sampled from {FLOW_NAMES[kind]} for the uploaded image's latent and the "
               "conditions above; an image has no true stars to compare with.")
else:
    st.caption(f"{len(sampled):,} stars sampled from {FLOW_NAMES[kind]} for galaxy {gid}; true stars: {len(true):,} "
               "(generated by the mock universe, cleaned as for training).")
tabs = st.tabs(["Pairs", "Profiles", "Image", "Autoencoder", "Export"])
with tabs[0]:
    chart(pair_figure(true, sampled, PARTICLE_COLUMNS), f"{FLOW_NAMES[kind]} stars of {gid}: pairs", atlas, STAGES)
with tabs[1]:
    ref = sampled if true is None else true
    edges = np.linspace(0, float(np.percentile(np.hypot(ref[:, 0], ref[:, 1]), 95)), 13)
    chart(profile_figure(None if true is None else radial_profiles(true, PARTICLE_COLUMNS, edges),
                         radial_profiles(sampled, PARTICLE_COLUMNS, edges)), f"{FLOW_NAMES[kind]} stars of {gid}: "
          "radial profiles", atlas, STAGES)
with tabs[2]:
    image_tab(sampled, true, row, picture)
with tabs[3]:
    autoencoder_tab(image)
with tabs[4]:
    export(sampled, gid, kind)
