"""Slow, plain NumPy references for the compiled kernels (test-only oracles)."""

import numpy as np


def spherical_kmeans(X, init, max_iter, tol=0.0):
    """Coates & Ng spherical K-means in float64, with msk's stopping rule.

    Returns the centroids, the final labels and the number of updates.
    """
    X = np.asarray(X, dtype=np.float64)
    D = init / np.linalg.norm(init, axis=1, keepdims=True)
    rows, prev = np.arange(len(X)), None
    for n_iter in range(max_iter + 1):
        P = X @ D.T  # projections
        labels = np.argmax(np.abs(P), axis=1)  # largest magnitude, first on ties
        if n_iter == max_iter or (prev is not None and np.sum(labels != prev) <= tol * len(X)):
            return D, labels, n_iter
        S = np.zeros_like(P)
        S[rows, labels] = P[rows, labels]  # keep it, signed; zero the rest
        D = S.T @ X + D  # damped update
        D /= np.linalg.norm(D, axis=1, keepdims=True)  # back onto the sphere
        prev = labels
