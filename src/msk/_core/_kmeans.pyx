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


def assign_update(const floating[:, ::1] X, const floating[:, ::1] D, Py_ssize_t tile,
                  int32_t[::1] labels, floating[::1] values, floating[:, ::1] accum,
                  double[::1] energy, floating[::1] work, int32_t[::1] order):
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
    Releases the GIL.
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], K = D.shape[0]
    cdef Py_ssize_t start = 0, m, bad = 0
    cdef double e = 0.0
    cdef floating* acc = NULL
    if accum is not None:
        acc = &accum[0, 0]
    if n == 0:
        energy[0] = 0.0
        return 0
    tile = min(tile, n)
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
