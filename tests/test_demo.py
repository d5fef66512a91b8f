"""The README's first command ends with ``python scripts/demo.py``: it must run on the shipped models."""

import os
import subprocess
import sys
from importlib import resources

import pytest

import msk

DEMO = os.path.join(os.path.dirname(__file__), "..", "scripts", "demo.py")


def test_demo_runs_on_the_shipped_models():
    models = resources.files("msk").joinpath("models")
    if not all(models.joinpath(f"{n}.npz").is_file() for n in ("default", "laplacian", "gaussian", "multiresolution")):
        pytest.skip("shipped models not installed")
    res = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    width = msk.batch.default_model().n_features_out_
    assert f"msk.extract (default preset)" in res.stdout and f"(8, {width})" in res.stdout
    assert "Laplacian reconstruction error" in res.stdout and "6 levels x 16 means" in res.stdout
