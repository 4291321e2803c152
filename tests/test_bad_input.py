"""Malformed input over every way in: the command line, presets, --set, every source (folder + CSV, a
local Hugging Face dataset, an embeddings file, redMaPPer FITS) and the app's deep links.

Each case expects one clear line that names the problem, and checks that the finished atlas the command
was pointed at is exactly as it was (its manifest's stages, no temporary folder left)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from galaxyml.data.redmapper import RedMaPPerError, read_clusters, write_fits_table
from precompute.cli import main
from test_folder_pipeline import write_cutouts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Cutouts, their CSV and variants of it, and a finished run 'base' built from them."""
    root = tmp_path_factory.mktemp("bad")
    cat = write_cutouts(root / "cut", n=60)
    cat.to_csv(root / "c.csv", index=False)
    variants = {
        "noid.csv": cat.rename(columns={"objID": "obj"}),
        "empty.csv": cat.iloc[:0],
        "dup.csv": pd.concat([cat, cat.iloc[:3]]),
        "float.csv": cat.assign(objID=cat["objID"].astype(float) + 0.5),
        "overlap.csv": cat.iloc[:10],
        "other.csv": cat.assign(objID=cat["objID"] + 10 ** 6),
        "const.csv": cat.assign(oh_p50=8.7),
        "nearconst.csv": cat.assign(oh_p50=8.7 + 1e-9 * np.arange(len(cat))),
        "missing.csv": cat.assign(oh_p50=np.where(np.arange(len(cat)) < 5, 8.7, np.nan)),
    }
    for name, df in variants.items():
        df.to_csv(root / name, index=False)
    (root / "binary.csv").write_bytes(b"\x00\xff\xfe not a table \x00")
    (root / "bad.toml").write_text("[sae\nk = 1")
    (root / "unknown_table.toml").write_text("[saee]\nk = 1\n")
    (root / "unknown_key.toml").write_text("[sae]\nkk = 1\n")
    assert run(root, "--source", "folder", "--images", str(root / "cut"), "--catalog", str(root / "c.csv"),
               "--only", "thumbnails")[0] == 0
    return root


def run(root: Path, *argv: str, run_name: str = "base") -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--preset", "quick", "--home", str(root / "runs"), "--run", run_name, "--quiet", *argv])
    return code, err.getvalue()


def finished(root: Path) -> dict:
    return json.loads((root / "runs" / "base" / "manifest.json").read_text())["stages"]


def folder(root: Path, csv: str, *more: str) -> list[str]:
    return ["--source", "folder", "--images", str(root / "cut"), "--catalog", str(root / csv), "--replace-survey", *more]


CLI_CASES = {  # arguments -> what the one error line must say
    "unknown preset": (lambda r: ["--preset", "nosuch"], "no preset named 'nosuch'"),
    "preset not TOML": (lambda r: ["--preset", str(r / "bad.toml")], "is not valid TOML"),
    "preset unknown table": (lambda r: ["--preset", str(r / "unknown_table.toml")], "unknown table [saee]"),
    "preset unknown key": (lambda r: ["--preset", str(r / "unknown_key.toml")], "[sae] has no key 'kk'"),
    "--set unknown key": (lambda r: ["--set", "sae.kk=1"], "[sae] has no key 'kk'"),
    "--set wrong type": (lambda r: ["--set", "sae.k=abc"], "k = 'abc': expected int"),
    "--set out of range": (lambda r: ["--set", "sae.k=-1"], "must be >= 1"),
    "--set without =": (lambda r: ["--set", "saek"], "must look like stage.key=value"),
    "--set unknown stage": (lambda r: ["--set", "nosuch.k=1"], "unknown stage 'nosuch'"),
    "--only unknown": (lambda r: ["--only", "nosuch"], "unknown stage(s) nosuch"),
    "--skip unknown": (lambda r: ["--skip", "nosuch"], "unknown stage(s) nosuch"),
    "--force unknown": (lambda r: ["--force", "nosuch"], "--force names unknown stages"),
    "--only and --skip clash": (lambda r: ["--only", "sae", "--skip", "embeddings"], "--only sae needs a stage"),
    "--source folder, no images": (lambda r: ["--source", "folder", "--catalog", str(r / "c.csv")], "needs --images"),
    "--source folder, no CSV": (lambda r: ["--source", "folder", "--images", str(r / "cut")], "needs --catalog"),
    "--source hf, no dataset": (lambda r: ["--source", "hf"], "--source hf needs --images"),
    "another survey into the run": (lambda r: ["--source", "mock"], "was built from your files"),
    "image folder missing": (lambda r: ["--source", "folder", "--images", str(r / "nope"), "--catalog",
                                        str(r / "c.csv"), "--replace-survey"], "image folder"),
    "CSV missing": (lambda r: folder(r, "nope.csv"), "nope.csv does not exist"),
    "CSV without objID": (lambda r: folder(r, "noid.csv"), "has no id column 'objID' (columns: obj,"),
    "configured id column missing": (lambda r: folder(r, "c.csv", "--set", 'survey.id_column="ident"'),
                                     "has no id column 'ident'"),
    "CSV with no rows": (lambda r: folder(r, "empty.csv"), "has no rows"),
    "CSV with duplicate ids": (lambda r: folder(r, "dup.csv"), "repeats ids"),
    "CSV ids written as floats": (lambda r: folder(r, "float.csv"), "are not integers"),
    "test CSV overlaps training": (lambda r: folder(r, "c.csv", "--test-catalog", str(r / "overlap.csv")),
                                   "are in both"),
    "test CSV missing": (lambda r: folder(r, "c.csv", "--test-catalog", str(r / "nope.csv")), "does not exist"),
    "no id has an image": (lambda r: folder(r, "other.csv"), "has an image in"),
    "CSV is binary": (lambda r: folder(r, "binary.csv"), "cannot read the catalog"),
    "target column missing": (lambda r: folder(r, "c.csv", "--target", "nosuch", "--only", "sfnet_metallicity"),
                              "no target column nosuch"),
    "run name with a slash": (lambda r: ["--run", "../x"], "must be a plain folder name"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_command_line_names_the_problem_and_touches_nothing(data, case):
    args, expected = CLI_CASES[case]
    before = finished(data)
    argv = args(data)
    code, err = run(data, *argv[2:], run_name=argv[1]) if argv[:1] == ["--run"] else run(data, *argv)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and expected in errors[0], err
    assert finished(data) == before
    assert not list((data / "runs" / "base").glob(".tmp-*"))


@pytest.mark.parametrize("csv, reason", [
    ("const.csv", "has the same value (8.7"),
    ("nearconst.csv", "has the same value (8.7"),
    ("missing.csv", "are needed"),
])
def test_an_unusable_target_leaves_its_network_not_applicable_with_the_reason(data, csv, reason, capsys):
    code = main(["--preset", "quick", "--home", str(data / "runs"), "--run", csv.split(".")[0], "--quiet",
                 *folder(data, csv, "--target", "oh_p50", "--only", "sfnet_metallicity")])
    out = capsys.readouterr().out
    assert code == 0 and "sfnet_metallicity: not applicable:" in out and reason in out


@pytest.fixture(scope="module")
def hf_dataset(tmp_path_factory) -> Path:
    datasets = pytest.importorskip("datasets")
    from test_hf_source import columns, tiny_images

    root = tmp_path_factory.mktemp("hfbad")
    ds = datasets.Dataset.from_dict({"image": tiny_images(40), **columns(40)})
    datasets.DatasetDict({"train": ds}).save_to_disk(str(root / "disk"))
    return root / "disk"


@pytest.mark.parametrize("extra, expected", [
    (["--set", 'survey.id_column="idx"'], "has no id column 'idx' (columns: image, id_str"),
    (["--set", 'survey.image_column="img"'], "has no image column 'img'"),
    (["--set", 'survey.split="test"'], "has no split 'test'"),
])
def test_a_local_dataset_with_a_wrong_column_or_split_is_named(hf_dataset, tmp_path, extra, expected):
    code, err = run(tmp_path, "--source", "hf", "--images", str(hf_dataset), "--only", "thumbnails", *extra)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and expected in errors[0], err


def test_a_missing_local_dataset_is_named(tmp_path):
    code, err = run(tmp_path, "--source", "hf", "--images", str(tmp_path / "nope"), "--only", "thumbnails")
    assert code == 1 and "does not exist" in err and str(tmp_path / "nope") in err


def _embedding_files(folder: Path, n: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"rows": folder / "rows.npy", "nan": folder / "nan.npy", "pickled": folder / "pickled.npy",
             "flat": folder / "flat.npy", "noid": folder / "noid.parquet"}
    np.save(files["rows"], np.zeros((n + 3, 8), np.float32))
    x = np.ones((n, 8), np.float32)
    x[4, 2] = np.nan
    np.save(files["nan"], x)
    np.save(files["pickled"], np.array([{"a": 1}] * n, dtype=object), allow_pickle=True)
    np.save(files["flat"], np.zeros(n, np.float32))
    pd.DataFrame({"name": [str(i) for i in range(n)], "e0": np.zeros(n)}).to_parquet(files["noid"])
    return files


@pytest.mark.parametrize("kind, expected", [
    ("rows", "rows but the survey has 200 galaxies"),
    ("nan", "rows with NaN or inf"),
    ("pickled", "cannot read"),
    ("flat", "expected (galaxies, dimensions)"),
    ("noid", "has no column 'galaxy_id'"),
    ("missing", "does not exist"),
])
def test_an_embeddings_file_that_does_not_fit_is_named(tmp_path, kind, expected):
    files = _embedding_files(tmp_path / "emb", 200)
    path = files.get(kind, tmp_path / "emb" / "missing.npy")
    code, err = run(tmp_path, "--set", "survey.n_galaxies=200", "--set", "embeddings.source=file",
                    "--set", f"embeddings.path={json.dumps(str(path))}", "--only", "embeddings")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and expected in errors[0], err
    assert not list((tmp_path / "runs" / "base").glob(".tmp-*"))


def test_redmapper_fits_that_is_truncated_missing_or_lacks_a_column_is_named(tmp_path):
    good = tmp_path / "clusters.fits"
    write_fits_table(pd.DataFrame({"MEM_MATCH_ID": [1, 2], "RA": [10.0, 11.0], "DEC": [1.0, 2.0],
                                   "Z_LAMBDA": [0.2, 0.3], "Z_LAMBDA_ERR": [0.01, 0.01],
                                   "LAMBDA": [30.0, 40.0], "LAMBDA_ERR": [3.0, 4.0]}), good)
    assert len(read_clusters(good)) == 2
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    lacking = tmp_path / "lacking.fits"
    write_fits_table(pd.DataFrame({"MEM_MATCH_ID": [1], "RA": [10.0]}), lacking)
    text = tmp_path / "text.fits"
    text.write_text("SIMPLE = this is not FITS")
    for path, expected in ((truncated, "truncated or corrupt"), (lacking, "has no column DEC"),
                           (text, "not a readable FITS file"), (tmp_path / "nope.fits", "does not exist")):
        with pytest.raises(RedMaPPerError, match=expected.replace("(", r"\(")):
            read_clusters(path)


DEEP_LINKS = [
    (None, {"run": "nosuch"}, "?run=nosuch is not an atlas"),
    ("pages/atlas.py", {"model": "nosuch"}, "?model=nosuch is not a feature model"),
    ("pages/atlas.py", {"feature": "99999"}, "?feature=99999 is not a feature"),
    ("pages/atlas.py", {"feature": "abc"}, "?feature=abc is not a feature"),
    ("pages/atlas.py", {"model": "sae", "galaxy": "nosuch"}, "?galaxy=nosuch is not among"),
    ("pages/compare.py", {"property": "nosuch"}, "?property=nosuch is not a property"),
    ("pages/compare.py", {"galaxy": "nosuch"}, "No galaxy with id 'nosuch'"),
    ("pages/predictions.py", {"model": "nosuch"}, "?model=nosuch is not a network"),
    ("pages/predictions.py", {"target": "nosuch"}, "?target=nosuch is not a target"),
    ("pages/predictions.py", {"galaxy": "nosuch"}, "?galaxy=nosuch is not a galaxy"),
    ("pages/explore.py", {"colour": "nosuch"}, "?colour=nosuch is not a catalog column"),
    ("pages/explore.py", {"space": "nosuch"}, "?space=nosuch is not a map"),
    ("pages/explore.py", {"filter": "redshift:0:1"}, "names the column 'redshift'"),
    ("pages/explore.py", {"filter": "z:1:0"}, "minimum above its maximum"),
    ("pages/explore.py", {"filter": "z:5:6"}, "No galaxy passes these filters"),
    ("pages/explore.py", {"ids": "nosuch,other"}, "?ids= names 2 galaxies not in this atlas"),
    ("pages/search.py", {"by": "nosuch"}, "?by=nosuch is not a way to search"),
]


@pytest.mark.parametrize("page, params, expected", DEEP_LINKS)
def test_a_deep_link_with_an_unknown_value_says_so(quick_home, monkeypatch, page, params, expected):
    monkeypatch.setenv("GALAXYML_HOME", str(quick_home))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    if page:
        at.switch_page(page)
    for k, v in {"run": "quick", **params}.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    shown = [w.value for w in [*at.warning, *at.sidebar.warning]]
    assert any(expected in w for w in shown), shown


def test_a_survey_smaller_than_the_embedding_size_keeps_as_many_components_as_galaxies(tmp_path, caplog):
    code, err = run(tmp_path, "--set", "survey.n_galaxies=40", "--only", "pca")
    assert code == 0, err
    m = json.loads((tmp_path / "runs" / "base" / "manifest.json").read_text())["stages"]
    dim, n_train = m["embeddings"]["metrics"]["dim"], m["pca"]["metrics"]["n_train"]
    assert n_train < dim and m["pca"]["metrics"]["n_components"] == n_train
    assert f"keeping {n_train}" in caplog.text


def test_16_bit_grey_rgba_and_float_cutouts_are_read_by_their_range(tmp_path):
    from PIL import Image

    from galaxyml.data.folder import write_folder_survey

    images = tmp_path / "cut"
    images.mkdir()
    yy, xx = np.mgrid[:48, :48]
    blob = np.exp(-((yy - 24) ** 2 + (xx - 24) ** 2) / 50.0)
    Image.fromarray((blob * 4000).astype(np.uint16)).save(images / "1.png")  # 12-bit data in a 16-bit PNG
    Image.fromarray((blob * 255).astype(np.uint8)).save(images / "2.png")  # grey
    Image.fromarray(np.dstack([(blob * 255).astype(np.uint8)] * 3 + [np.full((48, 48), 255, np.uint8)])).save(
        images / "3.png")  # RGBA
    Image.fromarray((blob * 1e-17).astype(np.float32)).save(images / "4.tiff")  # float fluxes
    pd.DataFrame({"objID": [1, 2, 3, 4], "oh_p50": [8.5, 8.6, 8.7, 8.8]}).to_csv(tmp_path / "c.csv", index=False)
    survey = write_folder_survey(images, tmp_path / "c.csv", tmp_path / "s", image_size_px=32)
    x = np.asarray(survey.images)
    assert len(x) == 4
    for row in x:
        assert 0.9 < row.max() <= 1.0 and row[:, 0, 0].max() < 0.05  # bright centre, dark corner: not clipped
