"""Spherical K-means (Coates & Ng 2012): the dictionary learner of each level.

:class:`SphericalKMeans` learns unit-norm centroids with the damped update
``D <- normalise(S^T X + D)``; each pass is one compiled kernel run by
:mod:`msk._kmeans_runtime` (tiles, huge pages, row chunks on threads).
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import validate_data

from ._kmeans_runtime import KernelRunner
from ._validation import FLOAT_DTYPES, check_2d, check_fitted_features, check_float, check_int, check_kmeans_range

__all__ = ["SphericalKMeans"]

_ROW_CHUNK = 8192  # rows per chunk when summing squares


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
        check_2d(X)
        return validate_data(self, X, reset=reset, dtype=FLOAT_DTYPES, order="C", ensure_all_finite=False)

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

    def fit(self, X, y=None, *, callback=None):
        """Learn the centroids from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (normally PCA-whitened), at least ``n_clusters``
            samples. float32 and float64 are kept, anything else becomes float64.
        y : None
            Ignored.
        callback : callable or None, default=None
            Called as ``callback(iteration, inertia)`` after the assignment
            step of every iteration (``iteration`` counts from 0, the random
            initialisation), with the objective of the centroids of that
            iteration (the sum over samples of ``|x|^2 - max_k (d_k . x)^2``,
            which decreases). None reports nothing.

        Returns
        -------
        self : SphericalKMeans
            The fitted estimator.

        Raises
        ------
        ValueError
            If a hyperparameter is out of range, ``X`` is not 2-D, has fewer
            samples than ``n_clusters``, contains NaN or infinity, or is so
            large that the centroid updates could overflow (the sum of its
            squared entries above a quarter of the dtype's largest value),
            whatever ``n_clusters``.
        """
        self._check_params()
        if callback is not None and not callable(callback):
            raise TypeError(f"`callback` must be a callable or None; got {type(callback).__name__}.")
        X = self._validate_X(X, reset=True)
        n, p = X.shape
        if n < self.n_clusters:
            raise ValueError(
                f"`X` must have at least n_clusters={self.n_clusters} samples; got n_samples={n}."
            )
        sum_squares = _sum_squares(X)
        check_kmeans_range("X", X, sum_squares)
        centers = self._initial_centers(p, X.dtype)
        tol_count = self.tol * n
        prev = None
        n_iter = 0
        with KernelRunner(n, self.n_clusters, X.itemsize) as run:
            while True:
                final = n_iter == self.max_iter
                labels, values, energy, update = run(X, centers, accumulate=not final)
                if callback is not None:
                    callback(n_iter, max(0.0, sum_squares - energy))
                if final:
                    break
                if prev is not None and np.count_nonzero(labels != prev) <= tol_count:
                    break  # converged: labels already refer to the current centroids
                centers = _damped_update(centers, update)
                prev = labels
                n_iter += 1
        self.cluster_centers_ = centers
        self.labels_ = labels
        self.inertia_ = max(0.0, sum_squares - energy)
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
        check_kmeans_range("X", X, _sum_squares(X))
        if first:
            self.cluster_centers_ = self._initial_centers(X.shape[1], X.dtype)
            self.n_steps_ = 0
            self.n_iter_ = 0
        centers = self.cluster_centers_.astype(X.dtype, copy=False)
        with KernelRunner(X.shape[0], self.n_clusters, X.itemsize) as run:
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
        with KernelRunner(X.shape[0], centers.shape[0], X.itemsize) as run:
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
        X = check_fitted_features(self, X, ensure_all_finite=False)
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
        X = check_fitted_features(self, X)
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
        X = check_fitted_features(self, X, ensure_all_finite=False)
        energy = self._assign_fitted(X)[2]
        return -max(0.0, _sum_squares(X) - energy)
