// AVX2 + FMA + F16C kernels of the 4-bit fused dequant-GEMV; see FusedGEMV4.swift for the math.
//
// Every function that uses those instructions carries a target attribute, so the file builds
// without any -m flag and the rest of the program stays portable; Swift calls these only after
// cq_has_avx2_kernels() said yes.
#include "CQuantKernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
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

/// Codes of step t of a pair as floats: the nibble masked in place (value u·16ᵗ, exact) or, for
/// t = 7, shifted down; symmetric codes subtract the bias M·16ᵗ (M for t = 7) as integers first.
CQ_INLINE __m256 cq_step_floats(__m256i v, int t, __m256i bias, int symmetric) {
    __m256i u = t < 7 ? _mm256_and_si256(v, _mm256_set1_epi32(0xF << (4 * t))) : _mm256_srli_epi32(v, 28);
    if (symmetric) u = _mm256_sub_epi32(u, bias);
    return _mm256_cvtepi32_ps(u);
}

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

CQ_INLINE __m256i cq_bias(int32_t m, int t) { return _mm256_set1_epi32(t < 7 ? m << (4 * t) : m); }

/// Where row r's pairs are in the tiled layout: its first pair, and the distance between its pairs
/// in 32-byte vectors (the row count of its tile).
CQ_INLINE const __m256i *cq_row_pairs(const cq_gemv4_problem *p, size_t r, size_t *stride) {
    const size_t first = r - r % CQ_TILE_ROWS;
    *stride = p->rows - first < CQ_TILE_ROWS ? p->rows - first : CQ_TILE_ROWS;
    return (const __m256i *)(p->words + first * p->words_per_row) + (r - first);
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
        for (size_t k = g * ppg; k < k1; k++) {
            const __m256i v = _mm256_loadu_si256(w + k * stride);
            const float *xk = p->xp + 64 * k;
            // Spelled out: SwiftPM builds C at -O2, which keeps a loop over t (variable masks).
#define CQ_STEP(t, acc) \
    acc = _mm256_fmadd_ps(cq_step_floats(v, (t), cq_bias(p->bias, (t)), symmetric), _mm256_loadu_ps(xk + 8 * (t)), acc)
            CQ_STEP(0, a0); CQ_STEP(1, a1); CQ_STEP(2, a0); CQ_STEP(3, a1);
            CQ_STEP(4, a0); CQ_STEP(5, a1); CQ_STEP(6, a0); CQ_STEP(7, a1);
        }
        const __m256 s = _mm256_set1_ps(_cvtsh_ss(p->scales[r * gpr + g]));
        scaled = _mm256_fmadd_ps(s, _mm256_add_ps(a0, a1), scaled);
    }
    const uint16_t *minima = p->minima ? p->minima + r * gpr : 0;
    p->y[r] = (float)(cq_sum_lanes(scaled) + cq_offset_term(minima, p->xsum, gpr));
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
        const __m256i v = _mm256_loadu_si256(w + k * stride);
        const float *xk = p->xp + 64 * k;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        CQ_STEP(0, a0); CQ_STEP(1, a1); CQ_STEP(2, a0); CQ_STEP(3, a1);
        CQ_STEP(4, a0); CQ_STEP(5, a1); CQ_STEP(6, a0); CQ_STEP(7, a1);
#undef CQ_STEP
        const size_t g0 = 2 * k / cpg, g1 = (2 * k + 1) / cpg;
        const float s0 = _cvtsh_ss(scales[g0]), s1 = g1 < gpr ? _cvtsh_ss(scales[g1]) : 0.0f;  // padding chunk: zeros
        scaled = _mm256_fmadd_ps(_mm256_set_m128(_mm_set1_ps(s1), _mm_set1_ps(s0)), _mm256_add_ps(a0, a1), scaled);
    }
    const uint16_t *minima = p->minima ? p->minima + r * gpr : 0;
    p->y[r] = (float)(cq_sum_lanes(scaled) + cq_offset_term(minima, p->xsum, gpr));
}

// The tile kernel: the 4 rows of a full tile, groups of whole pairs, in inline assembly. Written
// with intrinsics, the compiler hoists the four code loads of a pair out of the eight steps and
// spills them (it has 16 vector registers: 8 accumulators, 4 code vectors, x, a temporary), so the
// loop here is pinned: ymm0–7 accumulate (row i: ymm(2i) for even steps, ymm(2i+1) for odd ones,
// two chains to hide the FMA latency), ymm8–11 hold the pair's codes of rows 0–3, ymm12 the step's
// x', ymm13–14 the converted codes; the step masks (and symmetric biases) are memory operands.
// Per 64 codes and row: 8 mask/shift, 8 convert and 8 FMA instructions; per group and row, a
// broadcast scale and one FMA into the row's scaled sum (kept in memory, as 4 vectors at `sc`).

static const uint32_t cq_nibble_masks[7][8] __attribute__((aligned(32))) = {
#define CQ_M8(v) {v, v, v, v, v, v, v, v}
    CQ_M8(0xFu), CQ_M8(0xF0u), CQ_M8(0xF00u), CQ_M8(0xF000u), CQ_M8(0xF0000u), CQ_M8(0xF00000u), CQ_M8(0xF000000u)
#undef CQ_M8
};

#define CQ_NO_BIAS(t)
#define CQ_SUB_BIAS(t) "vpsubd " #t "*32(%[b]), %%ymm13, %%ymm13\n\t"
#define CQ_TILE_ROW(t, code, acc, BIAS) \
    "vpand " #t "*32(%[m]), " code ", %%ymm13\n\t" BIAS(t) "vcvtdq2ps %%ymm13, %%ymm13\n\t" \
    "vfmadd231ps %%ymm12, %%ymm13, " acc "\n\t"
#define CQ_TILE_TOP(code, acc, BIAS) \
    "vpsrld $28, " code ", %%ymm13\n\t" BIAS(7) "vcvtdq2ps %%ymm13, %%ymm13\n\t" \
    "vfmadd231ps %%ymm12, %%ymm13, " acc "\n\t"
#define CQ_TILE_STEP(t, BIAS, a0, a1, a2, a3) \
    "vmovups " #t "*32(%[x]), %%ymm12\n\t" \
    CQ_TILE_ROW(t, "%%ymm8", a0, BIAS) CQ_TILE_ROW(t, "%%ymm9", a1, BIAS) \
    CQ_TILE_ROW(t, "%%ymm10", a2, BIAS) CQ_TILE_ROW(t, "%%ymm11", a3, BIAS)
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
#define CQ_TILE_KERNEL(name, BIAS)                                                                            \
    CQ_TARGET static void name(const __m256i *v, const float *x, const float *sb, size_t groups, size_t ppg,  \
                     const int32_t *b, __m256 *sc) {                                                          \
        size_t n;                                                                                             \
        __asm__ volatile(                                                                                     \
            "2:\n\t"                                                                                          \
            "vxorps %%xmm0, %%xmm0, %%xmm0\n\t vxorps %%xmm1, %%xmm1, %%xmm1\n\t"                             \
            "vxorps %%xmm2, %%xmm2, %%xmm2\n\t vxorps %%xmm3, %%xmm3, %%xmm3\n\t"                             \
            "vxorps %%xmm4, %%xmm4, %%xmm4\n\t vxorps %%xmm5, %%xmm5, %%xmm5\n\t"                             \
            "vxorps %%xmm6, %%xmm6, %%xmm6\n\t vxorps %%xmm7, %%xmm7, %%xmm7\n\t"                             \
            "mov %[ppg], %[n]\n\t"                                                                            \
            "1:\n\t"                                                                                          \
            "prefetcht0 " CQ_STR(CQ_PREFETCH_BYTES) "(%[v])\n\t"                                              \
            "prefetcht0 " CQ_STR(CQ_PREFETCH_BYTES) "+64(%[v])\n\t"                                           \
            "vmovdqu 0(%[v]), %%ymm8\n\t vmovdqu 32(%[v]), %%ymm9\n\t"                                        \
            "vmovdqu 64(%[v]), %%ymm10\n\t vmovdqu 96(%[v]), %%ymm11\n\t"                                     \
            CQ_TILE_STEP_(0, BIAS, CQ_EVEN) CQ_TILE_STEP_(1, BIAS, CQ_ODD)                                    \
            CQ_TILE_STEP_(2, BIAS, CQ_EVEN) CQ_TILE_STEP_(3, BIAS, CQ_ODD)                                    \
            CQ_TILE_STEP_(4, BIAS, CQ_EVEN) CQ_TILE_STEP_(5, BIAS, CQ_ODD)                                    \
            CQ_TILE_STEP_(6, BIAS, CQ_EVEN)                                                                   \
            "vmovups 7*32(%[x]), %%ymm12\n\t"                                                                 \
            CQ_TILE_TOP("%%ymm8", "%%ymm1", BIAS) CQ_TILE_TOP("%%ymm9", "%%ymm3", BIAS)                       \
            CQ_TILE_TOP("%%ymm10", "%%ymm5", BIAS) CQ_TILE_TOP("%%ymm11", "%%ymm7", BIAS)                     \
            "add $128, %[v]\n\t"                                                                              \
            "add $256, %[x]\n\t"                                                                              \
            "dec %[n]\n\t"                                                                                    \
            "jnz 1b\n\t"                                                                                      \
            CQ_TILE_SCALE(0, "%%ymm0", "%%ymm1") CQ_TILE_SCALE(1, "%%ymm2", "%%ymm3")                         \
            CQ_TILE_SCALE(2, "%%ymm4", "%%ymm5") CQ_TILE_SCALE(3, "%%ymm6", "%%ymm7")                         \
            "add $4, %[sb]\n\t"                                                                               \
            "dec %[g]\n\t"                                                                                    \
            "jnz 2b\n\t"                                                                                      \
            : [v] "+r"(v), [x] "+r"(x), [sb] "+r"(sb), [g] "+r"(groups), [n] "=&r"(n)                         \
            : [ppg] "r"(ppg), [m] "r"(cq_nibble_masks), [b] "r"(b), [sc] "r"(sc)                              \
            : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",         \
              "xmm11", "xmm12", "xmm13", "memory", "cc");                                                     \
    }
CQ_TILE_KERNEL(cq_tile_asymmetric, CQ_NO_BIAS)
CQ_TILE_KERNEL(cq_tile_symmetric, CQ_SUB_BIAS)
#undef CQ_TILE_KERNEL

/// The full tile of rows r0…r0+3 (groups of whole pairs, or per channel).
CQ_TARGET static void cq_tile(const cq_gemv4_problem *p, size_t r0, const int32_t *biases) {
    const size_t gpr = p->groups_per_row, ppr = p->pairs_per_row, ppg = p->chunks_per_group / 2;
    const __m256i *tile = (const __m256i *)(p->words + r0 * p->words_per_row);
    __m256 scaled[CQ_TILE_ROWS] __attribute__((aligned(32)));
    float sb[CQ_TILE_ROWS * CQ_SCALE_WINDOW] __attribute__((aligned(32)));
    for (int i = 0; i < CQ_TILE_ROWS; i++) scaled[i] = _mm256_setzero_ps();
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
        void (*kernel)(const __m256i *, const float *, const float *, size_t, size_t, const int32_t *, __m256 *) =
            p->bias ? cq_tile_symmetric : cq_tile_asymmetric;
        if (whole) kernel(tile + CQ_TILE_ROWS * k0, p->xp + 64 * k0, sb, whole, ppg, biases, scaled);
        if (rest) {
            const size_t k = k0 + whole * ppg;
            kernel(tile + CQ_TILE_ROWS * k, p->xp + 64 * k, sb + whole, 1, rest, biases, scaled);
        }
    }
    for (int i = 0; i < CQ_TILE_ROWS; i++) {
        const uint16_t *minima = p->minima ? p->minima + (r0 + i) * gpr : 0;
        p->y[r0 + i] = (float)(cq_sum_lanes(scaled[i]) + cq_offset_term(minima, p->xsum, gpr));
    }
}

/// xp for one 64-code pair from 64 values of x: step t takes x[4t…4t+3] and x[32+4t…32+4t+3], scaled by 16⁻ᵗ.
CQ_INLINE void cq_permute_pair(const float *x, float *xp) {
    for (int t = 0; t < 8; t++) {
        const __m256 v = _mm256_set_m128(_mm_loadu_ps(x + 32 + 4 * t), _mm_loadu_ps(x + 4 * t));
        const float scale = t < 7 ? 1.0f / (float)(1u << (4 * t)) : 1.0f;  // exact powers of two
        _mm256_storeu_ps(xp + 8 * t, _mm256_mul_ps(v, _mm256_set1_ps(scale)));
    }
}

CQ_TARGET void cq_gemv4_prepare_avx2(const float *x, size_t cols, size_t group_size, size_t pairs_per_row,
                                     float *xp, float *xsum) {
    size_t k = 0;
    for (; 64 * (k + 1) <= cols; k++) cq_permute_pair(x + 64 * k, xp + 64 * k);
    if (k < pairs_per_row) {  // the partial last pair, zero-padded; any further pairs are zeros
        float tail[64] = {0};
        for (size_t j = 64 * k; j < cols; j++) tail[j - 64 * k] = x[j];
        cq_permute_pair(tail, xp + 64 * k);
        for (k++; k < pairs_per_row; k++) _mm256_storeu_ps(xp + 64 * k, _mm256_setzero_ps());
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
}

// Specializations: the symmetric flag is a compile-time constant.
CQ_TARGET static void cq_row_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_row_whole_pairs(p, r, 0); }
CQ_TARGET static void cq_row_symmetric(const cq_gemv4_problem *p, size_t r) { cq_row_whole_pairs(p, r, 1); }
CQ_TARGET static void cq_split_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_row_split_pairs(p, r, 0); }
CQ_TARGET static void cq_split_symmetric(const cq_gemv4_problem *p, size_t r) { cq_row_split_pairs(p, r, 1); }

CQ_TARGET void cq_gemv4_avx2(const cq_gemv4_problem *p, size_t row0, size_t row1) {
    const int symmetric = p->bias != 0;
    if (p->chunks_per_group % 2 != 0) {
        for (size_t r = row0; r < row1; r++) (symmetric ? cq_split_symmetric : cq_split_asymmetric)(p, r);
        return;
    }
    int32_t biases[8][8] __attribute__((aligned(32)));
    for (int t = 0; t < 8; t++)
        for (int l = 0; l < 8; l++) biases[t][l] = t < 7 ? (int32_t)((uint32_t)p->bias << (4 * t)) : p->bias;
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
        p->y[r] = (float)(cq_sum_lanes(scaled) + cq_offset_term(minima, p->xsum, gpr));
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

#else  // not x86-64: no AVX2 kernels; Swift runs its portable kernel.

int cq_has_avx2_kernels(void) { return 0; }
void cq_gemv4_avx2(const cq_gemv4_problem *p, size_t row0, size_t row1) { (void)p; (void)row0; (void)row1; }
void cq_gemv4_prepare_avx2(const float *x, size_t cols, size_t group_size, size_t pairs_per_row, float *xp,
                           float *xsum) {
    (void)x; (void)cols; (void)group_size; (void)pairs_per_row; (void)xp; (void)xsum;
}
void cq_gemv_planes_avx2(const cq_gemv_planes_problem *p, size_t row0, size_t row1) { (void)p; (void)row0; (void)row1; }
void cq_gemv_parallel_avx2(const void *problem, int planes, size_t rows, size_t tasks, int threads) {
    (void)problem; (void)planes; (void)rows; (void)tasks; (void)threads;
}
uint64_t cq_read_stream_avx2(const void *base, size_t bytes) { (void)base; (void)bytes; return 0; }

#endif
