"""Predictions page: SFNet predictions of metallicity and BPT ratios against the catalog, the
k-sweep, outliers, one galaxy's feature contributions, and the linear probes of the embeddings.

Deep link: ``/predictions?run=demo&model=sfnet_metallicity&target=oh_12&galaxy=<galaxy_id>``.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from galaxyml.atlas import EMBEDDING_SOURCES, FEATURE_MODELS
from galaxyml.relations import bpt_classify
from galaxyml.viz.predictions import (
    axis_label, binned_residuals, bpt_confusion, bpt_diagram, contributions_bars, predicted_vs_true, probe_scores,
    rmse_vs_k,
)
from ui import loaders
from ui.feature_views import feature_link, search_link
from ui.sidebar import page
from ui.export import chart, export_gallery, export_table
from ui.widgets import gallery, linked_choice, linked_selectbox

atlas = page("Predictions", needs=("sfnet_metallicity", "sfnet_bpt", "probes"))
models = [m for m in ("sfnet_metallicity", "sfnet_bpt") if atlas.ready(m)]
units = atlas.survey_meta().get("units", {})
catalog = loaders.catalog(atlas)
thumbs = loaders.thumbnails(atlas)


def choose_target(targets: list[str]) -> str:
    target = linked_choice("target", targets, targets[0], "a target of this network")
    if len(targets) > 1:
        target = st.segmented_control("Target", targets, default=target, format_func=axis_label) or target
    st.query_params["target"] = target
    return target


def scores(met: dict, target: str, unit: str, floor: float | None) -> None:
    """The test scores beside the median and photometric baselines and the floor, and how the split was used."""
    score, k = met["test"][target], met["k"]
    photo = met.get("photometric_baseline", {}).get(target)
    cols = st.columns(7)
    cols[0].metric("Test RMSE", f"{score['rmse']:.3f}", help=f"{score['n']:,} test galaxies [{unit}]")
    cols[1].metric("NMAD", f"{score['nmad']:.3f}", help="1.4826 × median |residual − median residual|")
    cols[2].metric("R²", f"{score['r2']:.3f}")
    cols[3].metric("Median RMSE", f"{met['baseline_median_rmse'][target]:.3f}",
                   help="Test RMSE of predicting the training median for every galaxy")
    if photo:
        cols[4].metric("Photometric", f"{photo['rmse']:.3f}",
                       help=f"Test RMSE of the photometric baseline [{unit}]: {photo['method']} regression on "
                            f"{met['photometric_baseline']['n_measurements']} aperture magnitudes, colours, "
                            "concentration, half-light radius and axis ratio measured from the same images, trained "
                            "on the same galaxies (ridge or boosted trees, chosen on the validation galaxies)")
    if floor:
        cols[5].metric("RMSE / floor", f"{score['rmse'] / floor:.2f}",
                       help=f"Floor = the scatter injected around the relation ({floor:g} {unit}): the error left by "
                            "a model that recovers the relation exactly from the images")
    cols[6].metric("Active features k", "all" if k == 0 else str(k), help=f"{met['n_features']} features in the layer")
    if photo and score["rmse"] >= photo["rmse"]:
        st.warning(f"The network does not beat the photometric baseline on {target}: test RMSE {score['rmse']:.3f} "
                   f"against {photo['rmse']:.3f} {unit} from aperture photometry of the same images.")
    elif photo:
        st.caption(f"The network's test RMSE is {score['rmse'] / photo['rmse']:.2f}× the photometric baseline's.")
    if met.get("ensemble", 1) > 1:
        single = met["test_network"][target]["rmse"]
        st.caption(f"Predictions are the mean of {met['ensemble']} networks trained with different seeds (a survey "
                   f"with fewer than 2,000 training galaxies); the browsed network alone: test RMSE {single:.3f}.")
    st.caption(f"Split: {met['n_train']:,} training, {met.get('n_val', 0):,} validation (early stopping) and "
               f"{met['n_test']:,} test galaxies with a finite {target}; every figure here is on the test galaxies. "
               f"{met['n_without_target']:,} galaxies have no target (predicted, but not scored). Best epoch "
               f"{met['best_epoch']}.")


def stages(model: str) -> tuple[str, ...]:
    """The stages behind a figure of this network's predictions."""
    return (model, "survey", "thumbnails")


def residual_figures(model: str, test, target: str, label: str, floor: float | None) -> None:
    """Predicted against true, and the residuals binned against a property of the user's choice."""
    true, pred = test[f"true_{target}"].to_numpy(), test[f"pred_{target}"].to_numpy()
    left, right = st.columns(2)
    with left:
        st.markdown("**Predicted against true** (test galaxies)")
        chart(predicted_vs_true(true, pred, label, floor), f"{model} {target}: predicted against true (test)", atlas,
              stages(model))
    with right:
        props = loaders.continuous_columns(atlas)
        default = next((c for c in ("log_mstar", "mag_r", target) if c in props), props[0] if props else None)
        if default:
            prop = linked_selectbox("Residuals against", props, "residuals", default, "a catalog property")
            x = catalog[prop].to_numpy()[test.index.to_numpy()]
            chart(binned_residuals(x, pred - true, axis_label(prop, units.get(prop, "")), f"predicted − true {label}",
                                   floor=floor), f"{model} {target}: residuals against {prop} (test)", atlas,
                  stages(model))


def k_sweep(model: str, target: str, unit: str, floor: float | None) -> None:
    sweep = loaders.sfnet_sweep(atlas, model)
    if len(sweep) > 1:
        st.markdown("**Test RMSE against the number of active features k**")
        chart(rmse_vs_k(sweep, target, unit, floor), f"{model} {target}: test RMSE against k", atlas, stages(model))
    else:
        st.caption("One k trained. Set `--set " + model + ".k_sweep=[1,2,4,8,16,32,0]` (the *full* preset does) to see "
                   "how the error grows as fewer features are kept.")


def bpt_section(test) -> None:
    """The BPT diagram at predicted or true line ratios, coloured by class agreement, and the confusion table."""
    true_cls = bpt_classify(test["true_n2"], test["true_o3"])
    pred_cls = bpt_classify(test["pred_n2"], test["pred_o3"])
    agrees = true_cls == pred_cls
    b1, b2 = st.columns([3, 2])
    places = ["predicted", "true"]
    which = linked_choice("bpt", places, "predicted", "predicted or true")
    which = b1.radio("Place galaxies at their", places, horizontal=True, index=places.index(which),
                     format_func=lambda w: f"{w} line ratios")
    st.query_params["bpt"] = which
    chart(bpt_diagram(test[f"{which[:4]}_n2"].to_numpy(), test[f"{which[:4]}_o3"].to_numpy(), agrees,
                      f"{which.capitalize()} line ratios, coloured by class agreement"),
          f"BPT diagram at {which} line ratios (test)", atlas, stages("sfnet_bpt"), where=b1)
    b2.markdown(f"**BPT classes** (test galaxies): {agrees.mean():.1%} predicted in their true class")
    confusion = bpt_confusion(true_cls, pred_cls)
    b2.dataframe(confusion, width="stretch")
    with b2:
        export_table(confusion.reset_index(names="true class"), "BPT confusion table", atlas, stages("sfnet_bpt"))
    note = "Rows: true class; columns: predicted class (test galaxies with all four lines)."
    if atlas.is_mock and "composite" in confusion.index and confusion.loc["composite"].sum() == 0:
        note += (" The mock places star-forming galaxies below the Kauffmann line and AGN above the Kewley "
                 "line, so none is truly composite; a prediction between the two lines lands there.")
    b2.caption(note)


def outliers(model: str, target: str, table, test, label: str) -> np.ndarray:
    """The 12 test galaxies with the largest |residual| (gallery, PNG and CSV downloads); returns their rows."""
    st.subheader("Worst outliers")
    true, pred = test[f"true_{target}"].to_numpy(), test[f"pred_{target}"].to_numpy()
    worst = np.argsort(-np.abs(pred - true))[:12]
    rows = test.index.to_numpy()[worst]
    captions = [f"{p:.2f} vs {t:.2f}" for p, t in zip(pred[worst], true[worst])]
    gallery(np.asarray(thumbs[rows]), captions)
    st.caption(f"The 12 test galaxies with the largest |predicted − true| {label}; captions: predicted vs true.")
    c1, c2, _ = st.columns([1, 1, 4])
    ids = catalog["galaxy_id"].to_numpy()[rows]
    with c1:
        export_gallery(np.asarray(thumbs[rows]), ids, f"{model} {target}: worst test outliers", atlas, stages(model),
                       values=[f"pred {c}" for c in captions])
    with c2:
        export_table(table, f"{model} predictions", atlas, stages(model), key="predictions")
    return rows


def choose_galaxy(rows: np.ndarray) -> str:
    """A galaxy id: from the link, typed, or one of the outliers."""
    row_of = loaders.galaxy_rows(atlas)
    options = list(catalog["galaxy_id"].to_numpy()[rows])
    wanted = st.query_params.get("galaxy")
    if wanted and wanted not in options and wanted in row_of:
        options = [wanted, *options]
    wanted = linked_choice("galaxy", options, options[0], "a galaxy of this atlas")
    typed = st.text_input("Galaxy id (or pick an outlier below)", value="").strip()
    if typed and typed not in row_of:
        st.warning(f"No galaxy with id '{typed}' in this atlas.")
    elif typed:
        options, wanted = [typed, *[o for o in options if o != typed]], typed
    galaxy_id = st.selectbox("Galaxy", options, index=options.index(wanted) if wanted in options else 0)
    st.query_params["galaxy"] = galaxy_id
    return galaxy_id


def drill_down(model: str, met: dict, table, target: str, rows: np.ndarray, unit: str, label: str) -> None:
    """One galaxy's prediction as the head's bias plus the contribution of each active feature."""
    st.subheader("Galaxy drill-down")
    weights, bias, targets = loaders.sfnet_head(atlas, model)
    galaxy_id = choose_galaxy(rows)
    g = loaders.galaxy_rows(atlas)[galaxy_id]
    fs = loaders.feature_set(atlas, model)
    active = fs.features_of(g)
    j = targets.index(target)
    active["contribution"] = active["activation"] * weights[j, active["feature"].to_numpy()]
    active = active.reindex(active["contribution"].abs().sort_values(ascending=False).index)
    active["open"] = [feature_link(atlas.name, model, f) for f in active["feature"]]
    active["label"] = fs.labels[active["feature"].to_numpy()]
    left, right = st.columns([1, 2])
    left.image(np.asarray(thumbs[g]), caption=galaxy_id, width=192)
    if atlas.ready("index"):
        left.markdown(f"[Search for similar galaxies]({search_link(atlas.name, galaxy_id)})")
    truth = table[f"true_{target}"].iloc[g]
    total = float(bias[j] + active["contribution"].sum())
    part = table["split"].iloc[g] if "split" in table else ("test" if table["test"].iloc[g] else "train")
    split_name = {"train": "training", "val": "validation", "test": "test"}[part]
    ensemble = (f" (mean of the {met['ensemble']}-network ensemble: {table[f'pred_{target}'].iloc[g]:.3f})"
                if f"network_{target}" in table else "")
    left.markdown(f"predicted **{total:.3f}**{ensemble}, true "
                  f"**{'—' if not np.isfinite(truth) else f'{truth:.3f}'}** {unit}  \n"
                  f"{split_name} galaxy")
    names = [f"#{f} · {lab[:40]}" if lab else f"#{f}" for f, lab in zip(active["feature"], active["label"])]
    chart(contributions_bars(names, active["contribution"].to_numpy(), float(bias[j]), label),
          f"{model} {target}: feature contributions for {galaxy_id}", atlas, stages(model), where=right)
    right.caption(f"{len(active)} active features; each bar is activation × head weight, and the bias plus the "
                  f"bars is the prediction ({total:.3f}). Open a feature in the table to see the galaxies it fires on.")
    st.dataframe(active, hide_index=True, width="stretch", column_config={
        "open": st.column_config.LinkColumn("atlas", display_text="open feature"),
        "contribution": st.column_config.NumberColumn(format="%+.4f"),
        "activation": st.column_config.NumberColumn(format="%.4f")})
    export_table(active.drop(columns=["open"]), f"features of {galaxy_id}", atlas, stages(model), key="contrib")


def sfnet_section(model: str) -> None:
    """Everything about one SFNet's predictions of one target, on its test galaxies."""
    met = atlas.metrics(model)
    table = loaders.predictions(atlas, model)
    target = choose_target(loaders.sfnet_head(atlas, model)[2])
    unit = units.get(target, "dex")
    label = axis_label(target, unit)
    floor = loaders.prediction_floors(atlas).get(target) or met["test"][target].get("floor")
    scores(met, target, unit, floor)
    test = table[table["test"] & table["has_target"]]
    residual_figures(model, test, target, label, floor)
    k_sweep(model, target, unit, floor)
    if model == "sfnet_bpt" and {"true_n2", "true_o3", "pred_n2", "pred_o3"} <= set(table.columns):
        bpt_section(test)
    rows = outliers(model, target, table, test, label)
    drill_down(model, met, table, target, rows, unit, label)


def probes_section() -> None:
    """Linear probes from the embeddings to every catalog property (held-out galaxies), beside the encoder's."""
    st.subheader("Linear probes of the embeddings")
    if atlas.ready("probes"):
        probes = loaders.probes(atlas)
        st.caption("Cross-validated ridge regression (R²) for continuous properties and logistic regression (accuracy, "
                   "AUROC, against the majority-class accuracy) for flags, from the embeddings (of the "
                   f"{atlas.embeddings_source()}) to each catalog property, fitted and cross-validated on the "
                   f"{atlas.metrics('probes').get('n_galaxies', 0):,} held-out galaxies (validation and test splits), "
                   "which no network of the atlas trained on.")
        chart(probe_scores(probes), "Linear probes of the embeddings (held-out)", atlas, ("probes", "embeddings"))
        export_table(probes, "linear probes", atlas, ("probes", "embeddings"), key="probes")
        shown, encoder = probes, loaders.encoder_probes(atlas)
        if encoder is not None:  # the same probes of the astroPT-style encoder's embeddings, for comparison
            met = atlas.metrics("probes")  # the stage's medians of both tables
            median = {atlas.embeddings_source(): met.get("median_r2"),
                      EMBEDDING_SOURCES["encoder"]: met.get("encoder_median_r2")}
            st.caption("Median R² over the continuous properties: " + " · ".join(
                f"embeddings of the {name} **{m:.2f}**" for name, m in median.items() if m is not None)
                + ". The tables' *encoder* columns are the same probes of the astroPT-style encoder's embeddings.")
            shown = probes.merge(encoder[["property", "score"]].rename(columns={"score": "encoder score"}),
                                 on="property", how="left")
        tables = {
            "Continuous properties": (shown["kind"] == "continuous",
                                      {"score": "R²", "encoder score": "encoder R²", "rmse": "RMSE"}),
            "Flags": (shown["kind"] == "binary", {"score": "accuracy", "baseline": "majority-class accuracy",
                                                  "auroc": "AUROC", "encoder score": "encoder accuracy"}),
        }
        for title, (rows, columns) in tables.items():
            part = shown.loc[rows, ["property", "unit", *[c for c in columns if c in shown], "n"]].rename(columns=columns)
            if part.empty:
                continue
            st.markdown(f"**{title}**")
            st.dataframe(part, hide_index=True, width="stretch", height=min(500, 35 * (len(part) + 1) + 3),
                         column_config={c: st.column_config.NumberColumn(format="%.3f") for c in columns.values()}
                         | {"property": st.column_config.TextColumn(width="large")})
    else:
        st.info("No linear probes in this atlas yet: the *probes* stage fits them on the embeddings.",
                icon=":material/construction:")


if models:
    model = linked_choice("model", models, models[0], "a network ready in this atlas")
    model = st.segmented_control("Network", models, default=model, format_func=FEATURE_MODELS.get) or model
    if model != st.query_params.get("model", models[0]):  # another network: its targets and galaxies differ
        for key in ("target", "galaxy"):
            st.query_params.pop(key, None)
    st.query_params["model"] = model
    sfnet_section(model)
else:
    reasons = [f"*{m}*: {atlas.manifest['stages'][m]['not_applicable']}" for m in ("sfnet_metallicity", "sfnet_bpt")
               if atlas.manifest["stages"].get(m, {}).get("not_applicable")]
    st.info("This atlas has no SFNet: " + ("; ".join(reasons) if reasons else "build the *sfnet_metallicity* or "
            "*sfnet_bpt* stage to see predictions from images") + ".", icon=":material/construction:")

probes_section()
