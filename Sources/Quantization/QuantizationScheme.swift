import LinearAlgebra

/// A weight quantization choice: a uniform quantizer plus LLM-MQ's fraction of fp16 outliers.
///
/// Byte accounting is DESIGN.md §4's: bytes = n·b/8 + groups·metadata + outlier table, and
/// bits per weight = 8·bytes/n (see ``bytes(rows:cols:)``).
public struct QuantizationScheme: Sendable, Hashable, Codable {
    /// The group quantizer (bits, group size, asymmetric or symmetric).
    public let quantizer: UniformQuantizer
    /// Fraction p of the entries with the largest |w| kept in fp16 (0 ≤ p < 1).
    public let outlierFraction: Double

    /// A scheme from its parts.
    /// - Throws: ``QuantizationError/invalidBits(_:)``, ``QuantizationError/invalidGroupSize(_:)``
    ///   or ``QuantizationError/invalidOutlierFraction(_:)``.
    public init(bits: Int, groupSize: Int?, mode: UniformQuantizer.Mode = .asymmetric, outlierFraction: Double = 0) throws {
        guard outlierFraction >= 0, outlierFraction < 1 else { throw QuantizationError.invalidOutlierFraction(outlierFraction) }
        quantizer = try UniformQuantizer(bits: bits, groupSize: groupSize, mode: mode)
        self.outlierFraction = outlierFraction
    }

    /// A scheme from a quantizer and an outlier fraction.
    /// - Throws: ``QuantizationError/invalidOutlierFraction(_:)``.
    public init(quantizer: UniformQuantizer, outlierFraction: Double = 0) throws {
        guard outlierFraction >= 0, outlierFraction < 1 else { throw QuantizationError.invalidOutlierFraction(outlierFraction) }
        self.quantizer = quantizer
        self.outlierFraction = outlierFraction
    }

    /// Number of fp16 outliers in a rows×cols matrix: ⌊p·rows·cols⌋.
    public func outlierCount(rows: Int, cols: Int) -> Int {
        OutlierRanking.outlierCount(fraction: outlierFraction, count: rows * cols)
    }

    /// Storage bytes of a rows×cols matrix (DESIGN.md §4): n·b/8 + rows·groupsPerRow·metadata + outlier table.
    public func bytes(rows: Int, cols: Int) -> Double {
        quantizer.bytes(rows: rows, rowLength: cols)
            + OutlierTable.bytes(count: outlierCount(rows: rows, cols: cols), rows: rows, cols: cols)
    }

    /// Bits per weight = 8·bytes/n (DESIGN.md §4).
    public func bitsPerWeight(rows: Int, cols: Int) -> Double {
        let n = rows * cols
        return n == 0 ? 0 : 8 * bytes(rows: rows, cols: cols) / Double(n)
    }

    /// Fake-quantizes a matrix ([out, in], groups along the input dimension): Ŵ with outliers in fp16.
    /// - Throws: ``QuantizationError/nonFinite`` or ``QuantizationError/notRepresentableInHalf(_:)``.
    public func fakeQuantize(_ matrix: Matrix) throws -> Matrix {
        var out = Matrix(rows: matrix.rows, cols: matrix.cols)
        try matrix.withUnsafeBufferPointer { w in
            try checkFinite(w)
            let mask = try outlierMask(w, rows: matrix.rows, cols: matrix.cols)
            out.withUnsafeMutableBufferPointer { o in
                mask.withUnsafeBufferPointer { m in
                    _ = GroupQuantization.run(values: w, rows: matrix.rows, cols: matrix.cols, quantizer: quantizer,
                                              outlierMask: m.isEmpty ? nil : m, codes: nil,
                                              reconstruction: o.baseAddress, scales: nil, minima: nil)
                }
            }
        }
        return out
    }

    /// The relative Frobenius error ‖W − Ŵ‖_F/‖W‖_F of fake quantization (DESIGN.md §4), without
    /// materializing Ŵ. Sums run in Double; a zero matrix has error 0.
    /// - Throws: ``QuantizationError/nonFinite`` or ``QuantizationError/notRepresentableInHalf(_:)``.
    public func relativeError(_ matrix: Matrix) throws -> Double {
        try matrix.withUnsafeBufferPointer { w in
            try checkFinite(w)
            let mask = try outlierMask(w, rows: matrix.rows, cols: matrix.cols)
            let squared = mask.withUnsafeBufferPointer { m in
                GroupQuantization.run(values: w, rows: matrix.rows, cols: matrix.cols, quantizer: quantizer,
                                      outlierMask: m.isEmpty ? nil : m, codes: nil, reconstruction: nil,
                                      scales: nil, minima: nil)
            }
            let norm = matrix.frobeniusNormSquared
            return norm == 0 ? squared.squareRoot() : (squared / norm).squareRoot()
        }
    }

    /// Quantizes a matrix into packed storage (see ``PackedMatrix``).
    /// - Throws: ``QuantizationError/nonFinite`` or ``QuantizationError/notRepresentableInHalf(_:)``.
    public func pack(_ matrix: Matrix) throws -> PackedMatrix {
        try PackedMatrix(matrix, scheme: self)
    }

    /// The outlier mask of a matrix (empty when p = 0).
    func outlierMask(_ w: UnsafeBufferPointer<Float>, rows: Int, cols: Int) throws -> [Bool] {
        let k = outlierCount(rows: rows, cols: cols)
        guard k > 0 else { return [] }
        let ranking = OutlierRanking(values: w, maximumCount: k)
        var mask = [Bool](repeating: false, count: w.count)
        for i in ranking.order.prefix(k) {
            guard Float16(w[i]).isFinite else { throw QuantizationError.notRepresentableInHalf(w[i]) }
            mask[i] = true
        }
        return mask
    }
}

/// Throws ``QuantizationError/nonFinite`` when any value is NaN or infinite.
func checkFinite(_ w: UnsafeBufferPointer<Float>) throws {
    for v in w where !v.isFinite { throw QuantizationError.nonFinite }
}

extension UniformQuantizer {
    /// The integer codes q of DESIGN.md §4 for `values` (whole rows of `rowLength`), row-major:
    /// 0…2ᵇ−1 (asymmetric) or −(2^(b−1)−1)…2^(b−1)−1 (symmetric).
    /// - Throws: ``QuantizationError/nonFinite`` or ``QuantizationError/shapeMismatch(_:)``.
    public func codes(_ values: [Float], rowLength: Int) throws -> [Int32] {
        guard rowLength > 0, values.count % rowLength == 0 else {
            throw QuantizationError.shapeMismatch("\(values.count) values are not whole rows of \(rowLength)")
        }
        var stored = [UInt8](repeating: 0, count: values.count)
        try values.withUnsafeBufferPointer { w in
            try checkFinite(w)
            stored.withUnsafeMutableBufferPointer { c in
                _ = GroupQuantization.run(values: w, rows: values.count / rowLength, cols: rowLength, quantizer: self,
                                          outlierMask: nil, codes: c.baseAddress, reconstruction: nil,
                                          scales: nil, minima: nil)
            }
        }
        let offset = mode == .symmetric ? Int32(maxCode) : 0
        return stored.map { Int32($0) - offset }
    }

    /// Fake-quantizes a KV matrix per token: each row (a token's channels) is quantized on its own,
    /// in groups of ``groupSize`` channels or as one group when it is `nil`.
    /// - Throws: ``QuantizationError/nonFinite``.
    public func fakeQuantizePerToken(_ tokens: inout Matrix) throws {
        guard tokens.cols > 0 else { return }
        let cols = tokens.cols
        try tokens.withUnsafeMutableBufferPointer { try fakeQuantize($0, rowLength: cols) }
    }
}

/// The shared group loop: group ranges over non-outlier entries, codes, reconstruction, parameters.
enum GroupQuantization {
    /// Quantizes rows×cols values. Outputs are optional: stored (unsigned) codes, the reconstruction
    /// (outliers reconstruct as their fp16 value), per-group scale and minimum (rows × groupsPerRow).
    /// Returns Σ(x − x̂)² in Double. Values must be finite.
    @discardableResult
    static func run(values: UnsafeBufferPointer<Float>, rows: Int, cols: Int, quantizer: UniformQuantizer,
                    outlierMask: UnsafeBufferPointer<Bool>?, codes: UnsafeMutablePointer<UInt8>?,
                    reconstruction: UnsafeMutablePointer<Float>?, scales: UnsafeMutablePointer<Float>?,
                    minima: UnsafeMutablePointer<Float>?) -> Double {
        let g = quantizer.groupSize ?? cols
        let gpr = quantizer.groupsPerRow(cols)
        let symmetric = quantizer.mode == .symmetric
        let storedOffset = symmetric ? quantizer.maxCode : 0
        var squaredError = 0.0
        for r in 0..<rows {
            for gi in 0..<gpr {
                let start = r * cols + gi * g, end = r * cols + Swift.min((gi + 1) * g, cols)
                var lo = Float.infinity, hi = -Float.infinity, m: Float = 0
                if let mask = outlierMask {
                    for i in start..<end where !mask[i] {
                        let x = values[i]
                        lo = Swift.min(lo, x); hi = Swift.max(hi, x); m = Swift.max(m, x.magnitude)
                    }
                } else {
                    for i in start..<end {
                        let x = values[i]
                        lo = Swift.min(lo, x); hi = Swift.max(hi, x); m = Swift.max(m, x.magnitude)
                    }
                }
                let p = GroupParameters(minimum: lo, maximum: hi, maximumMagnitude: m, quantizer: quantizer)
                scales?[r * gpr + gi] = p.scale
                minima?[r * gpr + gi] = p.minimum
                var groupError = 0.0
                for i in start..<end {
                    let x = values[i]
                    let q = p.code(x)
                    codes?[i] = UInt8(truncatingIfNeeded: q + storedOffset)
                    let xhat: Float
                    if let mask = outlierMask, mask[i] { xhat = Float(Float16(x)) } else { xhat = p.dequantize(q) }
                    reconstruction?[i] = xhat
                    let d = Double(x - xhat)
                    groupError += d * d
                }
                squaredError += groupError
            }
        }
        return squaredError
    }
}

extension UniformQuantizer: Codable {
    enum CodingKeys: String, CodingKey { case bits, groupSize = "group_size", mode }

    /// Decodes and validates a quantizer.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(bits: c.decode(Int.self, forKey: .bits), groupSize: c.decodeIfPresent(Int.self, forKey: .groupSize),
                      mode: c.decode(Mode.self, forKey: .mode))
    }

    /// Encodes bits, group size (absent for per channel) and mode.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(bits, forKey: .bits)
        try c.encodeIfPresent(groupSize, forKey: .groupSize)
        try c.encode(mode, forKey: .mode)
    }
}
