"""GalacticForge: particle tables in (Illustris units, wind cells, bad files), the one-galaxy CLI, the
forge stage's held-out scores and the forge page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from galaxyml.atlas import Atlas
from galaxyml.data.mock import MockConfig, make_mock_survey
from galaxyml.data.mock.particles import PARTICLE_COLUMNS
from galaxyml.forge.cli import main
from galaxyml.forge.evaluate import c2st_auc
from galaxyml.forge.prep import CleanConfig, Standardiser, clean
from galaxyml.forge.tables import ParticleError, ParticleSet, read_illustris, read_npy, write_illustris
from galaxyml.models.flows import FLOW_KINDS, load_flow, sample
from tests.test_search import app_page

OFFSET = (12000.0, 5000.0, 30000.0)


@pytest.fixture(scope="module")
def galaxy() -> np.ndarray:
    s = make_mock_survey(MockConfig(n_galaxies=8, seed=3))
    return s.particles(2, n=6000)


@pytest.fixture(scope="module")
def table(galaxy, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tng") / "subhalo.txt"
    write_illustris(path, galaxy, PARTICLE_COLUMNS, hubble=0.704, wind_cells=250, offset_kpc=OFFSET)
    return path


def test_illustris_table_is_converted_to_physical_units_and_wind_cells_dropped(galaxy, table):
    ps = read_illustris(table, hubble=0.704)
    assert len(ps) == len(galaxy) and ps.columns == ("x", "y", "z", "vx", "vy", "vz", "Z", "age")
    assert any("250 wind-phase" in n for n in ps.notes)
    r_true = np.sort(np.linalg.norm(galaxy[:, :3], axis=1))
    r_read = np.sort(np.linalg.norm(ps.data[:, :3], axis=1))  # centred again by the shrinking sphere
    assert np.median(np.abs(r_read - r_true)) < 0.05
    assert np.allclose(np.sort(ps.column("age")), np.sort(galaxy[:, 9]), atol=0.02)  # Gyr from the scale factor
    assert np.allclose(np.sort(ps.column("Z")), np.sort(np.maximum(galaxy[:, 6], 1e-7)), rtol=1e-4)
    assert np.allclose(ps.mass_msun, 1e5, rtol=1e-6)
    wrong_h = read_illustris(table, hubble=0.5)  # positions scale with 1/h
    assert np.median(np.linalg.norm(wrong_h.data[:, :3], 1)) > 1.3 * np.median(r_read)


def test_bad_particle_files_get_clear_errors(galaxy, tmp_path):
    few = tmp_path / "few_columns.txt"
    np.savetxt(few, np.ones((20, 5)))
    with pytest.raises(ParticleError, match="5 columns, but the layout needs 9"):
        read_illustris(few, hubble=0.704)
    wind = tmp_path / "wind.txt"
    write_illustris(wind, galaxy[:50], PARTICLE_COLUMNS, hubble=0.704)
    rows = np.loadtxt(wind)
    rows[:, 7] = -0.5
    np.savetxt(wind, rows)
    with pytest.raises(ParticleError, match="every row is a wind-phase gas cell"):
        read_illustris(wind, hubble=0.704)
    arr = galaxy[:100].copy()
    arr[:7, 3] = np.nan
    np.save(tmp_path / "p.npy", arr)
    ps = read_npy(tmp_path / "p.npy")
    assert len(ps) == 93 and "dropped 7 rows" in ps.notes[0]
    np.save(tmp_path / "bad.npy", arr[:, :6])
    with pytest.raises(ParticleError, match=r"expected an \(n, 10\) array"):
        read_npy(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ParticleError, match="not a readable .npy"):
        read_npy(tmp_path / "obj.npy")
    with pytest.raises(ParticleError, match="a flow needs at least 500"):
        clean(ParticleSet(galaxy[:300], PARTICLE_COLUMNS))


def test_standardiser_round_trip_and_galacticflow_cuts(galaxy):
    cleaned, removed = clean(ParticleSet(galaxy, PARTICLE_COLUMNS), CleanConfig())
    assert removed["radius"] == pytest.approx(0.05 * len(galaxy), abs=5) and removed["top_metallicity"] > 0
    std = Standardiser(PARTICLE_COLUMNS).fit(cleaned.data)
    z = std.transform(cleaned.data)
    assert np.allclose(z.mean(0), 0, atol=1e-4) and np.allclose(z.std(0), 1, atol=1e-3)
    assert np.allclose(std.inverse(z), cleaned.data, rtol=2e-3, atol=1e-3)
    assert Standardiser.from_dict(json.loads(json.dumps(std.to_dict()))).transform(cleaned.data[:5]) == pytest.approx(z[:5])


def test_c2st_tells_same_from_different():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3))
    assert abs(c2st_auc(a, b) - 0.5) < 0.04
    assert c2st_auc(a, b + [0.5, 0, 0]) > 0.6


def test_cli_fits_a_flow_that_beats_the_gaussian_and_writes_what_it_says(table, tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["fit", str(table), "--hubble", "0.704", "--flow", "maf", "--steps", "300", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "C2ST AUC" in printed and "Gaussian" in printed and "dropped 250 wind-phase" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["c2st_auc"] < m["c2st_auc_gaussian"] and m["nll"] < m["nll_gaussian"]
    assert abs(m["c2st_auc_real"] - 0.5) < 0.06 and set(m["w1"]) == {"x", "y", "z", "vx", "vy", "vz", "Z", "age"}
    flow, spec, extra = load_flow(out / "flow")
    assert spec.kind == "maf" and sample(flow, 10).shape == (10, 8) and "standardiser" in extra
    unrelated = tmp_path / "mine"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    assert main(["fit", str(table), "--hubble", "0.704", "--steps", "5", "--out", str(unrelated)]) == 2
    assert "not a previous fit" in capsys.readouterr().err and (unrelated / "notes.txt").exists()
    assert main(["fit", str(table), "--out", str(tmp_path / "x")]) == 2
    assert "--hubble is required" in capsys.readouterr().err


def test_forge_stage_scores_every_flow_on_test_galaxies(quick_home):
    atlas = Atlas.open(quick_home / "quick")
    m = atlas.metrics("forge")
    assert set(m["flows"]) == set(FLOW_KINDS)
    for kind, f in m["flows"].items():
        assert 0.5 <= f["c2st_auc"] <= 1 and np.isfinite(f["nll"]) and f["w1"] > 0 and f["stars_per_second"] > 0
    refs = m["references"]
    assert abs(refs["real"]["c2st_auc"] - 0.5) < 0.08  # true stars against true stars
    assert refs["gaussian"]["c2st_auc"] > 0.7  # a Gaussian is far from a disk + bulge
    assert m["best_flow"] == min(m["flows"], key=lambda k: m["flows"][k]["val_nll"])  # chosen on validation galaxies
    g = atlas.forge_galaxies()
    assert not set(g["test"]) & set(g["train"]) and set(g["test"]) <= set(atlas.split().test.tolist())
    ae = atlas.metrics("autoencoder")
    assert ae["latent_dim"] == 16 and atlas.load_npy("autoencoder", "latent.npy").shape == (len(atlas.catalog()), 16)


def test_forge_page_samples_compares_renders_and_exports(quick_home, monkeypatch):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    at = app_page("pages/forge.py", flow="maf")
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Pairs", "Profiles", "Image", "Autoencoder", "Export"]
    assert len(at.get("plotly_chart")) == 2 and len(at.dataframe[0].value) == len(FLOW_KINDS) + 2
    assert any("20,000 stars sampled from MAF" in c.value for c in at.caption)
    at.number_input[0].set_value(5_000_000).run()
    assert any("sampling 2,000,000" in w.value for w in at.warning)
    at.number_input[0].set_value(1000).run()
    at.slider(key="cond_log_mstar").set_value(at.slider(key="cond_log_mstar").max).run()
    assert any("outside the range of the training galaxies" in w.value for w in at.warning)
    upload = app_page("pages/forge.py", source="image")
    assert not upload.exception and any("Upload a cutout" in i.value for i in upload.info)
    bad = app_page("pages/forge.py", flow="glow")
    assert any("?flow=glow is not a flow" in w.value for w in bad.warning) and not bad.exception
