"""Galaxy Feature Atlas: the home page (``streamlit run app.py``).

Shows the loaded atlas (survey, stages, metrics, timings) and, on a machine with no atlas yet,
starts building the demo atlas in the background and follows it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from galaxyml.atlas import home, list_runs
from precompute.jobs import start_build
from precompute.lock import BuildLocked
from ui import loaders
from ui.sidebar import DEFAULT_PRESET, FAVICON, sidebar
from ui.survey_view import survey_view
from ui.export import export_table
from ui.widgets import gallery, mock_badge

st.set_page_config(page_title="Galaxy Feature Atlas", page_icon=FAVICON, layout="wide")

# First launch: nothing under the home yet, so build the demo atlas (once) in the background.
if not list_runs() and not st.session_state.get("auto_started"):
    st.session_state["auto_started"] = True
    try:
        start_build(home(), DEFAULT_PRESET, DEFAULT_PRESET)
    except (BuildLocked, PermissionError) as e:
        st.session_state["auto_error"] = str(e)

sel = sidebar()
st.title("Galaxy Feature Atlas")
st.caption("What machine-learning models have learned about galaxies: sparse features of galaxy "
           "embeddings, their top galaxies, and the catalog properties behind them.")

if err := st.session_state.get("auto_error"):
    st.error(f"Could not start the demo build: {err}")

atlas = sel.atlas
if atlas is None:
    if sel.status.state == "running":
        st.info(f"Building atlas **{sel.run}** in the background (preset *{sel.status.preset or DEFAULT_PRESET}*). "
                "Pages fill in as stages finish; progress is in the sidebar.", icon=":material/hourglass_top:")
        st.progress(sel.status.fraction, text=f"{sel.status.stage}: {sel.status.message}")
    elif sel.error:
        st.error(sel.error)
    else:
        st.info("No atlas is loaded. Start a build from the sidebar: *quick* takes under a minute, "
                "*demo* 15-30 minutes on two cores (its feature pages open sooner).", icon=":material/arrow_back:")
    st.stop()

manifest = atlas.manifest
stage_names = list(dict.fromkeys([*manifest.get("stage_order", []), *manifest["stages"], *sel.status.stages]))
ready = set(atlas.ready_stages())

st.subheader(f"Atlas · {atlas.name}")
if sel.status.state == "running":
    st.info(f"A build of **{atlas.name}** is running ({len(sel.status.finished_stages)}/{len(sel.status.stages)} stages "
            "done); each view fills in as soon as its stage is finished. Progress is in the sidebar.",
            icon=":material/hourglass_top:")
if atlas.ready("survey"):
    meta = atlas.survey_meta()
    mock_badge(atlas.is_mock)
    m = atlas.metrics("survey")
    cols = st.columns(5)
    cols[0].metric("Galaxies", f"{m.get('n_galaxies', 0):,}")
    cols[1].metric("Bands", " ".join(m.get("bands", "")))
    cols[2].metric("Cutout", f"{m.get('image_size_px', '?')} px")
    cols[3].metric("Pixel scale", f"{meta.get('pixel_scale_arcsec', '?')}″")
    cols[4].metric("Stages ready", f"{len(ready)}/{len(stage_names)}")
    if "split" in m:
        sp = m["split"]
        st.caption(f"Split: {sp['train']:,} training, {sp['val']:,} validation and {sp['test']:,} test galaxies "
                   f"({'test galaxies from your test catalog' if sp.get('test_galaxies') == 'given' else 'seeded'}). "
                   "Networks train on the first, choose their epoch and settings on the second and are scored on "
                   "the third; every figure in the atlas says which galaxies it is computed on.")
    if atlas.ready("thumbnails"):
        thumbs = loaders.thumbnails(atlas)
        ids = loaders.catalog(atlas)["galaxy_id"]
        gallery(thumbs[:16], ids.iloc[:16].str.rsplit("-", n=1).str[-1].tolist(), width=88)
        st.caption("The first 16 galaxies of the survey (g, r, z as blue, green, red; asinh stretch).")

if atlas.ready("sae"):
    sae, enc = atlas.metrics("sae"), atlas.metrics("encoder")
    st.markdown("#### Models")
    cols = st.columns(5)
    if atlas.metrics("embeddings").get("source") == "zoobot":
        zoo = atlas.metrics("zoobot")
        cols[0].metric("Vote-fraction MAE", f"{zoo['test_mae']:.3f}", delta=f"baseline {zoo['baseline_mae']:.3f}",
                       delta_color="off", delta_arrow="off",
                       help="Mean absolute error of the Zoobot-style network's predicted Galaxy Zoo vote fractions "
                            f"on {zoo['n_test']:,} test galaxies (baseline: the training mean); its "
                            "penultimate activations are the embeddings the SAEs read")
    else:
        cols[0].metric("Encoder val. loss", f"{enc.get('val_loss', float('nan')):.4f}",
                       help="Huber loss of next-patch regression on held-out galaxies")
    cols[1].metric("SAE latents", f"{sae['n_latents']:,}", help=f"TopK sparse autoencoder on the embeddings of the "
                                                                  f"{atlas.embeddings_source()}")
    cols[2].metric("SAE FVU", f"{sae['fvu']:.3g}",
                   help="Fraction of variance of the embeddings left unexplained, on the held-out galaxies"
                        + (f" (training galaxies: {sae['fvu_train']:.3g})" if "fvu_train" in sae else ""))
    cols[3].metric("L0", f"{sae['l0']:.0f}", help="Active latents per galaxy")
    cols[4].metric("Dead latents", f"{sae['dead_fraction']:.1%}", help="Latents that fire on no galaxy of the survey")

sfnets = [m for m in ("sfnet_metallicity", "sfnet_bpt") if atlas.ready(m)]
if sfnets:
    st.markdown("#### Predictions from images (SFNets)")
    cols = st.columns(4)
    i = 0
    floors = loaders.prediction_floors(atlas)
    for m in sfnets:
        met = atlas.metrics(m)
        for target, score in met.get("test", {}).items():
            floor = floors.get(target) or score.get("floor")
            floor = f"{score['rmse'] / floor:.2f}× floor" if floor else None
            cols[i % 4].metric(f"{target} test RMSE, k = {met['k'] or 'all'}", f"{score['rmse']:.3f}", delta=floor,
                               delta_color="off", delta_arrow="off",
                               help=f"Median-baseline RMSE {met['baseline_median_rmse'][target]:.3f}"
                                    + (f", photometric baseline {met['photometric_baseline'][target]['rmse']:.3f}"
                                       if "photometric_baseline" in met else "")
                                    + f"; {met['n_test']:,} test galaxies")
            i += 1

if atlas.ready("survey"):
    survey_view(atlas)

rows = []
for name in stage_names:
    entry = manifest["stages"].get(name, {})
    metrics = dict(entry.get("metrics", {}))
    device = metrics.pop("device", "")
    flat = pd.json_normalize(metrics, sep=".").iloc[0].to_dict() if metrics else {}
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items())
    if entry.get("not_applicable"):
        rows.append({"stage": name, "status": "not applicable", "seconds": float("nan"), "trained on": "",
                     "metrics": entry["not_applicable"]})
        continue
    state = "ready" if name in ready else ("building" if sel.status.stage == name and sel.status.state == "running"
                                           else "waiting" if sel.status.state == "running" else "missing")
    rows.append({"stage": name, "status": state, "seconds": entry.get("seconds", float("nan")), "trained on": device,
                 "metrics": shown})
st.markdown("#### Stages")
stage_table = pd.DataFrame(rows)
# An atlas built before the stages recorded their device has nothing for that column.
if "trained on" in stage_table and not stage_table["trained on"].astype(bool).any():
    stage_table = stage_table.drop(columns="trained on")
st.dataframe(stage_table, hide_index=True, width="stretch",
             column_config={"seconds": st.column_config.NumberColumn("time [s]", format="%.1f"),
                            "trained on": st.column_config.TextColumn(help="Where the stage's model was trained")})
export_table(stage_table, "Stages", atlas, stage_names, key="stages")

st.markdown("#### Next")
st.page_link("pages/atlas.py", label="Browse the sparse features of the TopK SAE", icon=":material/grid_view:")
if sfnets:
    st.page_link("pages/predictions.py", label="See what the SFNets predict, and which features drive it",
                 icon=":material/query_stats:")
if atlas.ready("umap"):
    st.page_link("pages/explore.py", label="Explore the survey on a map: select a region, see what sets it apart",
                 icon=":material/scatter_plot:")
if atlas.ready("index"):
    st.page_link("pages/search.py", label="Find galaxies like one galaxy, a sky position, an image or a set of examples",
                 icon=":material/travel_explore:")
if atlas.ready("forge"):
    st.page_link("pages/forge.py", label="Sample star particles of a galaxy from a conditional flow",
                 icon=":material/auto_awesome:")
if atlas.ready("clusters"):
    st.page_link("pages/clusters.py", label="Find galaxy clusters on held-out sky tiles, beside the red-sequence finder",
                 icon=":material/hub:")
