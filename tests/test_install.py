"""The installed package exposes every public name (catches files missing from meson.build)."""

import importlib

import msk


def test_public_names_importable():
    assert msk.__all__, "msk.__all__ is empty"
    for name in msk.__all__:
        assert hasattr(msk, name), f"msk.{name} listed in __all__ but missing"


def test_version_matches_metadata():
    from importlib.metadata import version

    assert msk.__version__ == version("msk")


def test_compiled_kernels_are_installed():
    core = importlib.import_module("msk._core")
    assert core.__file__ is not None


def test_example_audio_is_shipped():
    import os

    path = msk.example_audio()
    assert os.path.getsize(path) > 50_000
