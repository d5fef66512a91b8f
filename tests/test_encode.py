"""The fused whiten -> encode -> pool kernel against the plain NumPy pipeline."""

import tracemalloc
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import msk._encoding as encoding_mod
from msk._encoding import WindowEncoder, encode_pool, pooled_positions

from _reference_encode import encode as ref_encode
from _reference_encode import encode_pool as ref_encode_pool
from conftest import assert_close

ALL_STATS = ("max", "mean", "std")


def make_model(rng, n_mels, width, p, K, dtype=np.float64):
    """A whitening model of the right shapes; the dictionary has unit-norm rows like K-means'."""
    d = n_mels * width
    mean = rng.standard_normal(d).astype(dtype)
    whitening = (rng.standard_normal((p, d)) / np.sqrt(d)).astype(dtype)
    if K is None:
        return mean, whitening, None
    dictionary = rng.standard_normal((K, p))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    return mean, whitening, dictionary.astype(dtype)


def tol(dtype):
    # Codes are sums of d ~ 100 products of O(1) values; float32 rounding of such sums
    # is ~1e-6 relative to their magnitude, so compare with an absolute floor.
    return {"rtol": 1e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-11}


def reference(frames, mean, whitening, dictionary, **params):
    """The NumPy pipeline in float64 (the oracle)."""
    f64 = [None if a is None else np.asarray(a, dtype=np.float64) for a in (frames, mean, whitening, dictionary)]
    return ref_encode_pool(*f64, **params)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("K", [3, 37])
@pytest.mark.parametrize("factorization", ["fused", "staged"])
@pytest.mark.parametrize("n_frames,pool", [(200, 16), (203, 16), (161, 40), (12, 16)])
def test_matches_numpy_pipeline(rng, dtype, width, K, factorization, n_frames, pool):
    n_mels, p = 11, 9
    mean, whitening, dictionary = make_model(rng, n_mels, width, p, K)
    frames = rng.standard_normal((n_frames, n_mels)).astype(dtype)
    enc = WindowEncoder(mean, whitening, dictionary, width=width, pool=pool, pooling=ALL_STATS,
                        factorization=factorization)
    out = enc(frames)
    want = reference(frames, mean, whitening, dictionary, width=width, pool=pool, pooling=ALL_STATS)
    n_pools, _ = pooled_positions(n_frames, width, pool)
    assert out.dtype == dtype
    assert out.shape == want.shape == (n_pools, 3 * K)
    assert enc.factorization_ == factorization
    assert_close(out, want, **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 3])
def test_pca_only_codes(rng, dtype, width):
    n_mels, p = 10, 7
    mean, whitening, _ = make_model(rng, n_mels, width, p, None)
    frames = rng.standard_normal((150, n_mels)).astype(dtype)
    out = WindowEncoder(mean, whitening, None, width=width, pool=32, pooling=("mean", "max"))(frames)
    want = reference(frames, mean, whitening, None, width=width, pool=32, pooling=("max", "mean"))
    assert out.shape == (4, 2 * p)
    assert_close(out, want, **tol(dtype))


@pytest.mark.parametrize("pooling", ["max", "mean", "std", ("mean", "std"), ("std", "max")])
@pytest.mark.parametrize("encoding,threshold", [("linear", 0.25), ("threshold", 0.0), ("threshold", 0.3)])
def test_pooling_and_encoding_options(rng, pooling, encoding, threshold):
    mean, whitening, dictionary = make_model(rng, 8, 2, 6, 13)
    frames = rng.standard_normal((130, 8))
    out = encode_pool(frames, mean, whitening, dictionary, width=2, pool=25, pooling=pooling,
                      encoding=encoding, threshold=threshold)
    want = reference(frames, mean, whitening, dictionary, width=2, pool=25, pooling=pooling,
                     encoding=encoding, threshold=threshold)
    n_stats = 1 if isinstance(pooling, str) else len(pooling)
    assert out.shape == (5, 13 * n_stats)
    assert_close(out, want, **tol(np.float64))
    if encoding == "threshold":
        assert (out >= 0).all()
        codes = ref_encode(frames, mean, whitening, dictionary, width=2, encoding=encoding, threshold=threshold)
        assert 0.1 < (codes == 0).mean() < 0.9  # the threshold is exercised


@pytest.mark.parametrize("max_tile,pool", [(7, 16), (7, 3), (5, 5), (64, 1), (10, 300)])
def test_tiles_that_split_or_group_pools(rng, monkeypatch, max_tile, pool):
    """Tiles smaller than a pool (merged statistics), tiles of several pools, and pools that end mid-tile."""
    monkeypatch.setattr(encoding_mod, "_MIN_TILE", 1)
    monkeypatch.setattr(encoding_mod, "_MAX_TILE", max_tile)
    mean, whitening, dictionary = make_model(rng, 6, 2, 5, 9)
    # Offset the data so mean and std are not near zero: a check of the variance merge.
    frames = rng.standard_normal((160, 6)) + 3.0
    enc = WindowEncoder(mean, whitening, dictionary, width=2, pool=pool, pooling=ALL_STATS)
    assert enc.tile_rows(159) <= max_tile
    out = enc(frames)
    want = reference(frames, mean, whitening, dictionary, width=2, pool=pool, pooling=ALL_STATS)
    assert_close(out, want, **tol(np.float64))


@pytest.mark.parametrize("width", [1, 4])
def test_clip_shorter_than_one_pool(rng, width):
    mean, whitening, dictionary = make_model(rng, 5, width, 4, 6)
    frames = rng.standard_normal((width + 9, 5))
    out = encode_pool(frames, mean, whitening, dictionary, width=width, pool=128, pooling=ALL_STATS)
    codes = ref_encode(frames, mean, whitening, dictionary, width=width)
    assert codes.shape[0] == 10
    assert out.shape == (1, 18)
    assert_close(out[0], np.concatenate([codes.max(0), codes.mean(0), codes.std(0)]), **tol(np.float64))
    # Exactly `width` frames: one position, std 0.
    one = encode_pool(frames[:width], mean, whitening, dictionary, width=width, pool=128, pooling=ALL_STATS)
    assert_close(one[0, :12], np.concatenate([codes[0], codes[0]]), **tol(np.float64))
    assert_close(one[0, 12:], np.zeros(6), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_and_staged_agree(rng, dtype):
    mean, whitening, dictionary = make_model(rng, 20, 4, 40, 50)
    frames = rng.standard_normal((300, 20)).astype(dtype)
    outs = [WindowEncoder(mean, whitening, dictionary, width=4, pool=32, pooling=ALL_STATS, encoding="threshold",
                          threshold=0.1, factorization=f)(frames) for f in ("fused", "staged")]
    assert_close(outs[0], outs[1], **tol(dtype))


def test_auto_factorization_counts_flops(rng):
    # w=1: d=200, p=100, K=500 -> fused 2*200*500 = 200k FLOPs > staged 2*(200*100 + 100*500) = 140k.
    enc = WindowEncoder(*make_model(rng, 200, 1, 100, 500))
    assert enc.factorization_ == "staged"
    assert enc.flops_per_position_ == 140_000
    # w=4: d=800, p=400, K=500 -> fused 800k < staged 1040k.
    enc = WindowEncoder(*make_model(rng, 200, 4, 400, 500))
    assert enc.factorization_ == "fused"
    assert enc.flops_per_position_ == 800_000
    # PCA only: one matrix.
    enc = WindowEncoder(*make_model(rng, 20, 2, 15, None))
    assert enc.factorization_ == "fused" and enc.n_codes_ == 15


@pytest.mark.parametrize("order", ["C", "F", "strided"])
def test_memory_layouts_give_identical_results(rng, order):
    mean, whitening, dictionary = make_model(rng, 12, 2, 8, 10)
    frames = rng.standard_normal((120, 12)).astype(np.float32)
    base = encode_pool(frames, mean, whitening, dictionary, width=2, pool=20, pooling=("max", "std"))

    def layout(a):
        if order == "F":
            return np.asfortranarray(a)
        if order == "strided":
            big = np.zeros((a.shape[0] * 2,) + a.shape[1:], dtype=a.dtype)
            big[::2] = a
            return big[::2]
        return a

    out = encode_pool(layout(frames), layout(mean), layout(whitening), layout(dictionary),
                      width=2, pool=20, pooling=("max", "std"))
    np.testing.assert_array_equal(out, base)


def test_dtype_rule(rng):
    mean, whitening, dictionary = make_model(rng, 6, 1, 5, 4)
    frames = rng.standard_normal((64, 6))
    want = encode_pool(frames, mean, whitening, dictionary, pool=16)
    for dt in (np.float16, np.int32):
        f = (frames * 10).astype(dt)
        out = encode_pool(f, mean, whitening, dictionary, pool=16)
        assert out.dtype == np.float64
        assert_close(out, encode_pool(f.astype(np.float64), mean, whitening, dictionary, pool=16))
    out32 = encode_pool(frames.astype(np.float32), mean, whitening, dictionary, pool=16)
    assert out32.dtype == np.float32
    assert_close(out32, want, **tol(np.float32))


def test_max_pool_bounds_every_code(rng):
    mean, whitening, dictionary = make_model(rng, 9, 2, 7, 11)
    frames = rng.standard_normal((250, 9)).astype(np.float32)
    pool = 30
    out = encode_pool(frames, mean, whitening, dictionary, width=2, pool=pool)
    codes = ref_encode(frames.astype(np.float64), mean, whitening, dictionary, width=2)
    for i in range(out.shape[0]):
        block = codes[i * pool:(i + 1) * pool]
        assert (out[i] >= block - 1e-5).all()
        # and equals one of them (it is a maximum, not a bound)
        assert np.abs(out[i] - block).min(axis=0).max() < 1e-4


@settings(deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), pool=st.integers(1, 20), n_pools=st.integers(1, 4),
       extra=st.integers(0, 5))
def test_invariant_to_frame_order_within_a_pool(seed, pool, n_pools, extra):
    """With one frame per window, permuting frames inside each pooling window changes nothing."""
    rng = np.random.default_rng(seed)
    mean, whitening, dictionary = make_model(rng, 5, 1, 4, 6)
    frames = rng.standard_normal((pool * n_pools + extra, 5))
    shuffled = frames.copy()
    for i in range(n_pools):
        shuffled[i * pool:(i + 1) * pool] = rng.permutation(frames[i * pool:(i + 1) * pool])
    a = encode_pool(frames, mean, whitening, dictionary, pool=pool, pooling=ALL_STATS)
    b = encode_pool(shuffled, mean, whitening, dictionary, pool=pool, pooling=ALL_STATS)
    np.testing.assert_array_equal(a[:, :6], b[:, :6])  # max is order-free exactly
    assert_close(a, b, atol=1e-12)  # sums differ by rounding only


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_pool_matches_serial(rng, dtype):
    mean, whitening, dictionary = make_model(rng, 30, 2, 20, 40)
    enc = WindowEncoder(mean, whitening, dictionary, width=2, pool=32, pooling=ALL_STATS)
    clips = [rng.standard_normal((int(n), 30)).astype(dtype) for n in rng.integers(50, 700, size=16)]
    serial = [enc(c) for c in clips]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(enc, clips))
    for s, t in zip(serial, threaded):
        np.testing.assert_array_equal(s, t)


def _peak_extra(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - before - out.nbytes


@pytest.mark.parametrize("width,p", [(1, 100), (4, 400)])
def test_memory_bounded_by_one_tile(rng, width, p):
    """A 10-minute input (18 750 frames): extra memory is one tile, not proportional to the clip."""
    n_mels, K = 200, 500
    enc = WindowEncoder(*make_model(rng, n_mels, width, p, K, dtype=np.float32), width=width, pool=128)
    long = rng.standard_normal((18_750, n_mels), dtype=np.float32)
    short = long[:9375]  # 5 minutes
    enc(short)  # the float32 operands are cast once, outside the measurement
    extra_long = _peak_extra(lambda: enc(long))
    extra_short = _peak_extra(lambda: enc(short))
    n_pos = 18_750 - width + 1
    tile = enc.tile_rows(n_pos)
    hidden = p if enc.factorization_ == "staged" else 0
    tile_bytes = 4 * tile * (hidden + K) + 4 * 6 * K
    whole_clip_codes = 4 * n_pos * K
    assert extra_long <= tile_bytes + 300_000  # the tile plus the finite check's block and small objects
    assert extra_long <= extra_short + 50_000  # independent of the clip's length
    assert extra_long < whole_clip_codes / 10


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"width": 0}, ValueError, r"`width` must be a positive integer; got 0"),
        ({"pool": 0}, ValueError, r"`pool` must be a positive integer"),
        ({"pool": 2.5}, TypeError, r"`pool` must be an integer"),
        ({"pooling": "median"}, ValueError, r"`pooling` must be one of 'max', 'mean' or 'std'; got 'median'"),
        ({"pooling": ()}, ValueError, r"`pooling` must name at least one"),
        ({"pooling": ("max", "max")}, ValueError, r"`pooling` must not repeat"),
        ({"pooling": 3}, TypeError, r"`pooling` must be a string or a sequence"),
        ({"encoding": "relu"}, ValueError,
         r"`encoding` must be one of 'linear', 'threshold', 'split' or 'triangle'; got 'relu'"),
        ({"threshold": float("nan")}, ValueError, r"`threshold` must be a finite number"),
        ({"factorization": "both"}, ValueError, r"`factorization` must be one of"),
    ],
)
def test_bad_parameters(rng, kwargs, error, match):
    mean, whitening, dictionary = make_model(rng, 4, 1, 3, 5)
    with pytest.raises(error, match=match):
        WindowEncoder(mean, whitening, dictionary, **kwargs)


def test_bad_model_arrays(rng):
    mean, whitening, dictionary = make_model(rng, 4, 2, 3, 5)
    with pytest.raises(ValueError, match=r"`whitening` must have shape \(p, d\).*\(3, 7\).*\(8,\)"):
        WindowEncoder(mean, whitening[:, :7], dictionary, width=2)
    with pytest.raises(ValueError, match=r"`dictionary` must have shape \(K, p\).*\(5, 2\).*\(3, 8\)"):
        WindowEncoder(mean, whitening, dictionary[:, :2], width=2)
    with pytest.raises(ValueError, match=r"`dictionary` must have at least one row \(K >= 1\); got shape \(0, 3\)"):
        WindowEncoder(mean, whitening, dictionary[:0], width=2)
    with pytest.raises(ValueError, match=r"`whitening` must have at least one row"):
        WindowEncoder(mean, whitening[:0], None, width=2)
    with pytest.raises(ValueError, match=r"`mean` must have width \* n_mels entries.*`width`=3"):
        WindowEncoder(mean, whitening, dictionary, width=3)
    with pytest.raises(ValueError, match=r"`mean` must be a 1-D array"):
        WindowEncoder(mean[None], whitening, dictionary, width=2)
    for name, arrays in [("mean", 0), ("whitening", 1), ("dictionary", 2)]:
        bad = [mean.copy(), whitening.copy(), dictionary.copy()]
        bad[arrays].flat[1] = np.nan
        with pytest.raises(ValueError, match=rf"`{name}` contains NaN"):
            WindowEncoder(*bad, width=2)
    with pytest.raises(TypeError, match=r"`dictionary` must be an array of numbers"):
        WindowEncoder(mean, whitening, "centroids", width=2)


def test_bad_frames(rng):
    enc = WindowEncoder(*make_model(rng, 4, 2, 3, 5), width=2)
    with pytest.raises(ValueError, match=r"`frames` must have n_mels = 4 columns.*got frames of shape \(10, 5\)"):
        enc(np.zeros((10, 5)))
    with pytest.raises(ValueError, match=r"`frames` must have at least width = 2 frames; got frames of shape \(1, 4\)"):
        enc(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"`frames` must be a 2-D array; got shape \(40,\)"):
        enc(np.zeros(40))
    frames = np.zeros((10, 4))
    frames[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"`frames` contains NaN or infinite"):
        enc(frames)
    with pytest.raises(TypeError, match=r"`frames` must be real"):
        enc(np.zeros((10, 4), dtype=complex))


# ----- non-finite features from a model out of range ---------------------------------------

@pytest.mark.parametrize("factorization", ["fused", "staged"])
def test_encoder_refuses_to_return_non_finite_features(factorization):
    rng = np.random.default_rng(3)
    enc = WindowEncoder(rng.standard_normal(40), rng.standard_normal((20, 40)) * 1e200,
                        rng.standard_normal((16, 20)), pool=8, factorization=factorization)
    frames = rng.standard_normal((64, 40)).astype(np.float32)
    for call in (enc, enc._encode):
        with pytest.raises(ValueError, match=r"features are not finite: the model's values are too large for "
                                             r"float32 \(largest magnitude .*e\+20\d"):
            call(frames)


def test_unchecked_encode_refuses_frames_of_the_wrong_shape():
    rng = np.random.default_rng(4)
    enc = WindowEncoder(np.zeros(2 * 40), rng.standard_normal((10, 80)), width=2, pool=8)
    for frames in (np.zeros((64, 20), np.float32), np.zeros((1, 40), np.float32), np.zeros(40, np.float32)):
        with pytest.raises(ValueError, match=r"`frames` must have shape \(n_frames >= width = 2, n_mels = 40\)"):
            enc._encode(frames)


def test_extract_with_a_model_scaled_out_of_range_raises_instead_of_writing_nan(tmp_path):
    import msk

    shipped = Path(msk.__file__).parent / "models" / "laplacian.npz"
    with np.load(shipped) as z:
        arrays = dict(z)
    arrays["level0.pca.components_"] = arrays["level0.pca.components_"].astype(np.float64) * 1e200
    np.savez(tmp_path / "scaled.npz", **arrays)
    y = np.random.default_rng(5).standard_normal(16000 * 10).astype(np.float32)
    try:
        model = msk.MultiscaleFeatures.load(tmp_path / "scaled.npz")
    except ValueError:
        return  # refused when loading: also a clear error
    with pytest.raises(ValueError, match="features are not finite: the model's values are too large"):
        msk.extract(y, sr=16000, model=model)
