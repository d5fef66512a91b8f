"""Feature learning estimators (Dieleman & Schrauwen 2013, section 2; SPEC.md section 3).

The module is organised in sections, one per estimator, each self-contained:

1. Shared helpers (BLAS thread control, hyperparameter checks).
2. ``PCAWhitening``: centre, eigendecompose the covariance, keep the leading
   components, scale to unit variance.
3. ``SphericalKMeans``: Coates & Ng's spherical K-means over the compiled
   ``msk._core._kmeans.assign_update`` kernel.

All estimators follow scikit-learn's contract (``get_params``/``set_params``,
``clone``, pipelines) and keep float32 and float64 input in its own precision.
"""

import threading
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

from ._core import _kmeans
from ._validation import check_float, check_int

__all__ = ["PCAWhitening", "SphericalKMeans"]


# =====================================================================================
# 1. Shared helpers
# =====================================================================================

_FLOAT_DTYPES = [np.float64, np.float32]
_ROW_CHUNK = 8192  # rows per chunk for the NumPy-side passes (covariance, centring)

_blas_controller = None


def _blas_libraries():
    """threadpoolctl controllers of the BLAS libraries loaded in the process (cached)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_controller


def _blas_threads():
    """The number of threads the BLAS is currently allowed (1 if unknown)."""
    libs = _blas_libraries()
    return max(1, min((lib.num_threads for lib in libs), default=1))


class _SingleThreadedBlas:
    """Context manager: BLAS limited to one thread while msk's kernels run.

    The kernels call BLAS on small tiles, where BLAS's own threads cost more than they
    give; msk runs its own threads instead. Entries are reference-counted under a lock,
    so that concurrent fits in several Python threads restore the caller's setting
    exactly once, when the last one leaves. Cheaper than ``threadpoolctl.threadpool_limits``
    (no library scan per call), which matters for ``partial_fit`` on small batches.
    """

    _lock = threading.Lock()
    _depth = 0
    _saved = ()

    def __enter__(self):
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                cls._saved = [(lib, lib.num_threads) for lib in _blas_libraries()]
                for lib, _ in cls._saved:
                    lib.set_num_threads(1)
            cls._depth += 1
        return self

    def __exit__(self, *exc):
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                for lib, n in cls._saved:
                    lib.set_num_threads(n)
                cls._saved = ()
        return False


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
        scale = 1.0 / np.sqrt(evals[:k] + eps_abs)

        self.mean_ = mean
        self.components_ = components
        self.explained_variance_ = evals[:k].copy()
        self.explained_variance_ratio_ = ratio[:k].copy()
        self.n_components_ = k
        self.eps_ = float(eps_abs)
        self.whitening_ = components * scale[:, None]
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
