"""The default models installed with msk: present, intact, loadable, and working on real audio."""

import hashlib
import json
from importlib import resources

import numpy as np
import pytest

import msk

MODELS = resources.files("msk").joinpath("models")
RECORD = json.loads(MODELS.joinpath("MODELS.json").read_text())


PAPER = ["gaussian", "laplacian", "multiresolution"]


def test_every_preset_has_its_models():
    assert sorted(RECORD) == ["default", *PAPER]
    assert {name: RECORD[name]["preset"] for name in RECORD} == {"default": "default", **dict.fromkeys(PAPER, "paper")}
    # the paper's settings (version-1 files name the window width "frames")
    assert {r: RECORD[r]["params"]["frames"] for r in PAPER} == {"gaussian": 2, "laplacian": 1, "multiresolution": 1}
    # the default learned from the unsupervised pool, never from the labelled corpus it is evaluated on
    assert RECORD["default"]["trained_on"]["root"].startswith("pool")


@pytest.mark.parametrize("representation", sorted(RECORD))
def test_model_matches_its_recorded_checksum(representation):
    entry = RECORD[representation]
    data = MODELS.joinpath(entry["file"]).read_bytes()
    assert len(data) == entry["bytes"]
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("representation", sorted(RECORD))
def test_model_loads_and_extracts_real_audio(representation):
    entry = RECORD[representation]
    with resources.as_file(MODELS.joinpath(entry["file"])) as path:
        model = msk.MultiscaleFeatures.load(path)
    assert model.representation == entry["representation"]
    assert model.get_params()["random_state"] == entry["params"]["random_state"]
    assert [p.n_components_ for p in model.pca_] == entry["n_components"]
    assert model.n_features_out_ == entry["n_features"]
    F = model.transform(msk.example_audio())
    assert F.shape == (7, entry["n_features"]) and F.dtype == np.float32
    assert np.isfinite(F).all()
    # every level contributes varying features
    bounds = np.cumsum([0, *model.n_features_per_level_])
    assert all(F[:, a:b].std() > 0 for a, b in zip(bounds[:-1], bounds[1:]))
