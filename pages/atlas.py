"""Atlas page: one feature at a time, for any feature model (TopK SAE, Matryoshka SAE, PCA, SFNets).

Deep link: ``/atlas?run=demo&model=sae&feature=123&galaxy=<galaxy_id>``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml.atlas import FEATURE_MODELS
from galaxyml.effects import has_vote_effects
from galaxyml.interpret import matryoshka_family, property_for_query, search_text
from galaxyml.viz.features import activation_histogram, vote_effect_bars
from ui import loaders
from ui.feature_views import correlations, example_galleries, feature_link, neighbour_links, search_link
from ui.sidebar import page
from ui.export import chart, export_gallery, export_table
from ui.widgets import bad_link, gallery, linked_choice

atlas = page("Feature atlas", needs=("features", "sfnet_metallicity", "sfnet_bpt"))
catalog = loaders.catalog(atlas)
thumbs = loaders.thumbnails(atlas)


def choose_model() -> str:
    available = atlas.feature_models()
    model = linked_choice("model", available, available[0], "a feature model ready in this atlas")
    model = st.segmented_control("Feature model", available, default=model, format_func=FEATURE_MODELS.get) or model
    if model != st.query_params.get("model", available[0]):
        for key in ("feature", "galaxy"):  # feature numbers belong to one model
            st.query_params.pop(key, None)
    st.query_params["model"] = model
    return model


def searched_features(fs) -> tuple[pd.DataFrame, str]:
    """The features in the order the picker lists them (sorted by a searched property's |rho|, filtered by a
    searched label, or live and densest first), a random-feature button, and the query typed."""
    stats = fs.stats.sort_values(["dead", "density"], ascending=[True, False])
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    query = left.text_input("Search features by label or property",
                            placeholder="e.g. metallicity, spiral, features correlated with stellar mass, high g_r")
    if right.button("Random feature", icon=":material/casino:"):
        live = stats.loc[~stats["dead"], "feature"].to_numpy()
        st.query_params["feature"] = str(int(np.random.default_rng().choice(live)))
        st.query_params.pop("galaxy", None)
    if query != st.session_state.get("atlas_search", ""):  # a new search opens its best match
        st.session_state["atlas_search"] = query
        for key in ("feature", "galaxy"):
            st.query_params.pop(key, None)
    prop = property_for_query(query, list(fs.rho.columns)) if query and fs.rho is not None else None
    text = search_text(query)
    if prop:
        stats = stats.assign(_r=fs.rho[prop].abs().to_numpy()[stats["feature"]]).sort_values("_r", ascending=False)
        st.caption(f"Features sorted by |Spearman ρ| with **{prop}** on the held-out galaxies.")
    elif text and "label" in stats:
        stats = stats[stats["label"].str.contains(text, case=False, regex=False)
                      | stats["best_property"].str.contains(text, case=False, regex=False)]
        if stats.empty:
            st.info(f"No feature's label mentions '{text}'.")
            stats = fs.stats
    return stats, query


def pc_suffix(model: str, f: int) -> str:
    """' · PCn (+/-)' for a PCA feature (component n, one sign), else nothing."""
    return f" · PC{f // 2 + 1} ({'+' if f % 2 == 0 else '−'})" if model == "pca" else ""


def choose_feature(fs, model: str, stats: pd.DataFrame, query: str) -> int:
    """The feature from the link or the picker; by default the sparse feature some property explains best."""
    live = stats[~stats["dead"]]
    candidates = live[live["density"] <= 0.1] if (live["density"] <= 0.1).any() else live
    default = int((candidates.sort_values("max_abs_rho", ascending=False) if "max_abs_rho" in stats and not query
                   and len(candidates) else stats)["feature"].iloc[0])
    raw = st.query_params.get("feature", str(default))
    try:
        feature = fs.check_feature(int(raw))
    except (ValueError, IndexError):
        bad_link(f"?feature={raw} is not a feature of this model (0–{fs.n_features - 1}); showing feature {default}.")
        feature = default
    order = stats["feature"].tolist()
    if feature not in order:
        order = [feature, *order]
    names = {int(r.feature): f"#{r.feature}{pc_suffix(model, r.feature)} · density {r.density:.2%}"
             + (" · dead" if r.dead else "") + (f" · {fs.labels[r.feature]}" if fs.labels[r.feature] else "")
             for r in fs.stats.itertuples()}
    picked = st.selectbox(f"Feature ({FEATURE_MODELS[model]}, {fs.n_features:,} features)", order,
                          index=order.index(feature), format_func=names.get)
    if picked != feature:
        feature = int(picked)
        st.query_params.pop("galaxy", None)
    st.query_params["feature"] = str(feature)
    return feature


def feature_summary(fs, model: str, feature: int) -> None:
    """Label, density, activation scale, best correlation and novelty; the SFNet head weight or the
    Matryoshka family where they apply."""
    row = fs.stats.iloc[feature]
    if "label" in row:
        st.subheader(f"#{feature}{pc_suffix(model, feature)} · {row.label}")
    cols = st.columns(6)
    cols[0].metric("Density", f"{row.density:.2%}", help="Share of galaxies on which the feature is active")
    cols[1].metric("Active on", f"{int(row.n_active):,}")
    cols[2].metric("Max activation", f"{row.max_activation:.3g}")
    cols[3].metric("Mean when active", f"{row.mean_when_active:.3g}")
    if "max_abs_rho" in row:
        cols[4].metric("Best |ρ|", f"{row.max_abs_rho:.2f}",
                       help=f"Spearman correlation with {row.best_property or 'no property'}, the property this "
                            "feature correlates with most on the validation galaxies, measured on the test galaxies")
        cols[5].metric("Novelty", f"{row.novelty:.2f}", help="1 − R² of the activation regressed on all properties, "
                                                              "on the held-out (validation and test) galaxies")
    if model.startswith("sfnet"):
        weights, _, targets = loaders.sfnet_head(atlas, model)
        st.caption("Head weight" + ("s" if len(targets) > 1 else "") + ": " + ", ".join(
            f"{weights[j, feature]:+.4f} {t} per unit of activation" for j, t in enumerate(targets))
            + f" — the feature's contribution to a prediction is its activation times this weight "
              f"([predictions page](/predictions?run={atlas.name}&model={model})).")
    if model == "matryoshka":
        family = matryoshka_family(loaders.decoder_directions(atlas, model),
                                   atlas.load_json(model, "config.json")["group_sizes"], feature)

        def links(kind: str) -> str:
            return ", ".join(f"[#{f}]({feature_link(atlas.name, model, int(f))}) (cos {c:.2f})"
                             for f, c in zip(*family[kind])) or "none"

        st.caption(f"Matryoshka group {family['group'] + 1} of {family['n_groups']} (latents {family['first']}–"
                   f"{family['last']}): the first groups must reconstruct the embeddings on their own, so they hold "
                   f"the broad features and later groups refine them. Closest coarser features: {links('coarser')}; "
                   f"closest finer features: {links('finer')}.")
    if row.dead:
        st.warning("This feature never fires on this survey (a dead latent).")
    elif row.density > 0.1:
        st.info("Dense feature: active on more than 10% of galaxies.")


def top_galaxies(fs, model: str, feature: int) -> tuple[np.ndarray, np.ndarray]:
    """The feature's top galaxies (gallery, PNG and CSV); returns their rows and ids."""
    gal, val = fs.top(feature)
    st.subheader(f"Top {len(gal)} galaxies")
    ids = catalog["galaxy_id"].to_numpy()[gal]
    if len(gal):
        top_thumbs = np.asarray(thumbs[gal])
        gallery(top_thumbs, [f"{a:.3g}" for a in val])
        table = pd.DataFrame({"rank": np.arange(1, len(gal) + 1), "galaxy_id": ids, "activation": val})
        title = f"{FEATURE_MODELS.get(model, model)} feature {feature}: top {len(gal)} galaxies"
        c1, c2, c3, _ = st.columns([1, 1, 1, 2])
        with c1:
            export_gallery(top_thumbs, ids, title, atlas, stages(model), values=val, value_label="activation")
        with c2:
            export_table(table.merge(catalog, on="galaxy_id", how="left"), title, atlas, stages(model),
                         units={"activation": ""}, key="top")
        with c3:
            export_table(fs.stats, f"{FEATURE_MODELS.get(model, model)} feature statistics", atlas, stages(model),
                         key="stats", label="Export every feature's statistics")
    return gal, ids


def histogram_and_correlations(fs, model: str, feature: int) -> None:
    hist, corr = st.columns(2)
    hist.markdown("**Activation histogram**")
    chart(activation_histogram(fs.hist_edges[feature], fs.hist_counts[feature]),
          f"{FEATURE_MODELS.get(model, model)} feature {feature}: activation histogram", atlas, stages(model),
          where=hist)
    hist.caption(f"Non-zero activations only; {len(catalog) - int(fs.stats.iloc[feature].n_active):,} galaxies have "
                 "activation 0.")
    with corr:
        st.markdown("**Property correlations**")
        correlations(fs, feature, atlas, stages(model))


def vote_effects(model: str, feature: int) -> None:
    """What removing the feature from the embeddings does to the vote network's answers (held-out galaxies)."""
    effect, note = st.columns([2, 1])
    effect.markdown("**Effect on the vote network's answers**")
    effects_table = loaders.vote_effects(atlas, model, feature)
    if (effects_table["delta"] == 0).all():
        effect.info("This feature fires on no held-out galaxy, so its effect is not measured (on the training "
                    "galaxies the vote network answers from memory).")
    else:
        chart(vote_effect_bars(effects_table), f"{FEATURE_MODELS.get(model, model)} feature {feature}: effect on the "
              "vote network", atlas, (*stages(model), "effects"), where=effect)
    note.caption("Mean over the feature's 30 strongest held-out galaxies (validation and test splits, which the "
                 "vote network never trained on) of each vote fraction the vote network predicts from "
                 "their embeddings, minus the same prediction with this feature removed (its activation times "
                 "its direction subtracted from each embedding). Positive: the feature raises that answer. A "
                 "causal reading of the feature, next to its correlations with the catalog; a feature whose "
                 "information other active features also carry shows a small effect.")


def related_features(fs, model: str, feature: int) -> None:
    near, co = st.columns(2)
    with near:
        if model == "pca":
            st.markdown("**Nearest features**")
            st.caption("Principal components are orthogonal, so no feature has a near neighbour (only its own "
                       "opposite sign, cosine −1).")
        elif fs.nearest is not None:
            basis = "activation cosine" if model.startswith("sfnet") else "decoder cosine"
            neighbour_links(f"Nearest features ({basis})", fs.nearest[feature], fs.nearest_cos[feature],
                            atlas.name, model, fs)
    with co:
        if fs.cooccurrence is not None:
            neighbour_links("Most often active together", fs.cooccurrence[feature], None, atlas.name, model, fs)


def galaxy_drill_down(fs, model: str, gal: np.ndarray, ids: np.ndarray) -> None:
    """One of the top galaxies: its catalog record, the features that fire on it and its most similar galaxies."""
    options = list(ids)
    wanted = linked_choice("galaxy", options, options[0], "among this feature's top galaxies")
    galaxy_id = st.selectbox("Galaxy (from the top list)", options, index=options.index(wanted))
    st.query_params["galaxy"] = galaxy_id
    g = int(gal[options.index(galaxy_id)])
    left, right = st.columns([4, 5])
    left.image(np.asarray(thumbs[g]), caption=galaxy_id, width=192)
    if atlas.ready("index"):
        left.markdown(f"[Search for similar galaxies]({search_link(atlas.name, galaxy_id)})")
    units = atlas.survey_meta().get("units", {})
    record = catalog.iloc[g].drop("galaxy_id")
    shown = [f"{v:.5g}" if isinstance(v, (float, np.floating)) else str(v) for v in record.values]
    left.dataframe(pd.DataFrame({"property": record.index, "value": shown,
                                 "unit": [units.get(k, "") for k in record.index]}), hide_index=True, height=300)
    active = fs.features_of(g)
    active["label"] = fs.labels[active["feature"].to_numpy()]
    active["link"] = [feature_link(atlas.name, model, f) for f in active["feature"]]
    right.markdown(f"**{len(active)} features fire on this galaxy**")
    right.dataframe(active, hide_index=True, width="stretch",
                    column_config={"link": st.column_config.LinkColumn("open", display_text="open feature")})
    if atlas.ready("index"):
        sims, nn = loaders.similarity_index(atlas).search(np.asarray(loaders.embeddings(atlas)[g]), k=13)
        keep = nn[0] != g
        st.markdown(f"**Most similar galaxies** (cosine similarity of centred embeddings of the "
                    f"{atlas.embeddings_source()}, FAISS)")
        gallery(np.asarray(thumbs[nn[0][keep][:12]]), [f"{s:.3f}" for s in sims[0][keep][:12]], width=88)


def stages(model: str) -> tuple[str, ...]:
    """The stages behind a figure of this model's features."""
    return (model, "features", "thumbnails", "survey")


model = choose_model()
fs = loaders.feature_set(atlas, model)
stats, query = searched_features(fs)
feature = choose_feature(fs, model, stats, query)
feature_summary(fs, model, feature)
gal, ids = top_galaxies(fs, model, feature)
histogram_and_correlations(fs, model, feature)
if has_vote_effects(atlas, model) and len(gal):
    vote_effects(model, feature)
related_features(fs, model, feature)
if st.toggle("Show activation-quantile and random examples", value=st.query_params.get("examples") == "1"):
    st.query_params["examples"] = "1"
    example_galleries(fs, feature, thumbs)
else:
    st.query_params.pop("examples", None)
st.subheader("Galaxy drill-down")
if len(gal):
    galaxy_drill_down(fs, model, gal, ids)
