"""The default models installed with msk: present, intact, loadable, and working on real audio."""

import hashlib
import json
from importlib import resources

import numpy as np
import pytest

import msk

MODELS = resources.files("msk").joinpath("models")
RECORD = json.loads(MODELS.joinpath("MODELS.json").read_text())


def test_every_representation_has_a_model():
    assert sorted(RECORD) == ["gaussian", "laplacian", "multiresolution"]
    assert {r: RECORD[r]["params"]["frames"] for r in RECORD} == {
        "gaussian": 2, "laplacian": 1, "multiresolution": 1}


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
    assert model.representation == representation
    assert model.get_params()["random_state"] == entry["params"]["random_state"]
    assert [p.n_components_ for p in model.pca_] == entry["n_components"]
    F = model.transform(msk.example_audio())
    assert F.shape == (7, 3000) and F.dtype == np.float32
    assert np.isfinite(F).all()
    # every level contributes varying features
    assert (F.reshape(7, 6, 500).std(axis=(0, 2)) > 0).all()
