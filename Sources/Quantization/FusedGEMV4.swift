import CQuantKernels
import Foundation

// The 4-bit fused dequant-GEMV, the fast path of ``PackedMatrix/multiply(_:into:threads:)``.
//
// Codes use the nibble-word layout of ``BitPacking``: a 32-byte load of two chunks (64 codes)
// gives lane l = 4h + i the codes 32h + 4t + i at bits 4t…4t+3. For a group,
//   Σ_{j∈g} x̂_j x_j = s · Σ_{j∈g} u_j x_j + o · Σ_{j∈g} x_j,
// so the offset term uses group sums of x computed once per call. Two implementations share that
// math, and each prepares a permuted, pre-scaled x' once per call:
// - `GEMVKernel.portable`, this file, in Swift SIMD (what Swift's default x86-64 target compiles,
//   SSE2), reading the Float copies of the metadata. Step t masks its nibble in place, so the
//   converted value is u·16ᵗ (exact in Float: at most 4 significant bits), and multiplies it with
//   x' = x·2ᶜ·16⁻ᵗ (exact: powers of two; 2ᶜ scales the largest |x| to [½, 1) so tiny x keeps its
//   bits, and the row sum is scaled back); the top step shifts instead (its masked value would not
//   fit an Int32) and uses x·2ᶜ. Symmetric codes subtract the bias M·16ᵗ as integers before
//   conversion, so the kernel sums the signed codes q = u − M exactly. Two SIMD8 accumulators (four
//   128-bit chains).
// - `GEMVKernel.avx2` (Sources/CQuantKernels, chosen at run time when the CPU has AVX2, FMA and
//   F16C): 256-bit AVX2 with FMA. Asymmetric codes need no conversion: a masked nibble whose lane
//   has no bit above 19 set is, read as a Float, the denormal u·16ᵗ·2⁻¹⁴⁹, which FMA multiplies
//   exactly, so x' is x·2^(c−4t) with c chosen per call from the largest |x| (the row sum is scaled
//   back by 2^(149−c)); nibbles 5 to 7 are masked after one shift of the pair by 8 bits. Per 64
//   codes and row: 7 masks, 2 shifts and 8 FMAs (the conversion loop takes 8 masks/shifts,
//   8 conversions and 8 FMAs, and measured 10–20% slower on both benchmark shapes). Symmetric
//   codes keep the conversion loop with the integer bias, so a zero weight beside a huge x_j adds
//   exactly nothing. The 4 rows of a tile (BitPacking's tiled layout: a tile's pairs are
//   interleaved row by row, so its codes are one sequential stream, prefetched 2 KiB ahead) share
//   every load of x' and of the step's mask (two accumulator chains per row to hide the FMA
//   latency); that loop is inline assembly so that nothing spills. The fp16 scales and minima are
//   read as stored (a tile converts its scales in windows of 64 groups with F16C), so the kernel
//   streams 4.25 bits a weight at g128, not 4.5. Rows of a partial last tile, and groups of an odd
//   number of chunks, run a one-row loop.
// Rows are split into blocks of whole 16-row lines of y (no false sharing), a few per worker, claimed
// dynamically: the AVX2 kernels by the caller and the persistent, briefly spinning workers of
// CQuantKernels' pool (a GEMV of a few hundred microseconds cannot wait for threads to wake up), the
// portable kernel with `DispatchQueue.concurrentPerform`.

/// Which implementation of the 4-bit kernel runs.
enum GEMVKernel: Sendable {
    /// AVX2 when the CPU has it, else the portable kernel.
    case automatic
    /// The Swift SIMD kernel (tests force it to check the fallback).
    case portable

    /// Whether this CPU runs the AVX2 kernels (AVX2, FMA, F16C and OS support for YMM state).
    static let avx2Available: Bool = cq_has_avx2_kernels() != 0

    /// The default worker count, read once: Foundation's `activeProcessorCount` reads cgroup files
    /// on Linux, tens of microseconds a call, as long as a whole 4096×4096 GEMV's tenth.
    static let processorCount: Int = ProcessInfo.processInfo.activeProcessorCount

    /// Whether this choice runs the AVX2 kernel here.
    var usesAVX2: Bool { self == .automatic && GEMVKernel.avx2Available }
}

/// Whether stored codes carry a bias to subtract (symmetric) or not (asymmetric).
private protocol NibbleBias {
    static func apply(_ v: SIMD8<UInt32>, _ bias: SIMD8<Int32>) -> SIMD8<Int32>
}

private enum Unbiased: NibbleBias {
    @inline(__always)
    static func apply(_ v: SIMD8<UInt32>, _ bias: SIMD8<Int32>) -> SIMD8<Int32> {
        SIMD8<Int32>(truncatingIfNeeded: v)
    }
}

private enum Biased: NibbleBias {
    @inline(__always)
    static func apply(_ v: SIMD8<UInt32>, _ bias: SIMD8<Int32>) -> SIMD8<Int32> {
        SIMD8<Int32>(truncatingIfNeeded: v) &- bias
    }
}

/// Everything a worker needs, as raw pointers; each worker writes a disjoint block of `y`.
private struct Nibble4Context: @unchecked Sendable {
    let words: UnsafeRawPointer
    let xp: UnsafeRawPointer
    let xsum: UnsafePointer<Float>
    let scales: UnsafePointer<Float>
    let offsets: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
    let rows: Int
    let wordsPerRow: Int
    let groupsPerRow: Int
    let pairsPerRow: Int
    /// Two-chunk pairs per group when groups are whole pairs (g % 64 == 0 or per channel), else 0.
    let pairsPerGroup: Int
    /// Chunks per group (g/32).
    let chunksPerGroup: Int
    /// M (symmetric) or 0, as an integer bias per step: M·16ᵗ for t < 7, M for t = 7.
    let bias: SIMD8<Int32>
    /// 2⁻ᶜ: x' carries a factor 2ᶜ (see `multiplyNibbles`) that the row sums give back.
    let unscale: Double
}

/// Int32 lanes to Float lanes, written lane by lane so it inlines into the kernel. The generic
/// `SIMD8<Float>(SIMD8<Int32>)` is a stdlib specialization that, in SwiftPM's multi-threaded WMO
/// build (`-num-threads`), lands in another LLVM module and stays an out-of-line call per vector:
/// that call made the packaged kernel 3–10× slower than the same code compiled standalone.
@inline(__always) func laneFloats(_ v: SIMD8<Int32>) -> SIMD8<Float> {
    SIMD8(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
}

@inline(__always) private func load8(_ p: UnsafeRawPointer, _ floatOffset: Int) -> SIMD8<Float> {
    p.loadUnaligned(fromByteOffset: 4 * floatOffset, as: SIMD8<Float>.self)
}

/// Σ u·x' over one 64-code pair into four accumulators.
@inline(__always)
private func accumulatePair<B: NibbleBias>(_: B.Type, _ v: SIMD8<UInt32>, _ x: UnsafeRawPointer, _ m: SIMD8<Int32>,
                                           _ a0: inout SIMD8<Float>, _ a1: inout SIMD8<Float>) {
    a0 += laneFloats(B.apply(v & 0x0000_000F, m)) * load8(x, 0)
    a1 += laneFloats(B.apply(v & 0x0000_00F0, m &<< 4)) * load8(x, 8)
    a0 += laneFloats(B.apply(v & 0x0000_0F00, m &<< 8)) * load8(x, 16)
    a1 += laneFloats(B.apply(v & 0x0000_F000, m &<< 12)) * load8(x, 24)
    a0 += laneFloats(B.apply(v & 0x000F_0000, m &<< 16)) * load8(x, 32)
    a1 += laneFloats(B.apply(v & 0x00F0_0000, m &<< 20)) * load8(x, 40)
    a0 += laneFloats(B.apply(v & 0x0F00_0000, m &<< 24)) * load8(x, 48)
    a1 += laneFloats(B.apply(v &>> 28, m)) * load8(x, 56)
}

/// The row loop of one worker.
private func nibbleRows<B: NibbleBias>(_: B.Type, _ c: Nibble4Context, _ rows: Range<Int>) {
    let gpr = c.groupsPerRow
    let m = c.bias
    for r in rows {
        // The row's first pair and the distance between its pairs in the tiled layout (BitPacking).
        let first = r - r % BitPacking.nibbleTileRows
        let tileRows = Swift.min(BitPacking.nibbleTileRows, c.rows - first)
        let row = c.words + 4 * (first * c.wordsPerRow + (r - first) * 8)
        let pairStride = 32 * tileRows
        let scales = c.scales + r * gpr, offsets = c.offsets + r * gpr
        var scaled = SIMD8<Float>.zero
        var offsetTerm = 0.0
        if c.pairsPerGroup > 0 {
            for g in 0..<gpr {
                var a0 = SIMD8<Float>.zero, a1 = a0
                var k = g * c.pairsPerGroup
                let k1 = Swift.min(k + c.pairsPerGroup, c.pairsPerRow)
                while k < k1 {
                    accumulatePair(B.self, row.loadUnaligned(fromByteOffset: pairStride * k, as: SIMD8<UInt32>.self),
                                   c.xp + 256 * k, m, &a0, &a1)
                    k += 1
                }
                scaled += SIMD8(repeating: scales[g]) * (a0 + a1)
                offsetTerm += Double(offsets[g] * c.xsum[g])
            }
        } else {
            // Groups of an odd number of chunks: a pair's halves may belong to two groups.
            for k in 0..<c.pairsPerRow {
                var a0 = SIMD8<Float>.zero, a1 = a0
                accumulatePair(B.self, row.loadUnaligned(fromByteOffset: pairStride * k, as: SIMD8<UInt32>.self),
                               c.xp + 256 * k, m, &a0, &a1)
                let g0 = 2 * k / c.chunksPerGroup, g1 = (2 * k + 1) / c.chunksPerGroup
                let s0 = scales[g0], s1 = g1 < gpr ? scales[g1] : 0  // a padding chunk holds only zeros
                scaled += SIMD8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1)) * (a0 + a1)
            }
            for g in 0..<gpr { offsetTerm += Double(offsets[g] * c.xsum[g]) }
        }
        var sum = 0.0
        for l in 0..<8 { sum += Double(scaled[l]) }
        c.y[r] = Float(offsetTerm + sum * c.unscale)
    }
}

extension PackedMatrix {
    /// Whether the 4-bit nibble kernel applies: 4 bits, groups of whole 32-code chunks (or per channel).
    var usesNibbleKernel: Bool {
        scheme.quantizer.bits == 4 && (scheme.quantizer.groupSize.map { $0 % 32 == 0 } ?? true)
    }

    /// Worker tasks and their row blocks: whole 16-row lines of y (no false sharing), four tasks per
    /// worker of at least 2¹⁸ codes each (a worker whose core is busy with other work leaves its
    /// share to the others), a single task for small matrices.
    func nibbleBlocks(workers: Int) -> (tasks: Int, block: @Sendable (Int) -> Range<Int>) {
        let bySize = Swift.max(1, (rows * cols) >> 18)  // parenthesized: in Swift `>>` binds tighter than `*`
        let tasks = rows * cols < 1 << 16 ? 1 : Swift.max(1, Swift.min(4 * workers, bySize, rows / 16))
        let rowCount = rows
        return (tasks, { task in
            let lines = (rowCount + 15) / 16
            return Swift.min(rowCount, 16 * (lines * task / tasks))..<Swift.min(rowCount, 16 * (lines * (task + 1) / tasks))
        })
    }

    /// y = Ŵx for 4-bit codes with the portable Swift kernel, without outlier corrections (the caller
    /// adds them); see the file comment.
    func multiplyNibbles(_ x: UnsafeBufferPointer<Float>, _ xsum: UnsafeBufferPointer<Float>,
                         into y: UnsafeMutableBufferPointer<Float>, workers: Int) {
        let pairsPerRow = wordsPerRow / 8
        var xp = [Float](repeating: 0, count: pairsPerRow * 64)
        // xp[64k + 8t + l] = x[64k + 32·(l/4) + 4t + l%4] · 2^(c − 4t) (t < 7), · 2ᶜ for t = 7, where
        // c = −e with the largest finite |x| below 2ᵉ: x·16⁻ᵗ alone would lose the bits of tiny x.
        let (c, unscale) = Self.xScale(x)
        for k in 0..<pairsPerRow {
            for t in 0..<8 {
                let shift = t < 7 ? c - 4 * t : c
                for l in 0..<8 {
                    let j = 64 * k + 32 * (l >> 2) + 4 * t + (l & 3)
                    if j < cols { xp[64 * k + 8 * t + l] = Float(sign: .plus, exponent: shift, significand: x[j]) }
                }
            }
        }
        let (tasks, blockRange) = nibbleBlocks(workers: workers)
        let group = scheme.quantizer.groupSize
        let chunksPerGroup = group.map { $0 / 32 } ?? 2 * pairsPerRow
        let pairsPerGroup = group == nil ? pairsPerRow : (chunksPerGroup % 2 == 0 ? chunksPerGroup / 2 : 0)
        let mValue = Int32(scheme.quantizer.mode == .symmetric ? scheme.quantizer.maxCode : 0)
        let symmetric = mValue != 0
        let (gpr, wpr) = (groupsPerRow, wordsPerRow)
        words.withUnsafeBytes { wb in
            xp.withUnsafeBytes { xpb in
                kernelScales.withUnsafeBufferPointer { ks in
                    kernelOffsets.withUnsafeBufferPointer { ko in
                        guard let wBase = wb.baseAddress, let xBase = xpb.baseAddress, let sBase = ks.baseAddress,
                              let oBase = ko.baseAddress, let xsBase = xsum.baseAddress, let yBase = y.baseAddress
                        else { return }
                        let ctx = Nibble4Context(words: wBase, xp: xBase, xsum: xsBase, scales: sBase, offsets: oBase,
                                                 y: yBase, rows: rows, wordsPerRow: wpr, groupsPerRow: gpr, pairsPerRow: pairsPerRow,
                                                 pairsPerGroup: pairsPerGroup, chunksPerGroup: chunksPerGroup,
                                                 bias: SIMD8(repeating: mValue), unscale: unscale)
                        let body: @Sendable (Int) -> Void = { task in
                            let block = blockRange(task)
                            if symmetric { nibbleRows(Biased.self, ctx, block) } else { nibbleRows(Unbiased.self, ctx, block) }
                        }
                        if tasks == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: tasks, execute: body) }
                    }
                }
            }
        }
    }

    /// y = Ŵx for 4-bit codes with the AVX2 kernel (Sources/CQuantKernels) over the stored words and
    /// fp16 metadata, without outlier corrections; x' and the group sums are prepared in C as well.
    func multiplyNibblesAVX2(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>,
                             workers: Int) {
        let pairsPerRow = wordsPerRow / 8
        let groupSize = scheme.quantizer.groupSize ?? cols
        let chunksPerGroup = scheme.quantizer.groupSize.map { $0 / 32 } ?? 2 * pairsPerRow
        let bias = Int32(scheme.quantizer.mode == .symmetric ? scheme.quantizer.maxCode : 0)
        let tasks = nibbleBlocks(workers: workers).tasks
        var xp = [Float](repeating: 0, count: pairsPerRow * 64)
        var xsum = [Float](repeating: 0, count: groupsPerRow)
        words.withUnsafeBufferPointer { wp in
            xp.withUnsafeMutableBufferPointer { xpp in
                xsum.withUnsafeMutableBufferPointer { xsp in
                    scales.withUnsafeBufferPointer { sp in
                        minima.withUnsafeBufferPointer { mp in
                            guard let xIn = x.baseAddress, let wBase = wp.baseAddress, let xBase = xpp.baseAddress,
                                  let xsBase = xsp.baseAddress, let sBase = sp.baseAddress, let yBase = y.baseAddress
                            else { return }
                            let unscale = cq_gemv4_prepare_avx2(xIn, cols, groupSize, pairsPerRow, bias == 0 ? 0 : 1, xBase, xsBase)
                            var problem = cq_gemv4_problem(
                                words: wBase, words_per_row: wordsPerRow, rows: rows, xp: xBase, xsum: xsBase,
                                unscale: unscale, scales: sBase,
                                minima: bias == 0 ? mp.baseAddress : nil, groups_per_row: groupsPerRow,
                                pairs_per_row: pairsPerRow, chunks_per_group: chunksPerGroup, bias: bias, y: yBase)
                            cq_gemv_parallel_avx2(&problem, 0, rows, tasks, Int32(clamping: workers))
                        }
                    }
                }
            }
        }
    }
}
