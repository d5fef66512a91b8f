"""Pyramid benchmarks: msk against scipy.ndimage, OpenCV and a plain copy, one group.

Single-threaded (bench/conftest.py pins BLAS/OpenMP and records the thread counts;
OpenCV is set to one thread here; the msk kernels are single-threaded)::

    python -m pytest bench/bench_pyramid.py --benchmark-only --benchmark-min-rounds=300 \
        --benchmark-columns=median,min,iqr,rounds

Input: a (910, 200) float32 spectrogram, the log-mel of a 29.1 s clip at 16 kHz
with hop 512. Six levels, smoothing along time only. Every
result is checked against the scipy reference after timing.
"""

import numpy as np
import pytest
from scipy import ndimage

import msk

LEVELS = 6
KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
KERNEL32 = KERNEL.astype(np.float32)

pytestmark = pytest.mark.benchmark(group="pyramid")


@pytest.fixture(scope="module")
def S():
    """Log-mel-like (910, 200) float32: smooth in time plus noise, in log units."""
    rng = np.random.default_rng(2013)
    t = np.linspace(0, 29.1, 910)[:, None]
    bands = np.arange(200)[None, :]
    return (np.sin(t * (1 + bands / 50)) - 0.05 * bands + rng.standard_normal((910, 200))).astype(np.float32)


# --------------------------------------------------------------- baselines (time axis only)
def scipy_gaussian(S, levels=LEVELS):
    G = [S]
    for _ in range(levels - 1):
        G.append(ndimage.correlate1d(G[-1], KERNEL, axis=0, mode="mirror")[::2])
    return G


def scipy_gaussian_filter1d(S, levels=LEVELS):
    """The issue's baseline: a sampled Gaussian (sigma=1, 5 taps) along time, then slicing."""
    G = [S]
    for _ in range(levels - 1):
        G.append(ndimage.gaussian_filter1d(G[-1], 1.0, axis=0, mode="mirror", truncate=2.0)[::2])
    return G


def scipy_laplacian(S, levels=LEVELS):
    G = scipy_gaussian(S, levels)
    L = []
    for fine, coarse in zip(G[:-1], G[1:]):
        up = np.zeros_like(fine)
        up[::2] = coarse
        L.append(fine - ndimage.correlate1d(up, 2 * KERNEL, axis=0, mode="mirror"))
    return L + [G[-1]]


def opencv_gaussian(cv2, S, levels=LEVELS):
    one = np.ones(1, np.float32)
    G = [S]
    for _ in range(levels - 1):
        G.append(cv2.sepFilter2D(G[-1], -1, one, KERNEL32, borderType=cv2.BORDER_REFLECT_101)[::2])
    return G


def opencv_laplacian(cv2, S, levels=LEVELS):
    one = np.ones(1, np.float32)
    G = opencv_gaussian(cv2, S, levels)
    L = []
    for fine, coarse in zip(G[:-1], G[1:]):
        up = np.zeros_like(fine)
        up[::2] = coarse
        L.append(fine - cv2.sepFilter2D(up, -1, one, 2 * KERNEL32, borderType=cv2.BORDER_REFLECT_101))
    return L + [G[-1]]


def check(levels, reference):
    assert len(levels) == len(reference)
    scale = float(np.abs(reference[0]).max())
    for got, want in zip(levels, reference):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


# --------------------------------------------------------------- benchmarks
def test_msk_gaussian(record_threads, S):
    benchmark = record_threads
    G = benchmark(msk.gaussian_pyramid, S, levels=LEVELS)
    check(G, scipy_gaussian(S.astype(np.float64)))


def test_msk_laplacian(record_threads, S):
    benchmark = record_threads
    L = benchmark(msk.laplacian_pyramid, S, levels=LEVELS)
    check(L, scipy_laplacian(S.astype(np.float64)))


def test_msk_reconstruct(record_threads, S):
    benchmark = record_threads
    L = msk.laplacian_pyramid(S, levels=LEVELS)
    R = benchmark(msk.reconstruct_laplacian, L)
    np.testing.assert_allclose(R, S, rtol=0, atol=1e-6 * float(np.abs(S).max()))


def test_scipy_gaussian(record_threads, S):
    benchmark = record_threads
    G = benchmark(scipy_gaussian, S)
    check(G, scipy_gaussian(S.astype(np.float64)))


def test_scipy_gaussian_filter1d(record_threads, S):
    benchmark = record_threads
    G = benchmark(scipy_gaussian_filter1d, S)
    check(G, scipy_gaussian_filter1d(S.astype(np.float64)))


def test_scipy_laplacian(record_threads, S):
    benchmark = record_threads
    L = benchmark(scipy_laplacian, S)
    check(L, scipy_laplacian(S.astype(np.float64)))


def test_opencv_gaussian(record_threads, S):
    cv2 = pytest.importorskip("cv2")
    cv2.setNumThreads(1)
    benchmark = record_threads
    benchmark.extra_info.update(opencv_threads=cv2.getNumThreads(), opencv=cv2.__version__)
    G = benchmark(opencv_gaussian, cv2, S)
    check(G, scipy_gaussian(S.astype(np.float64)))


def test_opencv_laplacian(record_threads, S):
    cv2 = pytest.importorskip("cv2")
    cv2.setNumThreads(1)
    benchmark = record_threads
    benchmark.extra_info.update(opencv_threads=cv2.getNumThreads(), opencv=cv2.__version__)
    L = benchmark(opencv_laplacian, cv2, S)
    check(L, scipy_laplacian(S.astype(np.float64)))


def test_numpy_copy(record_threads, S):
    benchmark = record_threads
    C = benchmark(np.copy, S)
    np.testing.assert_array_equal(C, S)
