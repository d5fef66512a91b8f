// Time-axis Gaussian/Laplacian pyramid kernels (pybind11).
//
// Arrays are (n_frames, n_bands), C-contiguous; frames are rows. Smoothing runs
// along axis 0 only with the 5-tap binomial kernel [1, 4, 6, 4, 1] / 16 and
// whole-sample mirror borders (scipy.ndimage mode='mirror', numpy.pad
// mode='reflect', OpenCV BORDER_REFLECT_101: ... c b | a b c d ...).
// Every output row is a weighted sum of a few whole input rows, so the inner
// loops run over the contiguous band axis and vectorise.
//
// Entry points (input is validated in Python, msk/pyramid.py; the entries check shapes):
//   blur_decimate(src, out)           Gaussian pyramid: out[0] is src, out[l+1] = (smooth out[l])[::2]
//   blur_decimate_subtract(src, out)  Laplacian pyramid: out[l] = G_l - expand(G_{l+1}), out[-1] = G_top
//   expand_add(lap, out)              reconstruction: out[l] = G_l = lap[l] + expand(G_{l+1})
// blur_decimate and blur_decimate_subtract report whether their input holds a value that is
// NaN, infinite or of magnitude >= 2^(emax - 1) (below that bound no intermediate can
// overflow); expand_add reports the first level holding a NaN or infinity. The test rides
// along the pass that reads those rows anyway, and the Python wrapper turns the status into
// the ValueError (the only check not done before the call, because a separate pass over the
// input would cost as much as the whole Gaussian pyramid). The shapes are checked on entry.
// expand(c) for a fine length n inserts zeros between the frames of c, smooths
// with 2 * kernel (mirror borders on the zero-filled signal of length n) and
// keeps n frames; a single fine frame expands to the single coarse frame.
//
// Each entry point releases the GIL and is compiled for x86-64-v4/v3/baseline
// (function multiversioning), so the wheel needs no -march flag.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "_simd.h"

namespace py = pybind11;

namespace {

using index_t = std::ptrdiff_t;

// Whole-sample mirror index for a signal of length n (scipy mode='mirror').
MSK_INLINE index_t mirror(index_t i, index_t n) {
    if (n == 1) return 0;
    const index_t period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

// out = ([1, 4, 6, 4, 1] / 16) . (a, b, c, d, e), element-wise over the bands.
template <typename T>
MSK_INLINE void blur_row(T* MSK_RESTRICT out, const T* MSK_RESTRICT a, const T* MSK_RESTRICT b,
                         const T* MSK_RESTRICT c, const T* MSK_RESTRICT d, const T* MSK_RESTRICT e,
                         index_t nb) {
    const T w1 = T(0.0625), w4 = T(0.25), w6 = T(0.375);
    for (index_t j = 0; j < nb; ++j) out[j] = w1 * (a[j] + e[j]) + w4 * (b[j] + d[j]) + w6 * c[j];
}

// Coarse row k of a blur-decimation of src (n rows).
template <typename T>
MSK_INLINE void blur_decimate_row(const T* src, index_t n, index_t nb, index_t k, T* out) {
    const index_t c = 2 * k;
    if (c >= 2 && c + 2 < n) {
        const T* r = src + (c - 2) * nb;
        blur_row(out, r, r + nb, r + 2 * nb, r + 3 * nb, r + 4 * nb, nb);
    } else {
        blur_row(out, src + mirror(c - 2, n) * nb, src + mirror(c - 1, n) * nb, src + mirror(c, n) * nb,
                 src + mirror(c + 1, n) * nb, src + mirror(c + 2, n) * nb, nb);
    }
}

// The expansion of a coarse signal at an even fine frame 2k (coarse rows k-1, k, k+1)
// and at an odd fine frame 2k+1 (coarse rows k, k+1): 2/16 * [1, 6, 1] and 2/16 * [4, 4].
// Both kernels below use these same two expressions, so the expansion subtracted by the
// Laplacian is bit-for-bit the one added back by the reconstruction.
template <typename T>
MSK_INLINE T expand_even(T p, T q, T r) {
    return T(0.125) * (p + r) + T(0.75) * q;
}
template <typename T>
MSK_INLINE T expand_odd(T q, T r) {
    return T(0.5) * (q + r);
}

// Coarse row index for k in [-1, m] under the expansion's border rule for a fine
// length n: mirror about fine frame 0 (coarse k=-1 -> 1), and at the end mirror
// about fine frame n-1: coarse m -> m-2 when n is odd, m -> m-1 when n is even.
MSK_INLINE index_t coarse_index(index_t k, index_t m, index_t n) {
    if (k < 0) return m >= 2 ? 1 : 0;
    if (k >= m) {
        if (n % 2 == 0) return m - 1;
        return m >= 2 ? m - 2 : 0;
    }
    return k;
}

// fine rows 2k and 2k+1 (if < n) = sign * src + expand(coarse), where the Laplacian
// uses out = src - expand and the reconstruction out = src + expand.
template <typename T, bool Subtract>
MSK_INLINE void expand_rows(const T* src, const T* coarse, T* out, index_t n, index_t m, index_t nb,
                            index_t k) {
    const T* MSK_RESTRICT p = coarse + coarse_index(k - 1, m, n) * nb;
    const T* MSK_RESTRICT q = coarse + k * nb;
    const T* MSK_RESTRICT r = coarse + coarse_index(k + 1, m, n) * nb;
    // src and out may be the same rows (in place); each element is read before it is written.
    const T* s = src + 2 * k * nb;
    T* o = out + 2 * k * nb;
    if (s == o) {
        T* MSK_RESTRICT x = o;
        for (index_t j = 0; j < nb; ++j) {
            const T e = expand_even(p[j], q[j], r[j]);
            x[j] = Subtract ? x[j] - e : x[j] + e;
        }
        if (2 * k + 1 < n) {
            x += nb;
            for (index_t j = 0; j < nb; ++j) {
                const T e = expand_odd(q[j], r[j]);
                x[j] = Subtract ? x[j] - e : x[j] + e;
            }
        }
    } else {
        const T* MSK_RESTRICT a = s;
        T* MSK_RESTRICT y = o;
        for (index_t j = 0; j < nb; ++j) {
            const T e = expand_even(p[j], q[j], r[j]);
            y[j] = Subtract ? a[j] - e : a[j] + e;
        }
        if (2 * k + 1 < n) {
            a += nb;
            y += nb;
            for (index_t j = 0; j < nb; ++j) {
                const T e = expand_odd(q[j], r[j]);
                y[j] = Subtract ? a[j] - e : a[j] + e;
            }
        }
    }
}

// All levels in one cascade. Level l (l = 0 .. n_levels-2) turns its Gaussian input
// G_l (n_l rows, src) into coarse rows G_{l+1}[k], pushes each one to level l+1 as it
// appears, and (Laplacian) emits its fine rows 2k-2 and 2k-1 right after coarse row k.
// Rows are thus consumed while they are still in L1: each Gaussian level is written
// once (into its output buffer, where the Laplacian then overwrites it in place) and
// read back from L1, so the only traffic beyond L1 is reading S and the outputs.
template <typename T>
struct Stage {
    const T* src;   // G_l: the input for l = 0, else the level's own output buffer
    T* fine;        // L_l output (Laplacian only), may equal src
    T* coarse;      // G_{l+1}: the next level's buffer
    index_t n, m;   // rows of G_l and G_{l+1}
    index_t k;      // next coarse row to compute
    index_t avail;  // rows of G_l available so far
    bool check;     // test the rows of src with out_of_range_bit as they are read (stage 0)
    bool nonfinite; // a NaN, infinity or value of magnitude >= 2^(emax - 1) was seen
};

// Whether any of count values is NaN or infinite (exponent bits all set). Integer
// test and OR-reduction, so it vectorises without -ffast-math.
template <typename T>
MSK_INLINE bool any_nonfinite(const T* p, index_t count) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr U exp_mask = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
    U bad = 0;
    for (index_t j = 0; j < count; ++j) {
        U u;
        std::memcpy(&u, p + j, sizeof(T));
        bad |= U((u & exp_mask) == exp_mask);
    }
    return bad != 0;
}

// Fused interior loops: one pass over the bands computes coarse row k from src rows
// 2k-2 .. 2k+2 (a..e) and, for the Laplacian, fine rows 2k-2 and 2k-1 from a, b and
// coarse rows k-2 (p), k-1 (q) and k (the value just computed). Seven loads and three
// stores per vector instead of twelve and three in three separate loops.
template <typename T>
MSK_INLINE auto nonfinite_bit(T x) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr U exp_mask = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
    U u;
    std::memcpy(&u, &x, sizeof(T));
    return U((u & exp_mask) == exp_mask);
}

// Whether |x| >= 2^(emax - 1) (2^126 for float32, 2^1022 for float64), NaN and infinities
// included: the forward pyramids refuse such input. Below that bound every intermediate
// (sums of two values, |L| <= 2 max|S|) stays finite, so a finite S gives finite levels.
template <typename T>
MSK_INLINE auto out_of_range_bit(T x) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr U exp_mask = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
    constexpr U big = sizeof(T) == 4 ? U(253u) << 23 : U(2045u) << 52;
    U u;
    std::memcpy(&u, &x, sizeof(T));
    return U((u & exp_mask) >= big);
}

template <typename T>
MSK_INLINE bool any_out_of_range(const T* p, index_t count) {
    decltype(out_of_range_bit(T(0))) bad = 0;
    for (index_t j = 0; j < count; ++j) bad |= out_of_range_bit(p[j]);
    return bad != 0;
}

// Gaussian stage 0: blur plus the range test of rows c and d (src rows 2k, 2k+1).
template <typename T>
MSK_INLINE bool blur_row_check(T* MSK_RESTRICT out, const T* MSK_RESTRICT a, const T* MSK_RESTRICT b,
                               const T* MSK_RESTRICT c, const T* MSK_RESTRICT d, const T* MSK_RESTRICT e,
                               index_t nb) {
    const T w1 = T(0.0625), w4 = T(0.25), w6 = T(0.375);
    decltype(out_of_range_bit(T(0))) bad = 0;
    for (index_t j = 0; j < nb; ++j) {
        out[j] = w1 * (a[j] + e[j]) + w4 * (b[j] + d[j]) + w6 * c[j];
        bad |= out_of_range_bit(c[j]) | out_of_range_bit(d[j]);
    }
    return bad != 0;
}

// Laplacian stage 0 (fine rows fa, fb distinct from src), with the range test of c, d.
template <typename T>
MSK_INLINE bool laplacian_row(const T* MSK_RESTRICT a, const T* MSK_RESTRICT b, const T* MSK_RESTRICT c,
                              const T* MSK_RESTRICT d, const T* MSK_RESTRICT e, const T* MSK_RESTRICT p,
                              const T* MSK_RESTRICT q, T* MSK_RESTRICT g, T* MSK_RESTRICT fa,
                              T* MSK_RESTRICT fb, index_t nb) {
    const T w1 = T(0.0625), w4 = T(0.25), w6 = T(0.375);
    decltype(out_of_range_bit(T(0))) bad = 0;
    for (index_t j = 0; j < nb; ++j) {
        const T x = a[j], y = b[j], z = q[j];
        const T r = w1 * (x + e[j]) + w4 * (y + d[j]) + w6 * c[j];
        g[j] = r;
        fa[j] = x - expand_even(p[j], z, r);
        fb[j] = y - expand_odd(z, r);
        bad |= out_of_range_bit(c[j]) | out_of_range_bit(d[j]);
    }
    return bad != 0;
}

// Laplacian stages >= 1: fine rows 2k-2, 2k-1 overwrite src rows a, b in place.
template <typename T>
MSK_INLINE void laplacian_row_inplace(T* MSK_RESTRICT a, T* MSK_RESTRICT b, const T* MSK_RESTRICT c,
                                      const T* MSK_RESTRICT d, const T* MSK_RESTRICT e,
                                      const T* MSK_RESTRICT p, const T* MSK_RESTRICT q, T* MSK_RESTRICT g,
                                      index_t nb) {
    const T w1 = T(0.0625), w4 = T(0.25), w6 = T(0.375);
    for (index_t j = 0; j < nb; ++j) {
        const T x = a[j], y = b[j], z = q[j];
        const T r = w1 * (x + e[j]) + w4 * (y + d[j]) + w6 * c[j];
        g[j] = r;
        a[j] = x - expand_even(p[j], z, r);
        b[j] = y - expand_odd(z, r);
    }
}

// One step of stage s: coarse row k from G_l rows 2k-2 .. 2k+2 (mirrored at the ends),
// which needs min(2k+3, n) rows of G_l, then the fine rows that are complete.
template <typename T, bool Laplacian>
MSK_INLINE bool step(Stage<T>& s, index_t nb) {
    const index_t k = s.k;
    if (k >= s.m || s.avail < std::min<index_t>(2 * k + 3, s.n)) return false;
    // Interior: no mirrored src row, and the fine pair k-1 needs no mirrored coarse row
    // (k-2 >= 0, and k < m - 1 because 2k + 2 < n).
    const bool interior = 2 * k + 2 < s.n && (Laplacian ? k >= 2 : k >= 1);
    if (interior) {
        const T* r = s.src + (2 * k - 2) * nb;
        T* g = s.coarse + k * nb;
        if (!Laplacian) {
            if (s.check) {
                s.nonfinite |= blur_row_check(g, r, r + nb, r + 2 * nb, r + 3 * nb, r + 4 * nb, nb);
            } else {
                blur_row(g, r, r + nb, r + 2 * nb, r + 3 * nb, r + 4 * nb, nb);
            }
        } else if (s.fine != s.src) {
            T* f = s.fine + (2 * k - 2) * nb;
            const bool bad = laplacian_row(r, r + nb, r + 2 * nb, r + 3 * nb, r + 4 * nb, g - 2 * nb, g - nb, g,
                                           f, f + nb, nb);
            if (s.check) s.nonfinite |= bad;
        } else {
            T* x = s.fine + (2 * k - 2) * nb;  // == r
            laplacian_row_inplace(x, x + nb, r + 2 * nb, r + 3 * nb, r + 4 * nb, g - 2 * nb, g - nb, g, nb);
        }
    } else {
        blur_decimate_row(s.src, s.n, nb, k, s.coarse + k * nb);
        if (Laplacian) {
            if (k >= 1) expand_rows<T, true>(s.src, s.coarse, s.fine, s.n, s.m, nb, k - 1);
            if (k + 1 == s.m) expand_rows<T, true>(s.src, s.coarse, s.fine, s.n, s.m, nb, k);
        }
        if (s.check) s.nonfinite |= any_out_of_range(s.src + 2 * k * nb, (2 * k + 1 < s.n ? 2 : 1) * nb);
    }
    s.k = k + 1;
    return true;
}

// Round-robin over the stages, at most one coarse row per stage per round, so a row
// of G_{l+1} is consumed by stage l+1 soon after stage l wrote it. Safe in place:
// stage l emits its fine rows (which read G_{l+1} rows k-2 .. k) in the same step
// that produces G_{l+1}[k], and stage l+1 only overwrites G_{l+1} rows at least 3
// below the newest row it was given.
template <typename T, bool Laplacian>
MSK_INLINE void run(Stage<T>* st, int n_stages, index_t nb) {
    for (bool progress = true; progress;) {
        progress = false;
        for (int l = 0; l < n_stages; ++l) {
            if (l > 0) st[l].avail = st[l - 1].k;
            progress |= step<T, Laplacian>(st[l], nb);
        }
    }
}

// out[0 .. n_levels-1] are the level buffers; out[l] has ceil(n / 2^l) rows; out[0] is
// src itself for the Gaussian pyramid. Returns false if src holds a value out_of_range_bit flags
// (every row of src is tested once, in stage 0).
template <typename T, bool Laplacian>
MSK_INLINE bool pyramid_impl(const T* src, T* const* out, int n_levels, index_t n, index_t nb) {
    Stage<T> st[8];
    const int n_stages = n_levels - 1;
    index_t rows = n;
    for (int l = 0; l < n_stages; ++l) {
        Stage<T>& s = st[l];
        s.src = (l == 0) ? src : out[l];
        s.fine = Laplacian ? out[l] : nullptr;
        s.coarse = out[l + 1];
        s.n = rows;
        s.m = (rows + 1) / 2;
        s.k = 0;
        s.avail = (l == 0) ? rows : 0;
        s.check = (l == 0);
        s.nonfinite = false;
        rows = s.m;
    }
    run<T, Laplacian>(st, n_stages, nb);
    return !st[0].nonfinite;
}

// Reconstruction: G_l = L_l + expand(G_{l+1}) for l = n_levels-2 .. 0, G_top = L_top.
// Stage l emits pair e (rows 2e, 2e+1 of G_l) from L_l and coarse rows e-1 .. e+1 of
// G_{l+1}, so it waits for min(e+2, m) rows of G_{l+1}. The driver always advances the
// finest stage that can, so a coarse row is produced just before it is needed.
template <typename T>
struct Expansion {
    const T* fine;    // L_l
    const T* coarse;  // G_{l+1}: L_top for the coarsest stage, else stage l+1's output
    T* out;           // G_l
    index_t n, m;     // rows of G_l and G_{l+1}
    index_t e;        // next pair to emit
};

// Interior pair (coarse rows e-1, e, e+1 all real, both fine rows exist), with the
// NaN/inf test of the two L_l rows it reads.
template <typename T>
MSK_INLINE bool expand_add_pair(const T* MSK_RESTRICT fa, const T* MSK_RESTRICT fb, const T* MSK_RESTRICT p,
                                const T* MSK_RESTRICT q, const T* MSK_RESTRICT r, T* MSK_RESTRICT oa,
                                T* MSK_RESTRICT ob, index_t nb) {
    decltype(nonfinite_bit(T(0))) bad = 0;
    for (index_t j = 0; j < nb; ++j) {
        const T x = fa[j], y = fb[j];
        oa[j] = x + expand_even(p[j], q[j], r[j]);
        ob[j] = y + expand_odd(q[j], r[j]);
        bad |= nonfinite_bit(x) | nonfinite_bit(y);
    }
    return bad != 0;
}

// Returns -1, or the index of a level of L (other than the top) that holds a NaN or
// infinity; every row of L_0 .. L_{n_levels-2} is tested once, as it is read.
template <typename T>
MSK_INLINE int expand_add_impl(const T* const* lap, T* const* out, int n_levels, index_t n, index_t nb) {
    Expansion<T> st[8];
    const int n_stages = n_levels - 1;
    index_t rows = n;
    for (int l = 0; l < n_stages; ++l) {
        Expansion<T>& s = st[l];
        s.fine = lap[l];
        s.out = out[l];
        s.coarse = (l + 1 == n_stages) ? lap[l + 1] : out[l + 1];
        s.n = rows;
        s.m = (rows + 1) / 2;
        s.e = 0;
        rows = s.m;
    }
    int bad_level = -1;
    int l = 0;
    while (st[0].e < st[0].m) {
        Expansion<T>& s = st[l];
        // rows of G_{l+1} available: all of L_top, else what stage l+1 has emitted
        const index_t avail = (l + 1 == n_stages) ? s.m : std::min<index_t>(2 * st[l + 1].e, st[l + 1].n);
        if (s.e >= s.m || avail < std::min<index_t>(s.e + 2, s.m)) {
            ++l;  // the next coarser stage must produce first (it always can: the top is complete)
            continue;
        }
        const index_t e = s.e;
        bool bad;
        if (e >= 1 && e + 1 < s.m && 2 * e + 1 < s.n) {
            const T* f = s.fine + 2 * e * nb;
            const T* q = s.coarse + e * nb;
            T* o = s.out + 2 * e * nb;
            bad = expand_add_pair(f, f + nb, q - nb, q, q + nb, o, o + nb, nb);
        } else {
            expand_rows<T, false>(s.fine, s.coarse, s.out, s.n, s.m, nb, e);
            bad = any_nonfinite(s.fine + 2 * e * nb, (2 * e + 1 < s.n ? 2 : 1) * nb);
        }
        if (bad) bad_level = l;
        s.e = e + 1;
        l = 0;  // back to the finest stage
    }
    return bad_level;
}

// Non-template multiversioned hot entries (one per dtype and pyramid kind).
MSK_CLONES bool gaussian_f(const float* s, float* const* o, int nl, index_t n, index_t nb) {
    return pyramid_impl<float, false>(s, o, nl, n, nb);
}
MSK_CLONES bool gaussian_d(const double* s, double* const* o, int nl, index_t n, index_t nb) {
    return pyramid_impl<double, false>(s, o, nl, n, nb);
}
MSK_CLONES bool laplacian_f(const float* s, float* const* o, int nl, index_t n, index_t nb) {
    return pyramid_impl<float, true>(s, o, nl, n, nb);
}
MSK_CLONES bool laplacian_d(const double* s, double* const* o, int nl, index_t n, index_t nb) {
    return pyramid_impl<double, true>(s, o, nl, n, nb);
}
MSK_CLONES int expand_add_f(const float* const* lap, float* const* o, int nl, index_t n, index_t nb) {
    return expand_add_impl(lap, o, nl, n, nb);
}
MSK_CLONES int expand_add_d(const double* const* lap, double* const* o, int nl, index_t n, index_t nb) {
    return expand_add_impl(lap, o, nl, n, nb);
}

template <typename T, bool Laplacian>
inline bool pyramid_hot(const T* s, T* const* o, int nl, index_t n, index_t nb) {
    if constexpr (std::is_same_v<T, float>) {
        return Laplacian ? laplacian_f(s, o, nl, n, nb) : gaussian_f(s, o, nl, n, nb);
    } else {
        return Laplacian ? laplacian_d(s, o, nl, n, nb) : gaussian_d(s, o, nl, n, nb);
    }
}
inline int expand_add_hot(const float* const* lap, float* const* o, int nl, index_t n, index_t nb) {
    return expand_add_f(lap, o, nl, n, nb);
}
inline int expand_add_hot(const double* const* lap, double* const* o, int nl, index_t n, index_t nb) {
    return expand_add_d(lap, o, nl, n, nb);
}

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// The level shapes are checked once per call (not per element), so no call can read or write
// out of bounds; a wrong list raises ValueError naming the shapes.
template <typename T>
void check_levels(const char* fn, const char* name, const std::vector<carray<T>>& levels, int count,
                  index_t n, index_t nb) {
    index_t rows = n;
    for (int l = 0; l < count; ++l) {
        const auto& a = levels[l];
        if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != nb) {
            throw py::value_error(std::string(fn) + ": " + name + "[" + std::to_string(l) + "] must have shape (" +
                                  std::to_string(rows) + ", " + std::to_string(nb) + "); got shape " +
                                  shape_str(a) + ".");
        }
        rows = (rows + 1) / 2;
    }
}

template <typename T, bool Laplacian>
bool pyramid(const carray<T>& src, std::vector<carray<T>>& out) {
    const char* fn = Laplacian ? "blur_decimate_subtract" : "blur_decimate";
    if (src.ndim() != 2) throw py::value_error(std::string(fn) + ": src must be 2-D; got shape " + shape_str(src) + ".");
    const index_t n = src.shape(0), nb = src.shape(1);
    if (out.size() < 2 || out.size() > 8) {
        throw py::value_error(std::string(fn) + ": out must hold 2 to 8 levels; got " + std::to_string(out.size()) + ".");
    }
    const int n_levels = static_cast<int>(out.size());
    check_levels(fn, "out", out, n_levels, n, nb);
    T* ptr[8];
    for (int l = 0; l < n_levels; ++l) {
        // out[0] of the Gaussian pyramid is src itself and is never written
        ptr[l] = (!Laplacian && l == 0) ? const_cast<T*>(out[l].data()) : out[l].mutable_data();
    }
    const T* s = src.data();
    py::gil_scoped_release release;
    return pyramid_hot<T, Laplacian>(s, ptr, n_levels, n, nb);
}

template <typename T>
int expand_add(const std::vector<carray<T>>& lap, std::vector<carray<T>>& out) {
    if (lap.size() < 2 || lap.size() > 8 || out.size() + 1 != lap.size()) {
        throw py::value_error("expand_add: lap must hold 2 to 8 levels and out one fewer; got " +
                              std::to_string(lap.size()) + " and " + std::to_string(out.size()) + ".");
    }
    const int n_levels = static_cast<int>(lap.size());
    if (lap[0].ndim() != 2) throw py::value_error("expand_add: lap[0] must be 2-D; got shape " + shape_str(lap[0]) + ".");
    const index_t n = lap[0].shape(0), nb = lap[0].shape(1);
    check_levels("expand_add", "lap", lap, n_levels, n, nb);
    check_levels("expand_add", "out", out, n_levels - 1, n, nb);
    const T* lp[8];
    T* op[8];
    for (int l = 0; l < n_levels; ++l) {
        lp[l] = lap[l].data();
        if (l < n_levels - 1) op[l] = out[l].mutable_data();
    }
    py::gil_scoped_release release;
    return expand_add_hot(lp, op, n_levels, n, nb);
}

template <typename T>
void define(py::module_& m) {
    m.def("blur_decimate", &pyramid<T, false>, py::arg("src").noconvert(), py::arg("out").noconvert(),
          "Gaussian pyramid: out[l+1] = (smooth out[l])[::2] along axis 0, [1,4,6,4,1]/16, mirror borders.\n\n"
          "src : IN (n, b) C-contiguous float32/float64\n"
          "out : OUT list of 2..8 arrays, out[l] of shape (ceil(n/2^l), b), same dtype;\n"
          "      out[0] is src itself and is not written\n"
          "returns : False if src holds a NaN, an infinity or a value of magnitude >= 2**(emax - 1)\n"
          "          (outputs are then garbage)");
    m.def("blur_decimate_subtract", &pyramid<T, true>, py::arg("src").noconvert(), py::arg("out").noconvert(),
          "Laplacian pyramid: out[l] = G_l - expand(G_{l+1}), out[-1] = G_top, G_0 = src.\n\n"
          "src : IN (n, b) C-contiguous float32/float64\n"
          "out : OUT list of 2..8 arrays, out[l] of shape (ceil(n/2^l), b), same dtype, distinct from src\n"
          "returns : False if src holds a NaN, an infinity or a value of magnitude >= 2**(emax - 1)\n"
          "          (outputs are then garbage)");
    m.def("expand_add", &expand_add<T>, py::arg("lap").noconvert(), py::arg("out").noconvert(),
          "Reconstruction: out[l] = lap[l] + expand(G_{l+1}), G_top = lap[-1], all levels in one cascade.\n\n"
          "lap : IN list of 2..8 arrays, lap[l] of shape (ceil(n/2^l), b), C-contiguous float32/float64\n"
          "out : OUT list of len(lap) - 1 arrays shaped like lap[:-1], same dtype; out[0] is the result,\n"
          "      out[1:] are work buffers (the intermediate Gaussian levels)\n"
          "returns : -1, or the index of a level of lap[:-1] holding a NaN or infinity");
}

}  // namespace

PYBIND11_MODULE(_pyramid, m) {
    m.doc() = "Time-axis Gaussian/Laplacian pyramid kernels (private; see msk.pyramid).";
    define<float>(m);
    define<double>(m);
}
