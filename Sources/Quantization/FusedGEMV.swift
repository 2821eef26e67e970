import CQuantKernels
import Foundation

// Fused dequantize-GEMV: y = Ŵx straight from the packed codes, never materializing Ŵ.
//
// For a group g of row i, with stored codes u and kernel metadata x̂ = s·u + o,
//   Σ_{j∈g} x̂_j x_j = s · Σ_{j∈g} u_j x_j + o · Σ_{j∈g} x_j,
// so the group sums of x are computed once per call and the inner loop is a code-times-x dot
// product. Codes are decoded eight at a time (see ``BitPacking``): a plane load gives lane l the
// bits of codes l, 8+l, 16+l, 24+l; step t masks its bits *in place* (no shift) and converts, so
// the value is u·2^(p·t); x is pre-scaled by 2^(−p·t) once per call to compensate (exact, powers
// of two; with a common 2ᶜ that puts the largest |x| in [½, 1), so tiny x keeps its bits, undone
// on each row sum). The top step shifts instead of masking (its container bits above are zero),
// so it needs no scale. 3-bit codes add a 1-bit plane: bit j of one word; lane l of step t masks bit 8t+l,
// whose value 2^(8t+l) is compensated by a second pre-scaled copy of x, 4·x_j·2^(−j)
// (with the sign flipped for j = 31, whose bit converts as −2^31). Outliers add
// (value − x̂_code)·x_j afterwards. Rows are split into blocks run on all cores.
//
// Kernels: on a CPU with AVX2, FMA and F16C (checked once at run time) widths 2, 3, 4 and 8 with
// groups of whole chunks run the C kernels of Sources/CQuantKernels (256-bit vectors, fused
// multiply-adds, fp16 metadata read as stored); 4 bits use the nibble layout (FusedGEMV4.swift).
// Otherwise, and for widths 5–7 or groups that are not whole chunks, the Swift kernels below run.
// Both compute the same sums in the same order per group, so their results agree to rounding.

typealias Accumulators = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)
/// Per-step integer biases subtracted before conversion: 0 (asymmetric) or M·2^(p·t) (symmetric,
/// so the kernel sums the signed codes q = u − M directly and needs no offset term, which would
/// cancel badly when most codes are 0).
typealias Biases = (SIMD8<Int32>, SIMD8<Int32>, SIMD8<Int32>, SIMD8<Int32>)

/// Decodes one 32-code chunk and accumulates u·x' into four accumulators (one per step).
protocol ChunkDecoder {
    static func accumulate(_ chunk: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ xh: UnsafeRawPointer,
                           _ b: Biases, _ a: inout Accumulators)
}

@inline(__always) private func f(_ v: SIMD8<UInt32>) -> SIMD8<Float> {
    laneFloats(SIMD8<Int32>(truncatingIfNeeded: v))
}
@inline(__always) private func f(_ v: SIMD8<UInt32>, _ bias: SIMD8<Int32>) -> SIMD8<Float> {
    laneFloats(SIMD8<Int32>(truncatingIfNeeded: v) &- bias)
}
@inline(__always) private func load(_ p: UnsafeRawPointer, _ offset: Int) -> SIMD8<Float> {
    p.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
}

enum Decoder4: ChunkDecoder {
    @inline(__always)
    static func accumulate(_ chunk: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ xh: UnsafeRawPointer,
                           _ b: Biases, _ a: inout Accumulators) {
        let v = SIMD8<UInt32>(truncatingIfNeeded: chunk.loadUnaligned(as: SIMD8<UInt16>.self))
        a.0 += f(v & 0xF, b.0) * load(xs, 0)
        a.1 += f(v & 0xF0, b.1) * load(xs, 32)
        a.2 += f(v & 0xF00, b.2) * load(xs, 64)
        a.3 += f(v &>> 12, b.3) * load(xs, 96)
    }
}

enum Decoder2: ChunkDecoder {
    @inline(__always)
    static func accumulate(_ chunk: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ xh: UnsafeRawPointer,
                           _ b: Biases, _ a: inout Accumulators) {
        let v = SIMD8<UInt32>(truncatingIfNeeded: chunk.loadUnaligned(as: SIMD8<UInt8>.self))
        a.0 += f(v & 0x3, b.0) * load(xs, 0)
        a.1 += f(v & 0xC, b.1) * load(xs, 32)
        a.2 += f(v & 0x30, b.2) * load(xs, 64)
        a.3 += f(v &>> 6, b.3) * load(xs, 96)
    }
}

enum Decoder8: ChunkDecoder {
    @inline(__always)
    static func accumulate(_ chunk: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ xh: UnsafeRawPointer,
                           _ b: Biases, _ a: inout Accumulators) {
        let v = chunk.loadUnaligned(as: SIMD8<UInt32>.self)
        a.0 += f(v & 0xFF, b.0) * load(xs, 0)
        a.1 += f(v & 0xFF00, b.1) * load(xs, 32)
        a.2 += f(v & 0xFF_0000, b.2) * load(xs, 64)
        a.3 += f(v &>> 24, b.3) * load(xs, 96)
    }
}

enum Decoder3: ChunkDecoder {
    static let laneBits: SIMD8<UInt32> = [1, 2, 4, 8, 16, 32, 64, 128]
    @inline(__always)
    static func accumulate(_ chunk: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ xh: UnsafeRawPointer,
                           _ b: Biases, _ a: inout Accumulators) {
        Decoder2.accumulate(chunk, xs, xh, b, &a)
        let h = SIMD8<UInt32>(repeating: chunk.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let m = laneBits
        a.0 += f(h & m) * load(xh, 0)
        a.1 += f(h & (m &<< 8)) * load(xh, 32)
        a.2 += f(h & (m &<< 16)) * load(xh, 64)
        a.3 += f(h & (m &<< 24)) * load(xh, 96)
    }
}

/// Raw pointers handed to worker threads; every task writes a disjoint range of `y`.
private struct GEMVContext: @unchecked Sendable {
    let words: UnsafeRawPointer
    let xs: UnsafeRawPointer
    let xh: UnsafeRawPointer
    let x: UnsafePointer<Float>
    let xsum: UnsafePointer<Float>
    let scales: UnsafePointer<Float>
    let offsets: UnsafePointer<Float>
    let rowPointers: UnsafePointer<UInt32>?
    let columns: UnsafePointer<UInt32>?
    let corrections: UnsafePointer<Float>?
    let y: UnsafeMutablePointer<Float>
    let biases: Biases
    let codeOffset: Float
    /// 2⁻ᶜ: xs and xh carry a factor 2ᶜ that the row sums give back (the generic loop reads x).
    let unscale: Double
}

extension PackedMatrix {
    /// y = Ŵx computed from the packed codes without materializing Ŵ (SIMD, all cores).
    ///
    /// On x86-64 CPUs with AVX2, FMA and F16C, 2-, 3-, 4- and 8-bit matrices with groups of whole
    /// 32-code chunks (or per channel) run AVX2 kernels; everything else runs portable Swift SIMD
    /// kernels. ``kernelName`` tells which one runs. The result matches the dense product with
    /// ``dequantized()`` to float rounding (relative 1e-5 of Σ|Ŵ_ij x_j| in the tests), outliers included.
    /// - Parameters:
    ///   - x: the input, `cols` values.
    ///   - threads: worker count (default: the active processor count).
    /// - Throws: ``QuantizationError/shapeMismatch(_:)`` when `x.count != cols`.
    public func multiply(_ x: [Float], threads: Int? = nil) throws -> [Float] {
        try multiply(x, threads: threads, kernel: .automatic)
    }

    /// y = Ŵx with a chosen 4-bit kernel; see ``multiply(_:threads:)``.
    func multiply(_ x: [Float], threads: Int? = nil, kernel: GEMVKernel) throws -> [Float] {
        var y = [Float](repeating: 0, count: rows)
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in try multiply(xp, into: yp, threads: threads, kernel: kernel) }
        }
        return y
    }

    /// y = Ŵx into caller-owned storage; see ``multiply(_:threads:)``.
    /// - Throws: ``QuantizationError/shapeMismatch(_:)`` when `x.count != cols` or `y.count != rows`.
    public func multiply(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>,
                         threads: Int? = nil) throws {
        try multiply(x, into: y, threads: threads, kernel: .automatic)
    }

    /// y = Ŵx with a chosen 4-bit kernel (tests run both the AVX2 kernel and the portable fallback).
    func multiply(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>,
                  threads: Int?, kernel: GEMVKernel) throws {
        guard x.count == cols, y.count == rows else {
            throw QuantizationError.shapeMismatch("Ŵ is \(rows)x\(cols), x has \(x.count), y has \(y.count)")
        }
        guard rows > 0 else { return }
        guard cols > 0 else { y.update(repeating: 0); return }
        let bits = scheme.quantizer.bits
        let g = scheme.quantizer.groupSize ?? cols
        let chunksPerRow = (cols + 31) / 32
        let fast = [2, 3, 4, 8].contains(bits) && (scheme.quantizer.groupSize == nil || g % 32 == 0)
        let chunksPerGroup = fast ? (scheme.quantizer.groupSize == nil ? chunksPerRow : g / 32) : 0

        let workers = Swift.max(1, threads ?? GEMVKernel.processorCount)
        if usesNibbleKernel && kernel.usesAVX2 {
            multiplyNibblesAVX2(x, into: y, workers: workers)
            addOutlierCorrections(x, into: y)
            return
        }
        // Per-call preparation: group sums of x, pre-scaled x (zero-padded to whole chunks).
        var xsum = [Float](repeating: 0, count: groupsPerRow)
        for gi in 0..<groupsPerRow {
            var s = 0.0
            for j in (gi * g)..<Swift.min((gi + 1) * g, cols) { s += Double(x[j]) }
            xsum[gi] = Float(s)
        }
        if usesNibbleKernel {
            xsum.withUnsafeBufferPointer { multiplyNibbles(x, $0, into: y, workers: workers) }
            addOutlierCorrections(x, into: y)
            return
        }
        let lowPlane = bits == 3 ? 2 : bits
        let padded = chunksPerRow * 32
        var xs = [Float](repeating: 0, count: padded)
        var xh = [Float](repeating: 0, count: bits == 3 ? padded : 0)
        // Both copies also carry 2ᶜ, which scales the largest |x| to [½, 1): 2^(−p·t) and 2⁻ᵏ alone
        // would lose the bits of tiny x. The row sums are scaled back by 2⁻ᶜ.
        let (c, unscale) = Self.xScale(x)
        for j in 0..<cols {
            let t = (j & 31) >> 3
            xs[j] = Float(sign: .plus, exponent: t < 3 ? c - lowPlane * t : c, significand: x[j])
            if bits == 3 {
                let k = j & 31
                let v = Float(sign: .plus, exponent: c + 2 - k, significand: x[j])  // 4·x·2⁻ᵏ·2ᶜ
                xh[j] = k == 31 ? -v : v
            }
        }

        // Symmetric: subtract M from the lowest plane, at each step's position (top step: shifted down).
        let symmetricOffset = scheme.quantizer.mode == .symmetric ? scheme.quantizer.maxCode : 0
        if fast && kernel.usesAVX2 {
            xsum.withUnsafeBufferPointer { xsp in
                multiplyPlanesAVX2(xs, xh, xsp, unscale: unscale, into: y, chunksPerGroup: chunksPerGroup,
                                   bias: Int32(symmetricOffset), workers: workers)
            }
            addOutlierCorrections(x, into: y)
            return
        }
        let m = Int32(symmetricOffset)
        let biases: Biases = (SIMD8(repeating: m), SIMD8(repeating: m << Int32(lowPlane)),
                              SIMD8(repeating: m << Int32(2 * lowPlane)), SIMD8(repeating: m))
        let work = rows * cols
        let tasks = work < 1 << 16 ? 1 : Swift.min(rows, workers * 8)
        let (gpr, wpr) = (groupsPerRow, wordsPerRow)
        let hasOutliers = outliers.count > 0

        words.withUnsafeBytes { wb in
            xs.withUnsafeBytes { xsb in
                xh.withUnsafeBytes { xhb in
                    xsum.withUnsafeBufferPointer { xsp in
                        kernelScales.withUnsafeBufferPointer { ks in
                            kernelOffsets.withUnsafeBufferPointer { ko in
                                outliers.rowPointers.withUnsafeBufferPointer { rp in
                                    outliers.columns.withUnsafeBufferPointer { cp in
                                        outlierCorrections.withUnsafeBufferPointer { oc in
            let ctx = GEMVContext(
                words: wb.baseAddress!, xs: xsb.baseAddress!, xh: xhb.baseAddress ?? xsb.baseAddress!,
                x: x.baseAddress!, xsum: xsp.baseAddress!, scales: ks.baseAddress!, offsets: ko.baseAddress!,
                rowPointers: hasOutliers ? rp.baseAddress : nil, columns: hasOutliers ? cp.baseAddress : nil,
                corrections: hasOutliers ? oc.baseAddress : nil, y: y.baseAddress!, biases: biases,
                codeOffset: Float(symmetricOffset), unscale: unscale)
            let body: @Sendable (Int) -> Void = { task in
                let r0 = rows * task / tasks, r1 = rows * (task + 1) / tasks
                if fast {
                    switch bits {
                    case 4: gemvRows(Decoder4.self, ctx, r0..<r1, bits: 4, gpr: gpr, wpr: wpr, cpr: chunksPerRow, cpg: chunksPerGroup)
                    case 2: gemvRows(Decoder2.self, ctx, r0..<r1, bits: 2, gpr: gpr, wpr: wpr, cpr: chunksPerRow, cpg: chunksPerGroup)
                    case 3: gemvRows(Decoder3.self, ctx, r0..<r1, bits: 3, gpr: gpr, wpr: wpr, cpr: chunksPerRow, cpg: chunksPerGroup)
                    default: gemvRows(Decoder8.self, ctx, r0..<r1, bits: 8, gpr: gpr, wpr: wpr, cpr: chunksPerRow, cpg: chunksPerGroup)
                    }
                } else {
                    gemvRowsGeneric(ctx, r0..<r1, bits: bits, cols: cols, groupSize: g, gpr: gpr, wpr: wpr,
                                    totalRows: rows)
                }
                if let rp = ctx.rowPointers, let cp = ctx.columns, let oc = ctx.corrections {
                    for r in r0..<r1 {
                        var acc: Float = 0  // outliers are few: a Float sum, added once
                        for k in Int(rp[r])..<Int(rp[r + 1]) { acc += oc[k] * ctx.x[Int(cp[k])] }
                        ctx.y[r] += acc
                    }
                }
            }
            if tasks == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: tasks, execute: body) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

extension PackedMatrix {
    /// y = Ŵx for 2-, 3- and 8-bit codes with the AVX2 kernel (Sources/CQuantKernels), from the
    /// pre-scaled x of the portable path, without outlier corrections; rows split into 16-row-line blocks.
    func multiplyPlanesAVX2(_ xs: [Float], _ xh: [Float], _ xsum: UnsafeBufferPointer<Float>, unscale: Double,
                            into y: UnsafeMutableBufferPointer<Float>, chunksPerGroup: Int, bias: Int32, workers: Int) {
        let tasks = nibbleBlocks(workers: workers).tasks
        let bits = scheme.quantizer.bits
        words.withUnsafeBufferPointer { wp in
            xs.withUnsafeBufferPointer { xsp in
                xh.withUnsafeBufferPointer { xhp in
                    scales.withUnsafeBufferPointer { sp in
                        minima.withUnsafeBufferPointer { mp in
                            guard let wBase = wp.baseAddress, let xsBase = xsp.baseAddress, let sumBase = xsum.baseAddress,
                                  let sBase = sp.baseAddress, let yBase = y.baseAddress else { return }
                            var problem = cq_gemv_planes_problem(
                                bits: Int32(bits), words: wBase, chunks_per_row: (cols + 31) / 32, xs: xsBase,
                                xh: xhp.baseAddress ?? xsBase, xsum: sumBase, unscale: unscale, scales: sBase,
                                minima: bias == 0 ? mp.baseAddress : nil, groups_per_row: groupsPerRow,
                                chunks_per_group: chunksPerGroup, bias: bias, y: yBase)
                            cq_gemv_parallel_avx2(&problem, 1, rows, tasks, Int32(clamping: workers))
                        }
                    }
                }
            }
        }
    }

    /// c with the largest finite |x_j|·2ᶜ in [½, 1) (0 when x has none but zeros), and 2⁻ᶜ: the
    /// pre-scaled copies of x carry 2ᶜ so that tiny x keeps its bits, and the row sums are
    /// multiplied by `unscale` = 2⁻ᶜ to give it back.
    static func xScale(_ x: UnsafeBufferPointer<Float>) -> (exponent: Int, unscale: Double) {
        var largest: Float = 0
        for v in x where v.isFinite { largest = Swift.max(largest, abs(v)) }
        let c = largest == 0 ? 0 : -(Int(largest.exponent) + 1)
        return (c, Double(sign: .plus, exponent: -c, significand: 1))
    }

    /// y += Σ over stored outliers of (value − x̂_code)·x_col (serial: outliers are a small fraction).
    func addOutlierCorrections(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>) {
        guard outliers.count > 0 else { return }
        outliers.rowPointers.withUnsafeBufferPointer { rp in
            outliers.columns.withUnsafeBufferPointer { cp in
                outlierCorrections.withUnsafeBufferPointer { oc in
                    for r in 0..<rows {
                        var acc: Float = 0
                        for k in Int(rp[r])..<Int(rp[r + 1]) { acc += oc[k] * x[Int(cp[k])] }
                        y[r] += acc
                    }
                }
            }
        }
    }
}

/// The SIMD row loop for widths 2, 3, 4, 8 with groups of whole chunks.
@inline(__always)
private func gemvRows<D: ChunkDecoder>(_: D.Type, _ c: GEMVContext, _ rows: Range<Int>, bits: Int,
                                       gpr: Int, wpr: Int, cpr: Int, cpg: Int) {
    let chunkBytes = bits * 4
    for r in rows {
        let row = c.words + r * wpr * 4
        // Group dot products stay in vector form and are scaled lane-wise (a horizontal sum per
        // group would serialize the loop); the offset terms and the final lane sum are in Double.
        var scaled = SIMD8<Float>.zero
        var offsetTerm = 0.0
        for g in 0..<gpr {
            var a: Accumulators = (.zero, .zero, .zero, .zero)
            let c1 = Swift.min((g + 1) * cpg, cpr)
            var k = g * cpg
            while k < c1 {
                D.accumulate(row + k * chunkBytes, c.xs + k * 128, c.xh + k * 128, c.biases, &a)
                k += 1
            }
            scaled += SIMD8(repeating: c.scales[r * gpr + g]) * ((a.0 + a.1) + (a.2 + a.3))
            offsetTerm += Double(c.offsets[r * gpr + g] * c.xsum[g])
        }
        var sum = 0.0
        for l in 0..<8 { sum += Double(scaled[l]) }
        c.y[r] = Float(offsetTerm + sum * c.unscale)
    }
}

/// The generic row loop (widths 5–7, or groups that are not whole 32-code chunks): one row's codes
/// are decoded at a time into a small buffer.
private func gemvRowsGeneric(_ c: GEMVContext, _ rows: Range<Int>, bits: Int, cols: Int, groupSize: Int,
                             gpr: Int, wpr: Int, totalRows: Int) {
    var codes = [Float](repeating: 0, count: cols)
    let words = c.words.assumingMemoryBound(to: UInt32.self)
    codes.withUnsafeMutableBufferPointer { u in
        for r in rows {
            for j in 0..<cols {
                let chunk = BitPacking.chunkOffset(row: r, chunk: j >> 5, rows: totalRows, perRow: wpr, bits: bits)
                u[j] = Float(BitPacking.code(at: j & 31, bits: bits, chunk: words + chunk)) - c.codeOffset
            }
            var y = 0.0
            for g in 0..<gpr {
                var dot: Float = 0
                for j in (g * groupSize)..<Swift.min((g + 1) * groupSize, cols) { dot += u[j] * c.x[j] }
                y += Double(c.scales[r * gpr + g] * dot) + Double(c.offsets[r * gpr + g] * c.xsum[g])
            }
            c.y[r] = Float(y)
        }
    }
}
