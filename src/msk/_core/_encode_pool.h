/* Column reductions over one segment of a tile of codes (rows = window positions).
 *
 * Used by _encode.pyx after each tile's GEMMs: these loops touch every code once,
 * so they are written for the auto-vectoriser (restrict pointers, unit stride over
 * the K columns, four rows per pass so each accumulator is loaded and stored once
 * per four rows) and compiled for AVX-512, AVX2 and baseline x86-64 with GCC
 * function multiversioning; the wheel needs no -march flag.
 *
 *   seg_max     mx[k]  = max_i codes[i, k]
 *   seg_max_min mx[k]  = max_i codes[i, k],  mn[k] = min_i codes[i, k]
 *   seg_max_sum mx[k]  = max_i codes[i, k],  sum[k] = sum_i codes[i, k]
 *   seg_rectify codes[i, k] = max(codes[i, k] + bias[k], 0) in place, then as seg_max_sum
 *   seg_m2      m2[k]  = sum_i (codes[i, k] - mean[k])^2
 *
 * Every function takes n_rows >= 1 and initialises its outputs.
 *
 * Per-row steps applied to a tile before pooling (rows of stride ld >= the columns used):
 *
 *   frame_center   out[i, :] = frames[i, :] - c[i] with c[i] the frame's mean rounded to T;
 *                  s1[i] = sum_j out[i, j], q[i] = sum_j out[i, j]^2 (accumulated in double)
 *   row_normalize  per-window normalisation of GEMM rows computed from centred frames:
 *                  row t = (row t + sum_j a_j sums[j]) / sqrt(var_t + eps), a_j = c[t+j] - m_t,
 *                  with the window's mean m_t and variance var_t from c, s1, q of frames t..t+w-1
 *   row_unit       row = (row + bias) / ||row + bias|| (0 when the norm is 0)
 *   tile_split     f = codes[i, k] + bias[k]: codes[i, k] = max(f - alpha, 0),
 *                  codes[i, n + k] = max(-f - alpha, 0)
 *   tile_triangle  z_k = sqrt(max(1 + cn2[k] - 2 codes[i, k], 0)) (distance from a unit vector
 *                  to c_k given their dot product), codes[i, k] = max(mean_k z - z_k, 0)
 */
#ifndef MSK_ENCODE_POOL_H
#define MSK_ENCODE_POOL_H

#include <math.h>
#include <stddef.h>

#include "_simd.h"

#define MSK_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MSK_MIN(a, b) ((a) < (b) ? (a) : (b))
/* max(v, 0) that keeps a NaN (so the non-finite count of the pooled output sees it) */
#define MSK_RELU(v) ((v) < 0 ? 0 : (v))

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
MSK_CLONES static void seg_max_min_##S(const T *MSK_RESTRICT codes, ptrdiff_t n_rows,          \
                                       ptrdiff_t n_codes, T *MSK_RESTRICT mx, T *MSK_RESTRICT mn) \
{                                                                                          \
    ptrdiff_t i, k;                                                                        \
    for (k = 0; k < n_codes; ++k) { mx[k] = codes[k]; mn[k] = codes[k]; }                  \
    for (i = 1; i < n_rows; ++i) {                                                         \
        const T *MSK_RESTRICT r = codes + i * n_codes;                                     \
        for (k = 0; k < n_codes; ++k) {                                                    \
            mx[k] = MSK_MAX(mx[k], r[k]);                                                  \
            mn[k] = MSK_MIN(mn[k], r[k]);                                                  \
        }                                                                                  \
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

/* Sums along a row use MSK_LANES independent accumulators: without -ffast-math the compiler
 * keeps a single accumulator in program order (a chain of dependent adds); separate lanes let
 * it use vector adds, and the result no longer depends on anything but the row. */
#define MSK_LANES 8
#define MSK_LANE_SUM(a) ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))

#define MSK_DEFINE_ROWS(T, S, SQRT)                                                         \
MSK_CLONES static void frame_center_##S(const T *MSK_RESTRICT frames, ptrdiff_t n_frames,      \
                                        ptrdiff_t n_mels, T *MSK_RESTRICT out, T *MSK_RESTRICT c, \
                                        T *MSK_RESTRICT s1, T *MSK_RESTRICT q)                 \
{                                                                                          \
    ptrdiff_t i, j, l;                                                                     \
    for (i = 0; i < n_frames; ++i) {                                                       \
        const T *MSK_RESTRICT x = frames + i * n_mels;                                     \
        T *MSK_RESTRICT y = out + i * n_mels;                                              \
        double a[MSK_LANES] = {0}, b[MSK_LANES] = {0}, e[MSK_LANES] = {0};                 \
        T ci;                                                                              \
        for (j = 0; j + MSK_LANES <= n_mels; j += MSK_LANES)                               \
            for (l = 0; l < MSK_LANES; ++l) a[l] += x[j + l];                              \
        for (; j < n_mels; ++j) a[0] += x[j];                                              \
        ci = (T) (MSK_LANE_SUM(a) / n_mels);                                               \
        for (j = 0; j + MSK_LANES <= n_mels; j += MSK_LANES)                               \
            for (l = 0; l < MSK_LANES; ++l) {                                              \
                T v = x[j + l] - ci;                                                       \
                y[j + l] = v;                                                              \
                b[l] += v;                                                                 \
                e[l] += (double) v * v;                                                    \
            }                                                                              \
        for (; j < n_mels; ++j) {                                                          \
            T v = x[j] - ci;                                                               \
            y[j] = v;                                                                      \
            b[0] += v;                                                                     \
            e[0] += (double) v * v;                                                        \
        }                                                                                  \
        c[i] = ci;                                                                         \
        s1[i] = (T) MSK_LANE_SUM(b);                                                       \
        q[i] = (T) MSK_LANE_SUM(e);                                                        \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void row_normalize_##S(T *MSK_RESTRICT rows, ptrdiff_t n_rows, ptrdiff_t n_cols, \
                                         ptrdiff_t ld, const T *MSK_RESTRICT sums,         \
                                         ptrdiff_t width, ptrdiff_t n_mels,                \
                                         const T *MSK_RESTRICT c, const T *MSK_RESTRICT s1,  \
                                         const T *MSK_RESTRICT q, double eps)              \
{                                                                                          \
    ptrdiff_t t, j, k;                                                                     \
    double d = (double) width * n_mels;                                                    \
    for (t = 0; t < n_rows; ++t) {                                                         \
        T *MSK_RESTRICT r = rows + t * ld;                                                 \
        double m = 0, var = 0;                                                             \
        T inv;                                                                             \
        for (j = 0; j < width; ++j) m += (double) n_mels * c[t + j] + s1[t + j];            \
        m /= d;                                                                            \
        for (j = 0; j < width; ++j) {                                                      \
            double a = c[t + j] - m;                                                       \
            var += q[t + j] + 2 * a * s1[t + j] + n_mels * a * a;                          \
        }                                                                                  \
        var = var > 0 ? var / d : 0;                                                       \
        inv = (T) (1 / sqrt(var + eps));                                                   \
        for (j = 0; j < width; ++j) {                                                      \
            const T a = (T) (c[t + j] - m);                                                \
            const T *MSK_RESTRICT sj = sums + j * n_cols;                                  \
            for (k = 0; k < n_cols; ++k) r[k] += a * sj[k];                                \
        }                                                                                  \
        for (k = 0; k < n_cols; ++k) r[k] *= inv;                                          \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void row_unit_##S(T *MSK_RESTRICT rows, ptrdiff_t n_rows, ptrdiff_t n_cols,  \
                                    ptrdiff_t ld, const T *MSK_RESTRICT bias)              \
{                                                                                          \
    ptrdiff_t t, k, l;                                                                     \
    for (t = 0; t < n_rows; ++t) {                                                         \
        T *MSK_RESTRICT r = rows + t * ld;                                                 \
        double a[MSK_LANES] = {0}, sq;                                                     \
        T inv;                                                                             \
        for (k = 0; k + MSK_LANES <= n_cols; k += MSK_LANES)                               \
            for (l = 0; l < MSK_LANES; ++l) {                                              \
                T v = r[k + l] + bias[k + l];                                              \
                r[k + l] = v;                                                              \
                a[l] += (double) v * v;                                                    \
            }                                                                              \
        for (; k < n_cols; ++k) { T v = r[k] + bias[k]; r[k] = v; a[0] += (double) v * v; } \
        sq = MSK_LANE_SUM(a);                                                              \
        inv = sq > 0 ? (T) (1 / sqrt(sq)) : (T) 0;                                         \
        for (k = 0; k < n_cols; ++k) r[k] *= inv;                                          \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void tile_split_##S(T *MSK_RESTRICT codes, ptrdiff_t n_rows, ptrdiff_t n_codes, \
                                      const T *MSK_RESTRICT bias, T alpha)                 \
{                                                                                          \
    ptrdiff_t i, k;                                                                        \
    for (i = 0; i < n_rows; ++i) {                                                         \
        T *MSK_RESTRICT pos = codes + i * 2 * n_codes, *MSK_RESTRICT neg = pos + n_codes;  \
        for (k = 0; k < n_codes; ++k) {                                                    \
            T f = pos[k] + bias[k];                                                        \
            T u = -f - alpha, v = f - alpha;                                               \
            neg[k] = MSK_RELU(u);                                                          \
            pos[k] = MSK_RELU(v);                                                          \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
MSK_CLONES static void tile_triangle_##S(T *MSK_RESTRICT codes, ptrdiff_t n_rows, ptrdiff_t n_codes, \
                                         const T *MSK_RESTRICT cn2)                        \
{                                                                                          \
    ptrdiff_t i, k, l;                                                                     \
    for (i = 0; i < n_rows; ++i) {                                                         \
        T *MSK_RESTRICT r = codes + i * n_codes;                                           \
        T a[MSK_LANES] = {0}, mean;                                                        \
        for (k = 0; k + MSK_LANES <= n_codes; k += MSK_LANES)                              \
            for (l = 0; l < MSK_LANES; ++l) {                                              \
                T z = (T) 1 + cn2[k + l] - 2 * r[k + l];                                   \
                z = SQRT(MSK_RELU(z));                                                     \
                r[k + l] = z;                                                              \
                a[l] += z;                                                                 \
            }                                                                              \
        for (; k < n_codes; ++k) {                                                         \
            T z = (T) 1 + cn2[k] - 2 * r[k];                                               \
            z = SQRT(MSK_RELU(z));                                                         \
            r[k] = z;                                                                      \
            a[0] += z;                                                                     \
        }                                                                                  \
        mean = MSK_LANE_SUM(a) / (T) n_codes;                                              \
        for (k = 0; k < n_codes; ++k) { T v = mean - r[k]; r[k] = MSK_RELU(v); }           \
    }                                                                                      \
}

MSK_DEFINE_POOL(float, f)
MSK_DEFINE_POOL(double, d)
MSK_DEFINE_ROWS(float, f, sqrtf)
MSK_DEFINE_ROWS(double, d, sqrt)

#endif /* MSK_ENCODE_POOL_H */
