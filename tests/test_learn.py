"""PCAWhitening against scikit-learn's PCA(whiten=True)."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

import msk
import msk.pca as pca_module

from conftest import assert_close

DTYPES = [np.float32, np.float64]


def correlated(rng, n, d, dtype=np.float64, offset=5.0):
    """Correlated data with a spread of variances and a non-zero mean."""
    A = rng.standard_normal((d, d)) * np.logspace(0, -2, d)[:, None]
    return (rng.standard_normal((n, d)) @ A + offset).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variance", [0.9, 0.99, None])
def test_matches_sklearn_pca_whiten(rng, dtype, variance):
    X = correlated(rng, 2000, 12, dtype)
    ours = msk.PCAWhitening(variance=variance, eps=0.0).fit(X)
    ref = PCA(n_components=ours.n_components_, whiten=True, svd_solver="full").fit(X.astype(np.float64))
    if variance is not None:
        assert ours.n_components_ == PCA(n_components=variance, svd_solver="full").fit(X).n_components_
    else:
        assert ours.n_components_ == 12
    # Same sign convention (largest-|.| entry of each component positive): no flips needed.
    assert_close(ours.components_, ref.components_, atol=1e-6)
    assert_close(ours.explained_variance_, ref.explained_variance_)
    assert_close(ours.explained_variance_ratio_, ref.explained_variance_ratio_)
    assert_close(ours.mean_, ref.mean_)
    Z = ours.transform(X)
    assert Z.dtype == dtype
    # float32: the input itself is rounded at 6e-8 relative to its mean of 5
    assert_close(Z, ref.transform(X.astype(np.float64)), atol=2e-4 if dtype == np.float32 else 1e-9)
    assert_close(ours.inverse_transform(Z), ref.inverse_transform(ref.transform(X.astype(np.float64))),
                 atol=1e-4 if dtype == np.float32 else 1e-9)


def test_whitened_data_have_identity_covariance(rng):
    X = correlated(rng, 5000, 10)
    Z = msk.PCAWhitening(variance=None, eps=0.0).fit_transform(X)
    assert_close(np.cov(Z, rowvar=False), np.eye(10), atol=1e-9)
    assert_close(Z.mean(axis=0), np.zeros(10), atol=1e-9)


def test_fewest_components_exceeding_the_variance(rng):
    X = correlated(rng, 3000, 15)
    for variance in (0.5, 0.8, 0.95, 0.999):
        pca = msk.PCAWhitening(variance=variance).fit(X)
        cum = np.cumsum(pca.explained_variance_ratio_)
        assert cum[-1] > variance
        assert pca.n_components_ == 1 or cum[-2] <= variance


def test_eps_is_relative_to_the_mean_eigenvalue(rng):
    X = correlated(rng, 2000, 8)
    pca = msk.PCAWhitening(variance=None, eps=0.1).fit(X)
    evals = np.linalg.eigvalsh(np.cov(X, rowvar=False))
    assert_close(pca.eps_, 0.1 * evals.mean())
    assert_close(pca.eps_, 0.1 * np.trace(np.cov(X, rowvar=False)) / 8)
    Z = pca.transform(X)
    # Each whitened component has variance lambda / (lambda + eps_) < 1.
    lam = pca.explained_variance_
    assert_close(Z.var(axis=0, ddof=1), lam / (lam + pca.eps_))
    assert_close(pca.whitening_, pca.components_ / np.sqrt(lam + pca.eps_)[:, None])
    # eps scales with the data: the whitened output does not.
    assert_close(msk.PCAWhitening(variance=None, eps=0.1).fit(7.0 * X).transform(7.0 * X), Z, atol=1e-9)
    # With the regulariser the round trip is still exact when every component is kept.
    assert_close(pca.inverse_transform(Z), X)


def test_rank_deficient_data_drop_zero_variance_directions(rng):
    base = rng.standard_normal((400, 3))
    X = np.hstack([base, base @ rng.standard_normal((3, 4))])  # rank 3 in 7 dimensions
    pca = msk.PCAWhitening(variance=None, eps=0.0).fit(X)
    assert pca.n_components_ == 3
    assert np.all(np.isfinite(pca.whitening_))
    assert_close(np.cov(pca.transform(X), rowvar=False), np.eye(3), atol=1e-9)


def test_covariance_is_accumulated_over_chunks(rng, monkeypatch):
    X = correlated(rng, 2500, 9, np.float32)
    whole = msk.PCAWhitening(variance=None, eps=0.0).fit(X)
    monkeypatch.setattr(pca_module, "_ROW_CHUNK", 333)  # 2500 rows: 7 full chunks and a partial one
    chunked = msk.PCAWhitening(variance=None, eps=0.0).fit(X)
    # float64 accumulation: only summation order differs (atol: eigenvalues span 7 decades)
    assert_close(chunked.explained_variance_, whole.explained_variance_, rtol=1e-10, atol=1e-12)
    oracle = np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False))[::-1]
    assert_close(chunked.explained_variance_, oracle, rtol=1e-10, atol=1e-12)
    assert_close(chunked.transform(X), whole.transform(X), atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_memory_layouts_give_identical_results(rng, dtype):
    X = correlated(rng, 600, 6, dtype)
    ref = msk.PCAWhitening().fit(X)
    for other in (np.asfortranarray(X), np.repeat(X, 2, axis=1)[:, ::2]):
        pca = msk.PCAWhitening().fit(other)
        np.testing.assert_array_equal(pca.whitening_, ref.whitening_)
        np.testing.assert_array_equal(pca.transform(other), ref.transform(X))


@pytest.mark.parametrize("dtype", [np.int64, np.float16])
def test_other_dtypes_become_float64(rng, dtype):
    X = (correlated(rng, 300, 5) * 10).astype(dtype)
    assert msk.PCAWhitening().fit(X).transform(X).dtype == np.float64


def test_float32_and_float64_agree(rng):
    X = correlated(rng, 3000, 10, offset=0.0)
    Z64 = msk.PCAWhitening(variance=0.99).fit_transform(X)
    Z32 = msk.PCAWhitening(variance=0.99).fit_transform(X.astype(np.float32))
    assert Z32.dtype == np.float32
    assert_close(Z32, Z64, atol=1e-4)


def test_fit_transform_equals_fit_then_transform(rng):
    X = correlated(rng, 500, 7)
    pca = msk.PCAWhitening(variance=0.95, eps=1e-3)
    np.testing.assert_array_equal(pca.fit_transform(X), pca.fit(X).transform(X))


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(variance=0.0), ValueError, r"`variance` must be a finite number in \(0.0, 1.0\]; got 0.0"),
        (dict(variance=1.5), ValueError, "`variance` must be a finite number in"),
        (dict(variance="all"), TypeError, "`variance` must be a real number"),
        (dict(eps=-1e-3), ValueError, "`eps` must be a finite number in"),
        (dict(eps=np.nan), ValueError, "`eps` must be a finite number"),
        (dict(whitening="pcaa"), ValueError, "`whitening` must be one of 'pca' or 'zca'; got 'pcaa'"),
    ],
)
def test_bad_parameters_are_rejected(rng, params, error, match):
    with pytest.raises(error, match=match):
        msk.PCAWhitening(**params).fit(correlated(rng, 50, 3))


def test_bad_data_are_rejected(rng):
    X = correlated(rng, 50, 3)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        msk.PCAWhitening().fit(bad)
    with pytest.raises(ValueError, match="`X` must be a 2-D array"):
        msk.PCAWhitening().fit(X[:, 0])
    with pytest.raises(ValueError, match="1 sample"):
        msk.PCAWhitening().fit(X[:1])
    with pytest.raises(ValueError, match="`X` has zero variance"):
        msk.PCAWhitening().fit(np.ones((10, 3)))
    pca = msk.PCAWhitening().fit(X)
    with pytest.raises(ValueError, match="X has 2 features, but PCAWhitening is expecting 3"):
        pca.transform(X[:, :2])
    with pytest.raises(ValueError, match="Input X contains infinity"):
        pca.transform(np.where(np.isnan(bad), np.inf, bad))
    with pytest.raises(ValueError, match=r"`X` must have n_features_out_=\d+ columns"):
        pca.inverse_transform(np.ones((2, pca.n_components_ + 1)))



# -- ZCA whitening ---------------------------------------------------------------------------


def zca_reference(X, variance, eps):
    """ZCA whitening in plain NumPy: eigh of the covariance, U^T diag(1/sqrt(lambda + eps)) U."""
    X = X.astype(np.float64)
    mean = X.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(X, rowvar=False))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    k = X.shape[1] if variance is None else int(np.searchsorted(np.cumsum(evals) / evals.sum(), variance,
                                                                   side="right")) + 1
    U = evecs[:, :k].T  # (k, d), orthonormal rows
    eps_abs = eps * evals.sum() / X.shape[1]
    W = U.T @ np.diag(1.0 / np.sqrt(evals[:k] + eps_abs)) @ U
    return (X - mean) @ W.T, W, k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variance, eps", [(None, 0.0), (0.95, 1e-3), (0.99, 1e-5)])
def test_zca_matches_numpy_eigh_reference(rng, dtype, variance, eps):
    X = correlated(rng, 3000, 10, dtype)
    zca = msk.PCAWhitening(variance=variance, eps=eps, whitening="zca").fit(X)
    Z = zca.transform(X)
    R, W, k = zca_reference(X, variance, eps)
    assert zca.n_components_ == k and zca.n_features_out_ == 10
    assert Z.shape == (3000, 10) and Z.dtype == dtype
    # ZCA is unique (no sign choice): the matrices agree directly; W is symmetric
    assert_close(zca.whitening_, W, rtol=1e-6, atol=1e-6 * np.abs(W).max())
    assert_close(zca.whitening_, zca.whitening_.T, atol=1e-12 * np.abs(W).max())
    # float32: the input itself is rounded at 6e-8 relative to its mean of 5
    assert_close(Z, R, atol=2e-4 if dtype == np.float32 else 1e-7)
    if variance is None and eps == 0.0:
        assert_close(np.cov(Z.astype(np.float64), rowvar=False), np.eye(10), atol=1e-4 if dtype == np.float32 else 1e-9)
        assert_close(zca.inverse_transform(Z), X, atol=1e-3 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("variance", [0.9, None])
def test_zca_is_pca_rotated(rng, variance):
    """ZCA output = PCA output times U (orthonormal rows): an orthogonal map of the whitened space."""
    X = correlated(rng, 2000, 12)
    pca = msk.PCAWhitening(variance=variance, eps=1e-4).fit(X)
    zca = msk.PCAWhitening(variance=variance, eps=1e-4, whitening="zca").fit(X)
    P, Z = pca.transform(X), zca.transform(X)
    U = pca.components_
    assert_close(U @ U.T, np.eye(pca.n_components_), atol=1e-12)
    assert_close(Z, P @ U, atol=1e-9)
    assert_close(Z @ U.T, P, atol=1e-9)
    # an isometry: distances and dot products between rows are kept
    assert_close(Z[:50] @ Z[50:100].T, P[:50] @ P[50:100].T, atol=1e-8)
    assert_close(np.linalg.norm(Z, axis=1), np.linalg.norm(P, axis=1))
    # the round trip is the projection onto the kept components, as for PCA
    assert_close(zca.inverse_transform(Z), pca.inverse_transform(P), atol=1e-9)
    assert list(zca.get_feature_names_out()) == [f"pcawhitening{i}" for i in range(12)]
