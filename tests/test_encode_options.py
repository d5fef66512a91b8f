"""The encoder's per-window options (window standardisation, split and triangle encodings)
against the plain NumPy pipeline of tests/_reference_encode.py."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

import msk._encoding as encoding_mod
from msk._encoding import WindowEncoder, encode_pool, standardize_windows

from _reference_encode import encode as ref_encode
from _reference_encode import encode_pool as ref_encode_pool
from _reference_encode import standardize, windows

POOLINGS = [("max",), ("mean",), ("std",), ("max", "mean"), ("max", "mean", "std")]


def log_mel_like(rng, n_frames, n_mels, dtype=np.float64):
    """Frames like natural-log mel energies: a spectral slope, loudness that changes over
    time (from near silence to loud) and noise; values roughly -14 .. 5."""
    slope = np.linspace(0.0, -4.0, n_mels)
    loudness = np.repeat(rng.uniform(-9.0, 1.0, size=-(-n_frames // 8)), 8)[:n_frames, None]
    return (loudness + slope + rng.normal(0.0, 1.5, (n_frames, n_mels))).astype(dtype)


def make_model(rng, frames, width, p, K, normalization="none", eps=1.0):
    """A model fitted the way MultiscaleFeatures fits one: mean and scale of the (standardised)
    windows, a random whitening and a unit-row dictionary."""
    x = windows(np.asarray(frames, np.float64), width)
    if normalization == "standardize":
        x = standardize(x, eps)
    mean = x.mean(axis=0)
    d = x.shape[1]
    whitening = rng.standard_normal((p, d)) / (np.sqrt(d) * x.std(axis=0).mean())
    if K is None:
        return mean, whitening, None
    dictionary = rng.standard_normal((K, p))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    return mean, whitening, dictionary


def tol(dtype, want):
    """float32: products of d <= 200 terms of whitened values, rounded to 2^-24 relative
    each, so the error is bounded relative to the largest value compared."""
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    if dtype == np.float32:
        return {"rtol": 1e-4, "atol": 5e-5 * scale}
    return {"rtol": 1e-9, "atol": 1e-10 * scale}


def reference(frames, mean, whitening, dictionary, **params):
    f64 = [None if a is None else np.asarray(a, dtype=np.float64) for a in (frames, mean, whitening, dictionary)]
    return ref_encode_pool(*f64, **params)


CASES = [
    (encoding, normalization, factorization)
    for encoding, normalization, factorization in itertools.product(
        ("linear", "threshold", "split", "triangle"), ("none", "standardize"), ("fused", "staged"))
    if not (encoding == "triangle" and factorization == "fused")
    and not (encoding in ("linear", "threshold") and normalization == "none")  # tests/test_encode.py
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("encoding,normalization,factorization", CASES)
def test_options_match_numpy_pipeline(rng, monkeypatch, dtype, width, encoding, normalization, factorization):
    """Every option, both dtypes, widths 1/2/4, pools spanning several tiles and tiles of several pools."""
    monkeypatch.setattr(encoding_mod, "_MIN_TILE", 1)
    monkeypatch.setattr(encoding_mod, "_MAX_TILE", 11)
    n_mels, p, K, eps = 16, 12, 10, 0.5
    frames = log_mel_like(rng, 150, n_mels)
    mean, whitening, dictionary = make_model(rng, frames, width, p, K, normalization, eps)
    params = dict(width=width, encoding=encoding, threshold=0.1, normalization=normalization,
                  normalization_eps=eps)
    for pool, pooling in [(25, POOLINGS[-1]), (4, ("max",)), (7, ("mean",)), (30, ("std",)),
                          (9, ("max", "mean"))]:
        enc = WindowEncoder(mean, whitening, dictionary, pool=pool, pooling=pooling, factorization=factorization,
                            **params)
        assert enc.factorization_ == factorization
        out = enc(frames.astype(dtype))
        want = reference(frames, mean, whitening, dictionary, pool=pool, pooling=pooling, **params)
        n_out = 2 * K if encoding == "split" else K
        assert enc.n_codes_ == n_out
        assert out.dtype == dtype and out.shape == want.shape == ((151 - width) // pool, n_out * len(pooling))
        np.testing.assert_allclose(out, want, **tol(dtype, want), err_msg=f"pool={pool} {pooling}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ["linear", "threshold", "split"])
def test_pca_only_codes_with_options(rng, dtype, encoding):
    frames = log_mel_like(rng, 90, 12)
    mean, whitening, _ = make_model(rng, frames, 2, 9, None, "standardize", 2.0)
    params = dict(width=2, pool=20, pooling=("max", "mean", "std"), encoding=encoding,
                  normalization="standardize", normalization_eps=2.0)
    out = WindowEncoder(mean, whitening, None, **params)(frames.astype(dtype))
    want = reference(frames, mean, whitening, None, **params)
    assert out.shape == (4, (18 if encoding == "split" else 9) * 3)
    np.testing.assert_allclose(out, want, **tol(dtype, want))


@pytest.mark.parametrize("width", [1, 4])
def test_standardize_float32_keeps_the_contrast_of_windows_far_from_zero(rng, width):
    """Quiet, low-contrast windows around -20 (log of near-silence): the kernel centres each
    frame before the float32 products, so the result keeps float32's relative accuracy on the
    window's contrast instead of losing it to the offset (a direct float32 product of the raw
    windows loses ~offset / contrast of it)."""
    n_mels, p, K = 40, 30, 24
    frames = -20.0 + 0.05 * rng.standard_normal((300, n_mels))  # contrast 0.05, offset -20
    mean, whitening, dictionary = make_model(rng, frames, width, p, K, "standardize", 1e-4)
    params = dict(width=width, pool=32, pooling=("max", "mean", "std"), normalization="standardize",
                  normalization_eps=1e-4)
    want = reference(frames, mean, whitening, dictionary, **params)
    out = encode_pool(frames.astype(np.float32), mean, whitening, dictionary, **params)
    scale = float(np.abs(want).max())
    assert scale > 1  # the windows are amplified ~20x: the contrast is what is encoded
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=2e-5 * scale)


def test_standardize_silence_gives_the_mean_code(rng):
    """Digital silence: every window is constant, so it standardises to zero exactly."""
    frames = np.full((64, 10), np.log(1e-10))
    mean, whitening, dictionary = make_model(rng, log_mel_like(rng, 64, 10), 1, 8, 6, "standardize", 1.0)
    for dtype in (np.float32, np.float64):
        out = encode_pool(frames.astype(dtype), mean, whitening, dictionary, pool=16, pooling=("max", "std"),
                          normalization="standardize", normalization_eps=1.0)
        np.testing.assert_allclose(out[:, :6], np.tile(-(dictionary @ (whitening @ mean)), (4, 1)),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[:, 6:], 0, atol=1e-5)


def test_split_halves(rng):
    """Positive half minus negative half is the soft-thresholded linear code's sign split."""
    frames = log_mel_like(rng, 100, 8)
    mean, whitening, dictionary = make_model(rng, frames, 1, 6, 5)
    lin = ref_encode(frames, mean, whitening, dictionary)
    codes = ref_encode(frames, mean, whitening, dictionary, encoding="split", threshold=0.0)
    np.testing.assert_allclose(codes[:, :5] - codes[:, 5:], lin, atol=1e-12)
    out = encode_pool(frames, mean, whitening, dictionary, pool=100, encoding="split", threshold=0.0)
    np.testing.assert_allclose(out[0], np.concatenate([np.maximum(lin.max(0), 0), np.maximum(-lin.min(0), 0)]),
                               rtol=1e-9, atol=1e-12)


def test_triangle_codes_are_sparse_and_bounded(rng):
    frames = log_mel_like(rng, 200, 8)
    mean, whitening, dictionary = make_model(rng, frames, 2, 10, 20)
    codes = ref_encode(frames, mean, whitening, dictionary, width=2, encoding="triangle")
    # about half the atoms are farther than the mean distance: zero codes; distances <= 2
    assert 0.3 < (codes == 0).mean() < 0.7
    assert (codes >= 0).all() and (codes <= 2).all()
    out = encode_pool(frames, mean, whitening, dictionary, width=2, pool=199, encoding="triangle",
                      pooling=("max", "mean"))
    np.testing.assert_allclose(out[0], np.concatenate([codes.max(0), codes.mean(0)]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ["split", "threshold", "linear"])
def test_fused_and_staged_agree_when_normalising(rng, dtype, encoding):
    frames = log_mel_like(rng, 300, 20)
    mean, whitening, dictionary = make_model(rng, frames, 4, 40, 50, "standardize", 1.0)
    outs = [WindowEncoder(mean, whitening, dictionary, width=4, pool=32, pooling=("max", "mean", "std"),
                          encoding=encoding, threshold=0.1, normalization="standardize",
                          factorization=f)(frames.astype(dtype)) for f in ("fused", "staged")]
    np.testing.assert_allclose(outs[0], outs[1], **tol(dtype, outs[1]))


def test_triangle_picks_staged_and_refuses_fused(rng):
    frames = log_mel_like(rng, 40, 200)
    mean, whitening, dictionary = make_model(rng, frames, 4, 400, 500)
    # fused would have fewer FLOPs (see tests/test_encode.py), but triangle needs h
    assert WindowEncoder(mean, whitening, dictionary, width=4).factorization_ == "fused"
    enc = WindowEncoder(mean, whitening, dictionary, width=4, encoding="triangle")
    assert enc.factorization_ == "staged" and enc.flops_per_position_ == 2 * (800 * 400 + 400 * 500)
    with pytest.raises(ValueError, match=r"'triangle' needs the whitened window's norm.*got 'fused'"):
        WindowEncoder(mean, whitening, dictionary, width=4, encoding="triangle", factorization="fused")
    with pytest.raises(ValueError, match=r"'triangle' needs a dictionary"):
        WindowEncoder(mean, whitening, None, width=4, encoding="triangle")


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"encoding": "polar"}, ValueError,
         r"`encoding` must be one of 'linear', 'threshold', 'split' or 'triangle'; got 'polar'"),
        ({"normalization": "window"}, ValueError, r"`normalization` must be one of 'none' or 'standardize'"),
        ({"normalization_eps": 0.0}, ValueError,
         r"`normalization_eps` must be a finite number in \(0.0, inf\); got 0.0"),
        ({"normalization_eps": float("inf")}, ValueError, r"`normalization_eps` must be a finite number"),
        ({"normalization_eps": "1"}, TypeError, r"`normalization_eps` must be a real number"),
    ],
)
def test_bad_option_parameters(rng, kwargs, error, match):
    frames = log_mel_like(rng, 10, 4)
    with pytest.raises(error, match=match):
        WindowEncoder(*make_model(rng, frames, 1, 3, 5), **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardize_windows_matches_reference(rng, dtype):
    x = log_mel_like(rng, 5000, 30, dtype)
    want = standardize(x.astype(np.float64), 0.3)
    got = standardize_windows(x.copy(), 0.3, chunk=777)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


# ----- MultiscaleFeatures: fit and transform agree, output widths, model files ------------

def _clips(rng, n_mels=16):
    return [log_mel_like(rng, n, n_mels, np.float32) for n in (300, 260, 410)]


def _model(**params):
    import msk

    base = dict(levels=2, n_clusters=8, n_samples=100_000, pool_size=32, max_iter=5, random_state=0)
    return msk.MultiscaleFeatures("gaussian", **{**base, **params})


@pytest.mark.parametrize("encoding,pooling,width", [("split", ("max", "std"), 2), ("triangle", ("max", "mean"), 1),
                                                    ("linear", "max", 4)])
def test_multiscale_window_normalization_in_fit_and_transform(rng, encoding, pooling, width):
    """fit standardises the training windows as transform does: every level's PCA mean is the mean
    of standardised windows, and transform equals the NumPy pipeline on the model's arrays."""
    clips = _clips(rng)
    model = _model(width=width, encoding=encoding, pooling=pooling, window_normalization="standardize",
                   window_normalization_eps=0.2).fit(clips)
    n_out = 16 if encoding == "split" else 8
    n_stats = 1 if isinstance(pooling, str) else len(pooling)
    assert model.n_features_per_level_ == [n_out * n_stats] * 2
    levels = [model.represent(c) for c in clips]
    for lev in range(2):
        # n_samples exceeds the windows: the sample is all of them, so the floor is known exactly
        x = np.vstack([windows(np.asarray(L[lev], np.float64), width) for L in levels])
        eps = 0.2 * x.var(axis=1).mean()
        assert model.window_eps_[lev] == pytest.approx(eps, rel=1e-6)
        np.testing.assert_allclose(model.pca_[lev].mean_, standardize(x, eps).mean(axis=0), atol=1e-5)
    F = model.transform(clips[2])
    assert F.shape == (model.n_pools(410), model.n_features_out_)
    want = []
    for lev, frames in enumerate(levels[2]):
        pca, km = model.pca_[lev], model.kmeans_[lev]
        r = reference(frames, pca.mean_, pca.whitening_, km.cluster_centers_, width=width,
                      pool=model.pooling_geometry()[lev][1], pooling=pooling, encoding=encoding,
                      normalization="standardize", normalization_eps=model.window_eps_[lev])
        want.append(r[: F.shape[0]])
    want = np.hstack(want)
    np.testing.assert_allclose(F, want, **tol(np.float32, want))


def test_multiscale_option_checks():
    with pytest.raises(ValueError, match=r"'triangle' needs a dictionary; got n_clusters=None"):
        _model(encoding="triangle", n_clusters=None).fit([np.zeros((100, 8), np.float32)])
    with pytest.raises(ValueError, match=r"`window_normalization` must be one of 'none' or 'standardize'"):
        _model(window_normalization="yes").fit([np.zeros((100, 8), np.float32)])
    with pytest.raises(ValueError, match=r"`window_normalization_eps` must be a finite number in \(0.0, inf\)"):
        _model(window_normalization_eps=0).fit([np.zeros((100, 8), np.float32)])


def _saved(tmp_path, rng, **params):
    model = _model(**params).fit(_clips(rng))
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


def _edit_header(path, out, edit):
    import io
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    header = json.loads(np.lib.format.read_array(io.BytesIO(files["header.npy"])).tobytes())
    edit(header)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    files["header.npy"] = buf.getvalue()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out


def test_model_file_round_trip_with_options(tmp_path, rng):
    import msk

    model, path = _saved(tmp_path, rng, encoding="split", threshold=0.1, window_normalization="standardize")
    loaded = msk.MultiscaleFeatures.load(path)
    assert loaded.get_params() == model.get_params()
    assert loaded.window_eps_ == model.window_eps_ and loaded.n_features_out_ == 2 * 2 * 8
    clip = _clips(rng)[0]
    np.testing.assert_array_equal(loaded.transform(clip), model.transform(clip))
    assert msk._persist.model_fingerprint(loaded) == msk._persist.model_fingerprint(model)
    # the floors are part of what the model computes: they change the fingerprint
    loaded.window_eps_ = [2 * e for e in loaded.window_eps_]
    assert msk._persist.model_fingerprint(loaded) != msk._persist.model_fingerprint(model)


def test_version_2_files_load_with_the_old_behaviour(tmp_path, rng):
    import msk

    model, path = _saved(tmp_path, rng, encoding="threshold", pooling=("max", "mean"))

    def to_v2(h):
        h["format_version"] = 2
        del h["params"]["window_normalization"], h["params"]["window_normalization_eps"]

    old = msk.MultiscaleFeatures.load(_edit_header(path, tmp_path / "v2.npz", to_v2))
    assert old.window_normalization == "none" and old.window_eps_ is None
    clip = _clips(rng)[1]
    np.testing.assert_array_equal(old.transform(clip), model.transform(clip))
    assert msk._persist.model_fingerprint(old) == msk._persist.model_fingerprint(model)


@pytest.mark.parametrize("edit,message", [
    (lambda h: h["params"].update(encoding="relu"),
     "`encoding` must be one of 'linear', 'threshold', 'split', 'triangle'"),
    (lambda h: h["params"].update(encoding=3), "`encoding` must be one of"),
    (lambda h: h["params"].update(encoding="triangle", n_clusters=None), "'triangle' needs a dictionary"),
    (lambda h: h["params"].update(threshold=float("nan")), "`threshold` must be a finite number; got nan"),
    (lambda h: h["params"].update(threshold="0.1"), "`threshold` must be a finite number"),
    (lambda h: h["params"].update(window_normalization="contrast"),
     "`window_normalization` must be one of 'none', 'standardize'; got 'contrast'"),
    (lambda h: h["params"].update(window_normalization_eps=-1.0),
     "`window_normalization_eps` must be a finite number > 0"),
    (lambda h: h["params"].update(window_normalization_eps=float("inf")),
     "`window_normalization_eps` must be a finite"),
    (lambda h: h["params"].update(window_normalization_eps=True), "`window_normalization_eps` must be a finite"),
    (lambda h: h["levels"][1].pop("window_eps"), "`level 1 window_eps` must be a finite number > 0; got None"),
    (lambda h: h["levels"][0].update(window_eps=0.0), "`level 0 window_eps` must be a finite number > 0; got 0.0"),
    (lambda h: h["levels"][0].update(window_eps=float("nan")), "`level 0 window_eps` must be a finite number > 0"),
    (lambda h: h["params"].update(window_normalization="none"), "level 0: a window_eps is stored for"),
    (lambda h: h["params"].update(envelope="yes"), "`envelope` must be true or false; got 'yes'"),
    (lambda h: h["params"].update(envelope=1), "`envelope` must be true or false; got 1"),
])
def test_crafted_option_values_are_refused(tmp_path, rng, edit, message):
    """Loaded (and used) in a child process: a crash there fails the test instead of pytest."""
    _, path = _saved(tmp_path, rng, window_normalization="standardize")
    bad = _edit_header(path, tmp_path / "bad.npz", edit)
    run = subprocess.run([sys.executable, "-c", _LOAD_AND_EXTRACT, str(bad)], capture_output=True, text=True)
    assert run.returncode == 3, (run.returncode, run.stdout, run.stderr[-2000:])
    assert "corrupt msk model file" in run.stdout
    assert message in run.stdout and str(bad) in run.stdout


from test_persist import LOAD_AND_EXTRACT as _LOAD_AND_EXTRACT  # noqa: E402  (the child that loads a crafted file)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("factorization", ["fused", "staged"])
def test_split_max_from_extremes_equals_the_rectified_tile(rng, monkeypatch, dtype, factorization):
    """Max pooling alone takes both halves from the linear codes' maximum and minimum; with mean
    pooling too, the halves are rectified in the tile. The maxima are the same numbers."""
    monkeypatch.setattr(encoding_mod, "_MIN_TILE", 1)
    monkeypatch.setattr(encoding_mod, "_MAX_TILE", 13)
    frames = log_mel_like(rng, 200, 10, dtype)
    model = make_model(rng, frames, 2, 8, 12)
    common = dict(width=2, pool=30, encoding="split", threshold=0.05, factorization=factorization)
    alone = encode_pool(frames, *model, pooling="max", **common)
    with_mean = encode_pool(frames, *model, pooling=("max", "mean"), **common)
    np.testing.assert_array_equal(alone, with_mean[:, :24])


@pytest.mark.parametrize("params", [{"encoding": "split"}, {"encoding": "split", "pooling": ("max", "std")},
                                    {"encoding": "triangle"}, {"normalization": "standardize"}])
def test_options_refuse_to_return_non_finite_features(rng, params):
    enc = WindowEncoder(rng.standard_normal(40), rng.standard_normal((20, 40)) * 1e200,
                        rng.standard_normal((16, 20)), pool=8, **params)
    with pytest.raises(ValueError, match=r"features are not finite: the model's values are too large for float32"):
        enc(log_mel_like(rng, 64, 40, np.float32))
