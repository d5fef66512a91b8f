"""Shared fixtures and helpers: the one tolerance helper, pieces of real music for small libraries,
the loader of the repository's scripts (which are not part of the package)."""

import importlib.util
import os
import pathlib

import numpy as np
import pytest

# Default tolerances by dtype (scikit-learn's rule).
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-7}


def assert_close(actual, desired, *, rtol=None, atol=0.0, err_msg=""):
    """assert_allclose with a dtype-dependent default ``rtol``.

    ``rtol`` defaults to 1e-4 when either side is float32 and 1e-7 otherwise.
    Pass a non-zero ``atol`` whenever values near zero are compared.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    if rtol is None:
        dts = {actual.dtype, desired.dtype}
        rtol = RTOL[np.dtype(np.float32)] if np.dtype(np.float32) in dts else RTOL[np.dtype(np.float64)]
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=err_msg)


@pytest.fixture
def rng():
    """A seeded generator: every test that draws random numbers uses this."""
    return np.random.default_rng(20130101)


def example_pieces(folder, n=3, seconds=8):
    """``n`` consecutive ``seconds``-long WAV pieces of the shipped example clip in ``folder``: real
    music for a small library. Returns their paths (str), ``piece0.wav``, ``piece1.wav``, ..."""
    import msk
    import soundfile as sf

    y = msk.load_audio(msk.example_audio())
    step = seconds * 16000
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"piece{i}.wav")
        sf.write(path, y[i * step:(i + 1) * step], 16000)
        paths.append(path)
    return paths



SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


def load_script(name):
    """The module of ``scripts/<name>.py``, imported by path (the scripts are not installed)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
