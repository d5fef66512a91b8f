"""Feature learning estimators (Dieleman & Schrauwen 2013, section 2; SPEC.md section 3).

The module is organised in sections, one per estimator, each self-contained:

1. Shared helpers (BLAS thread control, hyperparameter checks).
2. ``PCAWhitening``: centre, eigendecompose the covariance, keep the leading
   components, scale to unit variance.
3. ``SphericalKMeans``: Coates & Ng's spherical K-means over the compiled
   ``msk._core._kmeans.assign_update`` kernel.
4. ``MultiscaleFeatures``: audio -> multiscale representation -> windows ->
   whitening -> dictionary -> fused encode + pool (``msk._encoding``), per level,
   with versioned, pickle-free persistence.

All estimators follow scikit-learn's contract (``get_params``/``set_params``,
``clone``, pipelines) and keep float32 and float64 input in its own precision.
"""

import contextlib
import json
import numbers
import os
import threading
import uuid
import warnings
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg
from scipy.linalg import blas as _scipy_blas
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._blas_threads import _SingleThreadedBlas, _blas_threads
from ._core import _kmeans
from ._encoding import WindowEncoder, _check_pooling
from ._validation import as_float_array, check_float, check_int, check_option
from ._windows import WindowReservoir
from .audio import load_audio
from .pyramid import gaussian_pyramid, laplacian_pyramid
from .spectral import melspectrogram, multiresolution

__all__ = ["MultiscaleFeatures", "PCAWhitening", "SphericalKMeans"]


def _msk_version():
    from . import __version__

    return __version__


# =====================================================================================
# 1. Shared helpers
# =====================================================================================

_FLOAT_DTYPES = [np.float64, np.float32]
_ROW_CHUNK = 8192  # rows per chunk for the NumPy-side passes (covariance, centring)

def _check_2d(X, name="X"):
    """Reject anything that is not 2-D with a message naming the argument.

    The message keeps scikit-learn's "Reshape your data" hint, which its API checks expect.
    """
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"`{name}` must be a 2-D array of numbers; got {type(X).__name__}.")
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            shape = np.shape(np.asarray(X))
        except Exception:  # let validate_data report what it is
            return
    if shape is not None and len(shape) != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_samples, n_features); got shape {tuple(shape)}. "
            "Reshape your data with X.reshape(-1, 1) if it has a single feature or "
            "X.reshape(1, -1) if it is a single sample."
        )


def _check_fitted_features(estimator, X, *, ensure_all_finite=True):
    """Validate ``X`` for a fitted estimator (shape, dtype, n_features_in_)."""
    check_is_fitted(estimator)
    _check_2d(X)
    return validate_data(
        estimator, X, reset=False, dtype=_FLOAT_DTYPES, order="C", ensure_all_finite=ensure_all_finite
    )


# =====================================================================================
# 2. PCA whitening
# =====================================================================================


def _centred_covariance(X, mean):
    """Unbiased covariance (ddof=1) of ``X`` about ``mean``, accumulated in float64.

    Rows are processed in chunks (bounded memory for float32 input); each chunk
    is centred in float64 and added with one symmetric rank-k update (BLAS dsyrk).
    """
    n, d = X.shape
    cov = np.zeros((d, d), dtype=np.float64, order="F")
    for start in range(0, n, _ROW_CHUNK):
        chunk = np.asarray(X[start : start + _ROW_CHUNK], dtype=np.float64) - mean
        # chunk.T is F-ordered (d, rows): dsyrk computes chunk.T @ chunk without a copy.
        cov = _scipy_blas.dsyrk(1.0, chunk.T, beta=1.0, c=cov, trans=0, lower=0, overwrite_c=1)
    upper = np.triu(cov)
    cov = upper + np.triu(cov, 1).T
    cov /= n - 1
    return cov


def _whitening_matrix(components, explained_variance, eps_abs):
    """W = components scaled by 1 / sqrt(lambda + eps): the one formula fit and load share."""
    return components * (1.0 / np.sqrt(explained_variance + eps_abs))[:, None]


class PCAWhitening(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """PCA whitening: project onto the leading principal components, scale to unit variance.

    The data are centred, the covariance matrix is eigendecomposed, the
    fewest leading components whose explained variance exceeds the fraction
    ``variance`` of the total are kept, and each is scaled by
    ``1 / sqrt(lambda + eps_)``, where ``lambda`` is its variance and ``eps_``
    a small regulariser relative to the mean variance per input dimension.
    This is the first step of Dieleman & Schrauwen's feature learning [1]_
    (99 % of the variance) and what makes spherical K-means learn useful
    features [2]_.

    Parameters
    ----------
    variance : float or None, default=0.99
        Fraction of the total variance to keep, in (0, 1]. The number of
        components is the smallest whose cumulative explained variance ratio
        is strictly greater than ``variance`` (scikit-learn's rule for a float
        ``n_components``). ``None`` or ``1.0`` keeps every component whose
        variance is numerically non-zero (above ``lambda_max * max(n_samples,
        n_features) * 2.2e-16``).
    eps : float, default=1e-5
        Whitening regulariser, relative to the mean eigenvalue of the
        covariance (its trace divided by ``n_features``): components are
        scaled by ``1 / sqrt(lambda + eps * trace / n_features)``. It stops
        low-variance components from being blown up into noise. ``eps=0``
        gives exactly scikit-learn's ``PCA(whiten=True)``.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Per-feature mean of the training data (float64).
    components_ : ndarray of shape (n_components_, n_features)
        Principal axes (unit rows, float64), by decreasing variance. Sign
        convention: the entry of largest magnitude of each component is
        positive (scikit-learn's ``svd_flip(..., u_based_decision=False)``).
    explained_variance_ : ndarray of shape (n_components_,)
        Variance along each component: eigenvalues of the covariance with
        ``ddof=1`` (the unbiased estimate, as scikit-learn's PCA).
    explained_variance_ratio_ : ndarray of shape (n_components_,)
        ``explained_variance_`` divided by the total variance.
    n_components_ : int
        Number of components kept.
    eps_ : float
        The absolute regulariser added to each eigenvalue.
    whitening_ : ndarray of shape (n_components_, n_features)
        The whitening matrix ``W``: ``transform(X) = (X - mean_) @ W.T``.
        Its rows are ``components_`` scaled by ``1 / sqrt(explained_variance_ + eps_)``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    n_samples_ : int
        Number of samples seen during ``fit``.

    See Also
    --------
    SphericalKMeans : learns a dictionary from the whitened data.
    sklearn.decomposition.PCA : the oracle (``whiten=True``, ``eps=0``).

    Notes
    -----
    The covariance is accumulated in float64 with BLAS ``dsyrk`` over chunks
    of rows, so float32 input of any length is never copied whole; fitted
    attributes are float64, and ``transform`` returns the input's dtype.

    References
    ----------
    .. [1] S. Dieleman and B. Schrauwen, "Multiscale approaches to music
       audio feature learning", ISMIR 2013.
    .. [2] A. Coates and A. Y. Ng, "Learning feature representations with
       K-means", Neural Networks: Tricks of the Trade, Springer, 2012.

    Examples
    --------
    >>> import numpy as np
    >>> import msk
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    >>> pca = msk.PCAWhitening(variance=0.99).fit(X)
    >>> Z = pca.transform(X)
    >>> Z.shape == (500, pca.n_components_)
    True
    >>> np.round(np.cov(Z, rowvar=False).diagonal().max(), 3)
    np.float64(1.0)
    """

    def __init__(self, variance=0.99, eps=1e-5):
        self.variance = variance
        self.eps = eps

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _check_params(self):
        variance = self.variance
        if variance is not None:
            variance = check_float("variance", variance, low=0.0, high=1.0, low_inclusive=False)
        eps = check_float("eps", self.eps, low=0.0)
        return variance, eps

    def _validate_fit(self, X):
        _check_2d(X)
        return validate_data(self, X, dtype=_FLOAT_DTYPES, order="C", ensure_min_samples=2)

    def fit(self, X, y=None):
        """Learn the mean, the principal components and the whitening matrix.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, at least 2 samples. float32 and float64 are kept,
            anything else is converted to float64.
        y : None
            Ignored.

        Returns
        -------
        self : PCAWhitening
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``variance`` or ``eps`` is out of range, if ``X`` is not 2-D,
            has fewer than 2 samples, contains NaN or infinity, or has zero
            variance.
        """
        variance, eps = self._check_params()
        X = self._validate_fit(X)
        self._fit(X, variance, eps)
        return self

    def _fit(self, X, variance, eps):
        n, d = X.shape
        mean = X.mean(axis=0, dtype=np.float64)
        cov = _centred_covariance(X, mean)
        # A (d, d) eigenproblem with d <= a few thousand: BLAS threads only add contention
        # (measured: 5 s instead of 0.05 s for d = 400 on a busy 2-core machine).
        with _SingleThreadedBlas():
            evals, evecs = scipy.linalg.eigh(cov, lower=True)
        evals = np.maximum(evals[::-1], 0.0)
        evecs = evecs[:, ::-1]
        total = evals.sum()
        if not total > 0.0:
            raise ValueError("`X` has zero variance in every feature; there is nothing to whiten.")
        n_nonzero = int(np.count_nonzero(evals > evals[0] * max(n, d) * np.finfo(np.float64).eps))
        ratio = evals / total
        if variance is None or variance >= 1.0:
            k = n_nonzero
        else:
            k = int(np.searchsorted(np.cumsum(ratio), variance, side="right")) + 1
            k = min(k, n_nonzero)
        components = np.ascontiguousarray(evecs[:, :k].T)
        # Sign convention: the largest-magnitude entry of each component is positive.
        pivot = np.argmax(np.abs(components), axis=1)
        components *= np.sign(components[np.arange(k), pivot])[:, None]
        eps_abs = eps * total / d

        self.mean_ = mean
        self.components_ = components
        self.explained_variance_ = evals[:k].copy()
        self.explained_variance_ratio_ = ratio[:k].copy()
        self.n_components_ = k
        self.eps_ = float(eps_abs)
        self.whitening_ = _whitening_matrix(components, self.explained_variance_, eps_abs)
        self.n_samples_ = n
        return self

    @property
    def _n_features_out(self):
        return self.n_components_

    def transform(self, X):
        """Whiten ``X``: ``(X - mean_) @ whitening_.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to whiten.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
            Whitened data, in the dtype of ``X`` (float32 or float64).
        """
        X = _check_fitted_features(self, X)
        return self._transform(X)

    def _transform(self, X):
        W = self.whitening_.astype(X.dtype, copy=False)
        mu = self.mean_.astype(X.dtype, copy=False)
        out = np.empty((X.shape[0], self.n_components_), dtype=X.dtype)
        for start in range(0, X.shape[0], _ROW_CHUNK):
            stop = start + _ROW_CHUNK
            np.matmul(X[start:stop] - mu, W.T, out=out[start:stop])
        return out

    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return it whitened (see ``fit`` and ``transform``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components_)
            Whitened training data, in the dtype of ``X``.
        """
        variance, eps = self._check_params()
        X = self._validate_fit(X)
        return self._fit(X, variance, eps)._transform(X)

    def inverse_transform(self, X):
        """Map whitened data back to the input space.

        ``inverse_transform(transform(X))`` recovers ``X`` exactly when every
        component is kept and ``eps_`` is zero; otherwise it is the projection
        of ``X`` onto the kept components (as scikit-learn's PCA).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components_)
            Whitened data.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            In the dtype of the input (float32 or float64).
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=_FLOAT_DTYPES, order="C", input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"`X` must have n_components_={self.n_components_} columns; got shape {Z.shape}."
            )
        unwhiten = self.components_ * np.sqrt(self.explained_variance_ + self.eps_)[:, None]
        return Z @ unwhiten.astype(Z.dtype) + self.mean_.astype(Z.dtype)


# =====================================================================================
# 3. Spherical K-means
# =====================================================================================

_TILE_BYTES = 4 << 20  # projection tile (n_clusters x tile rows): 4 MiB, on huge pages
_N_CHUNKS = 8  # fixed row chunks with their own accumulators: results do not depend on threads
_ALIGN = 128  # the kernel's argmax handles 128 float32 / 64 float64 samples per register block


def _tile_rows(n_clusters, itemsize):
    """Rows per GEMM tile: the (n_clusters, tile) projection block takes ~4 MiB.

    Measured on X (100 000, 400) float32, K = 500: tiles of 1536-4096 rows run at the same
    speed and 512 rows ~3 % slower (more repacking of the centroids by BLAS), with the tile
    buffer on 2 MiB pages (see the kernel).
    """
    rows = _TILE_BYTES // (n_clusters * itemsize)
    return int(min(4096, max(_ALIGN, rows // _ALIGN * _ALIGN)))


def _row_chunks(n, tile):
    """Split ``range(n)`` into at most ``_N_CHUNKS`` contiguous chunks of about equal size.

    Depends only on ``n`` and ``tile``, so the floating-point summation order, hence the
    result, is the same for any number of threads; equal sizes balance 1, 2, 4 or 8 threads.
    """
    n_chunks = max(1, min(_N_CHUNKS, -(-n // tile)))
    bounds = [0] + [min(n, round(n * c / n_chunks / _ALIGN) * _ALIGN) for c in range(1, n_chunks)] + [n]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _chunk_tile(length, tile):
    """Rows per tile for a chunk: at most ``tile``, splitting the chunk into equal tiles."""
    n_tiles = -(-length // tile)
    return min(tile, -(-(-(-length // n_tiles)) // _ALIGN) * _ALIGN)


def _huge_page_buffer(n_items, dtype):
    """An empty 1-D array starting on a 2 MiB boundary.

    NumPy asks for transparent huge pages on large allocations; aligning the start lets
    them back the whole tile, so the argmax's row-by-row walk over it costs no TLB misses.
    """
    dtype = np.dtype(dtype)
    huge = 2 << 20
    raw = np.empty(n_items * dtype.itemsize + huge, dtype=np.uint8)
    offset = (-raw.ctypes.data) % huge
    return raw[offset : offset + n_items * dtype.itemsize].view(dtype)


def _assign(X, centers, *, accumulate, executor=None, workspace=None):
    """One pass of the kernel over ``X``.

    Returns ``labels`` (int32), ``values`` (signed projections), ``energy`` (sum of
    values**2, float64) and, if ``accumulate``, ``S^T X`` (the undamped update),
    summed over the row chunks in a fixed order. ``workspace(tile, K, dtype)`` returns
    the calling thread's kernel buffers.
    """
    n, p = X.shape
    K = centers.shape[0]
    tile = _tile_rows(K, X.itemsize)
    chunks = _row_chunks(n, tile)
    labels = np.empty(n, dtype=np.int32)
    values = np.empty(n, dtype=X.dtype)
    energy = np.zeros((len(chunks), 1), dtype=np.float64)
    accum = np.zeros((len(chunks), K, p), dtype=X.dtype) if accumulate else [None] * len(chunks)
    if workspace is None:
        workspace = _Workspace()

    def run(c):
        a, b = chunks[c]
        work, order = workspace(min(tile, b - a), K, X.dtype)
        return _kmeans.assign_update(
            X[a:b], centers, _chunk_tile(b - a, tile), labels[a:b], values[a:b], accum[c],
            energy[c], work, order,
        )

    if executor is None or len(chunks) == 1:
        status = [run(c) for c in range(len(chunks))]
    else:
        status = list(executor.map(run, range(len(chunks))))
    if any(s > 0 for s in status):
        raise ValueError("`X` contains NaN or infinite values (or values so large that projections overflow).")
    update = accum.sum(axis=0) if accumulate else None  # fixed order; rounded once per chunk
    return labels, values, float(energy.sum()), update


class _Workspace:
    """Per-thread kernel buffers, kept for the life of one fit (no page faults per pass)."""

    def __init__(self):
        self._local = threading.local()

    def __call__(self, tile, K, dtype):
        key = (tile, K, np.dtype(dtype))
        cached = getattr(self._local, "buffers", None)
        if cached is None or cached[0][0] < tile or cached[0][1:] != key[1:]:
            cached = (key, _huge_page_buffer(tile * K, dtype), np.empty(tile + K + 1, dtype=np.int32))
            self._local.buffers = cached
        return cached[1], cached[2]


class _KernelRunner:
    """Runs ``_assign`` on msk's own threads, as many as BLAS is allowed to use.

    Each worker calls single-threaded BLAS on its own row chunks (scikit-learn's
    KMeans does the same with OpenMP), so the thread count follows the BLAS limit
    the caller set, e.g. with ``threadpoolctl.threadpool_limits``. BLAS stays limited
    to one thread during the run even when msk uses one thread: BLAS threads on
    tile-sized GEMMs are slower than none.
    """

    def __init__(self, n_rows, n_clusters, itemsize):
        self._n_chunks = len(_row_chunks(n_rows, _tile_rows(n_clusters, itemsize)))

    def __enter__(self):
        blas_threads = _blas_threads()
        self.n_threads = min(blas_threads, self._n_chunks)
        self._blas = _SingleThreadedBlas().__enter__() if blas_threads > 1 else None
        self._executor = None
        self._workspace = _Workspace()
        if self.n_threads > 1:
            self._executor = ThreadPoolExecutor(self.n_threads, thread_name_prefix="msk-kmeans")
        return self

    def __call__(self, X, centers, *, accumulate):
        return _assign(X, centers, accumulate=accumulate, executor=self._executor,
                       workspace=self._workspace)

    def __exit__(self, *exc):
        if self._executor is not None:
            self._executor.shutdown()
        if self._blas is not None:
            self._blas.__exit__(*exc)
        return False


def _damped_update(centers, update):
    """``D <- normalise(S^T X + D)`` in float64; a row whose new norm is zero keeps its old value."""
    new = update.astype(np.float64) + centers
    norms = np.sqrt(np.einsum("ij,ij->i", new, new))
    ok = norms > 0.0
    new[ok] /= norms[ok, None]
    new[~ok] = centers[~ok]
    return new.astype(centers.dtype)


def _sum_squares(X):
    """Sum of squared entries of ``X`` in float64 (per row in X's dtype, then summed)."""
    total = 0.0
    for start in range(0, X.shape[0], _ROW_CHUNK):
        chunk = X[start : start + _ROW_CHUNK]
        total += np.einsum("ij,ij->i", chunk, chunk).sum(dtype=np.float64)
    return total


class SphericalKMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """Spherical K-means (Coates & Ng 2012): a dictionary of unit-norm centroids.

    Learns ``K = n_clusters`` unit-norm rows ``D`` (the dictionary) by
    alternating (1) an assignment where each sample keeps only its projection
    of largest magnitude, with its sign, ``s_i = D[j] . x_i`` with
    ``j = argmax_l |D[l] . x_i|``, and (2) the damped update
    ``D <- S^T X + D`` followed by renormalising every row [2]_. The damping
    term keeps centroids that receive no sample where they were (finite and
    unit-norm). This is the dictionary learner of Dieleman & Schrauwen [1]_,
    applied to PCA-whitened windows.

    Parameters
    ----------
    n_clusters : int, default=500
        Number of centroids ``K`` (may exceed the number of features).
    max_iter : int, default=20
        Maximum number of centroid updates in ``fit``.
    tol : float, default=0.0
        ``fit`` stops early when at most this fraction of the samples change
        assignment between two passes; ``0.0`` stops when no assignment
        changes.
    init : {'random'} or array-like of shape (n_clusters, n_features), default='random'
        ``'random'``: standard normal vectors drawn from ``random_state``,
        normalised (Coates & Ng). An array: initial centroids (rows are
        normalised; none may be zero).
    random_state : int, RandomState instance or None, default=None
        Seeds the random initialisation. Pass an int for reproducible results.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The unit-norm centroids ``D``, in the dtype of the training data.
    labels_ : ndarray of shape (n_samples,), dtype int32
        Index of each training sample's centroid (largest ``|projection|``)
        under the final ``cluster_centers_`` (``fit`` only).
    inertia_ : float
        Reconstruction error of the training data under the final centroids,
        ``sum_i ||x_i - s_i D[labels_[i]]||^2`` (``fit`` only).
    n_iter_ : int
        Number of centroid updates ``fit`` performed.
    n_steps_ : int
        Number of updates performed by ``partial_fit`` since the last ``fit``
        or the first ``partial_fit``.
    n_features_in_ : int
        Number of features seen during the first ``fit``/``partial_fit``.

    See Also
    --------
    PCAWhitening : the whitening that precedes spherical K-means.
    sklearn.cluster.KMeans : Euclidean K-means.

    Notes
    -----
    Each pass runs one compiled kernel (``msk._core._kmeans.assign_update``):
    the projections ``X . D^T`` are computed by BLAS ``sgemm``/``dgemm``
    (``scipy.linalg.cython_blas``) in tiles of rows (a ``(K, tile)`` block of
    about 4 MiB, on huge pages); the signed argmax and the update ``S^T X``
    (a scatter-add of each sample into its centroid's row, grouped by
    centroid; no second GEMM) are done on each tile right after its GEMM,
    with the GIL released. Memory beyond the data is ``labels`` and the signed
    projections (one value each per sample), one tile per thread, and one
    ``(K, n_features)`` accumulator per row chunk (at most 8), whatever the
    number of samples. The chunks run on as many threads as BLAS is
    allowed to use (``threadpoolctl.threadpool_limits`` controls both), each
    calling single-threaded BLAS, and their updates are summed in a fixed
    order: results do not depend on the number of threads.

    A NaN or infinity in ``X`` is detected inside the kernel (it makes every
    projection of its row non-finite), which saves a separate pass over the
    data.

    ``fit`` stops after ``max_iter`` updates, or earlier when the assignments
    stop changing (``tol``); both are normal ends, so no warning is emitted.
    ``labels_`` and ``inertia_`` always refer to the final centroids (after
    ``max_iter`` updates one more assignment pass computes them, as in
    scikit-learn's KMeans).

    References
    ----------
    .. [1] S. Dieleman and B. Schrauwen, "Multiscale approaches to music
       audio feature learning", ISMIR 2013.
    .. [2] A. Coates and A. Y. Ng, "Learning feature representations with
       K-means", Neural Networks: Tricks of the Trade, Springer, 2012.

    Examples
    --------
    >>> import numpy as np
    >>> import msk
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((2000, 16)).astype(np.float32)
    >>> km = msk.SphericalKMeans(n_clusters=32, max_iter=10, random_state=0).fit(X)
    >>> km.cluster_centers_.shape, km.cluster_centers_.dtype
    ((32, 16), dtype('float32'))
    >>> np.allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1.0)
    True
    >>> km.transform(X[:5]).shape  # linear encoding X . D^T
    (5, 32)
    """

    def __init__(self, n_clusters=500, max_iter=20, tol=0.0, init="random", random_state=None):
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ----- validation ---------------------------------------------------------------

    def _check_params(self):
        check_int("n_clusters", self.n_clusters, low=1)
        check_int("max_iter", self.max_iter, low=1)
        check_float("tol", self.tol, low=0.0, high=1.0)
        if isinstance(self.init, str):
            if self.init != "random":
                raise ValueError(f"`init` must be 'random' or an array of shape (n_clusters, n_features); got {self.init!r}.")
        elif not hasattr(self.init, "__array__") and not isinstance(self.init, (list, tuple)):
            raise TypeError(f"`init` must be 'random' or an array; got {type(self.init).__name__}.")

    def _validate_X(self, X, *, reset):
        # Finiteness is checked inside the kernel (see Notes), not by a separate pass.
        _check_2d(X)
        return validate_data(self, X, reset=reset, dtype=_FLOAT_DTYPES, order="C", ensure_all_finite=False)

    def _initial_centers(self, n_features, dtype):
        K = self.n_clusters
        if isinstance(self.init, str):
            rng = check_random_state(self.random_state)
            centers = rng.standard_normal((K, n_features))
        else:
            centers = check_array(self.init, dtype=np.float64, input_name="init")
            if centers.shape != (K, n_features):
                raise ValueError(
                    f"`init` must have shape (n_clusters, n_features) = {(K, n_features)}; "
                    f"got {centers.shape}."
                )
        norms = np.linalg.norm(centers, axis=1)
        if not np.all(norms > 0):
            raise ValueError("`init` must not contain a zero row (centroids are normalised).")
        return (centers / norms[:, None]).astype(dtype)

    # ----- fitting ------------------------------------------------------------------

    def fit(self, X, y=None):
        """Learn the centroids from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (normally PCA-whitened), at least ``n_clusters``
            samples. float32 and float64 are kept, anything else becomes float64.
        y : None
            Ignored.

        Returns
        -------
        self : SphericalKMeans
            The fitted estimator.

        Raises
        ------
        ValueError
            If a hyperparameter is out of range, ``X`` is not 2-D, has fewer
            samples than ``n_clusters``, or contains NaN or infinity.
        """
        self._check_params()
        X = self._validate_X(X, reset=True)
        n, p = X.shape
        if n < self.n_clusters:
            raise ValueError(
                f"`X` must have at least n_clusters={self.n_clusters} samples; got n_samples={n}."
            )
        centers = self._initial_centers(p, X.dtype)
        tol_count = self.tol * n
        prev = None
        n_iter = 0
        with _KernelRunner(n, self.n_clusters, X.itemsize) as run:
            while True:
                final = n_iter == self.max_iter
                labels, values, energy, update = run(X, centers, accumulate=not final)
                if final:
                    break
                if prev is not None and np.count_nonzero(labels != prev) <= tol_count:
                    break  # converged: labels already refer to the current centroids
                centers = _damped_update(centers, update)
                prev = labels
                n_iter += 1
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = max(0.0, _sum_squares(X) - energy)
        self.n_iter_ = n_iter
        self.n_steps_ = 0
        return self

    def partial_fit(self, X, y=None):
        """Update the centroids with one spherical K-means step on a mini-batch.

        The first call initialises the centroids (``init``, ``random_state``)
        from the batch's number of features; every call then performs the same
        damped update as one ``fit`` iteration, ``D <- normalise(S^T X + D)``,
        on the batch. Use it for data that do not fit in memory; batches of
        any size (even smaller than ``n_clusters``) are accepted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A mini-batch.
        y : None
            Ignored.

        Returns
        -------
        self : SphericalKMeans
            The updated estimator.
        """
        first = not hasattr(self, "cluster_centers_")
        if first:
            self._check_params()
        X = self._validate_X(X, reset=first)
        if first:
            self.cluster_centers_ = self._initial_centers(X.shape[1], X.dtype)
            self.n_steps_ = 0
            self.n_iter_ = 0
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        with _KernelRunner(X.shape[0], self.n_clusters, X.itemsize) as run:
            _, _, _, update = run(X, centers, accumulate=True)
        self.cluster_centers_ = _damped_update(centers, update).astype(self.cluster_centers_.dtype)
        self.n_steps_ += 1
        return self

    # ----- inference ----------------------------------------------------------------

    @property
    def _n_features_out(self):
        return self.n_clusters

    def _assign_fitted(self, X):
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        with _KernelRunner(X.shape[0], centers.shape[0], X.itemsize) as run:
            return run(X, centers, accumulate=False)

    def predict(self, X):
        """Index of the centroid with the largest ``|projection|`` for each sample.

        The sign is ignored: a sample and its negation get the same label
        (spherical K-means matches directions up to sign). Ties go to the
        lowest index.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int32
        """
        X = _check_fitted_features(self, X, ensure_all_finite=False)
        return self._assign_fitted(X)[0]

    def transform(self, X):
        """Linear encoding: the projections ``X @ cluster_centers_.T``.

        This is the encoding Dieleman & Schrauwen use (before pooling).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        F : ndarray of shape (n_samples, n_clusters)
            In the dtype of ``X``.
        """
        X = _check_fitted_features(self, X)
        return self._transform(X)

    def _transform(self, X):
        return X @ self.cluster_centers_.astype(X.dtype, copy=False).T

    def score(self, X, y=None):
        """Opposite of the reconstruction error of ``X`` (higher is better).

        ``-sum_i ||x_i - s_i D[j_i]||^2 = -(sum_i ||x_i||^2 - sum_i s_i^2)``,
        with ``j_i`` the predicted label and ``s_i`` the signed projection: the
        spherical K-means objective, signed like ``KMeans.score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        X = _check_fitted_features(self, X, ensure_all_finite=False)
        energy = self._assign_fitted(X)[2]
        return -max(0.0, _sum_squares(X) - energy)


# =====================================================================================
# 4. MultiscaleFeatures: the whole per-level pipeline
# =====================================================================================

_REPRESENTATIONS = ("multiresolution", "gaussian", "laplacian")
_FORMAT = "msk.MultiscaleFeatures"
_FORMAT_VERSION = 1
# Fitted arrays saved per level, by estimator (the rest of their state is in the JSON header).
# whitening_ is not stored: load recomputes it from these with _whitening_matrix, bit for bit.
_PCA_ARRAYS = ("mean_", "components_", "explained_variance_", "explained_variance_ratio_")
_KMEANS_ARRAYS = ("cluster_centers_",)


def _is_clip_collection(clips):
    return not isinstance(clips, (str, bytes, os.PathLike, np.ndarray)) and isinstance(
        clips, Iterable
    )


def _write_npz(f, arrays):
    """np.savez with fixed zip timestamps: the same model gives the same bytes."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(arr), allow_pickle=False)


def _looks_numeric(clip):
    """A list or tuple of numbers (or of rows of numbers) is one waveform or spectrogram."""
    if not isinstance(clip, (list, tuple)) or not clip:
        return False
    first = clip[0]
    return isinstance(first, numbers.Number) or (
        isinstance(first, (list, tuple, np.ndarray)) and len(first) > 0
        and isinstance(first[0], numbers.Number)
    )


def _clip_name(clip, i):
    return repr(os.fspath(clip)) if isinstance(clip, (str, os.PathLike)) else f"clip {i}"


def _same_param(a, b):
    """Whether two parameter values are equal (tuples and lists alike, arrays element-wise)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_param(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


class MultiscaleFeatures(TransformerMixin, BaseEstimator):
    """Multiscale features of music audio (Dieleman & Schrauwen 2013).

    Every clip becomes a multiscale time-frequency representation of
    ``levels`` levels (multiresolution spectrograms, or a Gaussian or Laplacian
    pyramid of the log-mel spectrogram). At each level, windows of ``frames``
    consecutive frames are PCA-whitened (:class:`PCAWhitening`), a dictionary
    of ``n_means`` unit-norm atoms is learned with spherical K-means
    (:class:`SphericalKMeans`), and every window position is encoded linearly
    (``D W (x - mean)``) and max-pooled over pooling windows of about 4 s. The
    pooled features of all levels are concatenated: one feature vector per
    pooling window [1]_.

    Parameters
    ----------
    representation : {"laplacian", "gaussian", "multiresolution"}, default="laplacian"
        The multiscale representation. "multiresolution": log-mel spectrograms
        with ``n_fft = 1024 * 2**l`` (same frames at every level); "gaussian":
        Gaussian pyramid of the log-mel spectrogram along time (level ``l`` has
        ``ceil(T / 2**l)`` frames); "laplacian": its Laplacian pyramid.
    levels : int, default=6
        Number of levels, 1 to 8 (1 is the single-scale baseline: the plain log-mel).
    frames : int, default=1
        Frames per window ``w`` (the paper uses 1, 2 and 4).
    n_means : int or None, default=500
        Dictionary size ``K`` per level. ``None`` gives the PCA-only features
        (the whitened components themselves, "PMSC" in the paper).
    pool : int, default=128
        Pooling window at level 0, in frames (128 frames of 32 ms = 4.1 s).
        Pyramid level ``l`` pools ``max(1, pool // 2**l)`` positions so that the
        pooling windows line up across levels; multiresolution levels pool ``pool``.
    n_samples : int, default=200_000
        Training windows sampled uniformly at random per level (reservoir
        sampling over all clips: memory is bounded whatever the number of clips).
    variance : float, default=0.99
        Fraction of the variance kept by the PCA whitening.
    eps : float, default=1e-5
        Whitening regulariser, relative to the mean eigenvalue (see :class:`PCAWhitening`).
    encoding : {"linear", "threshold"}, default="linear"
        "linear" is the paper's ``f = D W (x - mean)``; "threshold" is Coates &
        Ng's ``max(0, f - alpha)``.
    alpha : float, default=0.25
        Threshold of ``encoding="threshold"``.
    pooling : {"max", "mean", "std"} or tuple of them, default="max"
        Statistics over each pooling window, concatenated in the order max,
        mean, std. "max" is the paper's.
    max_iter : int, default=20
        Spherical K-means iterations.
    sr : int, default=16000
        Sampling rate at which audio is analysed (files are resampled to it;
        waveforms given as arrays must already be at this rate).
    log_offset : float, default=1e-10
        ``log(mel + log_offset)`` compression of the mel spectrogram.
    random_state : int, RandomState instance or None, default=None
        Seeds window sampling and the K-means initialisation of every level.

    Attributes
    ----------
    pca_ : list of PCAWhitening
        The whitening of each level.
    kmeans_ : list of SphericalKMeans or None
        The dictionary of each level (None when ``n_means`` is None).
    n_mels_ : int
        Mel bands of the training spectrograms.
    n_features_out_ : int
        Columns of :meth:`transform`'s result.
    n_clips_ : int
        Clips used for fitting.
    skipped_ : list of tuple (str, str)
        Clips that could not be read during ``fit`` and their reasons.

    See Also
    --------
    PCAWhitening, SphericalKMeans : the per-level learners.
    melspectrogram, multiresolution, gaussian_pyramid, laplacian_pyramid :
        the representations.

    Notes
    -----
    Clips may be given as audio file paths, as mono waveforms at ``sr`` Hz
    (1-D arrays), or as precomputed log-mel spectrograms of shape
    ``(n_frames, n_mels)`` (2-D arrays; not for "multiresolution", which needs
    the audio). Features are computed in float32, and the fitted principal
    axes are kept at float32 precision (so a saved model is half the size and
    loads bit-identical); the rest of the whitening is float64.

    Pooling keeps only full pooling windows; the number of pooling windows is
    the smallest over the levels (coarse levels lose a window to the width of
    the encoding windows first), and every level is cut to it. A clip shorter
    than one pooling window gives one pooling window over all it has. A level
    with fewer frames than ``frames`` (a very short clip at a coarse pyramid
    level) is padded by repeating its edge frames.

    References
    ----------
    .. [1] S. Dieleman and B. Schrauwen, "Multiscale approaches to music audio
       feature learning", ISMIR 2013.
    .. [2] A. Coates and A. Y. Ng, "Learning feature representations with
       K-means", Neural Networks: Tricks of the Trade, Springer, 2012.

    Examples
    --------
    >>> import msk
    >>> model = msk.MultiscaleFeatures("laplacian", levels=3, n_means=16,
    ...                                n_samples=2000, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> F = model.transform(msk.example_audio())
    >>> F.shape, F.dtype
    ((7, 48), dtype('float32'))
    """

    def __init__(self, representation="laplacian", *, levels=6, frames=1, n_means=500, pool=128,
                 n_samples=200_000, variance=0.99, eps=1e-5, encoding="linear", alpha=0.25,
                 pooling="max", max_iter=20, sr=16000, log_offset=1e-10, random_state=None):
        self.representation = representation
        self.levels = levels
        self.frames = frames
        self.n_means = n_means
        self.pool = pool
        self.n_samples = n_samples
        self.variance = variance
        self.eps = eps
        self.encoding = encoding
        self.alpha = alpha
        self.pooling = pooling
        self.max_iter = max_iter
        self.sr = sr
        self.log_offset = log_offset
        self.random_state = random_state

    # -- parameters and representations ------------------------------------------------------

    # Parameters that only steer fitting; every other one defines the fitted arrays or the output.
    _FIT_ONLY_PARAMS = ("n_samples", "max_iter", "random_state")

    def set_params(self, **params):
        """Set parameters; on a fitted model, refuse those that fitting has fixed.

        A fitted model's dictionaries, whitening and pooling were computed
        with its parameters, so changing ``pool``, ``levels``, ``n_means``,
        ... afterwards would make ``transform`` and a saved copy disagree.
        Only ``n_samples``, ``max_iter`` and ``random_state`` (which act in
        ``fit`` alone) may change; setting a parameter to its current value
        is always allowed.

        Parameters
        ----------
        **params
            Estimator parameters.

        Returns
        -------
        self : MultiscaleFeatures

        Raises
        ------
        ValueError
            If the model is fitted and a parameter other than the fit-only
            ones would change; the message names them. Refit (``fit``) a
            clone with the new parameters instead.
        """
        if hasattr(self, "pca_"):
            current = self.get_params(deep=False)
            fixed = sorted(
                k for k, v in params.items()
                if k in current and k not in self._FIT_ONLY_PARAMS and not _same_param(current[k], v)
            )
            if fixed:
                raise ValueError(
                    f"cannot change {', '.join(map(repr, fixed))} of a fitted MultiscaleFeatures: the "
                    "fitted arrays depend on them. Fit a new model, e.g. "
                    "sklearn.base.clone(model).set_params(...).fit(clips)."
                )
        return super().set_params(**params)


    def _check_params(self):
        check_option("representation", self.representation, _REPRESENTATIONS)
        check_int("levels", self.levels, low=1, high=8)
        check_int("frames", self.frames, low=1)
        if self.n_means is not None:
            check_int("n_means", self.n_means, low=1)
        check_int("pool", self.pool, low=1)
        check_int("n_samples", self.n_samples, low=1)
        check_int("max_iter", self.max_iter, low=1)
        check_int("sr", self.sr, low=1)
        check_float("log_offset", self.log_offset, low=0.0, low_inclusive=False)
        # the encoder validates encoding, alpha and pooling; fail before the slow part
        _check_pooling(self.pooling)
        check_option("encoding", self.encoding, ("linear", "threshold"))
        check_float("alpha", self.alpha)

    def _level_pool(self, level):
        if self.representation == "multiresolution":
            return self.pool
        return max(1, self.pool >> level)

    def represent(self, clip):
        """The multiscale representation of one clip (finest level first).

        Parameters
        ----------
        clip : str, os.PathLike or array-like
            An audio file, a mono waveform at ``sr`` Hz of shape (n_samples,),
            or a log-mel spectrogram of shape (n_frames, n_mels).

        Returns
        -------
        levels : list of ndarray of shape (n_frames_l, n_mels), dtype float32
            The ``levels`` levels of the representation.

        Examples
        --------
        >>> import msk
        >>> model = msk.MultiscaleFeatures("gaussian", levels=3)
        >>> [S.shape for S in model.represent(msk.example_audio())]
        [(913, 200), (457, 200), (229, 200)]
        """
        self._check_params()
        return self._represent(clip)

    def _represent(self, clip):
        if isinstance(clip, (str, os.PathLike)):
            y = load_audio(clip, sr=self.sr)
        else:
            if isinstance(clip, (bytes, dict)) or clip is None:
                raise TypeError(
                    f"a clip must be an audio file path, a waveform or a spectrogram; got "
                    f"{type(clip).__name__}."
                )
            a = np.asarray(clip)
            if a.ndim == 2:
                if self.representation == "multiresolution":
                    raise ValueError(
                        "representation='multiresolution' needs audio (a file or a waveform), "
                        f"not a spectrogram; got an array of shape {a.shape}."
                    )
                S = as_float_array("clip", a, ndim=2, dtype=np.float32)
                return self._pyramid(S)
            if a.ndim != 1:
                raise ValueError(
                    "a clip array must be a waveform of shape (n_samples,) or a spectrogram "
                    f"of shape (n_frames, n_mels); got shape {a.shape}."
                )
            y = as_float_array("clip", a, ndim=1, dtype=np.float32)
        with warnings.catch_warnings():
            # Short clips are legitimate here: frames then hold mostly padding.
            warnings.filterwarnings("ignore", message=r"n_fft=\d+ is longer than the signal")
            if self.representation == "multiresolution":
                return multiresolution(y, sr=self.sr, levels=self.levels, log_offset=self.log_offset)
            S = melspectrogram(y, sr=self.sr, log_offset=self.log_offset)
        return self._pyramid(S)

    def _pyramid(self, S):
        if self.representation == "gaussian":
            return gaussian_pyramid(S, levels=self.levels)
        return laplacian_pyramid(S, levels=self.levels)

    def _padded(self, frames):
        w = self.frames
        if frames.shape[0] >= w:
            return frames
        return np.ascontiguousarray(np.pad(frames, ((0, w - frames.shape[0]), (0, 0)), mode="edge"))

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, clips, y=None):
        """Learn the whitening and the dictionary of every level from ``clips``.

        Parameters
        ----------
        clips : iterable of clips
            Audio file paths, waveforms at ``sr`` Hz or log-mel spectrograms
            (see :meth:`represent`). Iterated once; a generator is fine. Files
            that cannot be read are skipped and listed in ``skipped_`` (with a
            warning); fitting fails only if no clip is usable.
        y : None
            Ignored.

        Returns
        -------
        self : MultiscaleFeatures
            The fitted model.
        """
        self._check_params()
        if not _is_clip_collection(clips):
            raise TypeError(
                "`clips` must be an iterable of clips (paths, waveforms or spectrograms); got "
                f"{type(clips).__name__}. Wrap a single clip in a list."
            )
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=(self.levels, 2))
        reservoirs = [
            WindowReservoir(self.frames, self.n_samples, random_state=int(seeds[lev, 0]))
            for lev in range(self.levels)
        ]
        skipped, n_clips, n_mels = [], 0, None
        for i, clip in enumerate(clips):
            try:
                levels = self._represent(clip)
            except (OSError, ValueError) as exc:
                if not isinstance(clip, (str, os.PathLike)):
                    raise
                skipped.append((os.fspath(clip), str(exc)))
                continue
            if n_mels is None:
                n_mels = levels[0].shape[1]
            elif levels[0].shape[1] != n_mels:
                raise ValueError(
                    f"every clip must have {n_mels} mel bands like the first; {_clip_name(clip, i)} "
                    f"has {levels[0].shape[1]}."
                )
            for res, frames in zip(reservoirs, levels):
                res.update(self._padded(frames), name="clip")
            n_clips += 1
        if skipped:
            listed = "; ".join(f"{p}: {r}" for p, r in skipped[:5])
            more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
            warnings.warn(
                f"{len(skipped)} clip(s) could not be read and were skipped: {listed}{more}. "
                "They are listed in `skipped_`.",
                UserWarning,
                stacklevel=2,
            )
        if n_clips == 0:
            raise ValueError("`clips` holds no usable clip: nothing to fit.")
        pcas, kms = [], []
        for lev, res in enumerate(reservoirs):
            X = res.windows()
            if self.n_means is not None and X.shape[0] < self.n_means:
                raise ValueError(
                    f"level {lev} has only {X.shape[0]} training windows, fewer than "
                    f"`n_means`={self.n_means}; give more clips or lower n_means."
                )
            if X.shape[0] < 2:
                raise ValueError(
                    f"level {lev} has only {X.shape[0]} training window(s); at least 2 are needed "
                    "to estimate a covariance. Give more or longer clips."
                )
            pca = PCAWhitening(variance=self.variance, eps=self.eps).fit(X)
            # Features are float32: keep the principal axes at float32 precision too, so that a
            # saved model stores them as float32 (half the size) and loads bit-identical.
            pca.components_ = pca.components_.astype(np.float32).astype(np.float64)
            pca.whitening_ = _whitening_matrix(pca.components_, pca.explained_variance_, pca.eps_)
            pcas.append(pca)
            if self.n_means is None:
                kms.append(None)
                continue
            Z = pca.transform(X)
            del X
            kms.append(
                SphericalKMeans(n_clusters=self.n_means, max_iter=self.max_iter,
                                random_state=int(seeds[lev, 1])).fit(Z)
            )
        self.pca_ = pcas
        self.kmeans_ = kms if self.n_means is not None else None
        self.n_mels_ = int(n_mels)
        self.n_clips_ = n_clips
        self.skipped_ = skipped
        self._build_encoders()
        return self

    def _build_encoders(self):
        self._encoders = [
            WindowEncoder(
                pca.mean_, pca.whitening_,
                None if self.kmeans_ is None else self.kmeans_[lev].cluster_centers_,
                width=self.frames, pool=self._level_pool(lev), pooling=self.pooling,
                encoding=self.encoding, alpha=self.alpha,
            )
            for lev, pca in enumerate(self.pca_)
        ]
        self.n_features_out_ = sum(enc.n_features_out_ for enc in self._encoders)

    # -- features ----------------------------------------------------------------------------

    def transform(self, clip):
        """Multiscale features of one clip: one row per pooling window.

        Parameters
        ----------
        clip : str, os.PathLike or array-like
            An audio file, a mono waveform at ``sr`` Hz, or a log-mel
            spectrogram (see :meth:`represent`).

        Returns
        -------
        features : ndarray of shape (n_pools, n_features_out_), dtype float32
            Level 0's features first. With the defaults ``n_features_out_`` is
            ``levels * n_means``.
        """
        check_is_fitted(self, "pca_")
        if _is_clip_collection(clip) and not _looks_numeric(clip):
            raise TypeError(
                "`transform` takes one clip; for several use "
                "`[model.transform(c) for c in clips]`."
            )
        levels = self._represent(clip)
        if levels[0].shape[1] != self.n_mels_:
            raise ValueError(
                f"the clip has {levels[0].shape[1]} mel bands; this model was fitted on "
                f"{self.n_mels_}."
            )
        return self._transform(levels)

    def _transform(self, levels):
        # The levels come from msk's own kernels (C-contiguous, finite, float32): the
        # encoders' unchecked path, under one BLAS thread limit for all levels.
        with _SingleThreadedBlas():
            pooled = [enc._encode(self._padded(frames).astype(np.float32, copy=False))
                      for enc, frames in zip(self._encoders, levels)]
        n = min(p.shape[0] for p in pooled)
        return np.ascontiguousarray(np.hstack([p[:n] for p in pooled]), dtype=np.float32)

    def fit_transform(self, clips, y=None):
        """Fit on ``clips``, then return the features of each (a list of arrays)."""
        clips = list(clips) if _is_clip_collection(clips) else clips
        self.fit(clips)
        return [self.transform(c) for c in clips]

    # -- persistence -------------------------------------------------------------------------

    def save(self, path):
        """Save the fitted model to ``path`` (``.npz``, no pickle, versioned).

        The file holds a JSON header (format name and version, the msk
        version, every parameter, per-level shapes) and the fitted arrays of
        every level. It is written to a temporary file and moved into place,
        so an interrupted save never leaves a corrupt model.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (``.npz`` is appended by NumPy if missing, so give it).
        """
        check_is_fitted(self, "pca_")
        params = self.get_params()
        if not (params["random_state"] is None or isinstance(params["random_state"], numbers.Integral)):
            params["random_state"] = None  # a RandomState object is not reproducible from JSON
        if isinstance(params["pooling"], (list, tuple)):
            params["pooling"] = list(params["pooling"])
        levels_info, arrays = [], {}
        for lev, pca in enumerate(self.pca_):
            info = {
                "n_features": int(pca.n_features_in_), "n_components": int(pca.n_components_),
                "eps": float(pca.eps_), "n_samples": int(pca.n_samples_),
            }
            for name in _PCA_ARRAYS:
                arrays[f"level{lev}.pca.{name}"] = np.asarray(getattr(pca, name))
            arrays[f"level{lev}.pca.components_"] = pca.components_.astype(np.float32)
            if self.kmeans_ is not None:
                km = self.kmeans_[lev]
                info["n_means"] = int(km.cluster_centers_.shape[0])
                info["n_iter"] = int(km.n_iter_)
                for name in _KMEANS_ARRAYS:
                    arrays[f"level{lev}.kmeans.{name}"] = np.asarray(getattr(km, name))
            levels_info.append(info)
        header = {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "msk_version": _msk_version(),
            "params": params, "n_mels": self.n_mels_, "n_clips": self.n_clips_, "levels": levels_info,
        }
        blob = np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "xb") as f:
                _write_npz(f, {"header": blob, **arrays})
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npz`` file.

        Returns
        -------
        model : MultiscaleFeatures
            The fitted model, ready for :meth:`transform`.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not an msk model, is truncated or corrupt, or has
            another format version. The message names the file.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path!r}: no such model file.")
        try:
            # Our own handle: np.load leaks its file when the zip directory is corrupt.
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                if "header" not in data.files:
                    raise ValueError("it has no msk header")
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                arrays = {k: data[k] for k in data.files if k != "header"}
        except (OSError, ValueError, TypeError, AttributeError, EOFError, KeyError,
                zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise ValueError(f"{path!r} is not a readable msk model file: {exc}") from None
        fmt = header.get("format") if isinstance(header, dict) else None
        if fmt != _FORMAT:
            raise ValueError(f"{path!r} is not an msk model file (format {fmt!r}).")
        if header.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path!r} has model format version {header.get('format_version')!r}; this msk "
                f"({_msk_version()}) reads version {_FORMAT_VERSION}. Refit or use a matching msk."
            )
        try:
            params = dict(header["params"])
            if isinstance(params.get("pooling"), list):  # JSON has no tuples
                params["pooling"] = tuple(params["pooling"])
            model = cls(**params)
            model._check_params()
            pcas, kms = [], []
            for lev, info in enumerate(header["levels"]):
                pca = PCAWhitening(variance=model.variance, eps=model.eps)
                for name in _PCA_ARRAYS:
                    setattr(pca, name, np.asarray(arrays[f"level{lev}.pca.{name}"], dtype=np.float64))
                pca.n_components_ = int(info["n_components"])
                pca.n_features_in_ = int(info["n_features"])
                pca.n_samples_ = int(info["n_samples"])
                pca.eps_ = float(info["eps"])
                pca.whitening_ = _whitening_matrix(pca.components_, pca.explained_variance_, pca.eps_)
                if pca.whitening_.shape != (pca.n_components_, pca.n_features_in_):
                    raise ValueError(f"level {lev}: whitening matrix of shape {pca.whitening_.shape}")
                pcas.append(pca)
                if model.n_means is not None:
                    km = SphericalKMeans(n_clusters=model.n_means, max_iter=model.max_iter)
                    for name in _KMEANS_ARRAYS:
                        setattr(km, name, arrays[f"level{lev}.kmeans.{name}"])
                    km.n_features_in_ = pca.n_components_
                    km.n_iter_ = int(info["n_iter"])
                    if km.cluster_centers_.shape != (model.n_means, pca.n_components_):
                        raise ValueError(
                            f"level {lev}: dictionary of shape {km.cluster_centers_.shape}"
                        )
                    kms.append(km)
            if len(pcas) != model.levels:
                raise ValueError(f"{len(pcas)} levels stored for levels={model.levels}")
            model.pca_ = pcas
            model.kmeans_ = kms if model.n_means is not None else None
            model.n_mels_ = int(header["n_mels"])
            model.n_clips_ = int(header["n_clips"])
            model.skipped_ = []
            model._build_encoders()
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path!r} is a corrupt msk model file: {exc}") from None
        return model
