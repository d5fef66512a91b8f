"""One spherical K-means iteration (msk) against sgemm alone, scikit-learn's KMeans and faiss.

Run:

    python -m pytest bench/bench_kmeans.py --benchmark-only --benchmark-min-rounds=7 \
        --benchmark-autosave

Shape: X (100 000, 400) float32, K = 500 centroids, on 1 and on 2
threads (``threadpoolctl.threadpool_limits`` around every call: it sets both the BLAS and
the OpenMP pools; faiss's OpenMP is also set with ``faiss.omp_set_num_threads``).
One group per thread count, members:

* ``msk``: ``SphericalKMeans.partial_fit(X)`` on a fitted model, which is exactly one
  iteration: the tiled GEMM with the fused argmax and S^T X scatter-add, the damped update
  and the renormalisation, plus input validation.
* ``numpy_sgemm``: ``X @ D.T``, the GEMM of one iteration alone, as numpy does it (it
  allocates and writes the 200 MB projection matrix).
* ``numpy_sgemm_out``: the same into a preallocated output (no page faults: stricter).
* ``scipy_sgemm``: the same through scipy's BLAS, the library msk's kernel calls.
* ``sklearn_lloyd_1`` / ``sklearn_lloyd_3``: ``KMeans(algorithm="lloyd", n_init=1,
  init=D, max_iter=1 or 3, tol=0)``; the per-iteration time is the slope
  (t3 - t1) / 2, which removes scikit-learn's fixed costs (validation, copying and centring
  X, squared norms, the final labelling pass).
* ``faiss_1`` / ``faiss_3``: ``faiss.Kmeans(spherical=True, niter=1 or 3)`` from the same
  initial centroids, per-iteration time again as the slope.

After the timings a table gives, per thread count, the GFLOP/s of one iteration
(2 n p K FLOPs) and msk's rate as a fraction of each sgemm's, and msk's speed-up over the
peers' per-iteration times, from medians (and from minima). The machine is shared with other
jobs, so absolute numbers are noisy; on a busy machine ``--benchmark-timer=time.process_time``
gives CPU time, meaningful for the 1-thread group (not for 2 threads, where it sums the
threads).
"""

import os

import numpy as np
import pytest
from scipy.linalg.blas import sgemm as scipy_sgemm
from threadpoolctl import threadpool_info, threadpool_limits

import msk

N, P, K = 100_000, 400, 500
FLOP = 2.0 * N * P * K
THREADS = [1, 2]
RESULTS = {}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, P), dtype=np.float32)
    D = rng.standard_normal((K, P)).astype(np.float32)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return X, D


@pytest.fixture(scope="module", autouse=True)
def summary(terminal_summary):
    yield
    terminal_summary(RESULTS, _write_summary)


def _thread_info(n):
    return {
        "threads": n,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "pools": {f"{i['internal_api']}:{os.path.basename(i['filepath'])}": i["num_threads"] for i in threadpool_info()},
    }


def _run(benchmark, name, threads, fn):
    benchmark.group = f"kmeans-iteration-{threads}thread"
    benchmark.name = name
    with threadpool_limits(threads):
        benchmark.extra_info.update(_thread_info(threads))
        result = benchmark(fn)
    RESULTS[(threads, name)] = (benchmark.stats.stats.median, benchmark.stats.stats.min)
    return result


@pytest.mark.parametrize("threads", THREADS)
def test_msk(benchmark, data, threads):
    X, D = data
    km = msk.SphericalKMeans(n_clusters=K, init=D)
    km.partial_fit(X[:1000])  # initialise; every timed call is then one iteration on all of X
    before = km.cluster_centers_.copy()
    _run(benchmark, "msk", threads, lambda: km.partial_fit(X))
    # after timing: the assignment against NumPy (float64) where the top two |projections|
    # are clearly apart, and unit-norm centroids
    A = np.abs(X[:2000].astype(np.float64) @ km.cluster_centers_.astype(np.float64).T)
    top2 = np.sort(A, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(km.predict(X[:2000])[clear], A[clear].argmax(axis=1))
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0, rtol=1e-5)
    assert not np.array_equal(km.cluster_centers_, before)


@pytest.mark.parametrize("threads", THREADS)
def test_numpy_sgemm(benchmark, data, threads):
    X, D = data
    out = _run(benchmark, "numpy_sgemm", threads, lambda: X @ D.T)
    np.testing.assert_allclose(out[:3], X[:3].astype(np.float64) @ D.T.astype(np.float64), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("threads", THREADS)
def test_numpy_sgemm_out(benchmark, data, threads):
    X, D = data
    out = np.empty((N, K), dtype=np.float32)
    out.fill(0)
    _run(benchmark, "numpy_sgemm_out", threads, lambda: np.matmul(X, D.T, out=out))
    np.testing.assert_allclose(out[:3], X[:3].astype(np.float64) @ D.T.astype(np.float64), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("threads", THREADS)
def test_scipy_sgemm(benchmark, data, threads):
    X, D = data
    # (K, N) = D @ X.T with F-ordered views: no copies, the orientation msk's kernel uses
    out = _run(benchmark, "scipy_sgemm", threads, lambda: scipy_sgemm(1.0, D.T, X.T, trans_a=True))
    np.testing.assert_allclose(out[:, :3].T, X[:3].astype(np.float64) @ D.T.astype(np.float64), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("max_iter", [1, 3])
@pytest.mark.parametrize("threads", THREADS)
def test_sklearn_lloyd(benchmark, data, threads, max_iter):
    from sklearn.cluster import KMeans

    X, D = data
    km = KMeans(n_clusters=K, init=D, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd")
    _run(benchmark, f"sklearn_lloyd_{max_iter}", threads, lambda: km.fit(X))
    assert km.cluster_centers_.shape == (K, P) and np.isfinite(km.inertia_)
    assert km.n_iter_ == max_iter


@pytest.mark.parametrize("max_iter", [1, 3])
@pytest.mark.parametrize("threads", THREADS)
def test_faiss(benchmark, data, threads, max_iter):
    faiss = pytest.importorskip("faiss")
    X, D = data

    def fit():
        # max_points_per_centroid large enough that faiss trains on all of X (no subsampling)
        km = faiss.Kmeans(P, K, niter=max_iter, spherical=True, seed=0, verbose=False,
                          max_points_per_centroid=N)
        km.train(X, init_centroids=D)
        return km

    faiss.omp_set_num_threads(threads)
    km = _run(benchmark, f"faiss_{max_iter}", threads, fit)
    assert km.centroids.shape == (K, P)
    np.testing.assert_allclose(np.linalg.norm(km.centroids, axis=1), 1.0, rtol=1e-4)


def _write_summary(write):
    write("")
    write(f"spherical K-means, one iteration, X ({N}, {P}) float32, K = {K}; median (min) over rounds;")
    write("peers' per-iteration time = slope (t[3 iterations] - t[1 iteration]) / 2; shared machine, noisy")
    for t in THREADS:
        r = {name: v for (th, name), v in RESULTS.items() if th == t}
        if "msk" not in r:
            continue
        rows = {name: v for name, v in r.items() if not name.endswith(("_1", "_3"))}
        for peer in ("sklearn_lloyd", "faiss"):
            if f"{peer}_1" in r and f"{peer}_3" in r:
                rows[f"{peer} per iteration"] = tuple((a - b) / 2 for a, b in zip(r[f"{peer}_3"], r[f"{peer}_1"]))
        write(f"  {t} thread(s):")
        for name, (med, mn) in rows.items():
            write(f"    {name:28s} {med * 1e3:7.1f} ms ({mn * 1e3:7.1f})  {FLOP / med / 1e9:6.1f} GFLOP/s")
        msk_med, msk_min = rows["msk"]
        for name, (med, mn) in rows.items():
            if name == "msk":
                continue
            what = "msk GFLOP/s / " if "sgemm" in name else "msk speed-up over "
            write(f"    {what + name:48s} {med / msk_med:6.3f} ({mn / msk_min:6.3f})")
