import LinearAlgebra

/// A quantized matrix in real packed storage: b-bit codes, fp16 scales (and minima), fp16 outliers.
///
/// Rows are the output dimension, groups run along each row (DESIGN.md §4). Codes use the chunked
/// bit-plane layout of ``BitPacking``. Scales and minima are stored in fp16, so ``dequantized()``
/// reconstructs x̂ = q·fp16(scale) + fp16(min) (symmetric: q·fp16(scale)), which differs from the
/// Float-metadata fake quantization by at most the fp16 rounding of the metadata; the codes are
/// the same as the fake quantizer's. Outliers reconstruct as their fp16 value.
public struct PackedMatrix: Sendable {
    /// Rows (output dimension).
    public let rows: Int
    /// Columns (input dimension, the reduction axis).
    public let cols: Int
    /// The scheme the matrix was quantized with.
    public let scheme: QuantizationScheme
    /// Groups per row.
    public let groupsPerRow: Int
    /// Packed codes, `wordsPerRow` words per row (4-bit rows tiled; see ``BitPacking``).
    public let words: [UInt32]
    /// Words per row: ⌈cols/32⌉·bits.
    public let wordsPerRow: Int
    /// fp16 scale per group, rows × groupsPerRow.
    public let scales: [UInt16]
    /// fp16 minimum per group (asymmetric); empty for symmetric.
    public let minima: [UInt16]
    /// The fp16 outliers (empty when the outlier fraction is 0).
    public let outliers: OutlierTable

    /// Kernel form of the metadata: x̂ = kernelScale·q + kernelOffset for code q (asymmetric: q = u, offset
    /// = min; symmetric: q = u − M, offset 0).
    let kernelScales: [Float]
    let kernelOffsets: [Float]
    /// For each outlier (in table order), value − (kernelScale·u + kernelOffset): the GEMV correction.
    let outlierCorrections: [Float]

    /// Quantizes `matrix` with `scheme`.
    /// - Throws: ``QuantizationError/nonFinite`` or ``QuantizationError/notRepresentableInHalf(_:)``.
    public init(_ matrix: Matrix, scheme: QuantizationScheme) throws {
        let (rows, cols) = (matrix.rows, matrix.cols)
        let q = scheme.quantizer
        let gpr = q.groupsPerRow(cols)
        var codes = [UInt8](repeating: 0, count: rows * cols)
        var scalesF = [Float](repeating: 0, count: rows * gpr), minimaF = scalesF
        var table = OutlierTable(rows: rows, cols: cols)
        try matrix.withUnsafeBufferPointer { w in
            try checkFinite(w)
            let mask = try scheme.outlierMask(w, rows: rows, cols: cols)
            mask.withUnsafeBufferPointer { m in
                codes.withUnsafeMutableBufferPointer { c in
                    scalesF.withUnsafeMutableBufferPointer { s in
                        minimaF.withUnsafeMutableBufferPointer { mn in
                            _ = GroupQuantization.run(values: w, rows: rows, cols: cols, quantizer: q,
                                                  outlierMask: m.isEmpty ? nil : m, codes: c.baseAddress,
                                                  reconstruction: nil, scales: s.baseAddress, minima: mn.baseAddress)
                        }
                    }
                }
            }
            if !mask.isEmpty {
                table = try OutlierTable(rows: rows, cols: cols, matrix: w,
                                         sortedIndices: mask.indices.filter { mask[$0] })
            }
        }
        for v in scalesF where !Float16(v).isFinite { throw QuantizationError.notRepresentableInHalf(v) }
        for v in minimaF where !Float16(v).isFinite { throw QuantizationError.notRepresentableInHalf(v) }
        self.rows = rows
        self.cols = cols
        self.scheme = scheme
        groupsPerRow = gpr
        wordsPerRow = BitPacking.wordsPerRow(count: cols, bits: q.bits)
        words = BitPacking.pack(codes, rows: rows, count: cols, bits: q.bits)
        scales = scalesF.map { Float16($0).bitPattern }
        let symmetric = q.mode == .symmetric
        minima = symmetric ? [] : minimaF.map { Float16($0).bitPattern }
        outliers = table
        kernelScales = scales.map { Float(Float16(bitPattern: $0)) }
        kernelOffsets = symmetric ? [Float](repeating: 0, count: kernelScales.count)
                                  : minima.map { Float(Float16(bitPattern: $0)) }
        let codeOffset = Float(symmetric ? q.maxCode : 0)
        var corrections = [Float]()
        corrections.reserveCapacity(table.count)
        let (ks, ko) = (kernelScales, kernelOffsets)
        table.forEach { r, c, v in
            let g = r * gpr + c / (q.groupSize ?? cols)
            corrections.append(v - (ks[g] * (Float(codes[r * cols + c]) - codeOffset) + ko[g]))
        }
        outlierCorrections = corrections
    }

    /// The code q of entry (row, col) as DESIGN.md §4 defines it (signed for symmetric).
    public func code(row: Int, col: Int) -> Int {
        precondition(row >= 0 && row < rows && col >= 0 && col < cols, "PackedMatrix.code out of range")
        let bits = scheme.quantizer.bits
        let chunk = BitPacking.chunkOffset(row: row, chunk: col >> 5, rows: rows, perRow: wordsPerRow, bits: bits)
        let u = words.withUnsafeBufferPointer { w in BitPacking.code(at: col & 31, bits: bits, chunk: w.baseAddress! + chunk) }
        return Int(u) - (scheme.quantizer.mode == .symmetric ? scheme.quantizer.maxCode : 0)
    }

    /// All codes q, row-major (signed for symmetric).
    public func codes() -> [Int32] {
        let offset = Int32(scheme.quantizer.mode == .symmetric ? scheme.quantizer.maxCode : 0)
        return BitPacking.unpack(words, rows: rows, count: cols, bits: scheme.quantizer.bits).map { Int32($0) - offset }
    }

    /// The reconstruction Ŵ from the packed form (fp16 metadata, fp16 outliers).
    public func dequantized() -> Matrix {
        var out = Matrix(rows: rows, cols: cols)
        let all = codes()
        let g = scheme.quantizer.groupSize ?? cols
        let symmetric = scheme.quantizer.mode == .symmetric
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows {
                for c in 0..<cols {
                    let gi = r * groupsPerRow + c / g
                    let s = Float(Float16(bitPattern: scales[gi]))
                    let qf = Float(all[r * cols + c])
                    o[r * cols + c] = symmetric ? qf * s : qf * s + Float(Float16(bitPattern: minima[gi]))
                }
            }
            outliers.forEach { r, c, v in o[r * cols + c] = v }
        }
        return out
    }

    /// Bytes by DESIGN.md §4's accounting: n·b/8 + groups·metadata + outlier table.
    public var bytes: Double {
        scheme.quantizer.bytes(rows: rows, rowLength: cols) + outliers.bytes
    }

    /// Bits per weight = 8·bytes/n.
    public var bitsPerWeight: Double { rows * cols == 0 ? 0 : 8 * bytes / Double(rows * cols) }

    /// Bytes the fused GEMV reads per call: the code words and the metadata its kernel uses (the
    /// AVX2 4-bit kernel reads the fp16 scales and minima as stored, the portable kernels Float copies).
    public var kernelBytes: Int {
        if usesAVX2Kernel { return words.count * 4 + scales.count * 2 + minima.count * 2 }
        return words.count * 4 + kernelScales.count * 4 + kernelOffsets.count * 4
    }

    /// The implementation ``multiply(_:into:threads:)`` runs for this matrix on this CPU: "avx2" (the
    /// AVX2 + FMA kernels: 2, 3, 4 or 8 bits, groups of whole 32-code chunks or per channel) or
    /// "portable" (Swift SIMD).
    public var kernelName: String { usesAVX2Kernel ? "avx2" : "portable" }

    /// Whether ``multiply(_:into:threads:)`` runs an AVX2 kernel for this matrix on this CPU.
    var usesAVX2Kernel: Bool {
        GEMVKernel.avx2Available && [2, 3, 4, 8].contains(scheme.quantizer.bits)
            && (scheme.quantizer.groupSize.map { $0 % 32 == 0 } ?? true)
    }

    /// Bytes of the stored form: padded code words, fp16 metadata, and the outlier table as accounted.
    /// It exceeds ``bytes`` only by the padding of each row's last 32-code chunk.
    public var storageBytes: Int {
        words.count * 4 + scales.count * 2 + minima.count * 2 + Int(outliers.bytes)
    }
}
