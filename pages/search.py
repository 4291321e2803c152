"""Search: the galaxies most like one galaxy, like the galaxy at a sky position, or like a set of
positive examples and unlike a set of negative ones; in embedding space or sparse-code space."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml.data.survey import fluxes_to_rgb
from galaxyml.query_image import QueryImageError, code_of, embed_image
from galaxyml.search import example_scores, nearest_galaxy, parse_position
from ui import loaders
from ui.feature_views import feature_link
from ui.sidebar import page
from ui.export import export_gallery, export_table
from ui.widgets import cutout_uploader, gallery, linked_choice, read_cutout

SPACES = {"embeddings": "Embeddings (cosine)", "codes": "Sparse codes of the TopK SAE (cosine)"}
MODES = {"galaxy": "A galaxy", "position": "A sky position", "image": "An image", "examples": "Examples"}
FAR_ARCSEC = 10.0

atlas = page("Search", needs="index")
STAGES = ("index", "embeddings", "survey", "thumbnails")
catalog = loaders.catalog(atlas)
ids = catalog["galaxy_id"].to_numpy()
row_of = loaders.galaxy_rows(atlas)
thumbs = loaders.thumbnails(atlas)
spaces = atlas.search_spaces()

space = linked_choice("space", spaces, spaces[0], "a search space of this atlas")
space = st.segmented_control("Search in", spaces, default=space, format_func=SPACES.get) or space
st.query_params["space"] = space
mode = linked_choice("by", list(MODES), "galaxy", "a way to search")
mode = st.segmented_control("Find galaxies like", list(MODES), default=mode, format_func=MODES.get) or mode
st.query_params["by"] = mode
k = st.slider("Results", 6, 60, int(st.query_params.get("k", 18)) if str(st.query_params.get("k", "")).isdigit() else 18,
              step=6)
st.query_params["k"] = str(k)
vectors = loaders.search_vectors(atlas, space)
fs = loaders.feature_set(atlas, "sae") if atlas.ready("features") and "sae" in atlas.feature_models() else None


def parse_ids(text: str) -> tuple[list[int], list[str]]:
    """Rows of the ids in ``text`` (separated by commas, spaces or lines) and the ids not in the survey."""
    tokens = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    return [row_of[t] for t in tokens if t in row_of], [t for t in tokens if t not in row_of]


def active(g: int) -> set[int]:
    return set(fs.features_of(g)["feature"].tolist()) if fs is not None else set()


def show_results(rows: np.ndarray, scores: np.ndarray, query: set[int], label: str) -> None:
    """Gallery and table of result rows, with the SAE features each shares with the query."""
    if not len(rows):
        st.info("No galaxy to show.")
        return
    gallery(np.asarray(thumbs[rows]), [f"{ids[r]} · {s:.3f}" for r, s in zip(rows, scores)], width=104)
    table = pd.DataFrame({"galaxy_id": ids[rows], label: scores})
    if fs is not None:
        table["shared SAE features"] = [", ".join(f"#{f}" for f in sorted(active(r) & query)[:8]) for r in rows]
    for col in ("ra", "dec", "z", "split"):
        if col in catalog:
            table[col] = catalog[col].to_numpy()[rows]
    st.dataframe(table, hide_index=True, width="stretch")
    c1, c2, _ = st.columns([1, 1, 4])
    title = f"Search results ({SPACES[space].split(' (')[0].lower()})"
    with c1:
        export_gallery(np.asarray(thumbs[rows]), ids[rows], title, atlas, STAGES, values=scores, value_label=label,
                       key="results")
    with c2:
        export_table(table, "Search results", atlas, STAGES, key="results")


def feature_links(features) -> str:
    return ", ".join(f"[#{int(f)}]({feature_link(atlas.name, 'sae', int(f))})" for f in features)


def neighbours_of(g: int) -> None:
    sims, nn = loaders.similarity_index(atlas, space).search(np.asarray(vectors[g]), k + 1)
    keep = [(j, s) for j, s in zip(nn[0], sims[0]) if j != g and j >= 0][:k]
    left, right = st.columns([1, 5])
    left.image(np.asarray(thumbs[g]), caption=f"query: {ids[g]}", width=128)
    if fs is not None:
        left.markdown("SAE features: " + feature_links(fs.features_of(g).head(6)["feature"]))
    with right:
        show_results(np.array([j for j, _ in keep], int), np.array([s for _, s in keep]), active(g), "cosine similarity")


def neighbours_of_image(upload) -> None:
    """Encode an uploaded image with the atlas's embedding network (a forward pass) and search its neighbours."""
    survey = atlas.survey()
    size = survey.images.shape[-1]
    stretch = atlas.manifest["stages"]["thumbnails"]["config"]
    flux = read_cutout(atlas, upload)
    if flux is None:
        return
    try:
        embedding = embed_image(atlas, flux)
        code = code_of(atlas, embedding) if space == "codes" or fs is not None else None
        query = code if space == "codes" else embedding
    except QueryImageError as e:
        st.error(str(e))
        return
    if not np.isfinite(query).all() or (space == "codes" and not query.any()):
        st.error("The network gives this image no usable vector (no sparse feature fires); try another cutout.")
        return
    sims, nn = loaders.similarity_index(atlas, space).search(query, k)
    keep = nn[0] >= 0
    fired = set(np.flatnonzero(code)) if fs is not None else set()
    left, right = st.columns([1, 5])
    left.image(fluxes_to_rgb(flux[None], tuple(survey.bands), stretch["stretch"], stretch["q"])[0],
               caption=f"{upload.name}, as the network sees it ({size}×{size} px)", width=128)
    if fired:
        left.markdown("SAE features: " + feature_links(np.argsort(-code)[: min(6, len(fired))]))  # strongest first
    with right:
        show_results(nn[0][keep], sims[0][keep], fired, "cosine similarity")


if mode == "galaxy":
    first = str(ids[0])
    typed = st.text_input("Galaxy id", value=st.query_params.get("galaxy", ""), placeholder=f"e.g. {first}").strip()
    if typed and typed not in row_of:
        st.warning(f"No galaxy with id '{typed}' in this atlas; showing {first}.")
    galaxy = typed if typed in row_of else first
    if typed in row_of or not typed:
        st.query_params["galaxy"] = galaxy
    neighbours_of(row_of[galaxy])
elif mode == "position":
    default = " ".join(str(st.query_params.get(c, "")) for c in ("ra", "dec")).strip()
    text = st.text_input("RA Dec (degrees, or sexagesimal: 10h00m28.6s +02d12m21s)", value=default,
                         placeholder="150.1 2.2")
    if text:
        try:
            position = parse_position(text)
            g, sep = nearest_galaxy(catalog, position)
        except ValueError as e:
            st.error(str(e))
        else:
            st.query_params["ra"], st.query_params["dec"] = f"{position.ra.deg:.6f}", f"{position.dec.deg:+.6f}"
            where = f"RA {position.ra.deg:.5f}°, Dec {position.dec.deg:+.5f}°"
            if sep > FAR_ARCSEC:
                st.warning(f"No galaxy of this survey lies within {FAR_ARCSEC:.0f}″ of {where}: the nearest, "
                           f"**{ids[g]}**, is {sep / 3600:.3f}° ({sep:,.0f}″) away. Its neighbours are shown.")
            else:
                st.success(f"Nearest galaxy to {where}: **{ids[g]}**, {sep:.2f}″ away.")
            neighbours_of(g)
    else:
        st.info("Type a sky position to find the nearest galaxy of the survey and the galaxies most like it.")
elif mode == "image":
    upload = cutout_uploader()
    if upload is None:
        st.info("Upload a cutout centred on a galaxy. It is resampled to the survey's cutout size and passed through "
                "the network that made this atlas's embeddings (no training); a colour image of a flux survey is "
                "turned back into fluxes by inverting the atlas's display stretch, so thumbnails saved from this "
                "atlas come back as they were. Largest file: 16 MB.")
    else:
        neighbours_of_image(upload)
else:
    c1, c2 = st.columns(2)
    pos_text = c1.text_area("Positive examples (galaxy ids)", value=st.query_params.get("positive", "").replace(",", " "),
                            placeholder="ids separated by spaces, commas or lines")
    neg_text = c2.text_area("Negative examples (optional)", value=st.query_params.get("negative", "").replace(",", " "))
    pos, pos_unknown = parse_ids(pos_text)
    neg, neg_unknown = parse_ids(neg_text)
    if pos_unknown or neg_unknown:
        st.warning("Not in this atlas, left out: " + ", ".join(pos_unknown + neg_unknown))
    if not pos:
        st.info("Give at least one positive example: ids from any gallery of the atlas (the feature pages, a search "
                "above). With three or more positives and negatives a logistic classifier ranks the survey; "
                "otherwise a Rocchio query (mean of the positives minus half the mean of the negatives).")
    else:
        st.query_params["positive"] = ",".join(ids[pos])
        st.query_params["negative"] = ",".join(ids[neg])
        try:
            scores, method = example_scores(np.asarray(vectors), np.array(pos), np.array(neg))
        except ValueError as e:
            st.error(str(e))
        else:
            scores = scores.copy()
            scores[np.r_[pos, neg].astype(int)] = -np.inf
            top = np.argsort(-scores)[:k]
            st.caption(f"Ranked by {'a logistic classifier (decision function)' if method == 'logistic' else 'a Rocchio query (cosine)'} "
                       f"on {len(pos)} positive and {len(neg)} negative examples; the examples themselves are left out.")
            query = set.intersection(*(active(g) for g in pos)) if fs is not None else set()
            if fs is not None:
                codes = np.asarray(loaders.search_vectors(atlas, "codes"))
                drive = pd.Series(codes[pos].mean(0) - (codes[neg].mean(0) if neg else 0))
                best = drive.sort_values(ascending=False).head(6)
                st.markdown("SAE features most active in the positives (relative to the negatives): " + ", ".join(
                    f"[#{f}]({feature_link(atlas.name, 'sae', int(f))}) ({v:+.2f})" for f, v in best.items() if v > 0))
            show_results(top, scores[top], query, "score")

retrieval = atlas.metrics("index").get("retrieval_p10", {}).get(space)
if retrieval:
    st.subheader("How well neighbours share a structure")
    rows = [{"structure": name, "precision@10": r["p10"], "base rate": r["base_rate"],
             "example set precision@10": f"{r['p10_examples']:.2f}" if "p10_examples" in r else "–",
             "queries": r["n_queries"]}
            for name, r in retrieval.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="content", column_config={
        c: st.column_config.NumberColumn(format="%.2f") for c in ("precision@10", "base rate")})
    st.caption("For held-out galaxies (never trained on) with each truth flag: the share of their 10 nearest "
               "neighbours in this space that have the flag too, against the flag's share of the survey; `_visible` "
               "flags count only structure an image shows. The example set: 5 positive and 5 negative held-out "
               "galaxies, 10 draws (– where too few held-out galaxies have the flag).")
    info = atlas.metrics("index").get("spaces", {}).get(space, {})
    if info:
        st.caption(f"Index: {info['kind']} over {info['n']:,} vectors of {info['d']} dimensions; recall@10 against "
                   f"exact search {info['recall_at_10']:.3f}; single-query latency p50 {info['p50_ms']:.2f} ms, "
                   f"p99 {info['p99_ms']:.2f} ms (measured at build time).")
