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

/// Rows that share each load of x in the main loop.
#ifndef CQ_ROW_BLOCK
#define CQ_ROW_BLOCK 4
#endif
/// Bytes ahead of the current position that the code streams are prefetched.
#ifndef CQ_PREFETCH_BYTES
#define CQ_PREFETCH_BYTES 768
#endif

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

/// R rows (R ≤ CQ_ROW_BLOCK) starting at r0, groups of whole 64-code pairs (or per channel).
/// Each step's x vector is loaded once for all R rows; each row keeps two accumulator chains.
CQ_INLINE void cq_rows_whole_pairs(const cq_gemv4_problem *p, size_t r0, int R, int symmetric) {
    const size_t gpr = p->groups_per_row, ppr = p->pairs_per_row, ppg = p->chunks_per_group / 2;
    const __m256i *w[CQ_ROW_BLOCK];
    __m256 scaled[CQ_ROW_BLOCK];
    for (int r = 0; r < R; r++) {
        w[r] = (const __m256i *)(p->words + (r0 + r) * p->words_per_row);
        scaled[r] = _mm256_setzero_ps();
    }
    for (size_t g = 0; g < gpr; g++) {
        __m256 a[CQ_ROW_BLOCK][2];
        for (int r = 0; r < R; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();
        const size_t k1 = (g + 1) * ppg < ppr ? (g + 1) * ppg : ppr;
        for (size_t k = g * ppg; k < k1; k++) {
            __m256i v[CQ_ROW_BLOCK];
            for (int r = 0; r < R; r++) {
                _mm_prefetch((const char *)(w[r] + k) + CQ_PREFETCH_BYTES, _MM_HINT_T0);
                v[r] = _mm256_loadu_si256(w[r] + k);
            }
            const float *xk = p->xp + 64 * k;
            // The eight steps are spelled out: SwiftPM builds C at -O2, which keeps a loop over t
            // (variable masks, accumulators in memory); unrolled, everything stays in registers.
#define CQ_STEP(t)                                                                                       \
    do {                                                                                                 \
        const __m256 x = _mm256_loadu_ps(xk + 8 * (t));                                                  \
        const __m256i bias = cq_bias(p->bias, (t));                                                      \
        for (int r = 0; r < R; r++)                                                                      \
            a[r][(t) & 1] = _mm256_fmadd_ps(cq_step_floats(v[r], (t), bias, symmetric), x, a[r][(t) & 1]); \
    } while (0)
            CQ_STEP(0); CQ_STEP(1); CQ_STEP(2); CQ_STEP(3); CQ_STEP(4); CQ_STEP(5); CQ_STEP(6); CQ_STEP(7);
#undef CQ_STEP
        }
        for (int r = 0; r < R; r++) {
            const __m256 s = _mm256_set1_ps(_cvtsh_ss(p->scales[(r0 + r) * gpr + g]));
            scaled[r] = _mm256_fmadd_ps(s, _mm256_add_ps(a[r][0], a[r][1]), scaled[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        const uint16_t *minima = p->minima ? p->minima + (r0 + r) * gpr : 0;
        p->y[r0 + r] = (float)(cq_sum_lanes(scaled[r]) + cq_offset_term(minima, p->xsum, gpr));
    }
}

/// One row whose groups hold an odd number of 32-code chunks: a pair's two halves may belong to two
/// groups, so each pair is scaled lane-wise (low half: chunk 2k, high half: chunk 2k + 1).
CQ_INLINE void cq_row_split_pairs(const cq_gemv4_problem *p, size_t r, int symmetric) {
    const size_t gpr = p->groups_per_row, cpg = p->chunks_per_group;
    const __m256i *w = (const __m256i *)(p->words + r * p->words_per_row);
    const uint16_t *scales = p->scales + r * gpr;
    __m256 scaled = _mm256_setzero_ps();
    for (size_t k = 0; k < p->pairs_per_row; k++) {
        const __m256i v = _mm256_loadu_si256(w + k);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
#define CQ_STEP(t, acc) \
    acc = _mm256_fmadd_ps(cq_step_floats(v, (t), cq_bias(p->bias, (t)), symmetric), _mm256_loadu_ps(p->xp + 64 * k + 8 * (t)), acc)
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

// Specializations: the row count of a block and the symmetric flag are compile-time constants.
CQ_TARGET static void cq_block_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_rows_whole_pairs(p, r, CQ_ROW_BLOCK, 0); }
CQ_TARGET static void cq_block_symmetric(const cq_gemv4_problem *p, size_t r) { cq_rows_whole_pairs(p, r, CQ_ROW_BLOCK, 1); }
CQ_TARGET static void cq_row_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_rows_whole_pairs(p, r, 1, 0); }
CQ_TARGET static void cq_row_symmetric(const cq_gemv4_problem *p, size_t r) { cq_rows_whole_pairs(p, r, 1, 1); }
CQ_TARGET static void cq_split_asymmetric(const cq_gemv4_problem *p, size_t r) { cq_row_split_pairs(p, r, 0); }
CQ_TARGET static void cq_split_symmetric(const cq_gemv4_problem *p, size_t r) { cq_row_split_pairs(p, r, 1); }

CQ_TARGET void cq_gemv4_avx2(const cq_gemv4_problem *p, size_t row0, size_t row1) {
    const int symmetric = p->bias != 0;
    size_t r = row0;
    if (p->chunks_per_group % 2 != 0) {
        for (; r < row1; r++) (symmetric ? cq_split_symmetric : cq_split_asymmetric)(p, r);
        return;
    }
    for (; r + CQ_ROW_BLOCK <= row1; r += CQ_ROW_BLOCK) (symmetric ? cq_block_symmetric : cq_block_asymmetric)(p, r);
    for (; r < row1; r++) (symmetric ? cq_row_symmetric : cq_row_asymmetric)(p, r);
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
