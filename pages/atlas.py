"""Atlas page: one sparse feature at a time (top galaxies, activation histogram, drill-down).

Deep link: ``/atlas?run=demo&model=sae&feature=123&galaxy=<galaxy_id>``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import loaders
from ui.sidebar import sidebar
from ui.widgets import gallery, mock_badge, png_bytes, waiting_for

st.set_page_config(page_title="Atlas · Galaxy Feature Atlas", page_icon=":material/grid_view:", layout="wide")
sel = sidebar()
st.title("Feature atlas")
atlas = sel.atlas
if atlas is None or not atlas.ready("features"):
    waiting_for("features", sel)
    st.stop()

mock_badge(atlas.is_mock)
MODELS = {"sae": "TopK SAE", "matryoshka": "Matryoshka SAE", "pca": "PCA (±component)"}
available = [m for m in MODELS if (atlas.stage_dir("features") / m).is_dir() and atlas.ready(m)]
model = st.query_params.get("model", available[0])
if model not in available:
    st.warning(f"?model={model} is not in this atlas (available: {', '.join(available)}); showing {available[0]}.")
    model = available[0]
model = st.segmented_control("Feature model", available, default=model, format_func=MODELS.get) or model
if model != st.query_params.get("model", available[0]):
    for key in ("feature", "galaxy"):  # feature numbers belong to one model
        st.query_params.pop(key, None)
st.query_params["model"] = model
fs = loaders.feature_set(atlas, model)
stats = fs.stats.sort_values(["dead", "density"], ascending=[True, False])
catalog = loaders.catalog(atlas)
thumbs = loaders.thumbnails(atlas)

# Feature from the URL, validated; the densest live feature by default.
default = int(stats["feature"].iloc[0])
raw = st.query_params.get("feature", str(default))
try:
    feature = fs.check_feature(int(raw))
except (ValueError, IndexError):
    st.warning(f"?feature={raw} is not a feature of this model (0–{fs.n_features - 1}); showing feature {default}.")
    feature = default

order = stats["feature"].tolist()
labels = {int(r.feature): f"#{r.feature} · density {r.density:.2%}" + (" · dead" if r.dead else "")
          for r in stats.itertuples()}
picked = st.selectbox(f"Feature ({MODELS[model]}, {fs.n_features:,} features, sorted by density)", order,
                      index=order.index(feature), format_func=labels.get)
if picked != feature:
    feature = int(picked)
    st.query_params["feature"] = str(feature)
    st.query_params.pop("galaxy", None)
st.query_params["feature"] = str(feature)

row = fs.stats.iloc[feature]
cols = st.columns(4)
cols[0].metric("Density", f"{row.density:.2%}", help="Share of galaxies on which the feature is active")
cols[1].metric("Active on", f"{int(row.n_active):,} galaxies")
cols[2].metric("Max activation", f"{row.max_activation:.3g}")
cols[3].metric("Mean when active", f"{row.mean_when_active:.3g}")
if row.dead:
    st.warning("This feature never fires on this survey (a dead latent).")
elif row.density > 0.1:
    st.info("Dense feature: active on more than 10% of galaxies.")

gal, val = fs.top(feature)
st.subheader(f"Top {len(gal)} galaxies")
if len(gal):
    ids = catalog["galaxy_id"].to_numpy()[gal]
    top_thumbs = np.asarray(thumbs[gal])
    gallery(top_thumbs, [f"{a:.3g}" for a in val])
    table = pd.DataFrame({"rank": np.arange(1, len(gal) + 1), "galaxy_id": ids, "activation": val})
    c1, c2 = st.columns(2)
    c1.download_button("Gallery (PNG)", png_bytes(top_thumbs, [f"{a:.3g}" for a in val]), file_name=f"feature_{feature}_top.png", mime="image/png")
    c2.download_button("Top galaxies (CSV)", table.to_csv(index=False), file_name=f"feature_{feature}_top.csv",
                       mime="text/csv")

st.subheader("Activation histogram")
edges, counts = fs.hist_edges[feature], fs.hist_counts[feature]
fig = go.Figure(go.Bar(x=0.5 * (edges[1:] + edges[:-1]), y=counts, width=np.diff(edges), marker_color="#7aa2f7"))
fig.update_layout(xaxis_title="activation (arbitrary units)", yaxis_title="galaxies", height=300,
                  margin=dict(l=10, r=10, t=10, b=10), yaxis_type="log" if counts.max() > 50 else "linear")
st.plotly_chart(fig, width="stretch")
st.caption(f"Non-zero activations only; {len(catalog) - int(row.n_active):,} galaxies have activation 0.")

st.subheader("Galaxy drill-down")
if len(gal):
    wanted = st.query_params.get("galaxy")
    options = list(ids)
    galaxy_id = st.selectbox("Galaxy (from the top list)", options,
                             index=options.index(wanted) if wanted in options else 0)
    st.query_params["galaxy"] = galaxy_id
    g = int(gal[options.index(galaxy_id)])
    left, right = st.columns([1, 2])
    left.image(np.asarray(thumbs[g]), caption=galaxy_id, width=192)
    units = atlas.survey_meta().get("units", {})
    record = catalog.iloc[g].drop("galaxy_id")
    shown = [f"{v:.5g}" if isinstance(v, (float, np.floating)) else str(v) for v in record.values]
    left.dataframe(pd.DataFrame({"property": record.index, "value": shown,
                                 "unit": [units.get(k, "") for k in record.index]}), hide_index=True, height=300)
    active = fs.features_of(g)
    active["link"] = [f"/atlas?run={atlas.name}&model={model}&feature={f}" for f in active["feature"]]
    right.markdown(f"**{len(active)} features fire on this galaxy**")
    right.dataframe(active, hide_index=True, width="stretch",
                    column_config={"link": st.column_config.LinkColumn("open", display_text="open feature")})

    if atlas.ready("index"):
        sims, nn = loaders.similarity_index(atlas).search(np.asarray(loaders.embeddings(atlas)[g]), k=13)
        keep = nn[0] != g
        st.markdown("**Most similar galaxies** (cosine similarity of centred encoder embeddings, FAISS)")
        gallery(np.asarray(thumbs[nn[0][keep][:12]]), [f"{s:.3f}" for s in sims[0][keep][:12]], width=88)
