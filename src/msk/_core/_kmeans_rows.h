/* Row pass of spherical K-means, run on each GEMM tile while it is hot in cache.
 *
 * The tile holds the projections transposed, PT (K x m, row stride ldp): PT[j, i] = D[j] . X[i],
 * so that the running argmax over centroids is an element-wise update vectorised across samples.
 * For every sample i of the tile:
 *   label[i] = first j maximising |PT[j, i]|,  value[i] = PT[label[i], i] (signed),
 * and, when accum is not NULL, accum[label[i], :] += value[i] * X[i, :] (the row of S^T X).
 * energy (double, in/out) accumulates value[i]^2. order (m) and start (K + 1) are int32
 * workspace for the counting sort of the labels that groups the scatter-add by centroid.
 * Returns the number of rows whose projection onto centroid 0 is not finite: a NaN or
 * infinity anywhere in a row of X makes every projection of that row non-finite (D is
 * finite), so this detects non-finite input without a separate pass over X.
 *
 * The argmax keeps its running state for MSK_VECS vectors of samples in registers (GCC vector
 * extensions, lowered to whatever the target has); the scatter-add is a plain loop the
 * auto-vectoriser handles. GCC function multiversioning compiles both for AVX-512, AVX2 and
 * the x86-64 baseline and picks one at load time, so the extension needs no -march flag.
 *
 * Design: the argmax and the scatter-add are a small fraction of the GEMM's time and are bound
 * by L2/L3 traffic (the tile of PT, the rows of X and of the accumulator), so the loops are
 * shaped for memory, not arithmetic. A row-major tile would need a horizontal argmax, which
 * costs more than the vertical one here while BLAS writes either layout at the same cost.
 * Tiles are not shrunk to fit L2, because BLAS repacks D once per tile and small tiles repack
 * it more often (bench/bench_kmeans.py measures the trade-off). The caller puts the tile on
 * huge pages, so walking it row by row costs no TLB misses.
 */
#ifndef MSK_KMEANS_ROWS_H
#define MSK_KMEANS_ROWS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_simd.h"

#define MSK_AHEAD 2 /* the scatter-add prefetches (into L2) the rows this many samples ahead */
#define MSK_VECS 8  /* vectors of samples whose running best stays in registers */

typedef float msk_vf __attribute__((vector_size(64)));
typedef int32_t msk_vfi __attribute__((vector_size(64)));
typedef double msk_vd __attribute__((vector_size(64)));
typedef int64_t msk_vdi __attribute__((vector_size(64)));

#define MSK_DEFINE_ROWS(NAME, T, TMAX, FABS, VT, VI, IT, VN, ABSMASK)                         \
MSK_CLONES                                                                                    \
static Py_ssize_t NAME(const T *MSK_RESTRICT PT, Py_ssize_t m, Py_ssize_t K, Py_ssize_t ldp,      \
                       const T *MSK_RESTRICT X, Py_ssize_t p, Py_ssize_t ldx,                     \
                       int32_t *MSK_RESTRICT label, T *MSK_RESTRICT value,                           \
                       T *MSK_RESTRICT accum, Py_ssize_t ldacc,                                   \
                       int32_t *MSK_RESTRICT order, int32_t *MSK_RESTRICT start, double *energy)      \
{                                                                                             \
    Py_ssize_t bad = 0;                                                                       \
    double e = 0.0;                                                                           \
    const VI absmask = (VI){0} + (IT)(ABSMASK);                                               \
    /* a NaN/inf in row i of X makes every projection of sample i non-finite */              \
    for (Py_ssize_t i = 0; i < m; ++i) bad += !(FABS(PT[i]) <= TMAX);                         \
    /* running argmax over the rows of PT for MSK_VECS vectors of samples at a time, the     \
       state (|best|, signed best, index) held in registers (GCC vector extensions) */         \
    Py_ssize_t i0 = 0;                                                                        \
    for (; i0 + MSK_VECS * VN <= m; i0 += MSK_VECS * VN) {                                    \
        VT b[MSK_VECS], v[MSK_VECS], x, ax;                                                   \
        VI a[MSK_VECS], gt, kk;                                                               \
        for (int u = 0; u < MSK_VECS; ++u) {                                                  \
            memcpy(&v[u], PT + i0 + u * VN, sizeof(VT));                                      \
            b[u] = (VT)((VI)v[u] & absmask);                                                  \
            a[u] = (VI){0};                                                                   \
        }                                                                                     \
        for (Py_ssize_t k = 1; k < K; ++k) {                                                  \
            const T *r = PT + k * ldp + i0;                                                   \
            kk = (VI){0} + (IT)k;                                                             \
            for (int u = 0; u < MSK_VECS; ++u) {                                              \
                memcpy(&x, r + u * VN, sizeof(VT));                                           \
                ax = (VT)((VI)x & absmask);                                                   \
                gt = (VI)(ax > b[u]);                                                         \
                b[u] = (VT)(((VI)ax & gt) | ((VI)b[u] & ~gt));                                \
                v[u] = (VT)(((VI)x & gt) | ((VI)v[u] & ~gt));                                 \
                a[u] = (kk & gt) | (a[u] & ~gt);                                              \
            }                                                                                 \
        }                                                                                     \
        for (int u = 0; u < MSK_VECS; ++u) {                                                  \
            for (int l = 0; l < VN; ++l) {                                                    \
                label[i0 + u * VN + l] = (int32_t)a[u][l];                                    \
                value[i0 + u * VN + l] = v[u][l];                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    for (Py_ssize_t i = i0; i < m; ++i) { /* remaining samples, scalar */                     \
        T bv = PT[i], bb = FABS(PT[i]);                                                       \
        int32_t ba = 0;                                                                       \
        for (Py_ssize_t k = 1; k < K; ++k) {                                                  \
            const T y = PT[k * ldp + i];                                                      \
            if (FABS(y) > bb) { bb = FABS(y); bv = y; ba = (int32_t)k; }                      \
        }                                                                                     \
        label[i] = ba;                                                                        \
        value[i] = bv;                                                                        \
    }                                                                                         \
    for (Py_ssize_t i = 0; i < m; ++i) e += (double)value[i] * (double)value[i];              \
    if (accum) {                                                                              \
        /* scatter-add grouped by centroid (counting sort of the tile's labels), so that each \
           accumulator row is read and written once per tile, not once per sample; the next  \
           rows are prefetched since their addresses depend on labels */                      \
        for (Py_ssize_t j = 0; j <= K; ++j) start[j] = 0;                                     \
        for (Py_ssize_t i = 0; i < m; ++i) start[label[i] + 1] += 1;                          \
        for (Py_ssize_t j = 0; j < K; ++j) start[j + 1] += start[j];                          \
        for (Py_ssize_t i = 0; i < m; ++i) order[start[label[i]]++] = (int32_t)i;             \
        /* start[j] is now the end of bucket j: walk the sorted samples */                     \
        for (Py_ssize_t q = 0; q < m; ++q) {                                                  \
            if (q + MSK_AHEAD < m) {                                                          \
                const Py_ssize_t nq = order[q + MSK_AHEAD];                                   \
                const char *nx = (const char *)(X + nq * ldx);                                \
                for (Py_ssize_t c = 0; c < p * (Py_ssize_t)sizeof(T); c += 64)                \
                    __builtin_prefetch(nx + c, 0, 1);                                  \
                if (label[nq] != label[order[q + MSK_AHEAD - 1]]) {                           \
                    const char *na = (const char *)(accum + label[nq] * ldacc);               \
                    for (Py_ssize_t c = 0; c < p * (Py_ssize_t)sizeof(T); c += 64)            \
                        __builtin_prefetch(na + c, 1, 1);                              \
                }                                                                             \
            }                                                                                 \
            const Py_ssize_t i = order[q];                                                    \
            T *MSK_RESTRICT acc = accum + label[i] * ldacc;                                       \
            const T *MSK_RESTRICT x = X + i * ldx;                                                \
            const T s = value[i];                                                             \
            for (Py_ssize_t c = 0; c < p; ++c) acc[c] += s * x[c];                            \
        }                                                                                     \
    }                                                                                         \
    *energy += e;                                                                             \
    return bad;                                                                               \
}

MSK_DEFINE_ROWS(msk_rows_f, float, FLT_MAX, fabsf, msk_vf, msk_vfi, int32_t, 16, 0x7fffffff)
MSK_DEFINE_ROWS(msk_rows_d, double, DBL_MAX, fabs, msk_vd, msk_vdi, int64_t, 8, 0x7fffffffffffffffLL)

#endif
