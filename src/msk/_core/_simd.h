/* Compiler macros shared by every kernel in msk/_core (C and C++).
 *
 * MSK_CLONES    function multiversioning: the function is compiled for x86-64-v4 (AVX-512),
 *               x86-64-v3 (AVX2, FMA) and the x86-64 baseline, and the dynamic loader picks one
 *               at load time through an ifunc resolver, so the extension needs no -march flag.
 *               This needs GCC >= 11 or clang >= 14 (the "arch=x86-64-vN" names), x86-64, ELF
 *               and a C library with ifunc support (glibc). Everywhere else, or when
 *               MSK_NO_CLONES is defined, it expands to nothing and the function is compiled
 *               once for the target's baseline.
 * MSK_FLATTEN   inline every call made by the function into its body (GCC/clang), so each
 *               clone gets its own copy of the inlined code.
 * MSK_INLINE    force inlining (GCC/clang), plain `inline` elsewhere.
 * MSK_RESTRICT  the restrict qualifier under its C or GNU C++ spelling, nothing elsewhere.
 */
#ifndef MSK_SIMD_H
#define MSK_SIMD_H

#include <limits.h> /* defines __GLIBC__ on glibc */

#if defined(__GNUC__) && !defined(__clang__)
#define MSK_GCC_AT_LEAST(major) (__GNUC__ >= (major))
#else
#define MSK_GCC_AT_LEAST(major) 0
#endif
#if defined(__clang__)
#define MSK_CLANG_AT_LEAST(major) (__clang_major__ >= (major))
#else
#define MSK_CLANG_AT_LEAST(major) 0
#endif

#if !defined(MSK_NO_CLONES) && defined(__x86_64__) && defined(__ELF__) && defined(__GLIBC__) && \
    (MSK_GCC_AT_LEAST(11) || MSK_CLANG_AT_LEAST(14))
#define MSK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MSK_CLONES
#endif

#if defined(__GNUC__)
#define MSK_FLATTEN __attribute__((flatten))
#define MSK_INLINE inline __attribute__((always_inline))
#else
#define MSK_FLATTEN
#define MSK_INLINE inline
#endif

#if defined(__cplusplus)
#if defined(__GNUC__)
#define MSK_RESTRICT __restrict__
#else
#define MSK_RESTRICT
#endif
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L
#define MSK_RESTRICT restrict
#else
#define MSK_RESTRICT
#endif

#endif /* MSK_SIMD_H */
