"""Galaxy-Zoo-Euclid-layout datasets from local disk: save_to_disk, parquet and imagefolder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")

from galaxyml.atlas import Atlas  # noqa: E402
from galaxyml.data.hf import write_hf_survey  # noqa: E402
from galaxyml.data.survey import SurveyError  # noqa: E402
from precompute.config import read_preset, resolve_configs  # noqa: E402
from precompute.runner import run_pipeline  # noqa: E402
from precompute.stage import all_stages  # noqa: E402

N = 80


def tiny_images(n: int = N) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        yy, xx = np.mgrid[:40, :40]
        blob = np.exp(-((xx - 20) ** 2 + ((yy - 20) * (1 + i % 3)) ** 2) / (2 * (3 + i % 5) ** 2))
        rgb = np.stack([blob * (0.5 + 0.5 * (i % 2)), blob, blob * 0.8], -1) + rng.normal(0, 0.02, (40, 40, 3))
        out.append(Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)))
    return out


def columns(n: int = N) -> dict:
    return {"id_str": [f"q1-{i}" for i in range(n)],
            "smooth-or-featured_smooth_fraction": np.linspace(0, 1, n).tolist(),
            "has-spiral-arms_yes_fraction": (np.arange(n) % 2).astype(float).tolist()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    ds = datasets.Dataset.from_dict({"image": tiny_images(), **columns()},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "id_str": datasets.Value("string"),
                                                                "smooth-or-featured_smooth_fraction": datasets.Value("float64"),
                                                                "has-spiral-arms_yes_fraction": datasets.Value("float64")}))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(root / "disk"))
    ds.to_parquet(str(root / "gz.parquet"))
    folder = root / "imagefolder"
    folder.mkdir()
    for i, im in enumerate(tiny_images()):
        im.save(folder / f"{i}.png")
    pd.DataFrame({"file_name": [f"{i}.png" for i in range(N)], **columns()}).to_csv(folder / "metadata.csv", index=False)
    return root


@pytest.mark.parametrize("layout", ["disk", "gz.parquet", "imagefolder"])
def test_every_local_layout_gives_the_same_survey(saved, tmp_path, layout):
    survey = write_hf_survey(saved / layout, tmp_path / "s", image_size_px=32)
    assert survey.images.shape == (N, 3, 32, 32) and survey.bands == ("R", "G", "B")
    assert list(survey.catalog["galaxy_id"][:2]) == ["q1-0", "q1-1"]
    assert "smooth-or-featured_smooth_fraction" in survey.catalog
    assert not survey.is_mock
    rgb = survey.rgb(slice(0, 2))
    assert rgb.shape == (2, 32, 32, 3) and rgb.max() > 200  # display images pass through unstretched


def test_missing_image_column_or_path_is_named(saved, tmp_path):
    with pytest.raises(SurveyError, match=r"no image column 'img' \(columns: image, id_str"):
        write_hf_survey(saved / "disk", tmp_path / "s", image_column="img")
    with pytest.raises(SurveyError, match="does not exist"):
        write_hf_survey(saved / "nope", tmp_path / "s2")
    with pytest.raises(SurveyError, match="has no split 'test'"):
        write_hf_survey(saved / "disk", tmp_path / "s3", split="test")


def test_a_whole_atlas_from_a_local_dataset(saved, tmp_path):
    stages = all_stages()
    overrides = ["survey.source=hf", f"survey.dataset_path='{saved / 'disk'}'", "survey.image_size_px=32",
                 "encoder.image_size=32", "encoder.n_embd=16", "encoder.n_head=2", "encoder.n_layer=1",
                 "encoder.epochs=1", "sae.epochs=2", "matryoshka.epochs=2", "matryoshka.group_sizes=[16, 16, 32, 64]",
                 "pca.n_components=8", "sae.k=8", "matryoshka.k=8", "features.sample_galaxies=100",
                 "cluster_fields.n_fields=1", "cluster_fields.size_px=64"]
    run_pipeline(tmp_path / "home", "gz", stages, resolve_configs(stages, read_preset("quick"), overrides))
    atlas = Atlas.open(tmp_path / "home" / "gz")
    assert not atlas.is_mock and atlas.ready("features")
    assert atlas.metrics("embeddings")["source"] == "zoobot"  # the dataset's votes trained the embeddings
    assert atlas.metrics("zoobot")["questions"] == ["smooth-or-featured", "has-spiral-arms"]
    fs = atlas.feature_set("sae")
    assert fs.rho is not None and "has-spiral-arms_yes_fraction" in fs.rho.columns
    assert fs.truth_alignment is None  # no truth outside the mock universe
    # no metallicity or line ratios in this dataset: the SFNets are recorded as not applicable, the rest is built
    assert "sfnet_metallicity" not in atlas.feature_models() and not atlas.ready("sfnet_bpt")
    assert "no oh_p50" in atlas.manifest["stages"]["sfnet_metallicity"]["not_applicable"]
    assert atlas.ready("probes") and "has-spiral-arms_yes_fraction" in set(atlas.probes()["property"])
