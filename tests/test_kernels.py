"""Thin checks of the compiled kernels in msk._core: sources, stubs, shape checks, fuzzing.

Calls that could crash the interpreter if a kernel's checks were missing (wrong shapes,
dtypes, layouts handed straight to a kernel) run in a child process, so that a segfault
fails the test instead of killing pytest.
"""

import ast
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import msk._core
from msk._core import _encode, _kmeans, _pyramid, _spectral

CORE = Path(msk._core.__file__).parent
SOURCES = Path(__file__).resolve().parents[1] / "src" / "msk" / "_core"
MODULES = {"_encode": _encode, "_kmeans": _kmeans, "_pyramid": _pyramid, "_spectral": _spectral}


def run_child(code, *args, timeout=600):
    """Run Python ``code`` in a fresh interpreter; return the completed process."""
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not SOURCES.is_dir(), reason="needs the source tree")
def test_simd_macros_are_defined_once_and_included_everywhere():
    files = sorted(p for p in SOURCES.iterdir() if p.suffix in (".h", ".cpp", ".pyx"))
    defines = [(p.name, m.group(1)) for p in files
               for m in re.finditer(r"#\s*define\s+(MSK_CLONES|MSK_INLINE|MSK_RESTRICT|MSK_FLATTEN)\b",
                                    p.read_text())]
    # each macro has one definition and one fallback, both in _simd.h
    assert {name for name, _ in defines} == {"_simd.h"}, defines
    for p in files:
        text = p.read_text()
        uses = re.search(r"\bMSK_(CLONES|INLINE|RESTRICT|FLATTEN)\b", text)
        if uses and p.name != "_simd.h" and p.suffix != ".pyx":
            assert '#include "_simd.h"' in text, p.name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_stub_lists_exactly_the_module_entries(name):
    stub = CORE / f"{name}.pyi"
    if not stub.exists():
        stub = SOURCES / f"{name}.pyi"
    tree = ast.parse(stub.read_text())
    stubbed = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    public = {n for n, v in vars(MODULES[name]).items() if not n.startswith("_") and callable(v)
              and getattr(v, "__module__", name).endswith(name)}
    assert stubbed == public
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and ast.get_docstring(fn):
            doc = ast.get_docstring(fn)
            assert "IN" in doc and "OUT" in doc, (name, fn.name)


@pytest.mark.parametrize("name", ["_encode", "_kmeans"])
def test_cython_stub_parameters_match(name):
    tree = ast.parse((CORE / f"{name}.pyi" if (CORE / f"{name}.pyi").exists() else SOURCES / f"{name}.pyi").read_text())
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        runtime = inspect.signature(getattr(MODULES[name], fn.name))
        assert [a.arg for a in fn.args.args] == list(runtime.parameters), fn.name


SHAPE_ERRORS = r"""
import numpy as np
from msk._core import _encode, _kmeans, _pyramid, _spectral
f32 = np.float32

def expect(fn, *args, match):
    try:
        fn(*args)
    except ValueError as e:
        assert all(m in str(e) for m in match), (str(e), match)
        print("ok", str(e)[:60])
        return
    raise AssertionError(f"no ValueError for {match}")

z = lambda *s: np.zeros(s, f32)
# encoder: first rows != width * n_mels (the crafted-model case), out and work too small
E = (0, 0.25, z(0, 0), 1.0, z(0), z(0))  # linear, no normalisation
expect(_encode.whiten_encode_pool, z(300, 40), 8, z(200, 16), z(0, 0), z(16), *E, 16, 240, 64,
       True, False, False, z(10000), z(15, 16), match=["(200, 16)", "(300, 40)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), *E, 16, 300, 64,
       True, False, False, z(10000), z(18, 16), match=["(19, 16)", "(18, 16)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), *E, 16, 300, 64,
       True, False, False, z(100), z(19, 16), match=["(100,)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(8, 4), z(4), *E, 16, 300, 64,
       True, False, False, z(10000), z(19, 4), match=["(8, 4)", "(40, 16)"])
expect(_encode.whiten_encode_pool, z(10, 40), 1, z(40, 16), z(0, 0), z(16), *E, 16, 11, 64,
       True, False, False, z(1), z(1, 16), match=["n_positions=11", "(10, 40)"])
# options: split doubles the codes, normalisation needs first_sums (width, n_first) and its
# workspace, triangle needs two stages and its two vectors, encoding codes 0..3
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), 2, 0.25, z(0, 0), 1.0, z(0), z(0),
       16, 300, 64, True, False, False, z(10000), z(19, 16), match=["(19, 32)", "(19, 16)"])
expect(_encode.whiten_encode_pool, z(300, 40), 2, z(80, 16), z(0, 0), z(16), 0, 0.25, z(1, 16), 1.0, z(0), z(0),
       16, 288, 64, True, False, False, z(10000), z(18, 16), match=["(2, 16)", "(1, 16)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), 0, 0.25, z(1, 16), 1.0, z(0), z(0),
       16, 288, 64, True, False, False, z((64 + 6) * 16), z(18, 16), match=["(n_mels + 3)", "(1120,)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), 0, 0.25, z(1, 16), 0.0, z(0), z(0),
       16, 288, 64, True, False, False, z(10000), z(18, 16), match=["normalize_eps", "0.0"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), 3, 0.25, z(0, 0), 1.0, z(16), z(16),
       16, 288, 64, True, False, False, z(10000), z(18, 16), match=["two stages", "(0, 0)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(16, 8), z(8), 3, 0.25, z(0, 0), 1.0, z(16), z(7),
       16, 288, 64, True, False, False, z(10000), z(18, 8), match=["center_sq of shape (7,)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), 0, 0.25, z(0, 0), 1.0, z(16), z(0),
       16, 288, 64, True, False, False, z(10000), z(18, 16), match=["triangle encoding only", "(16,)"])
expect(_encode.whiten_encode_pool, z(300, 40), 1, z(40, 16), z(0, 0), z(16), 4, 0.25, z(0, 0), 1.0, z(0), z(0),
       16, 288, 64, True, False, False, z(10000), z(18, 16), match=["encoding must be 0, 1, 2 or 3; got 4"])
# K-means: D columns, accum shape, workspaces
lab, val, en = np.zeros(100, np.int32), z(100), np.zeros(1)
expect(_kmeans.assign_update, z(100, 5), z(3, 4), 64, lab, val, None, en, z(1000), np.zeros(100, np.int32),
       match=["(100, 5)", "(3, 4)"])
expect(_kmeans.assign_update, z(100, 5), z(3, 5), 64, lab, val, z(3, 4), en, z(1000), np.zeros(100, np.int32),
       match=["(3, 4)"])
expect(_kmeans.assign_update, z(100, 5), z(3, 5), 64, lab, val, None, en, z(10), np.zeros(100, np.int32),
       match=["(10,)"])
expect(_kmeans.assign_update, z(100, 5), z(3, 5), 64, lab, val, None, en, z(1000), np.zeros(10, np.int32),
       match=["(10,)"])
# pyramids: level shapes
expect(_pyramid.blur_decimate_subtract, z(10, 4), [z(10, 4), z(6, 4)], match=["(5, 4)", "(6, 4)"])
expect(_pyramid.blur_decimate, z(10, 4), [z(10, 4), z(5, 3)], match=["(5, 4)", "(5, 3)"])
expect(_pyramid.expand_add, [z(10, 4), z(5, 4), z(2, 4)], [z(10, 4), z(5, 4)], match=["(3, 4)", "(2, 4)"])
expect(_pyramid.expand_add, [z(10, 4), z(5, 4)], [z(10, 4), z(5, 4)], match=["2", "one fewer"])
# spectral: band table outside the FFT bins, offsets past the weights, out rows
i64 = lambda *v: np.array(v, np.int64)
expect(_spectral.mel_power, z(1600), 64, 16, True, i64(30), i64(0, 4), z(4), 2, False, 1.0, 1e-3, 1,
       z(101, 1), match=["33 FFT bins", "band_start = 30"])
expect(_spectral.mel_power, z(1600), 64, 16, True, i64(0), i64(0, 9), z(4), 2, False, 1.0, 1e-3, 1,
       z(101, 1), match=["weights.shape[0] = 4", "band_offset[-1] = 9"])
expect(_spectral.mel_power, z(1600), 64, 16, True, i64(0), i64(0, 4), z(4), 2, False, 1.0, 1e-3, 1,
       z(100, 1), match=["101", "(100, 1)"])
# wrong dtype or layout: TypeError/ValueError, never a silent copy
for bad in (np.zeros((101, 1)), z(101, 2)[:, :1]):
    try:
        _spectral.mel_power(z(1600), 64, 16, True, i64(0), i64(0, 4), z(4), 2, False, 1.0, 1e-3, 1, bad)
    except TypeError:
        print("ok TypeError")
    else:
        raise AssertionError("mel_power accepted a converted `out`")
"""


def test_kernel_entries_refuse_wrong_shapes_naming_them():
    proc = run_child(SHAPE_ERRORS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == 26, proc.stdout


def test_fuzz_every_kernel_entry_in_a_child_process():
    """Hypothesis fuzzing of all kernel entries and their wrappers (tests/_fuzz_kernels.py).

    A fixed, derandomised number of examples per target (``MSK_FUZZ_EXAMPLES``) keeps the
    run the same in CI; the script's output names any failing target and its example.
    """
    script = Path(__file__).with_name("_fuzz_kernels.py")
    proc = subprocess.run([sys.executable, "-X", "faulthandler", str(script)], capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.count("ok ") == 8, proc.stdout
