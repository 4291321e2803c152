"""Compare page: TopK SAE, Matryoshka SAE and PCA on the same galaxies.

Deep link: ``/compare?run=demo&property=oh_12``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from galaxyml.effects import has_vote_effects
from galaxyml.viz.compare import (NAMES, density_histograms, group_fvu, grouped_bars, novelty_histograms,
                                  property_dots, training_curves)
from galaxyml.data.survey import vote_label
from ui import loaders
from ui.feature_views import feature_link, search_link
from ui.sidebar import page
from ui.export import chart, export_gallery, export_table
from ui.widgets import gallery, linked_choice

atlas = page("Compare feature models", needs="features")
models = [m for m in atlas.feature_models() if m in ("sae", "matryoshka", "pca")]
sets = {m: loaders.feature_set(atlas, m) for m in models}
STAGES = (*models, "features", "embeddings")

st.caption(f"All three models read the same galaxy embeddings, those of the {atlas.embeddings_source()}.")
st.subheader("Sparsity and fidelity")
rows = []
for m in models:
    met, live = atlas.metrics(m), sets[m].stats
    rows.append({"model": NAMES[m], "features": len(live), "L0": met.get("l0"), "FVU (held-out)": met.get("fvu"),
                 "FVU (train)": met.get("fvu_train"),
                 "dead": f"{met.get('dead_fraction', 0):.1%}",
                 "dense (>10% of galaxies)": f"{(live['density'] > 0.1).mean():.1%}"})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in ("FVU (held-out)", "FVU (train)")})
export_table(pd.DataFrame(rows), "Sparsity and fidelity", atlas, STAGES, key="fidelity")
l0 = {NAMES[m]: atlas.metrics(m).get("l0") for m in models}
same_l0 = len({round(v, 1) for v in l0.values() if v is not None}) == 1
st.caption("FVU = Σ‖x − x̂‖² / Σ‖x − x̄‖², in the space each model was trained in, on the galaxies of the "
           "validation and test splits, which no model here trained on (the training galaxies' FVU beside it). "
           + ("All three have the same L0 (mean active features per galaxy)." if same_l0 else
              "Their L0 differ (" + ", ".join(f"{k} {v:.1f}" for k, v in l0.items() if v is not None)
              + "), so their FVUs do not compare at equal sparsity."))
dens, dens_note = st.columns([2, 1])
dens.markdown("**Feature density**")
chart(density_histograms({m: sets[m].stats["density"] for m in models}), "Feature density", atlas, STAGES, where=dens)
dens_note.caption("How many galaxies each feature fires on. An SAE's features should spread over the rare end "
                  "(specific structures) with few dense ones; each PCA feature is one sign of a component, so it "
                  "fires on about half the galaxies.")
curves, groups = st.columns(2)
hist = {m: atlas.load_json(m, "history.json") for m in models if m != "pca"}
curves.markdown("**Training curves**")
chart(training_curves(hist), "Training curves", atlas, STAGES, where=curves)
if "matryoshka" in models and "group_fvu" in atlas.metrics("matryoshka"):
    groups.markdown("**Matryoshka: FVU using only the first groups**")
    sizes = atlas.load_json("matryoshka", "config.json")["group_sizes"]
    chart(group_fvu(atlas.metrics("matryoshka")["group_fvu"], sizes), "Matryoshka FVU by groups", atlas,
          ("matryoshka",), where=groups)

st.subheader("Interpretability")
if all(sets[m].rho is not None and len(sets[m].rho.columns) for m in models):
    best_rho = {m: sets[m].best_abs_rho() for m in models}
    order = best_rho[models[0]].sort_values(ascending=False).index
    st.markdown("**Best |Spearman ρ| with each property**")
    chart(property_dots({m: best_rho[m][order] for m in models}, "|ρ| of the best feature"),
          "Best Spearman rho per property (test)", atlas, STAGES)
    export_table(pd.DataFrame({NAMES[m]: best_rho[m][order] for m in models}).rename_axis("property").reset_index(),
                 "Best |rho| per property", atlas, STAGES, key="best_rho")
    held = all(sets[m].best_by_property is not None for m in models)
    st.caption("Each model's best feature for a property is chosen on the validation galaxies and its |ρ| is "
               "measured on the test galaxies (choosing the best of many features and scoring it on the same "
               "galaxies reads too high)." if held else
               "This atlas was built before features were scored on held-out galaxies: the best |ρ| is the "
               "maximum over features on the same galaxies, which reads too high. Rebuild it to score them.")
    share = {m: float((best_rho[m] > best_rho["pca"]).mean()) for m in models if m != "pca" and "pca" in models}
    if share:
        st.caption(" · ".join(f"{NAMES[m]} beats PCA on {v:.0%} of properties" for m, v in share.items()))
        by_seed = atlas.metrics("features").get("sae", {}).get("beats_pca_by_seed")
        if by_seed and "sae" in share:
            base = int(atlas.manifest["stages"]["sae"]["config"].get("seed", 0))
            st.caption(f"One SAE is one draw: trained with {len(by_seed)} seeds on the same embeddings, the TopK SAE "
                       f"beats PCA on {np.mean(by_seed):.0%} ± {np.std(by_seed, ddof=1):.0%} of properties (mean ± "
                       f"standard deviation; {', '.join(f'{v:.0%}' for v in by_seed)} for seeds "
                       f"{', '.join(str(base + i) for i in range(len(by_seed)))}; the atlas shows seed {base}). A difference "
                       "smaller than this spread is not a result.")
        with st.expander("Where PCA wins"):
            margin = pd.DataFrame({f"{NAMES[m]} − PCA": best_rho[m] - best_rho["pca"] for m in share})
            lost = margin[(margin <= 0).any(axis=1)].sort_values(margin.columns[0])
            table = lost.assign(**{"PCA |ρ|": best_rho["pca"][lost.index]}).rename_axis("property").reset_index()
            st.dataframe(table, hide_index=True, width="stretch",
                         column_config={"property": st.column_config.TextColumn(width="large")}
                         | {c: st.column_config.NumberColumn(format="%+.3f") for c in margin}
                         | {"PCA |ρ|": st.column_config.NumberColumn(format="%.3f")})
            widest = f"here most clearly {', '.join(lost.index[:4])}" if len(lost) else "here none"
            st.caption("Best |ρ| of each SAE minus that of PCA (negative: PCA is better), for the properties on "
                       f"which PCA matches or beats at least one SAE; {widest}. A principal "
                       "component is two-sided and non-zero on every galaxy, so a property that follows one of "
                       "the embeddings' main directions over all galaxies is easier for it to track than for a "
                       "sparse feature, which is zero on most of them. One build is one draw: "
                       "`python bench/features.py --run <atlas> --seeds 5` gives the spread of the shares over "
                       "SAE seeds.")
    novel = {m: sets[m].stats.loc[~sets[m].stats["dead"], "novelty"] for m in models}
    left, right = st.columns(2)
    left.markdown("**Novelty of live features**")
    chart(novelty_histograms(novel), "Novelty of live features", atlas, STAGES, where=left)
    if all(sets[m].truth_alignment is not None for m in models):
        align = {m: sets[m].truth_alignment.set_index("factor")["auroc"] for m in models}
        factors = align[models[0]].index
        probes = atlas.probes().set_index("property")["auroc"] if atlas.ready("probes") else pd.Series(dtype=float)
        if probes.reindex(factors).notna().any():
            align["probe"] = probes.reindex(factors)
        right.markdown("**Truth alignment: best feature's AUROC per generating factor (mock)**")
        chart(grouped_bars(align, "AUROC", height=300, yrange=[0.5, 1]), "Truth alignment (test)", atlas,
              (*STAGES, "probes"), where=right)
        right.caption("Each model's feature for a factor is chosen on the validation galaxies; its AUROC is "
                      "measured on the test galaxies.")
        if "probe" in align:
            feats = pd.DataFrame({m: v for m, v in align.items() if m != "probe"})
            above = [f for f in factors if (feats.loc[f] > align["probe"][f]).any()]
            right.caption("Grey: a logistic probe on all embedding dimensions, cross-validated on the held-out "
                          "galaxies, i.e. what the embeddings hold about the factor. "
                          + (f"A single feature beats it on {', '.join(above)}." if above else
                             "No single feature beats it on any factor here."))

    st.subheader("The best feature for a property, in each model")
    props = list(order)
    wanted = linked_choice("property", props, props[0], "a property with a best feature in every model")
    prop = st.selectbox("Property", props, index=props.index(wanted))
    st.query_params["property"] = prop
    thumbs = loaders.thumbnails(atlas)
    catalog_ids = loaders.catalog(atlas)["galaxy_id"].to_numpy()
    first_top = catalog_ids[0]
    for col, m in zip(st.columns(len(models)), models):
        f = sets[m].best_feature_for(prop)
        gal, val = sets[m].top(f)
        col.markdown(f"**{NAMES[m]}** · [#{f}]({feature_link(atlas.name, m, f)}) · ρ = {sets[m].rho.loc[f, prop]:+.2f}")
        if has_vote_effects(atlas, m) and len(gal):
            top = loaders.vote_effects(atlas, m, f).head(2)
            col.caption("Effect on the vote network's answers: " + ", ".join(
                f"{vote_label(a)} {d:+.2f}" for a, d in zip(top["answer"], top["delta"])))
        with col:
            gallery(np.asarray(thumbs[gal[:12]]), [f"{a:.3g}" for a in val[:12]], width=72)
            export_gallery(np.asarray(thumbs[gal[:12]]), catalog_ids[gal[:12]], f"{NAMES[m]} feature {f}: best for "
                           f"{prop}", atlas, (m, "features", "thumbnails"), values=val[:12], value_label="activation",
                           key=f"best_{m}")
        if m == models[0] and len(gal):
            first_top = catalog_ids[int(gal[0])]

    st.subheader("One galaxy through each model")
    row_of = loaders.galaxy_rows(atlas)
    typed = st.text_input("Galaxy id", value=st.query_params.get("galaxy", ""), key="compare_galaxy",
                          placeholder=f"e.g. {first_top} (the top galaxy of the first model's feature above)").strip()
    if typed and typed not in row_of:
        st.warning(f"No galaxy with id '{typed}' in this atlas; showing {first_top}.")
    galaxy_id = typed if typed in row_of else first_top
    if not typed or typed in row_of:  # a deep link keeps what was asked for, even when it is unknown
        st.query_params["galaxy"] = galaxy_id
    g = row_of[galaxy_id]
    cols = st.columns([1.2, *[2] * len(models)])
    cols[0].image(np.asarray(thumbs[g]), caption=galaxy_id, width=128)
    if atlas.ready("index"):
        cols[0].markdown(f"[Similar galaxies]({search_link(atlas.name, galaxy_id)})")
    for col, m in zip(cols[1:], models):
        active = sets[m].features_of(g).head(6)
        labels = sets[m].labels
        col.markdown(f"**{NAMES[m]}**: its {len(active)} strongest features\n\n" + "\n".join(
            f"- [#{f}]({feature_link(atlas.name, m, int(f))}) {a:.3g}" + (f" · {labels[f]}" if labels[f] else "")
            for f, a in zip(active["feature"], active["activation"])))
    st.caption("The same embedding read by each model: the features that fire on this galaxy, strongest first, "
               "with their activations and labels.")
else:
    st.info("This atlas was built before correlations were computed; rebuild it to compare interpretability.")
