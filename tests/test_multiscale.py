"""MultiscaleFeatures: the whole per-level pipeline on real audio, against a plain NumPy oracle."""

import json
import os
import zipfile

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

import msk
from conftest import assert_close

SR = 16000


@pytest.fixture(scope="module")
def clip():
    """12 s of the shipped real music clip."""
    return msk.load_audio(msk.example_audio())[: 12 * SR]


@pytest.fixture(scope="module")
def clips(clip):
    """Three real clips: pieces of the example, one of them quieter."""
    full = msk.load_audio(msk.example_audio())
    return [clip, full[12 * SR: 24 * SR].copy(), 0.3 * full[5 * SR: 20 * SR]]


def small(representation="laplacian", **kw):
    params = dict(levels=3, n_clusters=12, n_samples=3000, max_iter=10, random_state=0)
    params.update(kw)
    return msk.MultiscaleFeatures(representation, **params)


def oracle(model, y):
    """The plain NumPy pipeline: representation -> windows -> whiten -> encode -> max-pool."""
    S = msk.log_melspectrogram(y, sr=SR, log_offset=model.log_offset)
    if model.representation == "multiresolution":
        levels = msk.multiresolution(y, sr=SR, levels=model.levels, log_offset=model.log_offset)
    elif model.representation == "gaussian":
        levels = msk.gaussian_pyramid(S, levels=model.levels)
    else:
        levels = msk.laplacian_pyramid(S, levels=model.levels)
    w = model.width
    pooled = []
    for lev, frames in enumerate(levels):
        X = sliding_window_view(frames.astype(np.float64), (w, frames.shape[1]))[:, 0].reshape(
            -1, w * frames.shape[1])
        pca = model.pca_[lev]
        Z = (X - pca.mean_) @ pca.whitening_.T
        F = Z if model.kmeans_ is None else Z @ model.kmeans_[lev].cluster_centers_.astype(np.float64).T
        pool = model.pool_size if model.representation == "multiresolution" else max(1, model.pool_size >> lev)
        n_pools = max(1, F.shape[0] // pool)
        n = pool if F.shape[0] >= pool else F.shape[0]
        pooled.append(np.stack([F[i * n:(i + 1) * n].max(axis=0) for i in range(n_pools)]))
    n = min(p.shape[0] for p in pooled)
    return np.hstack([p[:n] for p in pooled])


@pytest.mark.parametrize(
    "representation, frames",
    [("laplacian", 1), ("laplacian", 2), ("gaussian", 4), ("multiresolution", 1)],
)
def test_matches_numpy_pipeline_on_real_audio(clips, representation, frames):
    model = small(representation, width=frames, pool_size=64).fit(clips)
    F = model.transform(clips[1])
    R = oracle(model, clips[1])
    assert F.dtype == np.float32 and F.flags.c_contiguous
    assert F.shape == R.shape == (R.shape[0], 3 * 12)
    # float32 spectrogram and GEMMs against a float64 oracle: relative to the feature scale
    assert_close(F, R, rtol=1e-3, atol=1e-3 * np.abs(R).max())


def test_shapes_and_pool_alignment(clips):
    model = small(levels=4, pool_size=128).fit(clips)
    y = clips[0]
    T = 1 + len(y) // 512
    F = model.transform(y)
    assert F.shape == (T // 128, 4 * 12)
    assert np.isfinite(F).all()
    assert model.n_features_out_ == 48


def test_default_architecture_on_a_full_clip():
    """The paper's setting (6 levels, 1 frame, max-pooling) on the full shipped clip."""
    y = msk.load_audio(msk.example_audio())
    model = msk.MultiscaleFeatures(n_clusters=16, n_samples=5000, max_iter=5, random_state=0)
    model.fit([y[: 15 * SR], y[15 * SR:]])
    F = model.transform(msk.example_audio())
    assert F.shape == ((1 + len(y) // 512) // 128, 6 * 16)
    assert np.isfinite(F).all() and F.std() > 0


def test_pca_only_features(clips):
    model = small(n_clusters=None).fit(clips)
    assert model.kmeans_ is None
    F = model.transform(clips[0])
    assert F.shape[1] == sum(p.n_components_ for p in model.pca_) == model.n_features_out_
    assert_close(F, oracle(model, clips[0]), rtol=1e-3, atol=1e-3)


def test_clip_kinds_agree(clips, tmp_path):
    import soundfile as sf

    path = tmp_path / "clip.wav"
    sf.write(path, clips[0], SR, subtype="FLOAT")
    model = small().fit(clips)
    from_path = model.transform(path)
    from_wave = model.transform(clips[0])
    from_spec = model.transform(msk.log_melspectrogram(clips[0]))
    np.testing.assert_array_equal(from_path, from_wave)
    np.testing.assert_array_equal(from_spec, from_wave)
    assert_close(model.transform(clips[0].astype(np.float64)), from_wave)


def test_fit_is_deterministic(clips):
    a = small().fit(clips).transform(clips[0])
    b = small().fit(clips).transform(clips[0])
    c = small(random_state=1).fit(clips).transform(clips[0])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_accepts_a_generator(clips):
    a = small().fit(c for c in clips).transform(clips[0])
    np.testing.assert_array_equal(a, small().fit(clips).transform(clips[0]))


@pytest.mark.parametrize("seconds", [0.5, 2.0])
def test_short_clips_give_one_pool(clips, seconds):
    model = small(width=2).fit(clips)
    F = model.transform(clips[0][: int(seconds * SR)])
    assert F.shape == (1, 36)
    assert np.isfinite(F).all()


def test_silence_is_finite(clips):
    model = small().fit(clips)
    F = model.transform(np.zeros(5 * SR, dtype=np.float32))
    assert np.isfinite(F).all()


def test_pooling_and_threshold_options(clips):
    base = small().fit(clips)
    both = small(pooling=("max", "mean")).fit(clips)
    F, G = base.transform(clips[0]), both.transform(clips[0])
    assert G.shape[1] == 2 * F.shape[1]
    # the max columns of each level equal the max-only model's
    np.testing.assert_allclose(G[:, :12], F[:, :12], rtol=1e-5, atol=1e-5)
    thr = small(encoding="threshold", threshold=0.5).fit(clips).transform(clips[0])
    assert (thr >= 0).all()
    assert_close(thr, np.maximum(F - 0.5, 0), rtol=1e-4, atol=1e-4)


def test_save_load_roundtrip(clips, tmp_path):
    model = small(representation="gaussian", width=2, pooling=("max", "std")).fit(clips)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = msk.MultiscaleFeatures.load(path)
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.transform(clips[2]), model.transform(clips[2]))
    with np.load(path, allow_pickle=False) as data:  # loads without pickle
        header = json.loads(bytes(data["header"]).decode())
    assert header["format_version"] == 4 and header["msk_version"] == msk.__version__
    assert header["params"]["representation"] == "gaussian"
    assert [lev["n_clusters"] for lev in header["levels"]] == [12, 12, 12]


def test_save_load_pca_only(clips, tmp_path):
    model = small(n_clusters=None).fit(clips)
    model.save(tmp_path / "pca.npz")
    loaded = msk.MultiscaleFeatures.load(tmp_path / "pca.npz")
    np.testing.assert_array_equal(loaded.transform(clips[0]), model.transform(clips[0]))


def test_load_rejects_bad_files(clips, tmp_path):
    model = small().fit(clips)
    good = tmp_path / "model.npz"
    model.save(good)
    raw = good.read_bytes()

    with pytest.raises(FileNotFoundError, match="nope.npz"):
        msk.MultiscaleFeatures.load(tmp_path / "nope.npz")

    text = tmp_path / "text.npz"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="text.npz.*not a readable msk model"):
        msk.MultiscaleFeatures.load(text)

    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        msk.MultiscaleFeatures.load(cut)

    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz.*no msk header"):
        msk.MultiscaleFeatures.load(other)

    def rewrite(name, edit):
        with np.load(good, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(bytes(arrays["header"]).decode())
        edit(header, arrays)
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        out = tmp_path / name
        np.savez(out, **arrays)
        return out

    future = rewrite("future.npz", lambda h, a: h.update(format_version=99))
    with pytest.raises(ValueError, match="future.npz.*format version 99"):
        msk.MultiscaleFeatures.load(future)

    def shrink(h, a):
        a["level1.kmeans.cluster_centers_"] = a["level1.kmeans.cluster_centers_"][:5]

    broken = rewrite("broken.npz", shrink)
    with pytest.raises(ValueError, match="broken.npz.*corrupt.*level 1"):
        msk.MultiscaleFeatures.load(broken)

    missing = rewrite("missing.npz", lambda h, a: a.pop("level2.pca.components_"))
    with pytest.raises(ValueError, match="missing.npz.*corrupt"):
        msk.MultiscaleFeatures.load(missing)


def test_save_is_atomic_and_leaves_no_temporary(clips, tmp_path):
    model = small().fit(clips)
    model.save(tmp_path / "m.npz")
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    assert zipfile.is_zipfile(tmp_path / "m.npz")


def test_fit_skips_unreadable_files(clips, tmp_path):
    import soundfile as sf

    good = tmp_path / "good.wav"
    sf.write(good, clips[0], SR)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"this is not audio" * 100)
    with pytest.warns(UserWarning, match="1 clip.*bad.mp3"):
        model = small().fit([str(good), str(bad), clips[1]])
    assert model.n_clips_ == 2
    assert model.skipped_[0][0] == str(bad)
    assert "could not be decoded" in model.skipped_[0][1]


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(representation="lapacian"), ValueError,
         "`representation` must be one of 'multiresolution', 'gaussian' or 'laplacian'; got 'lapacian'"),
        (dict(n_clusters=0), ValueError, "`n_clusters` must be a positive integer; got 0"),
        (dict(levels=9), ValueError, "`levels` must be an integer between 1 and 8; got 9"),
        (dict(width=0), ValueError, "`width`"),
        (dict(pool_size=0), ValueError, "`pool_size`"),
        (dict(pooling="median"), ValueError, "`pooling`"),
        (dict(encoding="relu"), ValueError, "`encoding`"),
        (dict(n_clusters=2.5), TypeError, "`n_clusters` must be an integer"),
    ],
)
def test_bad_parameters(clips, params, error, match):
    with pytest.raises(error, match=match):
        small(**params).fit(clips)


def test_bad_clips(clips):
    with pytest.raises(TypeError, match="`clips` must be an iterable"):
        small().fit(msk.example_audio())
    with pytest.raises(ValueError, match="fewer than `n_clusters`=5000"):
        small(n_clusters=5000).fit(clips[:1])
    with pytest.raises(ValueError, match="multiresolution.*needs audio"):
        small("multiresolution").fit([msk.log_melspectrogram(clips[0])])
    with pytest.raises(ValueError, match="`clip` contains NaN"):
        small().fit([np.full(SR, np.nan, dtype=np.float32)])
    with pytest.raises(ValueError, match="shape"):
        small().fit([np.zeros((2, 3, 4))])
    with pytest.raises(ValueError, match="no usable clip"):
        small().fit([])


def test_transform_checks(clips):
    model = small()
    with pytest.raises(NotFittedError):
        model.transform(clips[0])
    model.fit(clips)
    with pytest.raises(TypeError, match="takes one clip"):
        model.transform([msk.example_audio(), msk.example_audio()])
    with pytest.raises(ValueError, match="100 mel bands.*fitted on 200"):
        model.transform(np.zeros((300, 100), dtype=np.float32))


def test_sklearn_parameter_api(clips):
    model = small(n_clusters=7)
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    twin.set_params(levels=2)
    assert twin.fit(clips).transform(clips[0]).shape[1] == 14


def test_fit_transform_returns_one_array_per_clip(clips):
    out = small().fit_transform(clips)
    assert isinstance(out, list) and len(out) == 3
    assert all(o.shape[1] == 36 for o in out)


@pytest.mark.parametrize("representation", ["laplacian", "gaussian", "multiresolution"])
def test_pooling_geometry_and_n_pools_describe_transform(clips, representation):
    model = small(representation, width=2, pool_size=32).fit(clips)
    geometry = model.pooling_geometry()
    pyramid = representation != "multiresolution"
    assert geometry == [((1 << lev) if pyramid else 1, max(1, 32 >> lev) if pyramid else 32)
                        for lev in range(3)]
    for seconds in (0.2, 1.0, 3.3, 12.0):
        y = clips[1][: int(seconds * SR)]
        n_frames = 1 + y.shape[0] // model.hop_length
        assert model.n_pools(n_frames) == model.transform(y).shape[0]


def test_spectrogram_parameters_are_the_models(clip):
    """n_fft, hop_length and n_mels reach every step (whole and segmented analysis alike)."""
    model = small("gaussian", n_fft=512, hop_length=256, n_mels=64).fit([clip])
    assert model.n_mels_ == 64
    F = model.transform(clip)
    n_frames = 1 + clip.shape[0] // 256
    assert F.shape[0] == model.n_pools(n_frames)
    S = msk.log_melspectrogram(clip, sr=SR, n_fft=512, hop_length=256, n_mels=64)
    np.testing.assert_array_equal(model.represent(clip)[0], S)
    with pytest.raises(ValueError, match="n_fft"):
        small(n_fft=1000).fit([clip])


def test_not_a_pipeline_transformer_but_a_clonable_estimator(clips):
    """One clip in, a matrix of variable height out: no TransformerMixin (see the class Notes)."""
    from sklearn.base import TransformerMixin, clone

    model = small()
    assert not isinstance(model, TransformerMixin) and not hasattr(model, "set_output")
    assert clone(model).get_params() == model.get_params()
    features = model.fit_transform(clips)
    assert isinstance(features, list) and len(features) == len(clips)
    for F, c in zip(features, clips):
        np.testing.assert_array_equal(F, model.transform(c))
    assert {F.shape[0] for F in features} == {model.n_pools(1 + c.shape[0] // 512) for c in clips}


def test_set_params_of_a_fitted_model_refuses_fixed_parameters(tmp_path):
    """Changing pool_size (or any parameter the fitted arrays depend on) after fitting is refused."""
    with threadpool_limits(1):
        model = msk.MultiscaleFeatures(levels=2, n_clusters=4, n_samples=500, max_iter=2,
                                       random_state=0).fit([msk.example_audio()])
    F = model.transform(msk.example_audio())
    with pytest.raises(ValueError, match="cannot change 'n_clusters', 'pool_size' of a fitted"):
        model.set_params(pool_size=64, n_clusters=8)
    assert model.pool_size == 128 and model.n_clusters == 4
    model.set_params(pool_size=128, random_state=5, max_iter=7)  # unchanged or fit-only: accepted
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = msk.MultiscaleFeatures.load(path)
    np.testing.assert_array_equal(loaded.transform(msk.example_audio()), F)
    with pytest.raises(ValueError, match="'pool_size'"):
        loaded.set_params(pool_size=32)
    assert clone(model).set_params(pool_size=64).pool_size == 64  # an unfitted copy takes anything


# -- the last pooling window ------------------------------------------------------------------


def _level_codes(model, levels, min_frames=None):
    """Per level: every window position's codes, in float64 (plain NumPy).

    A level with fewer frames than ``width`` (or ``min_frames[lev]``) repeats its last frame.
    """
    out = []
    for lev, frames in enumerate(levels):
        frames = frames.astype(np.float64)
        w = model.width
        need = max(w, 0 if min_frames is None else min_frames[lev])
        if frames.shape[0] < need:
            frames = np.pad(frames, ((0, need - frames.shape[0]), (0, 0)), mode="edge")
        X = sliding_window_view(frames, (w, frames.shape[1]))[:, 0].reshape(-1, w * frames.shape[1])
        pca = model.pca_[lev]
        Z = (X - pca.mean_) @ pca.whitening_.T
        out.append(Z @ model.kmeans_[lev].cluster_centers_.astype(np.float64).T)
    return out


def _levels(model, y):
    if model.representation == "multiresolution":
        return msk.multiresolution(y, sr=SR, levels=model.levels, log_offset=model.log_offset)
    S = msk.log_melspectrogram(y, sr=SR, log_offset=model.log_offset)
    pyramid = msk.gaussian_pyramid if model.representation == "gaussian" else msk.laplacian_pyramid
    return pyramid(S, levels=model.levels)


def policy_oracle(model, y, last_window):
    """Max-pooled features of a waveform for each last-window policy, stated directly in NumPy.

    "drop": full windows only (one short window for a clip shorter than one); "keep":
    ceil((n_frames - width + 1) / pool_size) windows, the last over what is left at every level
    (a level repeating its last frame where its frames end first); "pad": the audio padded with
    zeros, by whole hops, until every level holds that many full windows, then "drop".
    """
    hop, w, P = model.hop_length, model.width, model.pool_size
    pyramid = model.representation != "multiresolution"
    steps = [(1 << lev) if pyramid else 1 for lev in range(model.levels)]
    pools = [max(1, P >> lev) if pyramid else P for lev in range(model.levels)]
    n_frames = 1 + len(y) // hop
    n_keep = -(-(n_frames - w + 1) // P)
    if last_window == "pad":
        n = n_frames
        while min((-(-n // s) - w + 1) // p for s, p in zip(steps, pools)) < n_keep:
            n += 1
        y = np.concatenate([y, np.zeros(max(0, (n - 1) * hop - len(y)), y.dtype)])
        last_window = "drop"
    # "keep": every window full but the last, which has at least one position, at every level
    min_frames = [(n_keep - 1) * p + w for p in pools] if last_window == "keep" else None
    codes = _level_codes(model, _levels(model, y), min_frames)
    rows = []
    for C, p in zip(codes, pools):
        if last_window == "drop":
            n_pools = max(1, C.shape[0] // p)
            size = p if C.shape[0] >= p else C.shape[0]
            rows.append([C[i * size:(i + 1) * size].max(axis=0) for i in range(n_pools)])
        else:
            rows.append([C[i * p:min((i + 1) * p, C.shape[0])].max(axis=0) for i in range(n_keep)])
    n = min(len(r) for r in rows)
    return np.hstack([np.array(r[:n]) for r in rows])


@pytest.mark.parametrize("last_window", ["drop", "keep", "pad"])
@pytest.mark.parametrize(
    "representation, width, levels",
    [("laplacian", 1, 3), ("gaussian", 2, 3), ("laplacian", 4, 4), ("multiresolution", 2, 2)],
)
def test_last_window_matches_numpy_reference(clips, representation, width, levels, last_window):
    model = small(representation, width=width, levels=levels, pool_size=64).fit(clips)
    hop = 512
    # lengths (in frames): one frame into a window, the middle of one, a window boundary, a clip
    # shorter than one window, and (width 4) a coarse level whose frames end before the last window
    for n_frames in (64 * 5 + width, 64 * 5 + 30, 64 * 6 + width - 1, 40, 64 * 5 + 4):
        y = clips[2][: (n_frames - 1) * hop + 100]
        F, start, end = model.transform(y, last_window=last_window, return_times=True)
        R = policy_oracle(model, y, last_window)
        assert F.shape == R.shape == (model.n_pools(n_frames, last_window), model.n_features_out_)
        assert_close(F, R, rtol=1e-3, atol=1e-3 * np.abs(R).max())
        duration = len(y) / SR
        assert start.shape == end.shape == (F.shape[0],)
        np.testing.assert_allclose(start, np.arange(F.shape[0]) * 64 * hop / SR)
        assert (end <= duration + 1e-12).all() and (end > start).all()
        if last_window != "drop" or n_frames - width + 1 < 64:
            assert end[-1] == duration  # the last window ends with the audio
        if last_window == "keep":  # the full windows are those of "drop", bit for bit
            D = model.transform(y)
            np.testing.assert_array_equal(F[: min(len(D), len(F) - 1)], D[: min(len(D), len(F) - 1)])


def test_keep_and_pad_keep_every_frame(clips):
    """A 10.5 s clip: 2 full windows ("drop" loses 22 % of it), 3 with "keep" and "pad"."""
    model = small(pool_size=128).fit(clips)
    y = np.concatenate([clips[0], clips[1]])[: int(10.5 * SR)]
    n_frames = 1 + len(y) // 512
    assert [model.n_pools(n_frames, p) for p in ("drop", "keep", "pad")] == [2, 3, 3]
    for policy in ("keep", "pad"):
        F, start, end = model.transform(y, last_window=policy, return_times=True)
        assert F.shape[0] == 3 and end[-1] == 10.5 and start[-1] == 2 * 128 * 512 / SR
    # a spectrogram: "pad" appends frames of silence (log(log_offset)), and times span its frames
    S = msk.log_melspectrogram(y, sr=SR)
    F, start, end = model.transform(S, last_window="pad", return_times=True)
    silence = np.full((3 * 128 - S.shape[0], S.shape[1]), np.log(model.log_offset), np.float32)
    np.testing.assert_array_equal(F, model.transform(np.vstack([S, silence])))
    assert end[-1] == S.shape[0] * 512 / SR


def test_last_window_arguments(clips):
    model = small().fit(clips)
    with pytest.raises(ValueError, match="`last_window` must be one of 'drop', 'pad' or 'keep'; got 'all'"):
        model.transform(clips[0], last_window="all")
    with pytest.raises(ValueError, match="`last_window`"):
        model.n_pools(100, "partial")
    with pytest.raises(ValueError, match="`duration`"):
        model.window_times(100, duration=-1.0)
    # pooling windows that do not line up across levels cannot keep a partial window
    odd = msk.MultiscaleFeatures(levels=6, pool_size=16)
    with pytest.raises(ValueError, match="pool_size=16 is smaller than 2\\*\\*\\(levels - 1\\) = 32"):
        odd.n_pools(1000, "keep")
    assert odd.n_pools(1000) == -(-1000 // 32)  # level 5 pools one frame (32 level-0 frames)


def test_track_vector_is_one_implementation():
    from msk.multiscale import track_vector

    assert msk.store.track_vector is track_vector
    X = np.array([[1, 5], [3, -1], [2, 2]], np.float32)
    np.testing.assert_array_equal(track_vector(X), X.astype(np.float64).mean(axis=0).astype(np.float32))
    np.testing.assert_array_equal(track_vector(X, "mean+max")[2:], [3, 5])
    with pytest.raises(ValueError, match="`summary` must be one of 'mean', 'mean\\+max' or 'mean\\+std'; got 'max'"):
        track_vector(X, "max")
    with pytest.raises(ValueError, match="n_windows >= 1"):
        track_vector(np.zeros((0, 3)))


def test_n_samples_beyond_the_clips_fits_on_all_their_windows():
    """A huge ``n_samples`` is a request for every window, not an allocation of its size."""
    clip = msk.load_audio(msk.example_audio())[: 16000 * 10]
    kw = dict(levels=2, n_clusters=8, random_state=0)
    huge = msk.MultiscaleFeatures("laplacian", n_samples=10**12, **kw).fit([clip])
    exact = msk.MultiscaleFeatures("laplacian", n_samples=10**5, **kw).fit([clip])  # more than the clip holds
    np.testing.assert_array_equal(huge.transform(clip), exact.transform(clip))
