// AVX2 + FMA + F16C kernels of the 4-bit fused dequant-GEMV; see FusedGEMV4.swift for the math.
//
// Every function that uses those instructions carries a target attribute, so the file builds
// without any -m flag and the rest of the program stays portable; Swift calls these only after
// cq_has_avx2_kernels() said yes.
#include "CQuantKernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define CQ_TARGET __attribute__((target("avx2,fma,f16c")))
#define CQ_INLINE static inline __attribute__((always_inline)) CQ_TARGET

/// Rows of a tile of the tiled 4-bit layout (BitPacking.nibbleTileRows).
#define CQ_TILE_ROWS 4
/// Bytes ahead of the current position that a tile's code stream is prefetched.
#ifndef CQ_PREFETCH_BYTES
#define CQ_PREFETCH_BYTES 2048
#endif
/// Groups whose fp16 scales a tile converts to Float at a time (a window on the stack).
#define CQ_SCALE_WINDOW 64
#define CQ_STR2(s) #s
#define CQ_STR(s) CQ_STR2(s)

int cq_has_avx2_kernels(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned int fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if ((ecx & (fma | osxsave | avx | f16c)) != (fma | osxsave | avx | f16c)) return 0;
    unsigned int xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6u) != 6u) return 0;  // the OS saves XMM and YMM state
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    return (ebx & (1u << 5)) != 0;  // AVX2
}

// Asymmetric codes as denormal floats. A 32-bit lane whose bits above 19 are clear, read as a
// Float, is the denormal u·2⁻¹⁴⁹ with u its integer value, and FMA multiplies denormals exactly
// (AVX2 hardware does this without penalty on the Zen 3 machines here). So a nibble masked in place
// at bits 4t…4t+3 (t ≤ 4) is the Float u·16ᵗ·2⁻¹⁴⁹ without a conversion instruction, and
// x' = x·2^(c−4t) makes the product u·x·2^(c−149). Nibbles 5 and 6 are masked after a shift of the
// pair by 8 (at bits 12…15 and 16…19), nibble 7 is that shift shifted by 20; cq_nibble_step gives
// each nibble's t after the shift. Per 64 codes and row: 7 masks, 2 shifts and 8 FMAs, where the
// conversion loop takes 8 masks/shifts, 8 conversions and 8 FMAs. The exponent c puts the largest |x'|
// just under 2¹²⁷; the row's sum is scaled back by 2^(149−c) (exact). The kernel needs the MXCSR's
// denormals-are-zero flag clear, so cq_gemv4_avx2 clears it for the call.
//
// Symmetric codes u = q + M are converted instead, after subtracting M·16ᵗ as integers, so a zero
// weight (q = 0) adds exactly nothing even beside a huge x_j; summing u and subtracting M·Σx per
// group would cancel catastrophically there. Their x' is x·2^(c−4t) with c = −e, |x| < 2^e.

/// The step of each nibble after the shift: nibble t's x' is x·2^(c − 4·cq_nibble_step[t]).
static const int cq_nibble_step[8] = {0, 1, 2, 3, 4, 3, 4, 0};

CQ_INLINE double cq_sum_lanes(__m256 v) {
    __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    return _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
}

/// Σ_g fp16(minima[g]) · xsum[g]: the offset term of one row.
CQ_INLINE double cq_offset_term(const uint16_t *minima, const float *xsum, size_t groups) {
    if (!minima) return 0;
    __m256 acc = _mm256_setzero_ps();
    size_t g = 0;
    for (; g + 8 <= groups; g += 8) {
        __m256 m = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(minima + g)));
        acc = _mm256_fmadd_ps(m, _mm256_loadu_ps(xsum + g), acc);
    }
    double sum = cq_sum_lanes(acc);
    for (; g < groups; g++) sum += (double)(_cvtsh_ss(minima[g]) * xsum[g]);
    return sum;
}

/// y[r] from the row's scaled sum: scaled back, plus the offset term (asymmetric).
CQ_INLINE void cq_finish_row(const cq_gemv4_problem *p, size_t r, __m256 scaled) {
    const uint16_t *minima = p->minima ? p->minima + r * p->groups_per_row : 0;
    p->y[r] = (float)(cq_sum_lanes(scaled) * p->unscale + cq_offset_term(minima, p->xsum, p->groups_per_row));
}

/// Where row r's pairs are in the tiled layout: its first pair, and the distance between its pairs
/// in 32-byte vectors (the row count of its tile).
CQ_INLINE const __m256i *cq_row_pairs(const cq_gemv4_problem *p, size_t r, size_t *stride) {
    const size_t first = r - r % CQ_TILE_ROWS;
    *stride = p->rows - first < CQ_TILE_ROWS ? p->rows - first : CQ_TILE_ROWS;
    return (const __m256i *)(p->words + first * p->words_per_row) + (r - first);
}

/// Nibble t of a pair (`v`, or `s` = v >> 8 after step 4) as the Float the kernel multiplies:
/// asymmetric, the masked lane itself (a denormal); symmetric, the masked lane minus the bias
/// M·16^step, converted.
CQ_INLINE __m256 cq_codes(__m256i v, __m256i s, int t, int32_t m, int symmetric) {
    const int step = cq_nibble_step[t];
    __m256i u = t == 7 ? _mm256_srli_epi32(s, 20) : _mm256_and_si256(t < 5 ? v : s, _mm256_set1_epi32(0xF << (4 * step)));
    if (!symmetric) return _mm256_castsi256_ps(u);
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(u, _mm256_set1_epi32(m << (4 * step))));
}

/// The eight steps of one 64-code pair `v` against x' at `xk`, into two accumulator chains.
CQ_INLINE void cq_pair(__m256i v, const float *xk, int32_t m, int symmetric, __m256 *a0, __m256 *a1) {
    const __m256i s = _mm256_srli_epi32(v, 8);
#define CQ_STEP(t, acc) *acc = _mm256_fmadd_ps(cq_codes(v, s, (t), m, symmetric), _mm256_loadu_ps(xk + 8 * (t)), *acc)
    CQ_STEP(0, a0); CQ_STEP(1, a1); CQ_STEP(2, a0); CQ_STEP(3, a1);
    CQ_STEP(4, a0); CQ_STEP(5, a1); CQ_STEP(6, a0); CQ_STEP(7, a1);
#undef CQ_STEP
}

/// One row (of a partial tile, or a range that does not start a tile), groups of whole 64-code
/// pairs (or per channel); two accumulator chains.
CQ_INLINE void cq_row_whole_pairs(const cq_gemv4_problem *p, size_t r, int symmetric) {
    const size_t gpr = p->groups_per_row, ppr = p->pairs_per_row, ppg = p->chunks_per_group / 2;
    size_t stride;
    const __m256i *w = cq_row_pairs(p, r, &stride);
    __m256 scaled = _mm256_setzero_ps();
    for (size_t g = 0; g < gpr; g++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        const size_t k1 = (g + 1) * ppg < ppr ? (g + 1) * ppg : ppr;
        for (size_t k = g * ppg; k < k1; k++)
            cq_pair(_mm256_loadu_si256(w + k * stride), p->xp + 64 * k, p->bias, symmetric, &a0, &a1);
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(p->scales[r * gpr + g]));
        scaled = _mm256_fmadd_ps(s, _mm256_add_ps(a0, a1), scaled);
    }
    cq_finish_row(p, r, scaled);
}

/// One row whose groups hold an odd number of 32-code chunks: a pair's two halves may belong to two
/// groups, so each pair is scaled lane-wise (low half: chunk 2k, high half: chunk 2k + 1).
CQ_INLINE void cq_row_split_pairs(const cq_gemv4_problem *p, size_t r, int symmetric) {
    const size_t gpr = p->groups_per_row, cpg = p->chunks_per_group;
    size_t stride;
    const __m256i *w = cq_row_pairs(p, r, &stride);
    const uint16_t *scales = p->scales + r * gpr;
    __m256 scaled = _mm256_setzero_ps();
    for (size_t k = 0; k < p->pairs_per_row; k++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        cq_pair(_mm256_loadu_si256(w + k * stride), p->xp + 64 * k, p->bias, symmetric, &a0, &a1);
        const size_t g0 = 2 * k / cpg, g1 = (2 * k + 1) / cpg;
        const float s0 = _cvtsh_ss(scales[g0]), s1 = g1 < gpr ? _cvtsh_ss(scales[g1]) : 0.0f;  // padding chunk: zeros
        scaled = _mm256_fmadd_ps(_mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0)), _mm256_add_ps(a0, a1), scaled);
    }
    cq_finish_row(p, r, scaled);
}

// The tile kernel: the 4 rows of a full tile, groups of whole pairs, in inline assembly. Written
// with intrinsics, the compiler hoists the four code loads of a pair out of the eight steps and
// spills them (it has 16 vector registers), so the loop here is pinned: ymm0–7 accumulate (row i:
// ymm(2i) for even steps, ymm(2i+1) for odd ones, two chains to hide the FMA latency), ymm8–11
// hold the pair's codes of rows 0–3 (shifted by 8 in place after step 4), ymm12 the step's x',
// ymm13 and ymm15 the codes as Floats, ymm14 the step's mask. Per step the mask and x' are loaded
// once for the 4 rows; the symmetric biases are memory operands. Per group and row, a broadcast
// scale and one FMA into the row's scaled sum (kept in memory, as 4 vectors at `sc`).

static const uint32_t cq_nibble_masks[5][8] __attribute__((aligned(32))) = {
#define CQ_M8(v) {v, v, v, v, v, v, v, v}
    CQ_M8(0xFu), CQ_M8(0xF0u), CQ_M8(0xF00u), CQ_M8(0xF000u), CQ_M8(0xF0000u)
#undef CQ_M8
};

/// Asymmetric: the masked lane is the Float. Symmetric: subtract step t's bias, convert.
#define CQ_AS_IS(t, reg)
#define CQ_CONVERT(t, reg) "vpsubd " #t "*32(%[b]), " reg ", " reg "\n\t vcvtdq2ps " reg ", " reg "\n\t"
/// Step t of the 4 rows, with mask `mask`: two rows at a time, masked into ymm13 and ymm15 before
/// their FMAs (masking each row into ymm13 right before its FMA measured about 20% slower).
#define CQ_TILE_STEP(t, mask, CODES, a0, a1, a2, a3) \
    "vmovdqa " #mask "*32(%[m]), %%ymm14\n\t vmovups " #t "*32(%[x]), %%ymm12\n\t" \
    "vpand %%ymm14, %%ymm8, %%ymm13\n\t vpand %%ymm14, %%ymm9, %%ymm15\n\t" \
    CODES(t, "%%ymm13") CODES(t, "%%ymm15") \
    "vfmadd231ps %%ymm12, %%ymm13, " a0 "\n\t vfmadd231ps %%ymm12, %%ymm15, " a1 "\n\t" \
    "vpand %%ymm14, %%ymm10, %%ymm13\n\t vpand %%ymm14, %%ymm11, %%ymm15\n\t" \
    CODES(t, "%%ymm13") CODES(t, "%%ymm15") \
    "vfmadd231ps %%ymm12, %%ymm13, " a2 "\n\t vfmadd231ps %%ymm12, %%ymm15, " a3 "\n\t"
#define CQ_TILE_TOP(code, acc, CODES) \
    "vpsrld $20, " code ", %%ymm13\n\t" CODES(7, "%%ymm13") "vfmadd231ps %%ymm12, %%ymm13, " acc "\n\t"
#define CQ_EVEN "%%ymm0", "%%ymm2", "%%ymm4", "%%ymm6"
#define CQ_ODD "%%ymm1", "%%ymm3", "%%ymm5", "%%ymm7"
#define CQ_TILE_STEP_(...) CQ_TILE_STEP(__VA_ARGS__)
#define CQ_TILE_SCALE(i, ae, ao) \
    "vaddps " ao ", " ae ", " ae "\n\t" \
    "vbroadcastss " #i "*4*" CQ_STR(CQ_SCALE_WINDOW) "(%[sb]), %%ymm8\n\t" \
    "vfmadd213ps " #i "*32(%[sc]), %%ymm8, " ae "\n\t" \
    "vmovups " ae ", " #i "*32(%[sc])\n\t"

/// `groups` groups of `ppg` pairs of a full tile from its pair `v` and x' at `x`; sb: the Float
/// scales of the groups (row i at sb[i·CQ_SCALE_WINDOW + g]); b: the symmetric biases per step.
#define CQ_TILE_KERNEL(name, CODES)                                                                          \
    CQ_TARGET static void name(const __m256i *v, const float *x, const float *sb, size_t groups, size_t ppg, \
                               const int32_t *b, __m256 *sc) {                                               \
        size_t n;                                                                                            \
        __asm__ volatile(                                                                                    \
            "2:\n\t"                                                                                         \
            "vxorps %%xmm0, %%xmm0, %%xmm0\n\t vxorps %%xmm1, %%xmm1, %%xmm1\n\t"                            \
            "vxorps %%xmm2, %%xmm2, %%xmm2\n\t vxorps %%xmm3, %%xmm3, %%xmm3\n\t"                            \
            "vxorps %%xmm4, %%xmm4, %%xmm4\n\t vxorps %%xmm5, %%xmm5, %%xmm5\n\t"                            \
            "vxorps %%xmm6, %%xmm6, %%xmm6\n\t vxorps %%xmm7, %%xmm7, %%xmm7\n\t"                            \
            "mov %[ppg], %[n]\n\t"                                                                           \
            "1:\n\t"                                                                                         \
            "prefetcht0 " CQ_STR(CQ_PREFETCH_BYTES) "(%[v])\n\t"                                             \
            "prefetcht0 " CQ_STR(CQ_PREFETCH_BYTES) "+64(%[v])\n\t"                                          \
            "vmovdqu 0(%[v]), %%ymm8\n\t vmovdqu 32(%[v]), %%ymm9\n\t"                                       \
            "vmovdqu 64(%[v]), %%ymm10\n\t vmovdqu 96(%[v]), %%ymm11\n\t"                                    \
            CQ_TILE_STEP_(0, 0, CODES, CQ_EVEN) CQ_TILE_STEP_(1, 1, CODES, CQ_ODD)                           \
            CQ_TILE_STEP_(2, 2, CODES, CQ_EVEN) CQ_TILE_STEP_(3, 3, CODES, CQ_ODD)                           \
            CQ_TILE_STEP_(4, 4, CODES, CQ_EVEN)                                                              \
            "vpsrld $8, %%ymm8, %%ymm8\n\t vpsrld $8, %%ymm9, %%ymm9\n\t"                                    \
            "vpsrld $8, %%ymm10, %%ymm10\n\t vpsrld $8, %%ymm11, %%ymm11\n\t"                                \
            CQ_TILE_STEP_(5, 3, CODES, CQ_ODD) CQ_TILE_STEP_(6, 4, CODES, CQ_EVEN)                           \
            "vmovups 7*32(%[x]), %%ymm12\n\t"                                                                \
            CQ_TILE_TOP("%%ymm8", "%%ymm1", CODES) CQ_TILE_TOP("%%ymm9", "%%ymm3", CODES)                    \
            CQ_TILE_TOP("%%ymm10", "%%ymm5", CODES) CQ_TILE_TOP("%%ymm11", "%%ymm7", CODES)                  \
            "add $128, %[v]\n\t"                                                                             \
            "add $256, %[x]\n\t"                                                                             \
            "dec %[n]\n\t"                                                                                   \
            "jnz 1b\n\t"                                                                                     \
            CQ_TILE_SCALE(0, "%%ymm0", "%%ymm1") CQ_TILE_SCALE(1, "%%ymm2", "%%ymm3")                        \
            CQ_TILE_SCALE(2, "%%ymm4", "%%ymm5") CQ_TILE_SCALE(3, "%%ymm6", "%%ymm7")                        \
            "add $4, %[sb]\n\t"                                                                              \
            "dec %[g]\n\t"                                                                                   \
            "jnz 2b\n\t"                                                                                     \
            : [v] "+r"(v), [x] "+r"(x), [sb] "+r"(sb), [g] "+r"(groups), [n] "=&r"(n)                        \
            : [ppg] "r"(ppg), [m] "r"(cq_nibble_masks), [b] "r"(b), [sc] "r"(sc)                             \
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",        \
              "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");                                  \
    }
CQ_TILE_KERNEL(cq_tile_asymmetric, CQ_AS_IS)
CQ_TILE_KERNEL(cq_tile_symmetric, CQ_CONVERT)
#undef CQ_TILE_KERNEL

/// The full tile of rows r0…r0+3 (groups of whole pairs, or per channel).
CQ_TARGET static void cq_tile(const cq_gemv4_problem *p, size_t r0, const int32_t *biases) {
    const size_t gpr = p->groups_per_row, ppr = p->pairs_per_row, ppg = p->chunks_per_group / 2;
    const __m256i *tile = (const __m256i *)(p->words + r0 * p->words_per_row);
    __m256 scaled[CQ_TILE_ROWS] __attribute__((aligned(32)));
    float sb[CQ_TILE_ROWS * CQ_SCALE_WINDOW] __attribute__((aligned(32)));
    for (int i = 0; i < CQ_TILE_ROWS; i++) scaled[i] = _mm256_setzero_ps();
    void (*kernel)(const __m256i *, const float *, const float *, size_t, size_t, const int32_t *, __m256 *) =
        p->bias ? cq_tile_symmetric : cq_tile_asymmetric;
    for (size_t g0 = 0; g0 < gpr; g0 += CQ_SCALE_WINDOW) {
        const size_t count = gpr - g0 < CQ_SCALE_WINDOW ? gpr - g0 : CQ_SCALE_WINDOW;
        for (int i = 0; i < CQ_TILE_ROWS; i++) {
            const uint16_t *s = p->scales + (r0 + i) * gpr + g0;
            size_t g = 0;
            for (; g + 8 <= count; g += 8)
                _mm256_store_ps(sb + i * CQ_SCALE_WINDOW + g, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + g))));
            for (; g < count; g++) sb[i * CQ_SCALE_WINDOW + g] = _cvtsh_ss(s[g]);
        }
        // Whole groups, then a last group that may hold fewer pairs (the row's last pairs).
        const size_t k0 = g0 * ppg, k_end = (g0 + count) * ppg < ppr ? (g0 + count) * ppg : ppr;
        const size_t whole = (k_end - k0) / ppg, rest = (k_end - k0) % ppg;
        if (whole) kernel(tile + CQ_TILE_ROWS * k0, p->xp + 64 * k0, sb, whole, ppg, biases, scaled);
        if (rest) {
            const size_t k = k0 + whole * ppg;
            kernel(tile + CQ_TILE_ROWS * k, p->xp + 64 * k, sb + whole, 1, rest, biases, scaled);
        }
    }
    for (int i = 0; i < CQ_TILE_ROWS; i++) cq_finish_row(p, r0 + i, scaled[i]);
}

/// 2^e as a Float, for −126 ≤ e ≤ 127.
static float cq_pow2f(int e) {
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

/// xp for one 64-code pair from 64 values of x: nibble t takes x[4t…4t+3] and x[32+4t…32+4t+3],
/// times f1[t]·f2[t] = 2^(c − 4·cq_nibble_step[t]) (two exact steps: the exponent may pass 127).
CQ_INLINE void cq_permute_pair(const float *x, float *xp, const float *f1, const float *f2) {
    for (int t = 0; t < 8; t++) {
        const __m256 v = _mm256_set_m128(_mm_loadu_ps(x + 32 + 4 * t), _mm_loadu_ps(x + 4 * t));
        _mm256_storeu_ps(xp + 8 * t, _mm256_mul_ps(_mm256_mul_ps(v, _mm256_set1_ps(f1[t])), _mm256_set1_ps(f2[t])));
    }
}

/// The largest finite |x_j| (0 if none).
CQ_TARGET static float cq_max_finite_abs(const float *x, size_t cols) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), largest = _mm256_set1_ps(3.40282347e38f);
    __m256 m = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + j), magnitude);
        m = _mm256_max_ps(m, _mm256_and_ps(a, _mm256_cmp_ps(a, largest, _CMP_LE_OQ)));  // NaN, ±Inf: 0
    }
    float lanes[8], result = 0;
    _mm256_storeu_ps(lanes, m);
    for (int l = 0; l < 8; l++) result = lanes[l] > result ? lanes[l] : result;
    for (; j < cols; j++) {
        const float a = x[j] < 0 ? -x[j] : x[j];
        if (a <= 3.40282347e38f && a > result) result = a;
    }
    return result;
}

CQ_TARGET double cq_gemv4_prepare_avx2(const float *x, size_t cols, size_t group_size, size_t pairs_per_row,
                                       int symmetric, float *xp, float *xsum) {
    // With the largest finite |x| below 2^e: asymmetric, c = 127 − e puts |x|·2^c below 2^127 (the
    // codes are denormals: products u·x·2^(c−149)); symmetric, c = −e scales x to below 1 (x·16⁻ᵗ
    // alone would lose the bits of tiny x). c ≤ 254, so every factor is two Float powers of two.
    int e = 0;
    (void)frexpf(cq_max_finite_abs(x, cols), &e);
    const int c = symmetric ? -e : (127 - e < 254 ? 127 - e : 254);
    float f1[8], f2[8];
    for (int t = 0; t < 8; t++) {
        const int a = c - 4 * cq_nibble_step[t], a1 = a < -126 ? -126 : (a > 127 ? 127 : a);
        f1[t] = cq_pow2f(a1);
        f2[t] = cq_pow2f(a - a1);
    }
    size_t k = 0;
    for (; 64 * (k + 1) <= cols; k++) cq_permute_pair(x + 64 * k, xp + 64 * k, f1, f2);
    if (k < pairs_per_row) {  // the partial last pair, zero-padded; any further pairs are zeros
        float tail[64] = {0};
        for (size_t j = 64 * k; j < cols; j++) tail[j - 64 * k] = x[j];
        cq_permute_pair(tail, xp + 64 * k, f1, f2);
        for (k++; k < pairs_per_row; k++)
            for (int t = 0; t < 8; t++) _mm256_storeu_ps(xp + 64 * k + 8 * t, _mm256_setzero_ps());
    }
    for (size_t g = 0, j0 = 0; j0 < cols; g++, j0 += group_size) {
        const size_t j1 = j0 + group_size < cols ? j0 + group_size : cols;
        __m256d s0 = _mm256_setzero_pd(), s1 = s0;
        size_t j = j0;
        for (; j + 8 <= j1; j += 8) {
            s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(x + j)));
            s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(x + j + 4)));
        }
        s0 = _mm256_add_pd(s0, s1);
        __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s0), _mm256_extractf128_pd(s0, 1));
        double sum = _mm_cvtsd_f64(h) + _mm_cvtsd_f64(_mm_unpackhi_pd(h, h));
        for (; j < j1; j++) sum += x[j];
        xsum[g] = (float)sum;
    }
    return ldexp(1.0, symmetric ? -c : 149 - c);
}

// Specializations: the symmetric flag is a compile-time constant.
CQ_TARGET static void cq_row_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_row_whole_pairs(p, r, 0); }
CQ_TARGET static void cq_row_symmetric(const cq_gemv4_problem *p, size_t r) { cq_row_whole_pairs(p, r, 1); }
CQ_TARGET static void cq_split_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_row_split_pairs(p, r, 0); }
CQ_TARGET static void cq_split_symmetric(const cq_gemv4_problem *p, size_t r) { cq_row_split_pairs(p, r, 1); }

CQ_TARGET void cq_gemv4_avx2(const cq_gemv4_problem *p, size_t row0, size_t row1) {
    const int symmetric = p->bias != 0;
    // Denormals-are-zero (bit 6) would read every asymmetric code as 0, flush-to-zero (bit 15)
    // flush tiny products; both are cleared for the call.
    const unsigned int csr = _mm_getcsr();
    if (csr & 0x8040u) _mm_setcsr(csr & ~0x8040u);
    if (p->chunks_per_group % 2 != 0) {
        for (size_t r = row0; r < row1; r++) (symmetric ? cq_split_symmetric : cq_split_asymmetric)(p, r);
    } else {
        int32_t biases[8][8] __attribute__((aligned(32)));  // symmetric: M·16^step per step
        if (symmetric)
            for (int t = 0; t < 8; t++)
                for (int l = 0; l < 8; l++) biases[t][l] = (int32_t)((uint32_t)p->bias << (4 * cq_nibble_step[t]));
        for (size_t r = row0; r < row1;) {
            if (r % CQ_TILE_ROWS == 0 && r + CQ_TILE_ROWS <= row1 && r + CQ_TILE_ROWS <= p->rows) {
                cq_tile(p, r, &biases[0][0]);
                r += CQ_TILE_ROWS;
            } else {
                (symmetric ? cq_row_symmetric : cq_row_asymmetric)(p, r);
                r++;
            }
        }
    }
    if (csr & 0x8040u) _mm_setcsr(csr);
}

// 2-, 3- and 8-bit codes: bit planes. A plane load gives lane l the bits of codes l, 8+l, 16+l, 24+l;
// step t masks them in place (value u·2^(p·t), compensated by the pre-scaled xs) or, for t = 3,
// shifts; the 1-bit plane of 3-bit codes masks bit 8t+l of one broadcast word (compensated by xh).

/// Accumulates one 32-code chunk into four per-step accumulators.
CQ_INLINE void cq_planes_chunk(const uint8_t *chunk, int bits, const float *xs, const float *xh, int32_t m,
                               int symmetric, __m256 *a) {
    const int p = bits == 8 ? 8 : 2;
    const __m256i v = bits == 8 ? _mm256_loadu_si256((const __m256i *)chunk)
                                : _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)chunk));
#define CQ_PLANE_STEP(t)                                                                                         \
    do {                                                                                                         \
        __m256i u = (t) < 3 ? _mm256_and_si256(v, _mm256_set1_epi32(((1 << p) - 1) << (p * (t))))                \
                            : _mm256_srli_epi32(v, 3 * p);                                                       \
        if (symmetric) u = _mm256_sub_epi32(u, _mm256_set1_epi32((t) < 3 ? m << (p * (t)) : m));                 \
        a[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(u), _mm256_loadu_ps(xs + 8 * (t)), a[t]);                     \
    } while (0)
    CQ_PLANE_STEP(0); CQ_PLANE_STEP(1); CQ_PLANE_STEP(2); CQ_PLANE_STEP(3);
#undef CQ_PLANE_STEP
    if (bits == 3) {
        uint32_t word;
        __builtin_memcpy(&word, chunk + 8, 4);
        const __m256i h = _mm256_set1_epi32((int)word);
        const __m256i lanes = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        for (int t = 0; t < 4; t++) {
            const __m256i bit = _mm256_and_si256(h, _mm256_slli_epi32(lanes, 8 * t));
            a[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bit), _mm256_loadu_ps(xh + 8 * t), a[t]);
        }
    }
}

CQ_INLINE void cq_planes_rows(const cq_gemv_planes_problem *p, size_t row0, size_t row1, int bits, int symmetric) {
    const size_t gpr = p->groups_per_row, cpr = p->chunks_per_row, cpg = p->chunks_per_group;
    for (size_t r = row0; r < row1; r++) {
        const uint8_t *row = (const uint8_t *)(p->words + r * cpr * (size_t)bits);
        __m256 scaled = _mm256_setzero_ps();
        for (size_t g = 0; g < gpr; g++) {
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            const size_t k1 = (g + 1) * cpg < cpr ? (g + 1) * cpg : cpr;
            for (size_t k = g * cpg; k < k1; k++)
                cq_planes_chunk(row + 4 * (size_t)bits * k, bits, p->xs + 32 * k, p->xh + 32 * k, p->bias, symmetric, a);
            const __m256 s = _mm256_set1_ps(_cvtsh_ss(p->scales[r * gpr + g]));
            scaled = _mm256_fmadd_ps(s, _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])), scaled);
        }
        const uint16_t *minima = p->minima ? p->minima + r * gpr : 0;
        p->y[r] = (float)(cq_sum_lanes(scaled) * p->unscale + cq_offset_term(minima, p->xsum, gpr));
    }
}

#define CQ_PLANES(bits)                                                                                          \
    CQ_TARGET static void cq_planes##bits(const cq_gemv_planes_problem *p, size_t r0, size_t r1, int symmetric) { \
        if (symmetric) cq_planes_rows(p, r0, r1, bits, 1);                                                       \
        else cq_planes_rows(p, r0, r1, bits, 0);                                                                 \
    }
CQ_PLANES(2)
CQ_PLANES(3)
CQ_PLANES(8)
#undef CQ_PLANES

CQ_TARGET void cq_gemv_planes_avx2(const cq_gemv_planes_problem *p, size_t row0, size_t row1) {
    const int symmetric = p->bias != 0;
    switch (p->bits) {
    case 2: cq_planes2(p, row0, row1, symmetric); break;
    case 3: cq_planes3(p, row0, row1, symmetric); break;
    case 8: cq_planes8(p, row0, row1, symmetric); break;
    default: break;
    }
}

// The worker pool. A job is published as a 64-bit ticket (generation << 32 | next task index); a
// worker claims a task with a compare-and-swap on the ticket of the generation it saw, so a late
// worker can never run a task of a later job with the fields of an earlier one (fields change only
// after every task of the previous job was claimed and finished).

#define CQ_MAX_WORKERS 63
#define CQ_SPIN_NANOSECONDS 200000  // a worker spins this long after its last task (back-to-back GEMVs), then sleeps

typedef struct {
    pthread_mutex_t lock;   // sleep/wake protocol and the one-caller-at-a-time rule
    pthread_cond_t wake;
    int sleepers;
    int workers;
    _Atomic uint64_t ticket;
    _Atomic size_t done;
    // The current job (written by the caller before it publishes the ticket).
    const void *problem;
    int planes;
    size_t rows, tasks;
    int helpers;            // workers 0..<helpers take part in the current job
    _Atomic int busy;       // a caller owns the pool
} cq_pool_t;

static cq_pool_t cq_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static pthread_once_t cq_pool_once = PTHREAD_ONCE_INIT;

static uint64_t cq_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cq_run_task(const void *problem, int planes, size_t rows, size_t tasks, size_t task) {
    const size_t lines = (rows + 15) / 16;
    size_t r0 = 16 * (lines * task / tasks), r1 = 16 * (lines * (task + 1) / tasks);
    if (r0 > rows) r0 = rows;
    if (r1 > rows) r1 = rows;
    if (planes) cq_gemv_planes_avx2((const cq_gemv_planes_problem *)problem, r0, r1);
    else cq_gemv4_avx2((const cq_gemv4_problem *)problem, r0, r1);
}

/// Claims and runs tasks of generation `generation` until none is left.
static void cq_work(uint64_t generation) {
    for (;;) {
        uint64_t t = atomic_load_explicit(&cq_pool.ticket, memory_order_acquire);
        if ((t >> 32) != generation) return;
        const void *problem = cq_pool.problem;
        const int planes = cq_pool.planes;
        const size_t rows = cq_pool.rows, tasks = cq_pool.tasks;
        const size_t index = (size_t)(t & 0xFFFFFFFFu);
        if (index >= tasks) return;
        if (!atomic_compare_exchange_weak_explicit(&cq_pool.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        cq_run_task(problem, planes, rows, tasks, index);
        atomic_fetch_add_explicit(&cq_pool.done, 1, memory_order_release);
    }
}

static void *cq_worker(void *context) {
    const int id = (int)(intptr_t)context;
    uint64_t seen = atomic_load_explicit(&cq_pool.ticket, memory_order_acquire) >> 32;
    for (;;) {
        uint64_t idle_since = cq_now_ns();
        unsigned spins = 0;
        for (;;) {
            const uint64_t generation = atomic_load_explicit(&cq_pool.ticket, memory_order_acquire) >> 32;
            if (generation != seen) { seen = generation; break; }
            _mm_pause();
            if ((++spins & 1023u) == 0 && cq_now_ns() - idle_since > CQ_SPIN_NANOSECONDS) {
                pthread_mutex_lock(&cq_pool.lock);
                cq_pool.sleepers++;
                while ((atomic_load_explicit(&cq_pool.ticket, memory_order_acquire) >> 32) == seen)
                    pthread_cond_wait(&cq_pool.wake, &cq_pool.lock);
                cq_pool.sleepers--;
                pthread_mutex_unlock(&cq_pool.lock);
                idle_since = cq_now_ns();
            }
        }
        if (id < cq_pool.helpers) cq_work(seen);
    }
    return 0;
}

static void cq_pool_start(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int wanted = cores > 1 ? (int)(cores - 1) : 0;
    if (wanted > CQ_MAX_WORKERS) wanted = CQ_MAX_WORKERS;
    for (int i = 0; i < wanted; i++) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attributes, cq_worker, (void *)(intptr_t)cq_pool.workers) == 0) cq_pool.workers++;
        pthread_attr_destroy(&attributes);
    }
}

void cq_gemv_parallel_avx2(const void *problem, int planes, size_t rows, size_t tasks, int threads) {
    if (tasks == 0) return;
    int expected = 0;
    if (threads <= 1 || tasks == 1 || tasks >= (1u << 31) ||
        !atomic_compare_exchange_strong(&cq_pool.busy, &expected, 1)) {
        for (size_t task = 0; task < tasks; task++) cq_run_task(problem, planes, rows, tasks, task);
        return;
    }
    pthread_once(&cq_pool_once, cq_pool_start);
    cq_pool.problem = problem;
    cq_pool.planes = planes;
    cq_pool.rows = rows;
    cq_pool.tasks = tasks;
    cq_pool.helpers = threads - 1;
    atomic_store_explicit(&cq_pool.done, 0, memory_order_relaxed);
    const uint64_t generation = (atomic_load_explicit(&cq_pool.ticket, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&cq_pool.ticket, generation << 32, memory_order_release);
    pthread_mutex_lock(&cq_pool.lock);
    if (cq_pool.sleepers > 0) pthread_cond_broadcast(&cq_pool.wake);
    pthread_mutex_unlock(&cq_pool.lock);
    cq_work(generation);
    for (unsigned spins = 1; atomic_load_explicit(&cq_pool.done, memory_order_acquire) < tasks; spins++) {
        _mm_pause();
        if ((spins & 63u) == 0) sched_yield();  // a worker holding a task may need this core
    }
    atomic_store_explicit(&cq_pool.busy, 0, memory_order_release);
}

CQ_TARGET uint64_t cq_read_stream_avx2(const void *base, size_t bytes) {
    const __m256i *p = (const __m256i *)base;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 8 <= bytes / 32; i += 8) {
        a0 = _mm256_add_epi64(a0, _mm256_add_epi64(_mm256_load_si256(p + i), _mm256_load_si256(p + i + 1)));
        a1 = _mm256_add_epi64(a1, _mm256_add_epi64(_mm256_load_si256(p + i + 2), _mm256_load_si256(p + i + 3)));
        a2 = _mm256_add_epi64(a2, _mm256_add_epi64(_mm256_load_si256(p + i + 4), _mm256_load_si256(p + i + 5)));
        a3 = _mm256_add_epi64(a3, _mm256_add_epi64(_mm256_load_si256(p + i + 6), _mm256_load_si256(p + i + 7)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (uint64_t)_mm_cvtsi128_si64(h) + (uint64_t)_mm_extract_epi64(h, 1);
}

unsigned int cq_mxcsr(void) { return _mm_getcsr(); }
void cq_set_mxcsr(unsigned int value) { _mm_setcsr(value); }

#else  // not x86-64: no AVX2 kernels; Swift runs its portable kernel.

unsigned int cq_mxcsr(void) { return 0; }
void cq_set_mxcsr(unsigned int value) { (void)value; }

int cq_has_avx2_kernels(void) { return 0; }
void cq_gemv4_avx2(const cq_gemv4_problem *p, size_t row0, size_t row1) { (void)p; (void)row0; (void)row1; }
double cq_gemv4_prepare_avx2(const float *x, size_t cols, size_t group_size, size_t pairs_per_row, int symmetric,
                             float *xp, float *xsum) {
    (void)x; (void)cols; (void)group_size; (void)pairs_per_row; (void)symmetric; (void)xp; (void)xsum;
    return 0;
}
void cq_gemv_planes_avx2(const cq_gemv_planes_problem *p, size_t row0, size_t row1) { (void)p; (void)row0; (void)row1; }
void cq_gemv_parallel_avx2(const void *problem, int planes, size_t rows, size_t tasks, int threads) {
    (void)problem; (void)planes; (void)rows; (void)tasks; (void)threads;
}
uint64_t cq_read_stream_avx2(const void *base, size_t bytes) { (void)base; (void)bytes; return 0; }

#endif
