"""NCA objective + gradient (msk) against scikit-learn's NCA and against sgemm alone.

Run (one thread):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m pytest bench/bench_heads.py \
        --benchmark-only --benchmark-min-rounds=10 --benchmark-autosave

The batch is realistic for the paper's similarity task: ``n`` = 1000 clips (one
minibatch), ``d`` = 3000 clip-mean features (6 levels × K = 500), ``m`` = 50
components, 100 artists. One evaluation does five GEMMs, ``4 n m d + 6 n² m``
FLOPs (0.9 GFLOP here) plus ~12 cache-resident elementwise passes over the
(n, n) neighbour matrix.

Group ``nca-gradient`` members:

* ``msk-float32`` / ``msk-float64``: ``msk._nca.objective_grad`` (what ``NCA.fit``
  calls per minibatch);
* ``sgemm`` / ``dgemm``: numpy matmul doing the same five GEMMs of the same
  shapes and nothing else: the BLAS rate to compare with;
* ``sklearn-iter1`` / ``sklearn-iter5``: ``NeighborhoodComponentsAnalysis.fit``
  with ``init='identity'``, ``tol=0`` and ``max_iter`` 1 and 5 (float64, as
  scikit-learn always computes). scikit-learn offers no public per-evaluation
  entry (``_loss_grad_lbfgs`` is private), so its cost per
  L-BFGS iteration is ``(t5 - t1) / 4``; L-BFGS-B does about one
  objective + gradient evaluation per iteration after the first.

A table with GFLOP/s and ratios is printed after the run. The machine is
shared with other jobs: numbers are noisy, medians are reported.
"""

import os

import numpy as np
import pytest
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from threadpoolctl import threadpool_info, threadpool_limits

from msk import _nca

N, D, M, N_ARTISTS = 1000, 3000, 50, 100
RESULTS = {}
MINIMA = {}  # the load from other jobs only adds time: minima are the steadier comparison


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with threadpool_limits(1):
        yield
    _print_summary()


def _threads():
    return {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "blas_threads": [i["num_threads"] for i in threadpool_info()],
    }


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    # clip means of max-pooled features: non-negative, correlated, artist-dependent
    y = rng.integers(0, N_ARTISTS, N)
    artist_centres = rng.standard_normal((N_ARTISTS, D))
    X = np.abs(rng.standard_normal((N, D)) + 0.5 * artist_centres[y])
    X = (X - X.mean(0)) / X.std(0)  # NCA.fit standardises
    A = rng.standard_normal((M, D)) / np.sqrt(2 * D)  # mean squared distance ~ 1, like init='pca'
    return X, y, A


def _record(benchmark, name, flops):
    median = benchmark.stats.stats.median
    RESULTS[name] = (median, flops)
    MINIMA[name] = benchmark.stats.stats.min
    benchmark.extra_info.update(_threads())
    benchmark.extra_info["gflops"] = flops / median / 1e9 if flops else None


FLOPS = _nca.gemm_flops(N, D, M)


@pytest.mark.benchmark(group="nca-gradient")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_msk(benchmark, batch, dtype):
    X, y, A = batch
    Xd, Ad = X.astype(dtype), A.astype(dtype)
    f, g = benchmark(_nca.objective_grad, Ad, Xd, y, alpha=1e-4)
    _record(benchmark, f"msk-{np.dtype(dtype).name}", FLOPS)
    # checked after timing against the float64 evaluation
    f64, g64 = _nca.objective_grad(A, X, y, alpha=1e-4)
    assert g.dtype == dtype and f == pytest.approx(f64, rel=1e-4)
    np.testing.assert_allclose(g, g64, rtol=0, atol=1e-3 * np.abs(g64).max())


@pytest.mark.benchmark(group="nca-gradient")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["sgemm", "dgemm"])
def test_gemm_alone(benchmark, batch, dtype):
    X, y, A = batch
    Xd, Ad = X.astype(dtype), A.astype(dtype)
    E = Xd @ Ad.T
    W = np.random.default_rng(1).random((N, N)).astype(dtype)
    b = _nca.block_rows(N)

    def gemms():
        E1 = Xd @ Ad.T  # embed
        WE = np.empty_like(E1)
        WtE = np.zeros_like(E1)
        for s in range(0, N, b):  # the same blocked products as msk
            T = E1[s:s + b] @ E1.T
            np.matmul(W[s:s + b], E1, out=WE[s:s + b])
            WtE += W[s:s + b].T @ E1[s:s + b]
        return (WE + WtE).T @ Xd  # gradient

    out = benchmark(gemms)
    _record(benchmark, "sgemm" if dtype == np.float32 else "dgemm", FLOPS)
    assert out.shape == (M, D) and np.isfinite(out).all() and E.shape == (N, M)


@pytest.mark.benchmark(group="nca-gradient")
@pytest.mark.parametrize("max_iter", [1, 5], ids=["iter1", "iter5"])
def test_sklearn(benchmark, batch, max_iter):
    X, y, A = batch
    init = np.ascontiguousarray(A)

    def fit():
        return NeighborhoodComponentsAnalysis(n_components=M, init=init, max_iter=max_iter, tol=0.0).fit(X, y)

    nca = benchmark.pedantic(fit, rounds=5, iterations=1, warmup_rounds=0)
    _record(benchmark, f"sklearn-iter{max_iter}", None)
    assert nca.components_.shape == (M, D) and 1 <= nca.n_iter_ <= max_iter + 1


def _print_summary():
    if not RESULTS:
        return
    lines = ["", f"NCA objective+gradient, n={N} d={D} m={M}, {FLOPS / 1e9:.2f} GFLOP of GEMMs per evaluation",
             f"  {'':16s} {'median':>9s}     {'min':>9s}"]
    for name, (t, flops) in RESULTS.items():
        rate = f"{flops / t / 1e9:6.1f} / {flops / MINIMA[name] / 1e9:6.1f} GFLOP/s" if flops else ""
        lines.append(f"  {name:16s} {t * 1e3:9.2f} ms  {MINIMA[name] * 1e3:9.2f} ms  {rate}")
    for label, table in (("median", {k: v[0] for k, v in RESULTS.items()}), ("min", MINIMA)):
        if "sklearn-iter1" in table and "sklearn-iter5" in table:
            per_iter = (table["sklearn-iter5"] - table["sklearn-iter1"]) / 4
            lines.append(f"  [{label}] sklearn per L-BFGS iteration ~ {per_iter * 1e3:.1f} ms"
                         f" (~{FLOPS / per_iter / 1e9:.1f} GFLOP/s on the same FLOPs)")
            for name in ("msk-float32", "msk-float64"):
                if name in table:
                    lines.append(f"  [{label}] {name} speed-up over sklearn per evaluation: "
                                 f"{per_iter / table[name]:.1f}x")
        for ours, ref in (("msk-float32", "sgemm"), ("msk-float64", "dgemm")):
            if ours in table and ref in table:
                lines.append(f"  [{label}] {ours} at {table[ref] / table[ours]:.0%} of {ref} speed")
    print("\n".join(lines))
