"""Run every docstring example of the installed package."""

import doctest
import importlib
import pkgutil

import pytest

import msk

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(msk.__path__, prefix="msk.")
    if not m.name.startswith("msk._core") and not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_functions_have_examples():
    missing = []
    for name in msk.__all__:
        obj = getattr(msk, name)
        if callable(obj) and (obj.__doc__ is None or ">>>" not in obj.__doc__):
            missing.append(name)
    assert not missing, f"public names without a docstring example: {missing}"
