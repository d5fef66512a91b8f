# Spherical K-means kernel (Coates & Ng 2012): tiled projections through BLAS,
# with the largest-magnitude assignment and the S^T X update fused into the tile loop.

from libc.stdint cimport int32_t

from ._blas cimport floating, gemm


cdef extern from "_kmeans_rows.h" nogil:
    Py_ssize_t msk_rows_f(const float* P, Py_ssize_t m, Py_ssize_t K, Py_ssize_t ldp,
                          const float* X, Py_ssize_t p, Py_ssize_t ldx,
                          int32_t* label, float* value,
                          float* accum, Py_ssize_t ldacc,
                          int32_t* order, int32_t* start, double* energy)
    Py_ssize_t msk_rows_d(const double* P, Py_ssize_t m, Py_ssize_t K, Py_ssize_t ldp,
                          const double* X, Py_ssize_t p, Py_ssize_t ldx,
                          int32_t* label, double* value,
                          double* accum, Py_ssize_t ldacc,
                          int32_t* order, int32_t* start, double* energy)


cdef Py_ssize_t _INT_MAX = 2147483647  # BLAS dimensions and int32 labels


def assign_update(const floating[:, ::1] X not None, const floating[:, ::1] D not None,
                  Py_ssize_t tile, int32_t[::1] labels not None, floating[::1] values not None,
                  floating[:, ::1] accum, double[::1] energy not None, floating[::1] work not None,
                  int32_t[::1] order not None):
    """Assign every row of X to its largest-|projection| centroid; optionally accumulate S^T X.

    IN     X       (n, p) C-contiguous float32/float64, samples as rows
    IN     D       (K, p) C-contiguous, same dtype, centroids as rows
    IN     tile    rows per GEMM tile, >= 1
    OUT    labels  (n,) int32, index of the centroid with the largest |X[i] . D[j]|
                   (first one on ties)
    OUT    values  (n,) signed projection X[i] . D[labels[i]]
    IN/OUT accum   (K, p) or None; accum[labels[i]] += values[i] * X[i] (not zeroed here)
    OUT    energy  (1,) float64, sum of values**2
    WORK   work    (>= min(tile, n) * K,) same dtype: one tile of projections, transposed
    WORK   order   (>= min(tile, n) + K + 1,) int32: counting sort of a tile's labels
    Returns the number of rows of X whose projections are not finite (NaN/inf in X).
    Releases the GIL. The shapes are checked here, once per call, so that no call can read
    or write out of bounds (ValueError naming the shapes); values are not.
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], K = D.shape[0]
    cdef Py_ssize_t start = 0, m, bad = 0
    cdef double e = 0.0
    cdef floating* acc = NULL
    if tile < 1:
        raise ValueError(f"assign_update: tile must be >= 1; got {tile}.")
    if energy.shape[0] < 1:
        raise ValueError(f"assign_update: energy must have 1 entry; got energy of shape ({energy.shape[0]},).")
    if D.shape[1] != p or K < 1 or p < 1 or K > _INT_MAX or p > _INT_MAX:
        raise ValueError(
            f"assign_update: D must have shape (K, p) with 1 <= K, p <= {_INT_MAX} and p = X.shape[1]; "
            f"got X of shape ({n}, {p}) and D of shape ({K}, {D.shape[1]}).")
    if labels.shape[0] != n or values.shape[0] != n:
        raise ValueError(
            f"assign_update: labels and values must have X.shape[0] = {n} entries; got labels of "
            f"shape ({labels.shape[0]},) and values of shape ({values.shape[0]},).")
    if accum is not None:
        if accum.shape[0] != K or accum.shape[1] != p:
            raise ValueError(
                f"assign_update: accum must have the shape of D, ({K}, {p}); got accum of shape "
                f"({accum.shape[0]}, {accum.shape[1]}).")
        acc = &accum[0, 0]
    if n == 0:
        energy[0] = 0.0
        return 0
    tile = min(tile, n, _INT_MAX)
    if work.shape[0] // K < tile:
        raise ValueError(
            f"assign_update: work must have at least min(tile, n) * K = {tile} * {K} entries; got "
            f"work of shape ({work.shape[0]},).")
    if order.shape[0] - K - 1 < tile:
        raise ValueError(
            f"assign_update: order must have at least min(tile, n) + K + 1 = {tile + K + 1} entries; "
            f"got order of shape ({order.shape[0]},).")
    with nogil:
        while start < n:
            m = min(tile, n - start)
            # work = D @ X[start:start + m].T, (K, m) with row stride m
            gemm(False, True, <int> K, <int> m, <int> p, <floating> 1.0,
                 &D[0, 0], <int> p, &X[start, 0], <int> p, <floating> 0.0, &work[0], <int> m)
            if floating is float:
                bad += msk_rows_f(&work[0], m, K, m, &X[start, 0], p, p, &labels[start],
                                  &values[start], acc, p, &order[0], &order[tile], &e)
            else:
                bad += msk_rows_d(&work[0], m, K, m, &X[start, 0], p, p, &labels[start],
                                  &values[start], acc, p, &order[0], &order[tile], &e)
            start += m
    energy[0] = e
    return bad
