/* Column reductions over one segment of a tile of codes (rows = window positions).
 *
 * Used by _encode.pyx after each tile's GEMMs: these loops touch every code once,
 * so they are written for the auto-vectoriser (restrict pointers, unit stride over
 * the K columns, four rows per pass so each accumulator is loaded and stored once
 * per four rows) and compiled for AVX-512, AVX2 and baseline x86-64 with GCC
 * function multiversioning; the wheel needs no -march flag.
 *
 *   seg_max     mx[k]  = max_i codes[i, k]
 *   seg_max_sum mx[k]  = max_i codes[i, k],  sum[k] = sum_i codes[i, k]
 *   seg_rectify codes[i, k] = max(codes[i, k] + bias[k], 0) in place, then as seg_max_sum
 *   seg_m2      m2[k]  = sum_i (codes[i, k] - mean[k])^2
 *
 * Every function takes n_rows >= 1 and initialises its outputs.
 */
#ifndef MSK_ENCODE_POOL_H
#define MSK_ENCODE_POOL_H

#include <stddef.h>

#include "_simd.h"

#define MSK_MAX(a, b) ((a) > (b) ? (a) : (b))

#define MSK_DEFINE_POOL(T, S)                                                               \
MSK_CLONES static void seg_max_##S(const T *MSK_RESTRICT codes, ptrdiff_t n_rows,              \
                                   ptrdiff_t n_codes, T *MSK_RESTRICT mx)                      \
{                                                                                          \
    ptrdiff_t i = 0, k;                                                                    \
    for (k = 0; k < n_codes; ++k) mx[k] = codes[k];                                        \
    for (i = 1; i + 4 <= n_rows; i += 4) {                                                 \
        const T *MSK_RESTRICT r0 = codes + i * n_codes, *MSK_RESTRICT r1 = r0 + n_codes;           \
        const T *MSK_RESTRICT r2 = r1 + n_codes, *MSK_RESTRICT r3 = r2 + n_codes;                  \
        for (k = 0; k < n_codes; ++k) {                                                    \
            T a = MSK_MAX(r0[k], r1[k]), b = MSK_MAX(r2[k], r3[k]);                        \
            a = MSK_MAX(a, b);                                                             \
            mx[k] = MSK_MAX(mx[k], a);                                                     \
        }                                                                                  \
    }                                                                                      \
    for (; i < n_rows; ++i) {                                                              \
        const T *MSK_RESTRICT r = codes + i * n_codes;                                         \
        for (k = 0; k < n_codes; ++k) mx[k] = MSK_MAX(mx[k], r[k]);                        \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void seg_max_sum_##S(const T *MSK_RESTRICT codes, ptrdiff_t n_rows,          \
                                       ptrdiff_t n_codes, T *MSK_RESTRICT mx, T *MSK_RESTRICT sum) \
{                                                                                          \
    ptrdiff_t i = 0, k;                                                                    \
    for (k = 0; k < n_codes; ++k) { mx[k] = codes[k]; sum[k] = codes[k]; }                 \
    for (i = 1; i + 4 <= n_rows; i += 4) {                                                 \
        const T *MSK_RESTRICT r0 = codes + i * n_codes, *MSK_RESTRICT r1 = r0 + n_codes;           \
        const T *MSK_RESTRICT r2 = r1 + n_codes, *MSK_RESTRICT r3 = r2 + n_codes;                  \
        for (k = 0; k < n_codes; ++k) {                                                    \
            T a = MSK_MAX(r0[k], r1[k]), b = MSK_MAX(r2[k], r3[k]);                        \
            a = MSK_MAX(a, b);                                                             \
            mx[k] = MSK_MAX(mx[k], a);                                                     \
            sum[k] += (r0[k] + r1[k]) + (r2[k] + r3[k]);                                   \
        }                                                                                  \
    }                                                                                      \
    for (; i < n_rows; ++i) {                                                              \
        const T *MSK_RESTRICT r = codes + i * n_codes;                                         \
        for (k = 0; k < n_codes; ++k) { mx[k] = MSK_MAX(mx[k], r[k]); sum[k] += r[k]; }    \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void seg_rectify_##S(T *MSK_RESTRICT codes, ptrdiff_t n_rows,                \
                                       ptrdiff_t n_codes, const T *MSK_RESTRICT bias,          \
                                       T *MSK_RESTRICT mx, T *MSK_RESTRICT sum)                    \
{                                                                                          \
    ptrdiff_t i, k;                                                                        \
    for (k = 0; k < n_codes; ++k) { mx[k] = 0; sum[k] = 0; }                               \
    for (i = 0; i < n_rows; ++i) {                                                         \
        T *MSK_RESTRICT r = codes + i * n_codes;                                               \
        for (k = 0; k < n_codes; ++k) {                                                    \
            T v = r[k] + bias[k];                                                          \
            v = MSK_MAX(v, (T) 0);                                                         \
            r[k] = v;                                                                      \
            mx[k] = MSK_MAX(mx[k], v);                                                     \
            sum[k] += v;                                                                   \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void seg_m2_##S(const T *MSK_RESTRICT codes, ptrdiff_t n_rows,               \
                                  ptrdiff_t n_codes, const T *MSK_RESTRICT mean,               \
                                  T *MSK_RESTRICT m2)                                          \
{                                                                                          \
    ptrdiff_t i, k;                                                                        \
    for (k = 0; k < n_codes; ++k) m2[k] = 0;                                               \
    for (i = 0; i < n_rows; ++i) {                                                         \
        const T *MSK_RESTRICT r = codes + i * n_codes;                                         \
        for (k = 0; k < n_codes; ++k) { T d = r[k] - mean[k]; m2[k] += d * d; }            \
    }                                                                                      \
}

MSK_DEFINE_POOL(float, f)
MSK_DEFINE_POOL(double, d)

#endif /* MSK_ENCODE_POOL_H */
