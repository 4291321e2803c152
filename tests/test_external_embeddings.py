"""Embeddings from elsewhere: alignment by galaxy_id, clear errors, and a whole run on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxyml.atlas import Atlas
from galaxyml.data.external_embeddings import EmbeddingsError, load_aligned
from precompute.config import read_preset, resolve_configs
from precompute.runner import StageFailed, run_pipeline
from precompute.stage import all_stages

IDS = np.array([f"g{i}" for i in range(20)])


def test_parquet_and_npy_are_aligned_to_the_survey_order(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    shuffled = np.random.default_rng(1).permutation(20)
    pd.DataFrame({"galaxy_id": IDS[shuffled], "embedding": list(x[shuffled])}).to_parquet(tmp_path / "e.parquet")
    np.testing.assert_array_equal(load_aligned(tmp_path / "e.parquet", IDS), x)
    wide = pd.DataFrame(x[shuffled], columns=[f"z{i}" for i in range(5)]).assign(objid=IDS[shuffled])
    wide.to_parquet(tmp_path / "w.parquet")
    np.testing.assert_array_equal(load_aligned(tmp_path / "w.parquet", IDS, id_column="objid"), x)
    np.save(tmp_path / "e.npy", x[shuffled])
    (tmp_path / "e.ids.txt").write_text("\n".join(IDS[shuffled]))
    np.testing.assert_array_equal(load_aligned(tmp_path / "e.npy", IDS), x)


def test_bad_embeddings_are_named(tmp_path):
    x = np.ones((20, 3), np.float32)
    x[4, 1] = np.nan
    pd.DataFrame({"galaxy_id": IDS, "embedding": list(x)}).to_parquet(tmp_path / "nan.parquet")
    with pytest.raises(EmbeddingsError, match=r"1 rows with NaN or inf \(e.g. g4\)"):
        load_aligned(tmp_path / "nan.parquet", IDS)
    pd.DataFrame({"galaxy_id": IDS[:15], "embedding": list(np.ones((15, 3)))}).to_parquet(tmp_path / "few.parquet")
    with pytest.raises(EmbeddingsError, match=r"5 of 20 survey galaxies have no embedding .*e.g. g15"):
        load_aligned(tmp_path / "few.parquet", IDS)
    pd.DataFrame({"id": IDS, "embedding": list(np.ones((20, 3)))}).to_parquet(tmp_path / "noid.parquet")
    with pytest.raises(EmbeddingsError, match=r"no column 'galaxy_id' \(found: id, embedding\)"):
        load_aligned(tmp_path / "noid.parquet", IDS)
    np.save(tmp_path / "short.npy", np.ones((7, 3)))
    with pytest.raises(EmbeddingsError, match="7 rows but the survey has 20"):
        load_aligned(tmp_path / "short.npy", IDS)


def test_a_run_on_external_embeddings_trains_the_saes_on_them(quick_home, tmp_path):
    cat = Atlas.open(quick_home / "quick").catalog()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(cat), 24)).astype(np.float32)
    pd.DataFrame({"galaxy_id": cat["galaxy_id"], "embedding": list(x)}).to_parquet(tmp_path / "zoobot.parquet")
    stages = all_stages()
    overrides = ["embeddings.source=file", f"embeddings.path='{tmp_path / 'zoobot.parquet'}'", "sae.epochs=2",
                 "matryoshka.epochs=2", "matryoshka.group_sizes=[16, 16, 32, 128]", "pca.n_components=8",
                 "encoder.epochs=1", "survey.n_galaxies=1000", "cluster_fields.n_fields=1", "cluster_fields.size_px=64"]
    configs = resolve_configs(stages, read_preset("quick"), overrides)
    run_pipeline(tmp_path / "home", "ext", stages, configs)
    atlas = Atlas.open(tmp_path / "home" / "ext")
    np.testing.assert_array_equal(np.asarray(atlas.embeddings()), x)
    assert atlas.metrics("sae")["n_latents"] == 8 * 24
    bad = resolve_configs(stages, read_preset("quick"), ["embeddings.source=file", "embeddings.path='/nonexistent.npy'"])
    with pytest.raises(StageFailed, match="embeddings file /nonexistent.npy does not exist"):
        run_pipeline(tmp_path / "home", "ext2", stages, bad)
