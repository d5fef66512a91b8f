# Inline BLAS wrappers over scipy.linalg.cython_blas (no BLAS link of our own).
# Row-major operands are handled by swapping them, never by copying (sklearn's _gemm).

from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef fused floating:
    float
    double


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* A, int lda,
                      const floating* B, int ldb,
                      floating beta, floating* C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, all row-major.

    IN  A: (m, k) if not trans_a else (k, m), row stride lda
    IN  B: (k, n) if not trans_b else (n, k), row stride ldb
    OUT C: (m, n), row stride ldc
    A row-major C is a column-major C^T = op(B)^T op(A)^T, so BLAS is called with the
    operands swapped and the same transposition flags.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> B, &ldb, <float*> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> B, &ldb, <double*> A, &lda,
              &beta, C, &ldc)
