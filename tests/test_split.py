"""The survey-level split and the held-out scoring built on it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxyml import interpret
from galaxyml.data.split import SplitError, assign_split, check_scorable, survey_split
from precompute.config import resolve_configs
from precompute.stage import all_stages


def catalog(n: int, **cols) -> pd.DataFrame:
    return pd.DataFrame({"galaxy_id": [str(i) for i in range(n)], **cols})


def test_the_split_has_exact_shares_and_is_seeded():
    a = assign_split(catalog(1000), 0.1, 0.2, seed=1)
    assert a.value_counts().to_dict() == {"train": 700, "test": 200, "val": 100}
    assert a.tolist() == assign_split(catalog(1000), 0.1, 0.2, seed=1).tolist()
    assert a.tolist() != assign_split(catalog(1000), 0.1, 0.2, seed=2).tolist()


def test_a_catalog_that_names_its_test_galaxies_keeps_them():
    given = np.where(np.arange(100) < 30, "TEST", "train")
    s = assign_split(catalog(100, split=given), 0.1, 0.2)
    assert (s[:30] == "test").all() and (s[30:] != "test").all()
    assert (s == "val").sum() == 7  # 10% of the 70 others


def test_survey_split_reads_the_column_and_refuses_unknown_labels():
    split = survey_split(catalog(10, split=["train"] * 6 + ["val"] * 2 + ["test"] * 2))
    assert split.counts() == {"train": 6, "val": 2, "test": 2}
    assert split.held_out.tolist() == [6, 7, 8, 9]
    with pytest.raises(SplitError, match="holds"):
        survey_split(catalog(2, split=["train", "holdout"]))


def test_too_few_test_galaxies_are_named():
    split = survey_split(catalog(40, split=["train"] * 32 + ["test"] * 8))
    with pytest.raises(SplitError, match="32 training and 8 test galaxies.*survey.test_fraction"):
        check_scorable(split)


def test_truth_alignment_chooses_on_one_part_and_scores_on_the_other():
    rng = np.random.default_rng(0)
    n = 400
    label = rng.random(n) < 0.3
    noise = rng.random((n, 500))  # 500 features unrelated to the label: the best of them looks good in-sample
    real = (label + rng.normal(0, 0.8, n))[:, None]
    acts = np.column_stack([noise, real])
    select = np.arange(n) < n // 2
    noisy = interpret.truth_alignment(noise, pd.DataFrame({"f": label}), select).iloc[0]
    assert noisy["auroc_select"] > 0.6 and abs(noisy["auroc"] - 0.5) < 0.1  # in-sample flattery, held-out chance
    found = interpret.truth_alignment(acts, pd.DataFrame({"f": label}), select).iloc[0]
    assert found["feature"] == 500 and found["auroc"] > 0.75


def test_setting_the_sae_k_carries_over_to_matryoshka_and_pca():
    stages = all_stages()
    cfg = resolve_configs(stages, {}, ["sae.k=16"])
    assert cfg["matryoshka"].k == 16 and cfg["pca"].n_components == 16
    cfg = resolve_configs(stages, {}, ["sae.k=16", "pca.n_components=8"])
    assert cfg["matryoshka"].k == 16 and cfg["pca"].n_components == 8
