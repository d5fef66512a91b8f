"""MultiscaleFeatures options outside the per-window kernel, each against a plain NumPy/scikit-learn reference.

ZCA whitening, one dictionary size per level, the normalisation of pooled rows, and the
log1p(C * mel) compression that ``log_offset = 1 / C`` gives.
"""

import copy
import io
import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.preprocessing import StandardScaler, normalize

import msk
import msk.multiscale as multiscale_module
from conftest import assert_close
from msk.cli import main

SR = 16000


@pytest.fixture(scope="module")
def clips():
    """Three real clips (12, 12 and 15 s): pieces of the example, one of them quieter."""
    full = msk.load_audio(msk.example_audio())
    return [full[: 12 * SR].copy(), full[12 * SR: 24 * SR].copy(), 0.3 * full[5 * SR: 20 * SR]]


def small(representation="laplacian", **kw):
    # n_samples is above the number of windows of the clips at every level: the reservoir holds
    # every training window, so plain NumPy statistics over all windows are the reference.
    params = dict(levels=3, n_clusters=12, n_samples=3000, max_iter=10, random_state=0, pool_size=64)
    params.update(kw)
    return msk.MultiscaleFeatures(representation, **params)


def levels_of(model, y, log1p_scale=None):
    """The model's representation of a waveform in float64; log1p(C * mel) when ``log1p_scale=C``."""
    if log1p_scale is None:
        spec = dict(log_offset=model.log_offset)
        post = lambda S: S.astype(np.float64)  # noqa: E731
    else:
        spec = dict(log=False)
        post = lambda S: np.log1p(log1p_scale * S.astype(np.float64))  # noqa: E731
    if model.representation == "multiresolution":
        return [post(S) for S in msk.multiresolution(y, sr=SR, levels=model.levels, **spec)]
    S = post(msk.log_melspectrogram(y, sr=SR, **spec))
    pyramid = msk.gaussian_pyramid if model.representation == "gaussian" else msk.laplacian_pyramid
    return pyramid(S, levels=model.levels)


def windows(frames, width):
    return sliding_window_view(frames, (width, frames.shape[1]))[:, 0].reshape(-1, width * frames.shape[1])


def max_pool(codes, pool):
    """Full pooling windows only (one over everything for fewer positions than ``pool``)."""
    n = max(1, codes.shape[0] // pool)
    size = pool if codes.shape[0] >= pool else codes.shape[0]
    return np.stack([codes[i * size:(i + 1) * size].max(axis=0) for i in range(n)])


def reference_rows(model, levels, means=None):
    """Max-pooled rows of ``levels`` through the model's whitening and dictionaries (NumPy, float64)."""
    pooled = []
    for lev, frames in enumerate(levels):
        pca = model.pca_[lev]
        mean = pca.mean_ if means is None else means[lev]
        Z = (windows(frames, model.width) - mean) @ pca.whitening_.T
        codes = Z if model.kmeans_ is None else Z @ model.kmeans_[lev].cluster_centers_.astype(np.float64).T
        pooled.append(max_pool(codes, model.pooling_geometry()[lev][1]))
    n = min(p.shape[0] for p in pooled)
    return np.hstack([p[:n] for p in pooled])


def raw_twin(model):
    """The same fitted model without the normalisation of pooled rows."""
    twin = copy.copy(model)
    twin.pooled_normalization = "none"
    return twin


# -- ZCA whitening --------------------------------------------------------------------------------


def test_zca_pca_only_features_match_numpy_eigh_reference(clips):
    """Every window of every clip -> mean, covariance, eigh -> U^T diag(1/sqrt(lambda+eps)) U."""
    model = small(whitening="zca", n_clusters=None, width=2, variance=0.95).fit(clips)
    train = [levels_of(model, y) for y in clips]
    for lev, pca in enumerate(model.pca_):
        X = np.vstack([windows(L[lev], 2) for L in train])
        assert pca.n_samples_ == X.shape[0]  # the reservoir holds every window
        evals, evecs = np.linalg.eigh(np.cov(X, rowvar=False))
        evals, evecs = evals[::-1], evecs[:, ::-1]
        k = int(np.searchsorted(np.cumsum(evals) / evals.sum(), 0.95, side="right")) + 1
        assert pca.n_components_ == k
        U = evecs[:, :k].T
        W = U.T @ np.diag(1.0 / np.sqrt(evals[:k] + 1e-5 * evals.mean())) @ U
        assert pca.whitening_.shape == (400, 400)
        # the model keeps its principal axes at float32 precision
        assert_close(pca.whitening_, W, rtol=1e-4, atol=1e-5 * np.abs(W).max())
        # the model's levels are float32 pyramids, the reference's float64 ones
        assert_close(pca.mean_, X.mean(axis=0), rtol=1e-4, atol=1e-6 * np.abs(X).max())
    assert model.n_features_per_level_ == [400] * 3
    F = model.transform(clips[1])
    R = reference_rows(model, levels_of(model, clips[1]))
    assert F.shape == R.shape == (F.shape[0], 1200)
    assert_close(F, R, rtol=1e-3, atol=1e-3 * np.abs(R).max())


def test_zca_dictionary_lives_in_the_window_space(clips, tmp_path):
    model = small(whitening="zca", width=2).fit(clips)
    pca_model = small(width=2).fit(clips)
    for lev in range(3):
        assert model.kmeans_[lev].cluster_centers_.shape == (12, 400)
        assert pca_model.kmeans_[lev].cluster_centers_.shape == (12, pca_model.pca_[lev].n_components_)
        # the whitened windows lie in the span of the kept components, so do the centroids
        # that received windows (an empty cluster keeps its random start)
        U = model.pca_[lev].components_
        C = model.kmeans_[lev].cluster_centers_.astype(np.float64)
        inside = np.linalg.norm(C @ U.T, axis=1)
        assert np.median(inside) > 1 - 1e-5
    F = model.transform(clips[2])
    R = reference_rows(model, levels_of(model, clips[2]))
    assert_close(F, R, rtol=1e-3, atol=1e-3 * np.abs(R).max())
    model.save(tmp_path / "zca.npz")
    loaded = msk.MultiscaleFeatures.load(tmp_path / "zca.npz")
    assert loaded.whitening == "zca"
    np.testing.assert_array_equal(loaded.transform(clips[2]), F)
    assert msk.store.model_fingerprint(loaded) == msk.store.model_fingerprint(model)
    assert msk.store.model_fingerprint(model)["fingerprint"] != msk.store.model_fingerprint(pca_model)["fingerprint"]


def test_zca_and_pca_dictionaries_are_rotations_of_each_other(clips):
    """Spherical K-means sees dot products only: from rotated starts, ZCA learns the rotated dictionary."""
    model = small(width=2, n_clusters=None).fit(clips)
    X = np.vstack([windows(levels_of(model, y)[1], 2) for y in clips])
    pca = msk.PCAWhitening(variance=0.99).fit(X)
    zca = msk.PCAWhitening(variance=0.99, whitening="zca").fit(X)
    P, Z, U = pca.transform(X), zca.transform(X), pca.components_
    start = np.random.default_rng(0).standard_normal((10, pca.n_components_))
    start /= np.linalg.norm(start, axis=1, keepdims=True)
    km_pca = msk.SphericalKMeans(n_clusters=10, max_iter=15, init=start).fit(P)
    km_zca = msk.SphericalKMeans(n_clusters=10, max_iter=15, init=start @ U).fit(Z)
    np.testing.assert_array_equal(km_zca.labels_, km_pca.labels_)
    assert_close(km_zca.cluster_centers_, km_pca.cluster_centers_ @ U, atol=1e-9)
    assert_close(Z @ km_zca.cluster_centers_.T, P @ km_pca.cluster_centers_.T, atol=1e-8)


# -- one dictionary size per level ----------------------------------------------------------------


def test_dictionary_size_per_level(clips, tmp_path):
    model = small(n_clusters=(12, 7, 3), pooling=("max", "std")).fit(clips)
    assert [km.cluster_centers_.shape[0] for km in model.kmeans_] == [12, 7, 3]
    assert model.n_features_per_level_ == [24, 14, 6] and model.n_features_out_ == 44
    assert model.pooling_geometry() == [(1, 64), (2, 32), (4, 16)]
    F = model.transform(clips[0])
    assert F.shape == (model.n_pools(1 + len(clips[0]) // 512), 44)
    # the max part of every level, against NumPy
    R = reference_rows(model, levels_of(model, clips[0]))
    maxima = np.hstack([F[:, 0:12], F[:, 24:31], F[:, 38:41]])
    assert_close(maxima, R, rtol=1e-3, atol=1e-3 * np.abs(R).max())
    # a list works as a tuple; an int is the same K at every level
    same = small(n_clusters=[12, 7, 3], pooling=("max", "std")).fit(clips)
    np.testing.assert_array_equal(same.transform(clips[0]), F)
    np.testing.assert_array_equal(small(n_clusters=(12,) * 3).fit(clips).transform(clips[0]),
                                  small(n_clusters=12).fit(clips).transform(clips[0]))
    model.save(tmp_path / "k.npz")
    loaded = msk.MultiscaleFeatures.load(tmp_path / "k.npz")
    assert loaded.n_clusters == (12, 7, 3) and loaded.n_features_per_level_ == [24, 14, 6]
    np.testing.assert_array_equal(loaded.transform(clips[0]), F)
    assert msk.store.model_fingerprint(loaded) == msk.store.model_fingerprint(model)
    with pytest.raises(ValueError, match="'n_clusters'"):
        model.set_params(n_clusters=(12, 7, 4))
    model.set_params(n_clusters=[12, 7, 3])  # its current value


@pytest.mark.parametrize("n_clusters, error, match", [
    ((12, 7), ValueError, r"`n_clusters` must have one entry per level \(levels=3\); got 2"),
    ((12, 0, 3), ValueError, r"`n_clusters\[1\]` must be a positive integer; got 0"),
    ((12, 7.5, 3), TypeError, r"`n_clusters\[1\]` must be an integer; got 7.5"),
    ("12", TypeError, "`n_clusters` must be an integer, a sequence of one integer per level, or None"),
    (0, ValueError, "`n_clusters` must be a positive integer; got 0"),
])
def test_dictionary_size_per_level_is_checked(clips, n_clusters, error, match):
    with pytest.raises(error, match=match):
        small(n_clusters=n_clusters).fit(clips)


def test_too_few_windows_names_the_level_s_dictionary(clips):
    y = clips[0][: 4 * SR]  # 126 frames: 32 at level 2
    with pytest.raises(ValueError, match="level 2 has only 32 training windows, fewer than `n_clusters`=40"):
        small(n_clusters=(8, 8, 40)).fit([y])


def test_cli_fit_options(tmp_path, clips, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, y in enumerate(clips):
        sf.write(folder / f"c{i}.wav", y, SR, subtype="FLOAT")
    out = tmp_path / "m.npz"
    assert main(["fit", str(folder), "-o", str(out), "--levels", "3", "--n-clusters", "8,6,4", "--n-samples",
                 "3000", "--max-iter", "3", "--whitening", "zca", "--pooled-normalization", "power+standardize",
                 "--eps", "1e-3", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["n_features"] == 18
    model = msk.MultiscaleFeatures.load(out)
    assert (model.n_clusters, model.whitening, model.pooled_normalization, model.eps) == (
        (8, 6, 4), "zca", "power+standardize", 1e-3)
    for bad in ("8,0,4", "8,x"):
        with pytest.raises(SystemExit) as exc:
            main(["fit", str(folder), "-o", str(out), "--n-clusters", bad])
        assert exc.value.code == 2 and "--n-clusters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--whitening {pca,zca}", "[pca]", "{none,power,standardize,power+standardize}", "[none]",
                  "[1e-05]", "log1p(C*mel)"):
        assert shown in text, shown


# -- normalisation of pooled rows ----------------------------------------------------------------


def normalize_reference(R, widths, kind, mean=None, std=None):
    """Signed square root then L2 per level (scikit-learn's normalize), then (R - mean) / std."""
    R = R.astype(np.float64)
    if kind.startswith("power"):
        bounds = np.cumsum([0] + list(widths))
        R = np.hstack([normalize(np.sign(R[:, a:b]) * np.sqrt(np.abs(R[:, a:b])), norm="l2")
                       for a, b in zip(bounds[:-1], bounds[1:])])
    if kind.endswith("standardize"):
        R = (R - mean) / std
    return R


def standardization_reference(model, clips):
    """Mean and floored std of the training clips' rows after "power" (StandardScaler, ddof=0)."""
    kind = "power" if model.pooled_normalization.startswith("power") else "none"
    raw = raw_twin(model)
    rows = np.vstack([normalize_reference(raw.transform(y), model.n_features_per_level_, kind) for y in clips])
    scaler = StandardScaler().fit(rows)
    std = np.sqrt(scaler.var_)
    bounds = np.cumsum([0] + model.n_features_per_level_)
    for a, b in zip(bounds[:-1], bounds[1:]):
        floor = 1e-2 * std[a:b].mean()
        std[a:b] = np.maximum(std[a:b], floor if floor > 0 else 1.0)
    return scaler.mean_, std


@pytest.mark.parametrize("kind", ["power", "standardize", "power+standardize"])
def test_pooled_normalization_matches_numpy_reference(clips, kind):
    model = small(n_clusters=(12, 7, 3), pooling=("max", "mean"), pooled_normalization=kind).fit(clips)
    widths = model.n_features_per_level_
    mean = std = None
    if kind.endswith("standardize"):
        mean, std = standardization_reference(model, clips)
        assert_close(model.pooled_mean_, mean, rtol=1e-5, atol=1e-6)
        assert_close(model.pooled_std_, std, rtol=1e-4, atol=1e-6)
    else:
        assert model.pooled_mean_ is None and model.pooled_std_ is None
    y = np.concatenate([clips[1], clips[2]])[: int(17.3 * SR)]
    for last_window in ("drop", "keep", "pad"):
        F = model.transform(y, last_window=last_window)
        raw = raw_twin(model).transform(y, last_window=last_window)
        R = normalize_reference(raw, widths, kind, mean, std)
        assert F.dtype == np.float32 and F.shape == raw.shape
        assert_close(F, R, rtol=1e-4, atol=1e-5 * np.abs(R).max())
        if kind == "power":
            bounds = np.cumsum([0] + widths)
            for a, b in zip(bounds[:-1], bounds[1:]):
                assert_close(np.linalg.norm(F[:, a:b].astype(np.float64), axis=1), 1.0)
    # the training clips' own rows are standardised
    if kind == "standardize":
        rows = np.vstack([model.transform(c) for c in clips]).astype(np.float64)
        assert_close(rows.mean(axis=0), 0.0, atol=1e-4)


@pytest.mark.parametrize("last_window", ["drop", "keep", "pad"])
def test_pooled_normalization_whole_and_segmented_agree(monkeypatch, clips, last_window):
    model = small(levels=4, pooled_normalization="power+standardize").fit(clips)
    long_y = np.concatenate([clips[0], clips[2], clips[1], clips[0][::-1].copy()])  # 51 s
    with monkeypatch.context() as mp:
        mp.setattr(multiscale_module, "_WHOLE_FRAMES", 10**9)
        whole = model.transform(long_y, last_window=last_window)
        raw_whole = raw_twin(model).transform(long_y, last_window=last_window)
    monkeypatch.setattr(multiscale_module, "_WHOLE_FRAMES", 512)
    monkeypatch.setattr(multiscale_module, "_SEGMENT_FRAMES", 320)
    segmented = model.transform(long_y, last_window=last_window)
    assert segmented.shape == whole.shape == (model.n_pools(1 + len(long_y) // 512, last_window), 48)
    # equal up to the float32 rounding of the encoder's GEMMs, whose tiles differ
    assert_close(segmented, whole, rtol=1e-4, atol=1e-5 * float(np.abs(whole).max()))
    R = normalize_reference(raw_whole, model.n_features_per_level_, "power+standardize",
                            model.pooled_mean_, model.pooled_std_)
    assert_close(whole, R, rtol=1e-4, atol=1e-5 * np.abs(R).max())


def test_standardize_learns_from_a_seeded_sample_of_clips(monkeypatch, clips):
    monkeypatch.setattr(multiscale_module, "_STANDARDIZE_CLIPS", 2)
    model = small(pooled_normalization="standardize").fit(clips)
    again = small(pooled_normalization="standardize").fit(iter(clips))  # a generator: one pass
    np.testing.assert_array_equal(again.pooled_mean_, model.pooled_mean_)
    np.testing.assert_array_equal(again.pooled_std_, model.pooled_std_)
    pairs = [[clips[i], clips[j]] for i, j in ((0, 1), (0, 2), (1, 2))]
    matches = [np.allclose(standardization_reference(model, pair)[0], model.pooled_mean_, rtol=1e-5, atol=1e-6)
               for pair in pairs]
    assert sum(matches) == 1
    chosen = {tuple(map(bool, [
        np.allclose(standardization_reference(m, pair)[0], m.pooled_mean_, rtol=1e-5, atol=1e-6)
        for pair in pairs])) for m in (small(pooled_normalization="standardize", random_state=s).fit(clips)
                                       for s in range(6))}
    assert len(chosen) > 1  # the sample depends on random_state


def test_all_zero_rows_stay_finite(clips):
    """Codes that are all zero (a threshold above every code): no NaN, the std floor holds."""
    for kind in ("power", "power+standardize"):
        model = small(encoding="threshold", threshold=1e6, pooled_normalization=kind).fit(clips)
        F = model.transform(clips[0])
        np.testing.assert_array_equal(F, 0.0)
        if kind.endswith("standardize"):
            np.testing.assert_array_equal(model.pooled_std_, 1.0)


def test_standardize_save_load_and_crafted_files(clips, tmp_path):
    model = small(pooled_normalization="power+standardize").fit(clips)
    path = tmp_path / "std.npz"
    model.save(path)
    loaded = msk.MultiscaleFeatures.load(path)
    np.testing.assert_array_equal(loaded.pooled_mean_, model.pooled_mean_)
    np.testing.assert_array_equal(loaded.transform(clips[0], last_window="keep"),
                                  model.transform(clips[0], last_window="keep"))
    assert msk.store.model_fingerprint(loaded) == msk.store.model_fingerprint(model)
    with zipfile.ZipFile(path) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    assert {"pooled.mean_.npy", "pooled.std_.npy"} <= set(files)

    def npy(a):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(a))
        return buf.getvalue()

    def crafted(name, members=None, drop=(), params=None, drop_params=(), version=None, header_edit=None):
        """The saved file with members replaced or dropped and header parameters edited."""
        out = {k: v for k, v in files.items() if k not in drop}
        out.update(members or {})
        header = json.loads(np.lib.format.read_array(io.BytesIO(out["header.npy"])).tobytes().decode())
        header.update(header_edit or {})
        header["params"].update(params or {})
        for k in drop_params:
            del header["params"][k]
        if version is not None:
            header["format_version"] = version
        out["header.npy"] = npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for k, v in out.items():
                zf.writestr(k, v)
        return tmp_path / name

    zero = crafted("zero.npz", members={"pooled.std_.npy": npy(np.zeros(36))})
    with pytest.raises(ValueError, match="corrupt msk model file: pooled.std_ holds values that are not positive"):
        msk.MultiscaleFeatures.load(zero)
    short = crafted("short.npz", members={"pooled.std_.npy": npy(np.ones(35))})
    with pytest.raises(ValueError, match=r"pooled.std_ has shape \(35,\).*declares shape \(36,\)"):
        msk.MultiscaleFeatures.load(short)
    both = crafted("both.npz", members={"pooled.std_.npy": npy(np.ones(35)), "pooled.mean_.npy": npy(np.zeros(35))},
                   header_edit={"n_features_out": 35})
    with pytest.raises(ValueError, match="corrupt msk model file: pooled.mean_ and pooled.std_ hold 35 values for 36"):
        msk.MultiscaleFeatures.load(both)
    with pytest.raises(ValueError, match="missing arrays pooled.mean_"):
        msk.MultiscaleFeatures.load(crafted("gone.npz", drop=["pooled.mean_.npy"]))
    with pytest.raises(ValueError, match="unknown members 'pooled.mean_.npy'"):
        msk.MultiscaleFeatures.load(crafted("extra.npz", params={"pooled_normalization": "power"}))
    for param, value, match in (("pooled_normalization", "l2", "`pooled_normalization` must be one of"),
                                ("whitening", "pcaa", "`whitening` must be one of 'pca' or 'zca'"),
                                ("n_clusters", [12, 12], "`n_clusters` has 2 entries for levels=3"),
                                ("n_clusters", [12, 12, 1 << 30], r"`n_clusters\[2\]` must be an integer from 1")):
        with pytest.raises(ValueError, match="corrupt msk model file: " + match):
            msk.MultiscaleFeatures.load(crafted(f"{param}.npz", params={param: value}))
    # a file without the new parameters (format 2) loads with the old behaviour
    old = crafted("old.npz", drop=["pooled.mean_.npy", "pooled.std_.npy"],
                  drop_params=["pooled_normalization", "whitening"], version=2)
    old_model = msk.MultiscaleFeatures.load(old)
    assert (old_model.whitening, old_model.pooled_normalization) == ("pca", "none")
    np.testing.assert_array_equal(old_model.transform(clips[0]), raw_twin(model).transform(clips[0]))


def test_fitted_options_are_fixed(clips):
    model = small(pooled_normalization="power").fit(clips)
    for name, value in (("pooled_normalization", "none"), ("whitening", "zca")):
        with pytest.raises(ValueError, match=f"cannot change '{name}' of a fitted MultiscaleFeatures"):
            model.set_params(**{name: value})
    for name, value, match in (("pooled_normalization", "l2", "`pooled_normalization` must be one of 'none', "
                                "'power', 'standardize' or 'power\\+standardize'; got 'l2'"),
                               ("whitening", "pcaa", "`whitening` must be one of 'pca' or 'zca'; got 'pcaa'")):
        with pytest.raises(ValueError, match=match):
            small(**{name: value}).fit(clips)


# -- log compression ------------------------------------------------------------------------------


@pytest.mark.parametrize("representation", ["laplacian", "gaussian", "multiresolution"])
@pytest.mark.parametrize("C", [10.0, 1e4])
def test_log_offset_gives_the_features_of_log1p_compression(clips, representation, C):
    """log_offset = 1/C: the features, whitening and dictionaries of log1p(C * mel) compression.

    log1p(C mel) = log(C) + log(mel + 1/C): the reference computes log1p(C * mel) in NumPy,
    centres every level's windows with their own mean over all training windows (what a PCA
    fitted on them learns) and applies the fitted whitening and dictionaries; scikit-learn's PCA
    of those windows finds the model's eigenvalues.
    """
    from sklearn.decomposition import PCA

    model = small(representation, log_offset=1.0 / C, width=2).fit(clips)
    train = [levels_of(model, y, log1p_scale=C) for y in clips]
    means = []
    for lev, pca in enumerate(model.pca_):
        X = np.vstack([windows(L[lev], 2) for L in train])
        assert pca.n_samples_ == X.shape[0]  # every window
        means.append(X.mean(axis=0))
        ref = PCA(n_components=pca.n_components_, svd_solver="full").fit(X)
        # float32 spectrograms against float64 log1p: relative to the largest eigenvalue
        assert_close(pca.explained_variance_, ref.explained_variance_, rtol=1e-3,
                     atol=1e-4 * ref.explained_variance_[0])
    F = model.transform(clips[1])
    R = reference_rows(model, levels_of(model, clips[1], log1p_scale=C), means)
    assert F.shape == R.shape
    assert_close(F, R, rtol=1e-3, atol=1e-3 * np.abs(R).max())
    # the constant log(C) is where the claim says: every level's mean for the Gaussian pyramid
    # and the multiresolution levels, only the coarsest Laplacian level
    for lev, pca in enumerate(model.pca_):
        carries = representation != "laplacian" or lev == model.levels - 1
        assert_close(means[lev] - pca.mean_, np.log(C) if carries else 0.0, rtol=1e-4, atol=1e-3)


# -- the envelope: each band's mean power over a row's seconds -------------------------------------


def envelope_reference(model, y, last_window):
    """log(mean(mel)) per band over frames r * pool_size .. (r + 1) * pool_size (float64, scipy)."""
    from scipy.special import logsumexp

    n_frames = 1 + len(y) // model.hop_length
    if last_window == "pad":
        padded = (model._pad_frames(n_frames) - 1) * model.hop_length
        y = np.concatenate([y, np.zeros(max(0, padded - len(y)), y.dtype)])
    S = msk.log_melspectrogram(y, sr=SR, log_offset=model.log_offset).astype(np.float64)
    P = model.pool_size
    rows = model.n_pools(n_frames, last_window)
    return np.stack([logsumexp(S[r * P: min((r + 1) * P, len(S))], axis=0) - np.log(min((r + 1) * P, len(S)) - r * P)
                     for r in range(rows)])


@pytest.mark.parametrize("representation", ["laplacian", "gaussian", "multiresolution"])
def test_envelope_matches_numpy_reference(clips, representation):
    model = small(representation, envelope=True).fit(clips)
    plain = small(representation).fit(clips)  # the same codes: fitting does not look at the envelope
    assert model.n_features_out_ == plain.n_features_out_ + model.n_mels_ == 3 * 12 + 200
    assert model.n_features_per_level_ == plain.n_features_per_level_
    y = np.concatenate([clips[1], clips[2]])[: int(17.3 * SR)]
    for last_window in ("drop", "keep", "pad"):
        F = model.transform(y, last_window=last_window)
        np.testing.assert_array_equal(F[:, :36], plain.transform(y, last_window=last_window))
        want = envelope_reference(model, y, last_window)
        assert F.shape == (want.shape[0], 236) and F.dtype == np.float32
        assert_close(F[:, 36:], want, rtol=1e-5, atol=1e-4)
    # 20 dB quieter: the envelope of every band well above the log offset's floor drops by log(0.01)
    loud, quiet = model.transform(y)[:, 36:], model.transform(0.1 * y)[:, 36:]
    audible = loud > np.log(model.log_offset) + 10
    assert audible.mean() > 0.5
    assert_close((quiet - loud)[audible], np.full(audible.sum(), 2 * np.log(0.1)), atol=0.01)


def test_envelope_of_a_spectrogram_and_far_from_zero(clips):
    """Spectrograms given directly: the same rows, and values far beyond exp's float32 range stay finite."""
    model = small("gaussian", envelope=True, levels=2).fit(clips)
    y = clips[0]
    S = msk.log_melspectrogram(y, sr=SR)
    assert_close(model.transform(S)[:, -200:], model.transform(y)[:, -200:], rtol=1e-6, atol=1e-5)
    for last_window in ("drop", "keep", "pad"):
        F = model.transform(S + 500.0, last_window=last_window)
        assert np.isfinite(F).all()
        want = envelope_reference(model, y, last_window) + 500.0 if last_window != "pad" else None
        if want is not None:
            assert_close(F[:, -200:], want, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("representation", ["laplacian", "multiresolution"])
@pytest.mark.parametrize("last_window", ["drop", "keep", "pad"])
def test_envelope_whole_and_segmented_agree(monkeypatch, clips, representation, last_window):
    model = small(representation, envelope=True).fit(clips)
    long_y = np.concatenate([clips[0], clips[2], clips[1], clips[0][::-1].copy()])  # 51 s
    with monkeypatch.context() as mp:
        mp.setattr(multiscale_module, "_WHOLE_FRAMES", 10**9)
        whole = model.transform(long_y, last_window=last_window)
    monkeypatch.setattr(multiscale_module, "_WHOLE_FRAMES", 512)
    monkeypatch.setattr(multiscale_module, "_SEGMENT_FRAMES", 320)
    monkeypatch.setattr(multiscale_module, "_SEGMENT_FRAMES_MULTIRES", 128)
    segmented = model.transform(long_y, last_window=last_window)
    assert segmented.shape == whole.shape
    # the envelope comes from the same frames, bit for bit; the codes up to the GEMMs' rounding
    np.testing.assert_array_equal(segmented[:, 36:], whole[:, 36:])
    assert_close(segmented[:, :36], whole[:, :36], rtol=1e-4, atol=1e-5 * float(np.abs(whole).max()))
    assert_close(whole[:, 36:], envelope_reference(model, long_y, last_window), rtol=1e-5, atol=1e-4)


def test_envelope_under_pooled_normalization(clips):
    """"power" leaves the envelope's columns as they are; "standardize" gives them their own floor block."""
    model = small(envelope=True, pooled_normalization="power+standardize").fit(clips)
    raw = raw_twin(model)
    y = clips[2]
    R = raw.transform(y).astype(np.float64)
    codes = normalize_reference(R[:, :36], model.n_features_per_level_, "power")
    rows = np.vstack([raw.transform(c) for c in clips]).astype(np.float64)
    env_rows = rows[:, 36:]
    assert_close(model.pooled_mean_[36:], env_rows.mean(axis=0), rtol=1e-5, atol=1e-5)
    std = env_rows.std(axis=0)
    assert_close(model.pooled_std_[36:], np.maximum(std, 1e-2 * std.mean()), rtol=1e-4, atol=1e-6)
    want = (np.hstack([codes, R[:, 36:]]) - model.pooled_mean_) / model.pooled_std_
    assert_close(model.transform(y), want, rtol=1e-4, atol=1e-4)


def test_envelope_model_files(clips, tmp_path):
    model = small(envelope=True).fit(clips)
    path = tmp_path / "env.npz"
    model.save(path)
    loaded = msk.MultiscaleFeatures.load(path)
    assert loaded.envelope is True and loaded.n_features_out_ == 236
    np.testing.assert_array_equal(loaded.transform(clips[0]), model.transform(clips[0]))
    plain = small().fit(clips)
    assert msk._persist.model_fingerprint(model) != msk._persist.model_fingerprint(plain)
    # a file written before the parameter existed loads without the envelope, with its fingerprint
    plain.save(tmp_path / "plain.npz")
    with zipfile.ZipFile(tmp_path / "plain.npz") as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    header = json.loads(np.lib.format.read_array(io.BytesIO(files["header.npy"])).tobytes())
    assert header["params"]["envelope"] is False
    for version, edit in ((3, lambda h: h["params"].pop("envelope")), (4, lambda h: h["params"].update(envelope="yes"))):
        h = copy.deepcopy(header)
        h["format_version"] = version
        edit(h)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.frombuffer(json.dumps(h).encode(), dtype=np.uint8))
        out = tmp_path / f"v{version}.npz"
        with zipfile.ZipFile(out, "w") as zf:
            for name, data in {**files, "header.npy": buf.getvalue()}.items():
                zf.writestr(name, data)
        if version == 3:
            old = msk.MultiscaleFeatures.load(out)
            assert old.envelope is False
            assert msk._persist.model_fingerprint(old) == msk._persist.model_fingerprint(plain)
            np.testing.assert_array_equal(old.transform(clips[1]), plain.transform(clips[1]))
        else:
            with pytest.raises(ValueError, match=r"corrupt msk model file.*`envelope` must be true or false"):
                msk.MultiscaleFeatures.load(out)


def test_envelope_parameter_is_checked(clips, tmp_path, capsys):
    with pytest.raises(TypeError, match=r"`envelope` must be True or False; got 'yes'"):
        small(envelope="yes").fit(clips)
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, y in enumerate(clips):
        sf.write(folder / f"c{i}.wav", y, SR, subtype="FLOAT")
    out = tmp_path / "m.npz"
    assert main(["fit", str(folder), "-o", str(out), "--levels", "2", "--n-clusters", "4", "--n-samples", "2000",
                 "--max-iter", "2", "--envelope", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["n_features"] == 2 * 4 + 200
    assert msk.MultiscaleFeatures.load(out).envelope is True
