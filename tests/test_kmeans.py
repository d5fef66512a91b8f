"""Spherical K-means: the compiled kernel against NumPy, the estimator against the reference."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from threadpoolctl import threadpool_info, threadpool_limits

import msk
from msk._core import _kmeans
from msk.kmeans import _damped_update

from _reference import spherical_kmeans
from conftest import assert_close

DTYPES = [np.float32, np.float64]


def unit_rows(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def directional_data(rng, n, p, k, dtype, noise=0.05):
    """Samples along k directions, random gain and sign, plus a little noise.

    Returns the data and the true directions; starting from near them, every
    assignment has a wide margin, so float32 and float64 runs follow the same path.
    """
    C = unit_rows(rng.standard_normal((k, p)))
    z = rng.integers(k, size=n)
    gain = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    X = gain[:, None] * C[z] + noise * rng.standard_normal((n, p))
    return X.astype(dtype), C


def workspace(tile, K, dtype):
    # exactly the documented minimum sizes, so that an overrun would corrupt the guard values
    work = np.full(tile * K + 16, 7.0, dtype=dtype)
    order = np.full(tile + K + 1 + 16, -7, dtype=np.int32)
    return work, order


def run_kernel(X, D, tile, accumulate=True):
    n, K = X.shape[0], D.shape[0]
    work, order = workspace(min(tile, n), K, X.dtype)
    labels = np.full(n, -1, dtype=np.int32)
    values = np.full(n, np.nan, dtype=X.dtype)
    accum = np.zeros((K, X.shape[1]), dtype=X.dtype) if accumulate else None
    energy = np.zeros(1)
    status = _kmeans.assign_update(X, D, tile, labels, values, accum, energy, work[:-16], order[:-16])
    assert np.all(work[-16:] == 7.0) and np.all(order[-16:] == -7)
    return status, labels, values, accum, energy[0]


def check_assignment(X, D, labels, values, accum, energy):
    """Kernel output against float64 NumPy: argmax |X . D^T|, signed value, S^T X."""
    P = X.astype(np.float64) @ D.astype(np.float64).T
    A = np.abs(P)
    rows = np.arange(len(X))
    best = A.max(axis=1)
    # float32 GEMMs round differently from the float64 oracle: where the top two
    # magnitudes are closer than that rounding, either choice is correct.
    tol = 1e-5 * best.max() if X.dtype == np.float32 else 1e-12 * best.max()
    assert np.all(A[rows, labels] >= best - tol)
    second = np.partition(A, -2, axis=1)[:, -2] if D.shape[0] > 1 else np.zeros(len(X))
    clear = best - second > tol
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(labels[clear], A[clear].argmax(axis=1))
    assert_close(values, P[rows, labels], atol=tol)
    assert_close(energy, np.sum(values.astype(np.float64) ** 2))
    if accum is not None:
        expected = np.zeros(D.shape, dtype=np.float64)
        np.add.at(expected, labels, values[:, None].astype(np.float64) * X)
        assert_close(accum, expected, atol=tol * 10)


# ----- the kernel --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", [1, 7, 129, 300, 1000])
@pytest.mark.parametrize("K", [1, 37, 160])
def test_kernel_matches_numpy(rng, dtype, tile, K):
    # n = 1000 is not a multiple of the tiles (except 1000 itself) nor of the
    # kernel's 128/64-sample register blocks; K = 37 is not a multiple of the vector width.
    X = rng.standard_normal((1000, 23)).astype(dtype)
    D = unit_rows(rng.standard_normal((K, 23))).astype(dtype)
    status, labels, values, accum, energy = run_kernel(X, D, tile)
    assert status == 0
    check_assignment(X, D, labels, values, accum, energy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_assign_only_leaves_no_accumulator(rng, dtype):
    X = rng.standard_normal((500, 9)).astype(dtype)
    D = unit_rows(rng.standard_normal((20, 9))).astype(dtype)
    full = run_kernel(X, D, 64)
    only = run_kernel(X, D, 64, accumulate=False)
    np.testing.assert_array_equal(full[1], only[1])
    np.testing.assert_array_equal(full[2], only[2])
    assert only[3] is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_accumulates_into_existing_values(rng, dtype):
    X = rng.standard_normal((300, 6)).astype(dtype)
    D = unit_rows(rng.standard_normal((5, 6))).astype(dtype)
    _, labels, values, accum, _ = run_kernel(X, D, 50)
    again = accum.copy()
    _kmeans.assign_update(X, D, 50, labels, values, again, np.zeros(1), *workspace(50, 5, dtype))
    assert_close(again, 2 * accum, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_ties_and_zero_rows_go_to_first_centroid(rng, dtype):
    X = rng.standard_normal((400, 8)).astype(dtype)
    X[::7] = 0.0
    D = unit_rows(rng.standard_normal((40, 8)))
    D[25] = D[3]  # exact tie: 25 must never win over 3
    D[30] = -D[3]  # tie in magnitude with the opposite sign: 3 wins, value signed
    D = D.astype(dtype)
    _, labels, values, _, _ = run_kernel(X, D, 128)
    assert not np.isin(labels, [25, 30]).any()
    assert np.all(labels[::7] == 0) and np.all(values[::7] == 0)
    assert np.any(labels == 3)
    assert np.all(np.sign(values[labels == 3]) == np.sign((X[labels == 3] @ D[3])))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kernel_reports_non_finite_rows(rng, dtype, bad):
    X = rng.standard_normal((300, 10)).astype(dtype)
    X[17, 4] = bad
    X[250, 0] = bad
    D = unit_rows(rng.standard_normal((33, 10))).astype(dtype)
    assert run_kernel(X, D, 64)[0] == 2


def test_kernel_rejects_arrays_outside_its_contract(rng):
    """Python owns coercion: a wrong array reaching the kernel fails loudly."""
    X = rng.standard_normal((50, 6))
    D = unit_rows(rng.standard_normal((4, 6)))
    labels, values, energy = np.empty(50, np.int32), np.empty(50), np.zeros(1)
    with pytest.raises(ValueError, match="contiguous"):
        _kmeans.assign_update(np.asfortranarray(X), D, 8, labels, values, None, energy, *workspace(8, 4, X.dtype))
    with pytest.raises(ValueError, match="dtype mismatch"):
        _kmeans.assign_update(X.astype(np.float32), D, 8, labels, values, None, energy, *workspace(8, 4, X.dtype))


def test_kernel_from_a_thread_pool_matches_serial(rng):
    """The kernel releases the GIL and keeps no shared state."""
    jobs = []
    for i in range(8):
        dtype = DTYPES[i % 2]
        X = rng.standard_normal((3000, 40)).astype(dtype)
        D = unit_rows(rng.standard_normal((50, 40))).astype(dtype)
        jobs.append((X, D))
    with threadpool_limits(1):
        serial = [run_kernel(X, D, 256) for X, D in jobs]
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda job: run_kernel(*job, 256), jobs))
    for s, t in zip(serial, threaded):
        for a, b in zip(s[1:4], t[1:4]):
            np.testing.assert_array_equal(a, b)


# ----- the estimator against the reference --------------------------------------------


@pytest.mark.parametrize("max_iter", [1, 4])
def test_fit_matches_reference_from_random_init(rng, max_iter):
    X = rng.standard_normal((3000, 12))
    init = rng.standard_normal((25, 12))
    km = msk.SphericalKMeans(n_clusters=25, max_iter=max_iter, init=init).fit(X)
    D, labels, n_iter = spherical_kmeans(X, init, max_iter)
    assert km.n_iter_ == n_iter == max_iter
    assert_close(km.cluster_centers_, D, atol=1e-12)
    np.testing.assert_array_equal(km.labels_, labels)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_matches_reference_in_both_precisions(rng, dtype):
    X, C = directional_data(rng, 6000, 24, 10, dtype)
    init = C + 0.3 * rng.standard_normal(C.shape)
    km = msk.SphericalKMeans(n_clusters=10, max_iter=6, init=init).fit(X)
    D, labels, n_iter = spherical_kmeans(X, init, 6)
    assert km.cluster_centers_.dtype == dtype
    assert km.n_iter_ == n_iter
    np.testing.assert_array_equal(km.labels_, labels)
    # float32: the sums of ~600 samples per centroid round at ~1e-7 relative per step
    assert_close(km.cluster_centers_, D, atol=1e-6 if dtype == np.float32 else 1e-12)


def test_fit_stops_when_assignments_stop_changing(rng):
    X, C = directional_data(rng, 2000, 8, 4, np.float64)
    km = msk.SphericalKMeans(n_clusters=4, max_iter=100, init=C).fit(X)
    D, labels, n_iter = spherical_kmeans(X, C, 100)
    assert 1 <= km.n_iter_ == n_iter < 100
    assert_close(km.cluster_centers_, D, atol=1e-12)


def test_tol_allows_a_fraction_of_changes(rng):
    X = rng.standard_normal((2000, 10))
    init = rng.standard_normal((30, 10))
    strict = msk.SphericalKMeans(n_clusters=30, max_iter=50, init=init).fit(X)
    loose = msk.SphericalKMeans(n_clusters=30, max_iter=50, tol=0.05, init=init).fit(X)
    D, _, n_iter = spherical_kmeans(X, init, 50, tol=0.05)
    assert loose.n_iter_ == n_iter <= strict.n_iter_
    assert_close(loose.cluster_centers_, D, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_memory_layouts_give_identical_results(rng, dtype):
    base = rng.standard_normal((1201, 14)).astype(dtype)
    kw = dict(n_clusters=12, max_iter=3, random_state=0)
    ref = msk.SphericalKMeans(**kw).fit(base)
    fortran = msk.SphericalKMeans(**kw).fit(np.asfortranarray(base))
    np.testing.assert_array_equal(fortran.cluster_centers_, ref.cluster_centers_)
    wide = np.zeros((1201, 28), dtype=dtype)
    wide[:, ::2] = base
    strided = msk.SphericalKMeans(**kw).fit(wide[:, ::2])
    np.testing.assert_array_equal(strided.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(ref.predict(np.asfortranarray(base)), ref.labels_)


def test_float32_and_float64_agree(rng):
    X, C = directional_data(rng, 3000, 16, 6, np.float64)
    init = C + 0.2 * rng.standard_normal(C.shape)
    k64 = msk.SphericalKMeans(n_clusters=6, max_iter=5, init=init).fit(X)
    k32 = msk.SphericalKMeans(n_clusters=6, max_iter=5, init=init).fit(X.astype(np.float32))
    np.testing.assert_array_equal(k32.labels_, k64.labels_)
    assert_close(k32.cluster_centers_, k64.cluster_centers_, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.int32])
def test_other_dtypes_become_float64(rng, dtype):
    X = (rng.standard_normal((200, 5)) * 10).astype(dtype)
    km = msk.SphericalKMeans(n_clusters=4, max_iter=2, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float64
    assert km.transform(X).dtype == np.float64


# ----- properties of the result ----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_centroids_are_unit_norm_and_methods_agree(rng, dtype):
    X = rng.standard_normal((5000, 30)).astype(dtype)
    km = msk.SphericalKMeans(n_clusters=64, max_iter=5, random_state=1).fit(X)
    D = km.cluster_centers_
    assert_close(np.linalg.norm(D.astype(np.float64), axis=1), np.ones(64))
    F = km.transform(X)
    assert F.dtype == dtype and F.shape == (5000, 64)
    assert_close(F, X.astype(np.float64) @ D.astype(np.float64).T, atol=1e-5)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_array_equal(km.fit_predict(X), km.labels_)
    best = np.abs(F.astype(np.float64)).max(axis=1)
    expected = np.sum(X.astype(np.float64) ** 2) - np.sum(best**2)
    assert_close(km.inertia_, expected)
    assert_close(km.score(X), -expected)


@settings(max_examples=25, deadline=None)
@given(
    X=arrays(np.float64, st.tuples(st.integers(4, 40), st.integers(1, 6)),
             elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)),
    k=st.integers(1, 4),
)
def test_property_unit_norm_and_labels_in_range(X, k):
    km = msk.SphericalKMeans(n_clusters=k, max_iter=3, random_state=0).fit(X)
    assert np.all(np.isfinite(km.cluster_centers_))
    assert_close(np.linalg.norm(km.cluster_centers_, axis=1), np.ones(k))
    assert km.labels_.min() >= 0 and km.labels_.max() < k


def test_damping_keeps_empty_clusters_finite(rng):
    # The data span the first three axes; centroids along axes 3 and 4 project every
    # sample to 0, never win, and must stay exactly where they are.
    X = np.zeros((500, 5))
    X[:, :3] = rng.standard_normal((500, 3))
    init = np.eye(5)
    km = msk.SphericalKMeans(n_clusters=5, max_iter=10, init=init).fit(X)
    assert not np.isin(km.labels_, [3, 4]).any()
    np.testing.assert_array_equal(km.cluster_centers_[3:], np.eye(5)[3:])
    assert np.all(np.isfinite(km.cluster_centers_))
    assert_close(np.linalg.norm(km.cluster_centers_, axis=1), np.ones(5))


def test_update_that_cancels_a_centroid_keeps_the_old_one():
    centers = unit_rows(np.array([[1.0, 2.0], [3.0, -1.0]]))
    update = np.array([[0.5, 0.5], [0.0, 0.0]]) - np.array([[0.0, 0.0], centers[1]])
    new = _damped_update(centers, update)
    np.testing.assert_array_equal(new[1], centers[1])
    assert_close(new[0], unit_rows(centers[:1] + [[0.5, 0.5]])[0])


# ----- partial_fit -----------------------------------------------------------------


def test_partial_fit_is_one_fit_iteration(rng):
    X = rng.standard_normal((700, 9))
    init = rng.standard_normal((15, 9))
    pf = msk.SphericalKMeans(n_clusters=15, init=init).partial_fit(X)
    D, _, _ = spherical_kmeans(X, init, 1)
    assert pf.n_steps_ == 1
    assert_close(pf.cluster_centers_, D, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_partial_fit_on_batches_reaches_the_fit_objective(rng, dtype):
    X, _ = directional_data(rng, 20000, 16, 20, dtype, noise=0.2)
    fit = msk.SphericalKMeans(n_clusters=20, max_iter=20, random_state=0).fit(X)
    pf = msk.SphericalKMeans(n_clusters=20, random_state=0)
    for epoch in range(3):
        for batch in np.array_split(rng.permutation(len(X)), 40):
            pf.partial_fit(X[batch])
    assert pf.n_steps_ == 120
    assert pf.cluster_centers_.dtype == dtype
    # Both reach a comparable reconstruction error (within 5 %).
    assert pf.score(X) >= 1.05 * fit.score(X)
    assert_close(np.linalg.norm(pf.cluster_centers_.astype(np.float64), axis=1), np.ones(20))


def test_partial_fit_accepts_batches_smaller_than_n_clusters(rng):
    km = msk.SphericalKMeans(n_clusters=50, random_state=0)
    km.partial_fit(rng.standard_normal((10, 4)))
    km.partial_fit(rng.standard_normal((3, 4)))
    assert km.cluster_centers_.shape == (50, 4) and km.n_steps_ == 2
    with pytest.raises(ValueError, match="X has 5 features"):
        km.partial_fit(rng.standard_normal((3, 5)))


# ----- determinism and threads -------------------------------------------------------


def test_random_state_determines_the_result(rng):
    X = rng.standard_normal((2000, 10)).astype(np.float32)
    a = msk.SphericalKMeans(n_clusters=16, max_iter=4, random_state=3).fit(X)
    b = msk.SphericalKMeans(n_clusters=16, max_iter=4, random_state=3).fit(X)
    c = msk.SphericalKMeans(n_clusters=16, max_iter=4, random_state=4).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert not np.allclose(a.cluster_centers_, c.cluster_centers_)
    rs = np.random.RandomState(7)
    d = msk.SphericalKMeans(n_clusters=16, max_iter=1, random_state=rs).fit(X)
    e = msk.SphericalKMeans(n_clusters=16, max_iter=1, random_state=np.random.RandomState(7)).fit(X)
    np.testing.assert_array_equal(d.cluster_centers_, e.cluster_centers_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_result_does_not_depend_on_the_thread_count(rng, dtype):
    # 20 000 rows span several row chunks, which run on as many threads as BLAS may use.
    X = rng.standard_normal((20000, 12)).astype(dtype)
    kw = dict(n_clusters=40, max_iter=3, random_state=0)
    with threadpool_limits(1):
        one = msk.SphericalKMeans(**kw).fit(X)
    with threadpool_limits(2):
        two = msk.SphericalKMeans(**kw).fit(X)
        pf = msk.SphericalKMeans(**kw).partial_fit(X)
    with threadpool_limits(1):
        pf1 = msk.SphericalKMeans(**kw).partial_fit(X)
    np.testing.assert_array_equal(one.cluster_centers_, two.cluster_centers_)
    np.testing.assert_array_equal(one.labels_, two.labels_)
    np.testing.assert_array_equal(pf.cluster_centers_, pf1.cluster_centers_)


def test_concurrent_fits_from_a_thread_pool(rng):
    data = [rng.standard_normal((6000, 10)) for _ in range(4)]

    def fit(X):
        return msk.SphericalKMeans(n_clusters=20, max_iter=3, random_state=0).fit(X).cluster_centers_

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    serial = [fit(X) for X in data]
    with threadpool_limits(2):
        before = blas_threads()
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(fit, data))
        # msk limits BLAS to one thread while its kernels run; the caller's setting is back
        assert blas_threads() == before
    for s, t in zip(serial, threaded):
        np.testing.assert_array_equal(s, t)


# ----- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(n_clusters=0), ValueError, "`n_clusters` must be a positive integer; got 0"),
        (dict(n_clusters=2.5), TypeError, "`n_clusters` must be an integer"),
        (dict(max_iter=0), ValueError, "`max_iter` must be a positive integer"),
        (dict(tol=-0.1), ValueError, "`tol` must be a finite number in"),
        (dict(init="k-means++"), ValueError, "`init` must be 'random' or an array"),
        (dict(init=5), TypeError, "`init` must be 'random' or an array"),
        (dict(init=np.ones((4, 3))), ValueError, r"`init` must have shape \(n_clusters, n_features\)"),
        (dict(init=np.zeros((3, 4))), ValueError, "`init` must not contain a zero row"),
    ],
)
def test_bad_parameters_are_rejected(rng, params, error, match):
    X = rng.standard_normal((50, 4))
    kw = dict(n_clusters=3) | params
    with pytest.raises(error, match=match):
        msk.SphericalKMeans(**kw).fit(X)


def test_fewer_samples_than_clusters_is_rejected(rng):
    with pytest.raises(ValueError, match=r"`X` must have at least n_clusters=10 samples; got n_samples=9"):
        msk.SphericalKMeans(n_clusters=10).fit(rng.standard_normal((9, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_input_is_rejected(rng, bad, dtype):
    X = rng.standard_normal((100, 6)).astype(dtype)
    Xbad = X.copy()
    Xbad[42, 3] = bad
    with pytest.raises(ValueError, match="`X` contains NaN or infinite values"):
        msk.SphericalKMeans(n_clusters=5).fit(Xbad)
    with pytest.raises(ValueError, match="`X` contains NaN or infinite values"):
        msk.SphericalKMeans(n_clusters=5).partial_fit(Xbad)
    km = msk.SphericalKMeans(n_clusters=5, random_state=0).fit(X)
    before = km.cluster_centers_.copy()
    with pytest.raises(ValueError, match="`X` contains NaN or infinite values"):
        km.partial_fit(Xbad)
    np.testing.assert_array_equal(km.cluster_centers_, before)  # a failed step changes nothing
    for method in (km.predict, km.score):
        with pytest.raises(ValueError, match="`X` contains NaN or infinite values"):
            method(Xbad)
    with pytest.raises(ValueError, match="X contains"):
        km.transform(Xbad)


def test_wrong_shapes_are_rejected(rng):
    with pytest.raises(ValueError, match="`X` must be a 2-D array"):
        msk.SphericalKMeans(n_clusters=2).fit(rng.standard_normal(10))
    with pytest.raises(ValueError, match="`X` must be a 2-D array"):
        msk.SphericalKMeans(n_clusters=2).fit(rng.standard_normal((3, 4, 5)))
    with pytest.raises(ValueError, match=r"`X` must be a 2-D array .* got shape \(3,\)"):
        msk.SphericalKMeans(n_clusters=2).fit([1.0, 2.0, 3.0])
    for not_an_array in ("data.npy", None):
        with pytest.raises(TypeError, match="`X` must be a 2-D array of numbers"):
            msk.SphericalKMeans(n_clusters=2).fit(not_an_array)
    km = msk.SphericalKMeans(n_clusters=2, random_state=0).fit(rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match="X has 3 features, but SphericalKMeans is expecting 4"):
        km.predict(rng.standard_normal((5, 3)))
    with pytest.raises(ValueError, match="`X` must be a 2-D array"):
        km.transform(rng.standard_normal(4))


def test_complex_input_is_rejected(rng):
    # scikit-learn's API checks require ValueError here (TypeError would otherwise fit a wrong type).
    with pytest.raises(ValueError, match="Complex data not supported"):
        msk.SphericalKMeans(n_clusters=2).fit(rng.standard_normal((10, 3)) + 1j)


def test_methods_need_fit(rng):
    from sklearn.exceptions import NotFittedError

    km = msk.SphericalKMeans(n_clusters=2)
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(NotFittedError):
            method(rng.standard_normal((3, 2)))


# ----- magnitudes that could overflow the update -------------------------------------------

@pytest.mark.parametrize("n_clusters", [1, 20, 437])
def test_fit_refuses_data_whose_update_could_overflow_whatever_k(n_clusters):
    X = np.random.default_rng(0).standard_normal((2992, 57)).astype(np.float32) * 1e21
    with pytest.raises(ValueError, match=r"`X` is too large for spherical K-means in float32: .* 1\.7\de\+47"):
        msk.SphericalKMeans(n_clusters=n_clusters, max_iter=10, random_state=0).fit(X)
    with pytest.raises(ValueError, match="`X` is too large for spherical K-means"):
        msk.SphericalKMeans(n_clusters=n_clusters, random_state=0).partial_fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_on_large_but_safe_data_gives_finite_unit_centres(dtype):
    X = np.random.default_rng(1).standard_normal((3000, 57)).astype(dtype)
    X *= np.sqrt(np.finfo(dtype).max if dtype == np.float32 else np.sqrt(np.finfo(np.float64).max)) / 4e3
    km = msk.SphericalKMeans(n_clusters=437, max_iter=5, random_state=0).fit(X)
    assert np.isfinite(km.cluster_centers_).all() and np.isfinite(km.inertia_)
    assert_close(np.linalg.norm(km.cluster_centers_.astype(np.float64), axis=1), np.ones(437), rtol=1e-5)


def test_fit_still_reports_nan_as_nan():
    X = np.random.default_rng(2).standard_normal((100, 4))
    X[5, 2] = np.nan
    with pytest.raises(ValueError, match="`X` contains NaN or infinite values"):
        msk.SphericalKMeans(n_clusters=3, random_state=0).fit(X)
