#ifndef KVSCOPE_CQUANTKERNELS_H
#define KVSCOPE_CQUANTKERNELS_H
// AVX2 + FMA + F16C kernels for the Quantization module's fused dequant-GEMV, chosen at run time.
// Only Quantization imports this module; its Swift kernels are the portable fallback.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Whether this CPU runs the kernels below (AVX2, FMA and F16C, with OS support for YMM state).
int cq_has_avx2_kernels(void);

/// One 4-bit fused GEMV problem in the tiled nibble-word layout (see BitPacking.swift).
typedef struct cq_gemv4_problem {
    /// Packed codes: `words_per_row` words per row, a multiple of 8 (64 codes), in tiles of 4 rows
    /// (the last tile: the rows left, n ≤ 4): the tile of rows r0…r0+n−1 starts at word
    /// r0·words_per_row, and pair k (8 words) of its row r0 + i is at (k·n + i)·8 from there.
    const uint32_t *words;
    size_t words_per_row;
    /// Rows of the whole matrix (the tiling depends on it).
    size_t rows;
    /// x permuted and pre-scaled, 64 floats per 64-code pair: xp[64k + 8t + l] = x[64k + 32(l/4) + 4t + l%4]
    /// * 2^(c - 4 s_t), s = (0, 1, 2, 3, 4, 3, 4, 0), zero past the last column; see cq_gemv4_prepare_avx2.
    const float *xp;
    /// Sum of x over each group, `groups_per_row` floats.
    const float *xsum;
    /// The factor from the kernel's sums back to y (cq_gemv4_prepare_avx2's result).
    double unscale;
    /// fp16 scale of each group, rows * groups_per_row.
    const uint16_t *scales;
    /// fp16 minimum of each group (asymmetric), or NULL (symmetric: no offset term).
    const uint16_t *minima;
    size_t groups_per_row;
    /// 64-code pairs per row (= words_per_row / 8).
    size_t pairs_per_row;
    /// 32-code chunks per group (per channel: 2 * pairs_per_row).
    size_t chunks_per_group;
    /// The symmetric code bias M (stored u = q + M), or 0 for asymmetric codes.
    int32_t bias;
    /// Output, one float per row.
    float *y;
} cq_gemv4_problem;

/// The per-call inputs of the 4-bit kernel: xp (pairs_per_row * 64 floats, layout above, zero past
/// `cols`) and xsum (one float per group of `group_size` columns, the last one partial; summed in
/// double). Returns `unscale`. With the largest finite |x| below 2^e: asymmetric codes are multiplied
/// as denormal Floats (u·2^-149), c = min(127 - e, 254) and unscale = 2^(149 - c); symmetric codes
/// are converted, c = -e and unscale = 2^-c. Requires cq_has_avx2_kernels().
double cq_gemv4_prepare_avx2(const float *x, size_t cols, size_t group_size, size_t pairs_per_row, int symmetric,
                             float *xp, float *xsum);

/// y[r] for rows [row0, row1) of `p` (no outlier corrections). Requires cq_has_avx2_kernels().
void cq_gemv4_avx2(const cq_gemv4_problem *p, size_t row0, size_t row1);

/// One 2-, 3- or 8-bit fused GEMV problem in the bit-plane layout (see BitPacking.swift), groups of
/// whole 32-code chunks (or per channel).
typedef struct cq_gemv_planes_problem {
    /// Code width: 2, 3 or 8.
    int bits;
    /// Packed codes: `bits` words per 32-code chunk, `chunks_per_row` chunks per row.
    const uint32_t *words;
    size_t chunks_per_row;
    /// x pre-scaled per step (xs[32c + 8t + l] = x[32c + 8t + l] * 2^-(p t) for t < 3, p the low plane
    /// width), and for 3 bits the high-bit copy xh[j] = 4 x_j 2^-(j mod 32) (negated for j mod 32 = 31);
    /// both times 2^s (see `unscale`); zero-padded to whole chunks. xh is unused for other widths.
    const float *xs;
    const float *xh;
    /// Sum of x over each group.
    const float *xsum;
    /// 2^-s, where the largest finite |x| times 2^s is in [1/2, 1): the factor from the sums back to y.
    double unscale;
    /// fp16 scale and minimum (asymmetric; NULL for symmetric) of each group.
    const uint16_t *scales;
    const uint16_t *minima;
    size_t groups_per_row;
    size_t chunks_per_group;
    /// The symmetric code bias M, or 0.
    int32_t bias;
    float *y;
} cq_gemv_planes_problem;

/// y[r] for rows [row0, row1) of `p` (no outlier corrections). Requires cq_has_avx2_kernels().
void cq_gemv_planes_avx2(const cq_gemv_planes_problem *p, size_t row0, size_t row1);

/// Runs cq_gemv4_avx2 (`planes` = 0) or cq_gemv_planes_avx2 (`planes` = 1) over rows [0, rows) of
/// `problem` in `tasks` blocks of whole 16-row lines, on up to `threads` threads: the caller and
/// the persistent workers of a small pool, which spin briefly between calls and then sleep, so a
/// call starts in microseconds. Tasks are claimed dynamically (a worker whose core is busy leaves
/// its share to the others). A call made while another is running runs serially on the caller.
void cq_gemv_parallel_avx2(const void *problem, int planes, size_t rows, size_t tasks, int threads);

/// Sums `bytes` (a multiple of 256) at `base` with 256-bit loads: the streaming read of the
/// bandwidth probe. The returned value only keeps the loads observable. Requires cq_has_avx2_kernels().
uint64_t cq_read_stream_avx2(const void *base, size_t bytes);

/// The calling thread's MXCSR (SSE control and status; 0 off x86-64), and setting it: tests run the
/// kernels with denormals-are-zero (bit 6) and flush-to-zero (bit 15) on, as code built with
/// -ffast-math leaves them. cq_gemv4_avx2 clears both for its call and restores them.
unsigned int cq_mxcsr(void);
void cq_set_mxcsr(unsigned int value);

#ifdef __cplusplus
}
#endif
#endif
