// _spectral: framing, Hann window, real FFT, power, sparse mel projection and log in one pass.
//
// Frames are processed LANES at a time (16 float32 or 8 float64 frames side by side):
// every array of the FFT is stored as [bin][lane], so each butterfly is one SIMD operation
// over LANES frames and the compiler vectorises every loop without shuffles. The real FFT of
// n_fft points is a complex FFT of n_fft/2 points (even samples as real, odd as imaginary
// parts) followed by the usual split step; the bit-reversal permutation is folded into the
// framing, so the FFT runs in place with radix-4 passes (and one radix-2 pass when log2 is odd).
//
// Python validates the user's input (src/msk/spectral.py). The entry point checks once per
// call that its arrays' shapes and band table let it index only inside them (ValueError),
// and takes arrays without conversion (TypeError on a wrong dtype or layout); values are trusted.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define MSK_HAVE_MXCSR 1
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "_simd.h"

namespace py = pybind11;

namespace {

template <typename T> struct Lanes;
template <> struct Lanes<float> { static constexpr int value = 16; };
template <> struct Lanes<double> { static constexpr int value = 8; };

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

template <typename T> std::unique_ptr<T[], FreeDeleter> aligned_buffer(std::size_t n) {
    std::size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    return std::unique_ptr<T[], FreeDeleter>(static_cast<T*>(p));
}

// Natural logarithm of a positive normal number (NaN and +inf give NaN), accurate to about one ulp and written so that
// it vectorises: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then a polynomial for log(m).
template <typename T> struct LogTraits;
template <> struct LogTraits<float> {
    using U = std::uint32_t;
    static constexpr int mant = 23, bias = 127;
};
template <> struct LogTraits<double> {
    using U = std::uint64_t;
    static constexpr int mant = 52, bias = 1023;
    static constexpr int terms = 10;
};

template <typename T> MSK_INLINE T log_pos(T x) {
    using Tr = LogTraits<T>;
    using U = typename Tr::U;
    U bits;
    std::memcpy(&bits, &x, sizeof(T));
    // musl's reduction: after adding one - sqrt(1/2) the exponent field is e, and the mantissa
    // re-based on sqrt(1/2) gives m in [sqrt(1/2), sqrt(2)).
    const U one = (sizeof(T) == 4) ? U(0x3f800000u) : U(0x3ff0000000000000ull);
    const U sqrt_half = (sizeof(T) == 4) ? U(0x3f3504f3u) : U(0x3fe6a09e667f3bcdull);
    bits += one - sqrt_half;
    const int e = int(bits >> Tr::mant) - Tr::bias;
    bits = (bits & ((U(1) << Tr::mant) - 1)) + sqrt_half;
    T m;
    std::memcpy(&m, &bits, sizeof(T));
    const T ln2_hi = T(0.693145751953125);
    const T ln2_lo = T(1.42860682030941723212e-6);
    const T fe = T(e);
    if constexpr (sizeof(T) == 4) {
        // Cephes logf: log(1 + f) = f - f^2/2 + f^3 P(f) on [sqrt(1/2) - 1, sqrt(2) - 1].
        const T f = m - T(1), z = f * f;
        T p = T(7.0376836292E-2);
        p = p * f - T(1.1514610310E-1);
        p = p * f + T(1.1676998740E-1);
        p = p * f - T(1.2420140846E-1);
        p = p * f + T(1.4249322787E-1);
        p = p * f - T(1.6668057665E-1);
        p = p * f + T(2.0000714765E-1);
        p = p * f - T(2.4999993993E-1);
        p = p * f + T(3.3333331174E-1);
        const T r = fe * ln2_hi + (fe * ln2_lo + (f + (p * f * z - T(0.5) * z)));
        return r + (x - x);  // x - x is 0, or NaN for NaN/inf input: non-finite input stays so
    } else {
        // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: ten odd terms.
        const T s = (m - T(1)) / (m + T(1));
        const T s2 = s * s;
        T p = T(1) / T(2 * Tr::terms + 1);
        for (int k = Tr::terms - 1; k >= 0; --k) p = p * s2 + T(1) / T(2 * k + 1);
        const T r = fe * ln2_hi + (fe * ln2_lo + T(2) * s * p);
        return r + (x - x);  // x - x is 0, or NaN for NaN/inf input: non-finite input stays so
    }
}

template <typename T> struct Plan {
    int n_fft, half, log2_half, hop, pad;
    std::vector<int> bitrev;       // half entries
    std::vector<T> window;         // n_fft entries (periodic Hann)
    std::vector<T> tw_re, tw_im;   // twiddles exp(-2 pi i k / half), k < half
    std::vector<T> split_re, split_im;  // exp(-2 pi i k / n_fft), k <= half

    Plan(int n_fft_, int hop_, int pad_) : n_fft(n_fft_), half(n_fft_ / 2), hop(hop_), pad(pad_) {
        log2_half = 0;
        while ((1 << log2_half) < half) ++log2_half;
        bitrev.resize(half);
        for (int m = 0; m < half; ++m) {
            int r = 0;
            for (int b = 0; b < log2_half; ++b) r |= ((m >> b) & 1) << (log2_half - 1 - b);
            bitrev[m] = r;
        }
        window.resize(n_fft);
        const double two_pi = 6.283185307179586476925286766559;
        for (int j = 0; j < n_fft; ++j) window[j] = T(0.5 - 0.5 * std::cos(two_pi * j / n_fft));
        tw_re.resize(half);
        tw_im.resize(half);
        for (int k = 0; k < half; ++k) {
            tw_re[k] = T(std::cos(two_pi * k / half));
            tw_im[k] = T(-std::sin(two_pi * k / half));
        }
        split_re.resize(half + 1);
        split_im.resize(half + 1);
        for (int k = 0; k <= half; ++k) {
            split_re[k] = T(std::cos(two_pi * k / n_fft));
            split_im[k] = T(-std::sin(two_pi * k / n_fft));
        }
    }
};

struct MelBands {
    const std::int64_t* start;   // first FFT bin of each band
    const std::int64_t* offset;  // offset of each band's weights in `weights` (n_mels + 1 entries)
    int n_mels;
};

template <typename T> struct Scratch {
    std::unique_ptr<T[], FreeDeleter> re, im, mel;
    explicit Scratch(int half, int n_mels) {
        constexpr int L = Lanes<T>::value;
        re = aligned_buffer<T>(std::size_t(half + 1) * L);
        im = aligned_buffer<T>(std::size_t(half + 1) * L);
        mel = aligned_buffer<T>(std::size_t(n_mels) * L);
    }
};

// One SIMD register of LANES values (GCC vector extension: lowered to whatever ISA the clone targets).
template <typename T> struct Vec {
    typedef T type __attribute__((vector_size(Lanes<T>::value * sizeof(T))));
    typedef std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t> I;
    typedef I mask __attribute__((vector_size(Lanes<T>::value * sizeof(T))));
};

template <int L, int S, bool High> constexpr int transpose_index(int j) {
    return High ? ((j & S) ? L + j : j + S) : ((j & S) ? L + j - S : j);
}

template <typename T, int S, bool High, int... J>
constexpr typename Vec<T>::mask transpose_mask(std::integer_sequence<int, J...>) {
    return typename Vec<T>::mask{transpose_index<Lanes<T>::value, S, High>(J)...};
}

template <typename T, int S> MSK_INLINE void transpose_stage(typename Vec<T>::type* v) {
    constexpr int L = Lanes<T>::value;
    constexpr auto J = std::make_integer_sequence<int, L>{};
    constexpr typename Vec<T>::mask lo = transpose_mask<T, S, false>(J);
    constexpr typename Vec<T>::mask hi = transpose_mask<T, S, true>(J);
    for (int i = 0; i < L; ++i) {
        if (i & S) continue;
        const auto a = v[i], b = v[i + S];
        v[i] = __builtin_shuffle(a, b, lo);
        v[i + S] = __builtin_shuffle(a, b, hi);
    }
}

// In-register transpose of an L x L tile by recursive exchange of off-diagonal blocks.
template <typename T> MSK_INLINE void transpose(typename Vec<T>::type* v) {
    if constexpr (Lanes<T>::value == 16) transpose_stage<T, 8>(v);
    transpose_stage<T, 4>(v);
    transpose_stage<T, 2>(v);
    transpose_stage<T, 1>(v);
}

// Load LANES frames starting at frame f0 into re/im in bit-reversed order, windowed.
// Returns the sub-transform length the FFT starts from: 2 when the first radix-2 pass was
// fused into the load (interior blocks with log2(n_fft / 2) odd), else 1.
// The loop runs over bins outside and lanes inside, so that each bin's LANES values are
// written as one contiguous vector (one cache line) and the frames are read as LANES
// sequential streams; lanes-outside order would sweep the whole 64 KiB buffer LANES times.
template <typename T>
MSK_INLINE int load_frames(const Plan<T>& P, const T* y, std::int64_t n, std::int64_t f0, int nl,
                           T* MSK_RESTRICT re, T* MSK_RESTRICT im) {
    constexpr int L = Lanes<T>::value;
    const int half = P.half;
    const std::int64_t hop = P.hop;
    const T* MSK_RESTRICT win = P.window.data();
    const int* MSK_RESTRICT br = P.bitrev.data();
    const std::int64_t s0 = f0 * hop - P.pad;  // first sample of lane 0
    if (nl == L && s0 >= 0 && s0 + (L - 1) * hop + P.n_fft <= n) {
        // Interior block: read L samples of each of the L frames as vectors, transpose the
        // L x L tile in registers, and store each sample's L lanes as one vector.
        using V = typename Vec<T>::type;
        const int hn = P.n_fft / 2;
        if ((P.log2_half & 1) && hn % L == 0) {
            // Fused radix-2 pass: complex bins m and m + half/2 (samples q and q + n_fft/2)
            // sit at bit-reversed positions 2g and 2g + 1; store their sum and difference.
            for (int q = 0; q < hn; q += L) {
                V a[L], b[L];
                V wa, wb;
                std::memcpy(&wa, win + q, sizeof(V));
                std::memcpy(&wb, win + q + hn, sizeof(V));
                for (int l = 0; l < L; ++l) {
                    std::memcpy(&a[l], y + s0 + l * hop + q, sizeof(V));
                    std::memcpy(&b[l], y + s0 + l * hop + q + hn, sizeof(V));
                    a[l] *= wa;
                    b[l] *= wb;
                }
                transpose<T>(a);
                transpose<T>(b);
                for (int j = 0; j < L; j += 2) {
                    const std::int64_t r = std::int64_t(br[(q + j) / 2]) * L;
                    const V sr = a[j] + b[j], dr = a[j] - b[j];
                    const V si = a[j + 1] + b[j + 1], di = a[j + 1] - b[j + 1];
                    std::memcpy(re + r, &sr, sizeof(V));
                    std::memcpy(re + r + L, &dr, sizeof(V));
                    std::memcpy(im + r, &si, sizeof(V));
                    std::memcpy(im + r + L, &di, sizeof(V));
                }
            }
            return 2;
        }
        for (int q = 0; q < P.n_fft; q += L) {
            V v[L];
            V wv;
            std::memcpy(&wv, win + q, sizeof(V));
            for (int l = 0; l < L; ++l) {
                std::memcpy(&v[l], y + s0 + l * hop + q, sizeof(V));
                v[l] *= wv;
            }
            transpose<T>(v);
            for (int j = 0; j < L; j += 2) {
                const std::int64_t r = std::int64_t(br[(q + j) / 2]) * L;
                std::memcpy(re + r, &v[j], sizeof(V));
                std::memcpy(im + r, &v[j + 1], sizeof(V));
            }
        }
        return 1;
    }
    for (int m = 0; m < half; ++m) {
        const T w0 = win[2 * m], w1 = win[2 * m + 1];
        T* MSK_RESTRICT rr = re + std::int64_t(br[m]) * L;
        T* MSK_RESTRICT ri = im + std::int64_t(br[m]) * L;
        for (int l = 0; l < L; ++l) {
            const std::int64_t a = s0 + l * hop + 2 * m, b = a + 1;
            rr[l] = (l < nl && a >= 0 && a < n) ? y[a] * w0 : T(0);
            ri[l] = (l < nl && b >= 0 && b < n) ? y[b] * w1 : T(0);
        }
    }
    return 1;
}

// In-place complex FFT of `half` points on bit-reversed input, LANES transforms at once.
template <typename T>
MSK_INLINE void fft_lanes(const Plan<T>& P, T* MSK_RESTRICT re, T* MSK_RESTRICT im, int h) {
    constexpr int L = Lanes<T>::value;
    const int half = P.half;
    if (h == 1 && (P.log2_half & 1)) {  // one radix-2 pass so that the rest are radix-4
        for (int g = 0; g < half; g += 2) {
            T* ar = re + g * L; T* ai = im + g * L;
            T* br = ar + L;     T* bi = ai + L;
            for (int l = 0; l < L; ++l) {
                const T xr = ar[l], xi = ai[l], yr = br[l], yi = bi[l];
                ar[l] = xr + yr; ai[l] = xi + yi;
                br[l] = xr - yr; bi[l] = xi - yi;
            }
        }
        h = 2;
    }
    // Radix-4 DIT passes: combine four sub-transforms of length h into one of length 4h.
    for (; h < half; h *= 4) {
        const int stride = half / (4 * h);  // twiddle index step for exp(-2 pi i j / (4h))
        for (int g = 0; g < half; g += 4 * h) {
            for (int j = 0; j < h; ++j) {
                const int k1 = j * stride, k2 = 2 * j * stride, k3 = 3 * j * stride;
                const T w1r = P.tw_re[k1], w1i = P.tw_im[k1];
                const T w2r = P.tw_re[k2], w2i = P.tw_im[k2];
                const T w3r = P.tw_re[k3], w3i = P.tw_im[k3];
                T* MSK_RESTRICT r0 = re + (g + j) * L;         T* MSK_RESTRICT i0 = im + (g + j) * L;
                T* MSK_RESTRICT r1 = re + (g + j + h) * L;     T* MSK_RESTRICT i1 = im + (g + j + h) * L;
                T* MSK_RESTRICT r2 = re + (g + j + 2 * h) * L; T* MSK_RESTRICT i2 = im + (g + j + 2 * h) * L;
                T* MSK_RESTRICT r3 = re + (g + j + 3 * h) * L; T* MSK_RESTRICT i3 = im + (g + j + 3 * h) * L;
#pragma GCC ivdep
                for (int l = 0; l < L; ++l) {
                    // Sub-transform order in bit-reversed DIT: x0 (even-even), x2, x1, x3.
                    const T ar = r0[l], ai = i0[l];
                    const T br = r1[l] * w2r - i1[l] * w2i, bi = r1[l] * w2i + i1[l] * w2r;
                    const T cr = r2[l] * w1r - i2[l] * w1i, ci = r2[l] * w1i + i2[l] * w1r;
                    const T dr = r3[l] * w3r - i3[l] * w3i, di = r3[l] * w3i + i3[l] * w3r;
                    const T s0r = ar + br, s0i = ai + bi;  // x0 + w^2 x2
                    const T s1r = ar - br, s1i = ai - bi;  // x0 - w^2 x2
                    const T s2r = cr + dr, s2i = ci + di;  // w x1 + w^3 x3
                    const T s3r = cr - dr, s3i = ci - di;  // w x1 - w^3 x3
                    r0[l] = s0r + s2r; i0[l] = s0i + s2i;
                    r2[l] = s0r - s2r; i2[l] = s0i - s2i;
                    // (-i) * s3 = (s3i, -s3r)
                    r1[l] = s1r + s3i; i1[l] = s1i - s3r;
                    r3[l] = s1r - s3i; i3[l] = s1i + s3r;
                }
            }
        }
    }
}

// Split step, power, mel projection, compression, and the transposed store of LANES frames.
template <typename T>
MSK_INLINE void finish_frames(const Plan<T>& P, const MelBands& mb, const T* MSK_RESTRICT weights,
                              T* MSK_RESTRICT re, T* MSK_RESTRICT im, T* MSK_RESTRICT mel, int power,
                              bool do_log, T log_scale, T log_offset, T* MSK_RESTRICT out,
                              std::int64_t f0, int nl) {
    constexpr int L = Lanes<T>::value;
    const int half = P.half;
    // Power spectrum |X_k|^p for k = 0..half, written back into re[k] (im is free afterwards).
    // X_k = E_k + W^k O_k with E_k = (Z_k + conj Z_{half-k}) / 2, O_k = (Z_k - conj Z_{half-k}) / 2i.
    // Pairs (k, half - k) are done together so that each pass reads both before writing.
    {
        T* r0 = re; T* i0 = im;
        T* rh = re + half * L;
#pragma GCC ivdep
        for (int l = 0; l < L; ++l) {
            const T a = r0[l] + i0[l], b = r0[l] - i0[l];
            r0[l] = a * a;
            rh[l] = b * b;
        }
    }
    for (int k = 1; k <= half / 2; ++k) {
        const int q = half - k;
        T* MSK_RESTRICT rk = re + k * L; T* MSK_RESTRICT ik = im + k * L;
        T* MSK_RESTRICT rq = re + q * L; T* MSK_RESTRICT iq = im + q * L;
        const T wkr = P.split_re[k], wki = P.split_im[k];
        const T wqr = P.split_re[q], wqi = P.split_im[q];
#pragma GCC ivdep
        for (int l = 0; l < L; ++l) {
            const T zkr = rk[l], zki = ik[l], zqr = rq[l], zqi = iq[l];
            // bin k
            const T er = T(0.5) * (zkr + zqr), ei = T(0.5) * (zki - zqi);
            const T orr = T(0.5) * (zki + zqi), oi = T(0.5) * (zqr - zkr);
            const T xkr = er + wkr * orr - wki * oi, xki = ei + wkr * oi + wki * orr;
            // bin q: E_q = conj(E_k), O_q = conj(O_k)
            const T xqr = er + wqr * orr + wqi * oi, xqi = -ei + wqi * orr - wqr * oi;
            rk[l] = xkr * xkr + xki * xki;
            rq[l] = xqr * xqr + xqi * xqi;
        }
    }
    if (power == 1) {
        for (int k = 0; k <= half; ++k) {
            T* MSK_RESTRICT rk = re + k * L;
#pragma GCC ivdep
            for (int l = 0; l < L; ++l) rk[l] = std::sqrt(rk[l]);
        }
    }
    // Sparse mel projection. The accumulators are register vectors, two of them so that the
    // FMA latency chain is halved (a T[L] array here was kept on the stack, and the chain of
    // store-forwarded FMAs made this step cost as much as the FFT).
    using V = typename Vec<T>::type;
    for (int b = 0; b < mb.n_mels; ++b) {
        V acc0 = {}, acc1 = {};
        const std::int64_t o0 = mb.offset[b], o1 = mb.offset[b + 1];
        const T* MSK_RESTRICT pk = re + mb.start[b] * L;
        std::int64_t o = o0;
        for (; o + 1 < o1; o += 2, pk += 2 * L) {
            V p0, p1;
            std::memcpy(&p0, pk, sizeof(V));
            std::memcpy(&p1, pk + L, sizeof(V));
            acc0 += weights[o] * p0;
            acc1 += weights[o + 1] * p1;
        }
        if (o < o1) {
            V p0;
            std::memcpy(&p0, pk, sizeof(V));
            acc0 += weights[o] * p0;
        }
        acc0 += acc1;
        std::memcpy(mel + b * L, &acc0, sizeof(V));
    }
    if (do_log) {
        const int nv = mb.n_mels * L;
#pragma GCC ivdep
        for (int i = 0; i < nv; ++i) mel[i] = log_pos<T>(log_scale * mel[i] + log_offset);
    }
    // Frames are rows of the output: transpose L x L tiles of (band, lane) in registers.
    const int n_mels = mb.n_mels;
    int b0 = 0;
    if (nl == L) {
        using V = typename Vec<T>::type;
        for (; b0 + L <= n_mels; b0 += L) {
            V v[L];
            std::memcpy(v, mel + b0 * L, sizeof(v));
            transpose<T>(v);
            for (int l = 0; l < L; ++l) std::memcpy(out + (f0 + l) * n_mels + b0, &v[l], sizeof(V));
        }
    }
    for (int l = 0; l < nl; ++l) {
        T* MSK_RESTRICT orow = out + (f0 + l) * n_mels;
        for (int b = b0; b < n_mels; ++b) orow[b] = mel[b * L + l];
    }
}

// Flush-to-zero and denormals-are-zero for the calling thread while in scope. Quiet passages
// and the zero padding produce subnormal powers, and one subnormal operand costs a hundred
// cycles or more; values below 1e-38 (float32) do not change a log(mel + 1e-10) spectrogram.
struct FlushDenormals {
#ifdef MSK_HAVE_MXCSR
    unsigned int saved = _mm_getcsr();
    FlushDenormals() { _mm_setcsr(saved | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

template <typename T>
MSK_INLINE void mel_blocks(const Plan<T>& P, const MelBands& mb, const T* weights, const T* y,
                           std::int64_t n, std::int64_t n_frames, std::int64_t block0,
                           std::int64_t block1, int power, bool do_log, T log_scale, T log_offset,
                           T* out) {
    constexpr int L = Lanes<T>::value;
    FlushDenormals ftz;
    Scratch<T> s(P.half, mb.n_mels);
    for (std::int64_t blk = block0; blk < block1; ++blk) {
        const std::int64_t f0 = blk * L;
        const int nl = int(std::min<std::int64_t>(L, n_frames - f0));
        const int h0 = load_frames<T>(P, y, n, f0, nl, s.re.get(), s.im.get());
        fft_lanes<T>(P, s.re.get(), s.im.get(), h0);
        finish_frames<T>(P, mb, weights, s.re.get(), s.im.get(), s.mel.get(), power, do_log,
                         log_scale, log_offset, out, f0, nl);
    }
}

// One instantiation per dtype, compiled for several instruction sets (picked at load time).
MSK_CLONES MSK_FLATTEN void mel_blocks_f32(const Plan<float>& P, const MelBands& mb, const float* weights,
                               const float* y, std::int64_t n, std::int64_t n_frames,
                               std::int64_t block0, std::int64_t block1, int power, bool do_log,
                               float log_scale, float log_offset, float* out) {
    mel_blocks<float>(P, mb, weights, y, n, n_frames, block0, block1, power, do_log, log_scale,
                      log_offset, out);
}

MSK_CLONES MSK_FLATTEN void mel_blocks_f64(const Plan<double>& P, const MelBands& mb, const double* weights,
                               const double* y, std::int64_t n, std::int64_t n_frames,
                               std::int64_t block0, std::int64_t block1, int power, bool do_log,
                               double log_scale, double log_offset, double* out) {
    mel_blocks<double>(P, mb, weights, y, n, n_frames, block0, block1, power, do_log, log_scale,
                       log_offset, out);
}

inline void run_blocks(const Plan<float>& P, const MelBands& mb, const float* w, const float* y,
                       std::int64_t n, std::int64_t nf, std::int64_t b0, std::int64_t b1, int power,
                       bool do_log, float ls, float lo, float* out) {
    mel_blocks_f32(P, mb, w, y, n, nf, b0, b1, power, do_log, ls, lo, out);
}
inline void run_blocks(const Plan<double>& P, const MelBands& mb, const double* w, const double* y,
                       std::int64_t n, std::int64_t nf, std::int64_t b0, std::int64_t b1, int power,
                       bool do_log, double ls, double lo, double* out) {
    mel_blocks_f64(P, mb, w, y, n, nf, b0, b1, power, do_log, ls, lo, out);
}

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

[[noreturn]] void bad_args(const std::string& what) { throw py::value_error("mel_power: " + what); }

// Checks, once per call and per band (never per sample), everything the kernel's indexing
// relies on, so that no call can read or write out of bounds: a wrong argument raises
// ValueError naming the shapes. Values of y and weights are not checked.
template <typename T>
void check_mel_args(const py::array_t<T, py::array::c_style>& y, int n_fft, int hop_length, bool center,
                    const py::array_t<std::int64_t, py::array::c_style>& band_start,
                    const py::array_t<std::int64_t, py::array::c_style>& band_offset,
                    const py::array_t<T, py::array::c_style>& weights, int power,
                    const py::array_t<T, py::array::c_style>& out) {
    if (y.ndim() != 1 || band_start.ndim() != 1 || band_offset.ndim() != 1 || weights.ndim() != 1 ||
        out.ndim() != 2) {
        bad_args("y, band_start, band_offset and weights must be 1-D and out 2-D; got shapes " + shape_str(y) +
                 ", " + shape_str(band_start) + ", " + shape_str(band_offset) + ", " + shape_str(weights) +
                 " and " + shape_str(out) + ".");
    }
    if (n_fft < 16 || n_fft > (1 << 24) || (n_fft & (n_fft - 1)) != 0) {
        bad_args("n_fft must be a power of two from 16 to 2**24; got " + std::to_string(n_fft) + ".");
    }
    if (hop_length < 1) bad_args("hop_length must be >= 1; got " + std::to_string(hop_length) + ".");
    if (power != 1 && power != 2) bad_args("power must be 1 or 2; got " + std::to_string(power) + ".");
    const std::int64_t n = y.shape(0), pad = center ? n_fft / 2 : 0;
    const std::int64_t frames = n + 2 * pad < n_fft ? 0 : 1 + (n + 2 * pad - n_fft) / hop_length;
    if (out.shape(0) != frames) {
        bad_args("out must have 1 + (n_samples + 2 * pad - n_fft) // hop_length = " + std::to_string(frames) +
                 " rows for y of shape " + shape_str(y) + ", n_fft=" + std::to_string(n_fft) + ", hop_length=" +
                 std::to_string(hop_length) + "; got out of shape " + shape_str(out) + ".");
    }
    const std::int64_t n_mels = out.shape(1);
    if (n_mels < 1 || n_mels > (1 << 24) || band_start.shape(0) != n_mels || band_offset.shape(0) != n_mels + 1) {
        bad_args("band_start must have out.shape[1] = n_mels >= 1 entries and band_offset n_mels + 1; got "
                 "band_start of shape " + shape_str(band_start) + ", band_offset of shape " +
                 shape_str(band_offset) + " and out of shape " + shape_str(out) + ".");
    }
    const std::int64_t* st = band_start.data();
    const std::int64_t* off = band_offset.data();
    const std::int64_t nnz = weights.shape(0), bins = n_fft / 2 + 1;
    if (off[0] < 0 || off[n_mels] > nnz) {
        bad_args("band_offset must run from >= 0 to at most weights.shape[0] = " + std::to_string(nnz) +
                 "; got band_offset[0] = " + std::to_string(off[0]) + " and band_offset[-1] = " +
                 std::to_string(off[n_mels]) + ".");
    }
    for (std::int64_t b = 0; b < n_mels; ++b) {
        const std::int64_t width = off[b + 1] - off[b];
        if (width < 0 || st[b] < 0 || st[b] > bins - width) {
            bad_args("band " + std::to_string(b) + " must have non-decreasing offsets and lie within the " +
                     std::to_string(bins) + " FFT bins of n_fft=" + std::to_string(n_fft) + "; got band_start = " +
                     std::to_string(st[b]) + ", band_offset = [" + std::to_string(off[b]) + ", " +
                     std::to_string(off[b + 1]) + "].");
        }
    }
}

template <typename T>
void mel_power(py::array_t<T, py::array::c_style> y, int n_fft, int hop_length, bool center,
               py::array_t<std::int64_t, py::array::c_style> band_start,
               py::array_t<std::int64_t, py::array::c_style> band_offset,
               py::array_t<T, py::array::c_style> weights, int power, bool log, double log_scale,
               double log_offset, int n_threads, py::array_t<T, py::array::c_style> out) {
    check_mel_args(y, n_fft, hop_length, center, band_start, band_offset, weights, power, out);
    const std::int64_t n = y.shape(0);
    const std::int64_t n_frames = out.shape(0);
    const T* yp = y.data();
    const T* wp = weights.data();
    T* op = out.mutable_data();
    MelBands mb{band_start.data(), band_offset.data(), int(out.shape(1))};
    constexpr int L = Lanes<T>::value;
    const std::int64_t n_blocks = (n_frames + L - 1) / L;
    {
        py::gil_scoped_release release;
        Plan<T> P(n_fft, hop_length, center ? n_fft / 2 : 0);
        const int nt = int(std::max<std::int64_t>(1, std::min<std::int64_t>(n_threads, n_blocks)));
        if (nt == 1) {
            run_blocks(P, mb, wp, yp, n, n_frames, 0, n_blocks, power, log, T(log_scale),
                       T(log_offset), op);
        } else {
            std::vector<std::thread> pool;
            for (int t = 0; t < nt; ++t) {
                const std::int64_t b0 = n_blocks * t / nt, b1 = n_blocks * (t + 1) / nt;
                pool.emplace_back([&, b0, b1] {
                    run_blocks(P, mb, wp, yp, n, n_frames, b0, b1, power, log, T(log_scale),
                               T(log_offset), op);
                });
            }
            for (auto& th : pool) th.join();
        }
    }
}

}  // namespace

PYBIND11_MODULE(_spectral, m) {
    m.doc() = "Fused log-mel spectrogram kernel (framing, window, real FFT, power, mel, log).";
    const char* doc =
        "Fill `out` with the mel spectrogram of `y`.\n\n"
        "IN  y (n_samples,) float32|float64, C-contiguous\n"
        "IN  n_fft: power of two >= 16; hop_length >= 1; center: pad n_fft/2 zeros each side\n"
        "IN  band_start (n_mels,) int64: first FFT bin of each band\n"
        "IN  band_offset (n_mels+1,) int64: offsets of each band's weights in `weights`\n"
        "IN  weights (nnz,) same dtype as y: contiguous mel weights of every band\n"
        "IN  power: 1 (magnitude) or 2 (power); log: apply log(log_scale*mel + log_offset)\n"
        "IN  n_threads: frame blocks split across this many threads\n"
        "OUT out (n_frames, n_mels) same dtype as y; n_frames = 1 + (n_samples + 2*pad - n_fft) // hop\n"
        "The GIL is released while computing.";
    m.def("mel_power", &mel_power<float>, doc, py::arg("y").noconvert(), py::arg("n_fft"), py::arg("hop_length"),
          py::arg("center"), py::arg("band_start").noconvert(), py::arg("band_offset").noconvert(), py::arg("weights").noconvert(),
          py::arg("power"), py::arg("log"), py::arg("log_scale"), py::arg("log_offset"),
          py::arg("n_threads"), py::arg("out").noconvert());
    m.def("mel_power", &mel_power<double>, doc, py::arg("y").noconvert(), py::arg("n_fft"),
          py::arg("hop_length"), py::arg("center"), py::arg("band_start").noconvert(), py::arg("band_offset").noconvert(),
          py::arg("weights").noconvert(), py::arg("power"), py::arg("log"), py::arg("log_scale"),
          py::arg("log_offset"), py::arg("n_threads"), py::arg("out").noconvert());
}
