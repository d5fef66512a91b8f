"""msk.gaussian_pyramid, msk.laplacian_pyramid and msk.reconstruct_laplacian.

Oracles: scipy.ndimage.correlate1d with the binomial kernel (mode='mirror') and
slicing, computed in float64 (level-exact); an independent pure-NumPy reference
(numpy.pad mode='reflect' + shifted sums); the Laplacian as the difference of the
oracle's levels.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_array_equal
from scipy import ndimage

import msk
from conftest import assert_close

KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


# ----------------------------------------------------------------------------- references
def ref_gaussian(S, levels):
    """scipy.ndimage reference: binomial smoothing along axis 0 (mirror borders), keep even frames."""
    G = [np.asarray(S, dtype=np.float64)]
    for _ in range(levels - 1):
        G.append(ndimage.correlate1d(G[-1], KERNEL, axis=0, mode="mirror")[::2])
    return G


def ref_expand(coarse, n):
    """Zeros between the coarse frames, smoothed with 2 * kernel, n frames (a 1-frame level copies)."""
    if n == 1:
        return coarse.copy()
    up = np.zeros((n, coarse.shape[1]))
    up[::2] = coarse
    return ndimage.correlate1d(up, 2 * KERNEL, axis=0, mode="mirror")


def ref_laplacian(S, levels):
    G = ref_gaussian(S, levels)
    return [G[i] - ref_expand(G[i + 1], len(G[i])) for i in range(levels - 1)] + [G[-1]]


def numpy_gaussian(S, levels):
    """Independent of scipy: numpy.pad's 'reflect' is the whole-sample mirror (d c b | a b c d)."""
    G = [np.asarray(S, dtype=np.float64)]
    for _ in range(levels - 1):
        g = G[-1]
        n = len(g)
        if n == 1:  # numpy.pad cannot reflect a single frame; it mirrors to a constant
            padded = np.repeat(g, 5, axis=0)
        else:
            padded = np.pad(g, ((2, 2), (0, 0)), mode="reflect")
        smooth = sum(w * padded[i : i + n] for i, w in enumerate(KERNEL))
        G.append(smooth[::2])
    return G


def n_frames(n, level):
    return -(-n // 2**level)


def tolerances(dtype, S):
    """rtol by dtype, plus an atol at the input's scale: Laplacian levels are differences near zero."""
    scale = max(float(np.abs(S).max()), 1.0)
    return (1e-5, 2e-6 * scale) if np.dtype(dtype) == np.float32 else (1e-12, 1e-13 * scale)


# ----------------------------------------------------------------------------- oracles
LENGTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 31, 33, 100, 910]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
def test_gaussian_matches_scipy_every_level(rng, dtype, n):
    S = rng.standard_normal((n, 23)).astype(dtype)
    G = msk.gaussian_pyramid(S, levels=8)
    R = ref_gaussian(S, 8)
    rtol, atol = tolerances(dtype, S)
    assert len(G) == 8
    for level, (g, r) in enumerate(zip(G, R)):
        assert g.dtype == dtype
        assert_close(g, r, rtol=rtol, atol=atol, err_msg=f"level {level}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 5, 31, 910])
def test_gaussian_matches_pure_numpy(rng, dtype, n):
    S = rng.uniform(-5, 5, size=(n, 17)).astype(dtype)
    rtol, atol = tolerances(dtype, S)
    for level, (g, r) in enumerate(zip(msk.gaussian_pyramid(S, levels=6), numpy_gaussian(S, 6))):
        assert_close(g, r, rtol=rtol, atol=atol, err_msg=f"level {level}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
def test_laplacian_is_difference_of_reference_levels(rng, dtype, n):
    S = rng.standard_normal((n, 23)).astype(dtype)
    L = msk.laplacian_pyramid(S, levels=6)
    R = ref_laplacian(S, 6)
    rtol, atol = tolerances(dtype, S)
    for level, (lap, r) in enumerate(zip(L, R)):
        assert lap.dtype == dtype
        assert_close(lap, r, rtol=rtol, atol=atol, err_msg=f"level {level}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [1, 2, 3, 6, 8])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 100, 910])
def test_reconstruction_is_exact(rng, dtype, levels, n):
    S = (10 * rng.standard_normal((n, 40))).astype(dtype)
    L = msk.laplacian_pyramid(S, levels=levels)
    S2 = msk.reconstruct_laplacian(L)
    assert S2.dtype == dtype and S2.shape == S.shape and S2.flags.c_contiguous
    eps = np.finfo(dtype).eps
    # each level adds back the very expansion it subtracted: a few roundings per level
    assert np.abs(S2 - S).max() <= 4 * levels * eps * np.abs(S).max()


def test_top_level_is_top_gaussian_and_levels_sum_back(rng):
    S = rng.standard_normal((257, 11))
    G = msk.gaussian_pyramid(S, levels=5)
    L = msk.laplacian_pyramid(S, levels=5)
    assert_close(L[-1], G[-1])
    for i in range(4):
        assert_close(L[i] + ref_expand(G[i + 1], len(G[i])), G[i], atol=1e-12)


def test_constant_spectrogram_has_zero_band_pass_levels():
    # The whole-sample mirror keeps constants through expansion up to the borders.
    S = np.full((37, 5), 3.25)
    G = msk.gaussian_pyramid(S, levels=6)
    L = msk.laplacian_pyramid(S, levels=6)
    for g in G:
        assert_array_equal(g, 3.25)
    for lap in L[:-1]:
        assert_array_equal(lap, 0.0)
    assert_array_equal(L[-1], 3.25)


def test_bands_are_never_mixed(rng):
    # Every band is an independent 1-D pyramid; widths cover full and partial SIMD tiles.
    for n_bands in [1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 47]:
        S = rng.standard_normal((45, n_bands)).astype(np.float32)
        G = msk.gaussian_pyramid(S, levels=4)
        L = msk.laplacian_pyramid(S, levels=4)
        for b in [0, n_bands // 2, n_bands - 1]:
            Gb = msk.gaussian_pyramid(S[:, b : b + 1], levels=4)
            Lb = msk.laplacian_pyramid(S[:, b : b + 1], levels=4)
            for level in range(4):
                assert_array_equal(G[level][:, b], Gb[level][:, 0])
                assert_array_equal(L[level][:, b], Lb[level][:, 0])


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("func", [msk.gaussian_pyramid, msk.laplacian_pyramid])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 63, 64, 65, 910])
@pytest.mark.parametrize("levels", [1, 2, 6, 8])
def test_shapes_and_contiguity(rng, func, n, levels):
    S = rng.standard_normal((n, 3))
    out = func(S, levels=levels)
    assert isinstance(out, list) and len(out) == levels
    assert [x.shape for x in out] == [(n_frames(n, level), 3) for level in range(levels)]
    assert all(x.flags.c_contiguous and x.dtype == np.float64 for x in out)


def test_short_input_single_frame_levels(rng):
    # T < 2**levels: the coarse levels have one frame each; a single frame smooths to itself.
    S = rng.standard_normal((3, 4))
    G = msk.gaussian_pyramid(S, levels=6)
    assert [len(g) for g in G] == [3, 2, 1, 1, 1, 1]
    assert_close(G[3], G[2])
    assert_close(G[5], G[2])
    L = msk.laplacian_pyramid(S, levels=6)
    for lap in L[2:5]:
        assert_close(lap, np.zeros_like(lap), atol=1e-15)
    one = msk.laplacian_pyramid(S[:1], levels=8)
    assert_close(one[-1], S[:1])
    assert_close(msk.reconstruct_laplacian(one), S[:1])


def test_levels_one_returns_the_input():
    S = np.arange(12.0).reshape(4, 3)
    (G0,) = msk.gaussian_pyramid(S, levels=1)
    (L0,) = msk.laplacian_pyramid(S, levels=1)
    assert_array_equal(G0, S)
    assert_array_equal(L0, S)
    assert not np.shares_memory(L0, S)
    R = msk.reconstruct_laplacian([L0])
    assert_array_equal(R, S)
    assert not np.shares_memory(R, L0)


# ----------------------------------------------------------------------------- dtype and layout
@pytest.mark.parametrize("dtype", [np.int16, np.float16, np.int64, np.uint8])
def test_other_dtypes_become_float64(rng, dtype):
    S = rng.integers(0, 100, size=(50, 6)).astype(dtype)
    for func in (msk.gaussian_pyramid, msk.laplacian_pyramid):
        out = func(S, levels=4)
        expected = func(S.astype(np.float64), levels=4)
        for a, b in zip(out, expected):
            assert a.dtype == np.float64
            assert_array_equal(a, b)
    L = msk.laplacian_pyramid(S, levels=4)
    assert msk.reconstruct_laplacian([x.astype(dtype) for x in L[:1]] + L[1:]).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_precisions_agree(rng, dtype):
    S = rng.standard_normal((130, 9))
    lo = msk.laplacian_pyramid(S.astype(dtype), levels=6)
    hi = msk.laplacian_pyramid(S, levels=6)
    for a, b in zip(lo, hi):
        assert a.dtype == dtype
        assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_reconstruct_mixed_precision_gives_float64(rng):
    L = msk.laplacian_pyramid(rng.standard_normal((20, 3)).astype(np.float32), levels=3)
    S = msk.reconstruct_laplacian([L[0].astype(np.float64), L[1], L[2]])
    assert S.dtype == np.float64
    assert msk.reconstruct_laplacian(L).dtype == np.float32


@pytest.mark.parametrize("func", [msk.gaussian_pyramid, msk.laplacian_pyramid])
def test_c_f_and_strided_inputs_agree(rng, func):
    base = rng.standard_normal((2 * 91, 3 * 20)).astype(np.float32)
    S = np.ascontiguousarray(base[::2, ::3])
    variants = {
        "F": np.asfortranarray(S),
        "strided": base[::2, ::3],
        "negative stride": np.ascontiguousarray(S[::-1])[::-1],
    }
    expected = func(S, levels=6)
    for name, V in variants.items():
        out = func(V, levels=6)
        for level, (a, b) in enumerate(zip(out, expected)):
            assert a.flags.c_contiguous and a.dtype == np.float32, name
            assert_array_equal(a, b, err_msg=f"{name}, level {level}")
    # a nested list becomes float64 (the dtype rule)
    for a, b in zip(func(S.tolist(), levels=6), func(S.astype(np.float64), levels=6)):
        assert_array_equal(a, b)
    L = msk.laplacian_pyramid(S, levels=4)
    strided_L = [np.asfortranarray(x) for x in L]
    assert_array_equal(msk.reconstruct_laplacian(strided_L), msk.reconstruct_laplacian(L))


def test_gaussian_level0_aliasing():
    S = np.ones((8, 2), dtype=np.float32)
    assert msk.gaussian_pyramid(S, levels=3)[0] is S  # no copy of a ready array (skimage's behaviour)
    L = msk.laplacian_pyramid(S, levels=3)
    assert not any(np.shares_memory(x, S) for x in L)
    assert not np.shares_memory(msk.gaussian_pyramid(S.astype(np.int16), levels=2)[0], S)


def test_inputs_are_not_modified(rng):
    S = rng.standard_normal((33, 4))
    S0 = S.copy()
    msk.gaussian_pyramid(S)
    L = msk.laplacian_pyramid(S)
    assert_array_equal(S, S0)
    L0 = [x.copy() for x in L]
    msk.reconstruct_laplacian(L)
    for a, b in zip(L, L0):
        assert_array_equal(a, b)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("func", [msk.gaussian_pyramid, msk.laplacian_pyramid])
@pytest.mark.parametrize("levels", [2, 6])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_rejected_at_every_row(func, levels, bad):
    # The check rides along the kernel's pass over S: every row and band must be covered.
    for n in [1, 2, 5, 8]:
        for row in range(n):
            for band in [0, 16, 20]:
                S = np.zeros((n, 21), dtype=np.float32)
                S[row, band] = bad
                with pytest.raises(ValueError, match="`S` contains NaN or infinite"):
                    func(S, levels=levels)


@pytest.mark.parametrize("func", [msk.gaussian_pyramid, msk.laplacian_pyramid])
def test_nonfinite_rejected_with_one_level(func):
    with pytest.raises(ValueError, match="`S` contains NaN"):
        func(np.array([[1.0, np.nan]]), levels=1)


@pytest.mark.parametrize("func", [msk.gaussian_pyramid, msk.laplacian_pyramid])
def test_bad_spectrogram_rejected(func):
    with pytest.raises(ValueError, match=r"`S` must be a 2-D array; got shape \(10,\)"):
        func(np.zeros(10))
    with pytest.raises(ValueError, match="`S` must be a 2-D array"):
        func(np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match="`S` must have at least 1"):
        func(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="`S` must not have an empty axis"):
        func(np.zeros((3, 0)))
    with pytest.raises(TypeError, match="`S` must be an array of numbers"):
        func("spectrogram")
    with pytest.raises(TypeError, match="`S` must be real"):
        func(np.zeros((4, 3), dtype=complex))


@pytest.mark.parametrize("func", [msk.gaussian_pyramid, msk.laplacian_pyramid])
def test_bad_levels_rejected(func):
    S = np.zeros((16, 2))
    for levels in [0, 9, -1]:
        with pytest.raises(ValueError, match=f"`levels` must be an integer between 1 and 8; got {levels}"):
            func(S, levels=levels)
    for levels in [2.0, "6", True, None]:
        with pytest.raises(TypeError, match="`levels` must be an integer"):
            func(S, levels=levels)


def test_bad_laplacian_levels_rejected(rng):
    L = msk.laplacian_pyramid(rng.standard_normal((20, 3)), levels=4)
    with pytest.raises(TypeError, match="`L` must be a list or tuple"):
        msk.reconstruct_laplacian(np.zeros((20, 3)))
    with pytest.raises(TypeError, match="`L` must be a list or tuple"):
        msk.reconstruct_laplacian(x for x in L)
    with pytest.raises(ValueError, match="`L` must hold between 1 and 8 levels; got 0"):
        msk.reconstruct_laplacian([])
    nine = msk.laplacian_pyramid(rng.standard_normal((300, 2)), levels=8)
    nine.append(nine[-1][:1])
    with pytest.raises(ValueError, match="`L` must hold between 1 and 8 levels; got 9"):
        msk.reconstruct_laplacian(nine)
    with pytest.raises(ValueError, match=r"`L\[2\]` must have shape \(5, 3\).*got shape \(4, 3\)"):
        msk.reconstruct_laplacian([L[0], L[1], np.zeros((4, 3)), L[3]])
    with pytest.raises(ValueError, match=r"`L\[1\]` must have shape \(5, 3\).*got shape \(5, 2\)"):
        msk.reconstruct_laplacian([L[1], L[2][:, :2]])
    with pytest.raises(ValueError, match=r"`L\[1\]` must be a 2-D array"):
        msk.reconstruct_laplacian([L[0], L[1].ravel()])
    with pytest.raises(TypeError, match=r"`L\[0\]` must be an array of numbers"):
        msk.reconstruct_laplacian([None, L[1]])


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_nonfinite_laplacian_level_named(rng, level):
    L = msk.laplacian_pyramid(rng.standard_normal((20, 3)), levels=4)
    for row in range(len(L[level])):
        bad = [x.copy() for x in L]
        bad[level][row, 1] = np.nan
        with pytest.raises(ValueError, match=rf"`L\[{level}\]` contains NaN or infinite"):
            msk.reconstruct_laplacian(bad)


# ----------------------------------------------------------------------------- threads
def test_thread_pool_matches_serial(rng):
    inputs = [rng.standard_normal((int(n), 64)).astype(np.float32) for n in rng.integers(1, 400, size=24)]
    serial = [
        (msk.gaussian_pyramid(S), msk.laplacian_pyramid(S), msk.reconstruct_laplacian(msk.laplacian_pyramid(S)))
        for S in inputs
    ]

    def job(S):
        return msk.gaussian_pyramid(S), msk.laplacian_pyramid(S), msk.reconstruct_laplacian(msk.laplacian_pyramid(S))

    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(job, inputs * 2))
    for (g1, l1, r1), (g2, l2, r2) in zip(serial * 2, parallel):
        for a, b in zip(g1 + l1 + [r1], g2 + l2 + [r2]):
            assert_array_equal(a, b)


# ----------------------------------------------------------------------------- properties
spectrograms = st.integers(1, 70).flatmap(
    lambda n: st.integers(1, 20).flatmap(
        lambda b: arrays(np.float64, (n, b), elements=st.floats(-1e3, 1e3, allow_nan=False, width=64))
    )
)


@settings(deadline=None, max_examples=40)
@given(S=spectrograms, levels=st.integers(1, 8))
def test_property_level_count_and_shapes(S, levels):
    n, b = S.shape
    for out in (msk.gaussian_pyramid(S, levels=levels), msk.laplacian_pyramid(S, levels=levels)):
        assert len(out) == levels
        assert [x.shape for x in out] == [(n_frames(n, level), b) for level in range(levels)]


@settings(deadline=None, max_examples=40)
@given(S=spectrograms, levels=st.integers(1, 8))
def test_property_reconstruction(S, levels):
    S2 = msk.reconstruct_laplacian(msk.laplacian_pyramid(S, levels=levels))
    assert np.abs(S2 - S).max() <= 1e-12 * max(1.0, np.abs(S).max())


@settings(deadline=None, max_examples=30)
@given(S=spectrograms)
def test_property_gaussian_is_a_convex_smoothing(S):
    # Non-negative weights summing to one: every level stays within the input's range.
    for g in msk.gaussian_pyramid(S, levels=8):
        assert g.min() >= S.min() - 1e-9 and g.max() <= S.max() + 1e-9


# ----- magnitudes near the dtype's range -----------------------------------------------------

@pytest.mark.parametrize("fn", [msk.gaussian_pyramid, msk.laplacian_pyramid])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pyramids_refuse_magnitudes_that_would_overflow(fn, dtype):
    big = np.finfo(dtype).max * 0.9
    S = np.full((50, 4), big, dtype)
    with pytest.raises(ValueError, match=r"`S` has values of magnitude up to .* needs magnitudes below"):
        fn(S)
    # just below the bound every level is finite and right
    S = np.full((50, 4), 2.0 ** (np.finfo(dtype).maxexp - 2) * 0.999, dtype)
    S[::3] *= -1
    levels = fn(S)
    assert all(np.isfinite(x).all() for x in levels)
    assert_close(msk.reconstruct_laplacian(msk.laplacian_pyramid(S)), S, atol=0)


def test_pyramid_nan_message_is_kept_for_nan_input():
    S = np.ones((20, 3), np.float32)
    S[7, 1] = np.nan
    with pytest.raises(ValueError, match="`S` contains NaN or infinite values"):
        msk.laplacian_pyramid(S)


def test_reconstruction_refuses_levels_whose_sum_overflows():
    L = msk.laplacian_pyramid(np.ones((40, 2)), levels=3)
    L[1][:] = 1e308
    L[2][:] = 1e308
    with pytest.raises(ValueError, match="too large for float64: their reconstruction overflows"):
        msk.reconstruct_laplacian(L)
