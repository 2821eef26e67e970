/// Uniform group quantization exactly as DESIGN.md §4 ("Uniform quantization") defines it.
///
/// Asymmetric: scale = (max − min)/(2ᵇ − 1), q = clamp(round((x − min)/scale), 0, 2ᵇ − 1),
/// x̂ = q·scale + min; a constant group reconstructs exactly. Symmetric: scale = max|x|/(2^(b−1) − 1),
/// q = clamp(round(x/scale), −(2^(b−1) − 1), 2^(b−1) − 1). Rounding is half to even.
/// Groups are `groupSize` consecutive values of a row; a last shorter group takes what is left.
public struct UniformQuantizer: Sendable, Hashable {
    /// Whether zero points are used.
    public enum Mode: String, Sendable, Hashable, Codable { case asymmetric, symmetric }

    /// Bits per value, 2...8 (16 means "no quantization" to callers; it is not valid here).
    public let bits: Int
    /// Values per group along a row; `nil` means one group per row (per channel / per token).
    public let groupSize: Int?
    public let mode: Mode

    /// - Throws: ``QuantizationError/invalidBits(_:)`` or ``QuantizationError/invalidGroupSize(_:)``.
    public init(bits: Int, groupSize: Int?, mode: Mode = .asymmetric) throws {
        guard (2...8).contains(bits) else { throw QuantizationError.invalidBits(bits) }
        if let g = groupSize, g < 1 { throw QuantizationError.invalidGroupSize(g) }
        self.bits = bits
        self.groupSize = groupSize
        self.mode = mode
    }

    /// Metadata bytes per group: fp16 scale + fp16 min (asymmetric), fp16 scale (symmetric).
    public var metadataBytesPerGroup: Int { mode == .asymmetric ? 4 : 2 }

    /// Number of groups covering a row of `rowLength` values.
    public func groupsPerRow(_ rowLength: Int) -> Int {
        guard rowLength > 0 else { return 0 }
        let g = groupSize ?? rowLength
        return (rowLength + g - 1) / g
    }

    /// Storage bytes for `rows` rows of `rowLength` values: codes + metadata (DESIGN.md §4).
    /// Codes are counted as rows·rowLength·b/8 exactly (fractional bytes allowed, as the memory model uses).
    public func bytes(rows: Int, rowLength: Int) -> Double {
        Double(rows) * (Double(rowLength * bits) / 8 + Double(groupsPerRow(rowLength) * metadataBytesPerGroup))
    }

    /// Largest code value (asymmetric) or magnitude (symmetric).
    @inlinable public var maxCode: Int { mode == .asymmetric ? (1 << bits) - 1 : (1 << (bits - 1)) - 1 }

    /// Quantizes then dequantizes `values` (a whole number of rows of `rowLength`) in place.
    /// - Throws: ``QuantizationError/nonFinite`` if any value is NaN or infinite (nothing is changed then).
    public func fakeQuantize(_ values: inout [Float], rowLength: Int) throws {
        try values.withUnsafeMutableBufferPointer { try fakeQuantize($0, rowLength: rowLength) }
    }

    /// Quantizes then dequantizes a buffer in place; see ``fakeQuantize(_:rowLength:)``.
    public func fakeQuantize(_ values: UnsafeMutableBufferPointer<Float>, rowLength: Int) throws {
        guard rowLength > 0, values.count % rowLength == 0 else {
            throw QuantizationError.shapeMismatch("\(values.count) values are not whole rows of \(rowLength)")
        }
        for v in values where !v.isFinite { throw QuantizationError.nonFinite }
        let g = groupSize ?? rowLength
        var rowStart = 0
        while rowStart < values.count {
            var start = rowStart
            let rowEnd = rowStart + rowLength
            while start < rowEnd {
                let end = min(start + g, rowEnd)
                quantizeGroup(UnsafeMutableBufferPointer(rebasing: values[start..<end]))
                start = end
            }
            rowStart = rowEnd
        }
    }

    /// Quantizes and dequantizes one group in place.
    @inlinable
    func quantizeGroup(_ group: UnsafeMutableBufferPointer<Float>) {
        let p = GroupParameters(group: UnsafeBufferPointer(group), quantizer: self)
        for i in 0..<group.count { group[i] = p.dequantize(p.code(group[i])) }
    }
}

/// Scale and offset of one group. Scales and minima are kept in fp16 when stored; the fake
/// quantizer uses them in Float, as the references do.
public struct GroupParameters: Sendable {
    public let scale: Float
    /// The group minimum (asymmetric) or 0 (symmetric).
    public let minimum: Float
    public let maxCode: Int
    public let symmetric: Bool

    @inlinable
    public init(group: UnsafeBufferPointer<Float>, quantizer: UniformQuantizer) {
        maxCode = quantizer.maxCode
        symmetric = quantizer.mode == .symmetric
        if symmetric {
            var m: Float = 0
            for x in group { m = max(m, abs(x)) }
            scale = m / Float(maxCode)
            minimum = 0
        } else {
            var lo = Float.infinity, hi = -Float.infinity
            for x in group {
                lo = min(lo, x)
                hi = max(hi, x)
            }
            scale = (hi - lo) / Float(maxCode)
            minimum = lo
        }
    }

    /// Parameters from a range already measured: `minimum`/`maximum` of the group's values
    /// (asymmetric) or `maximumMagnitude` = max|x| (symmetric). An empty range (minimum > maximum,
    /// e.g. a group made only of outliers) gives scale 0 and minimum 0.
    @inlinable
    public init(minimum lo: Float, maximum hi: Float, maximumMagnitude m: Float, quantizer: UniformQuantizer) {
        maxCode = quantizer.maxCode
        symmetric = quantizer.mode == .symmetric
        if lo > hi {
            scale = 0
            minimum = 0
        } else if symmetric {
            scale = m / Float(maxCode)
            minimum = 0
        } else {
            scale = (hi - lo) / Float(maxCode)
            minimum = lo
        }
    }

    /// The integer code of `x` (round half to even, clamped).
    @inlinable
    public func code(_ x: Float) -> Int {
        if scale == 0 { return 0 }
        let t = symmetric ? x / scale : (x - minimum) / scale
        // Round half to even. Without SSE4.1 `rounded` is a libcall; adding and subtracting 1.5·2²³
        // rounds exactly the same way for |t| < 2²² (t is within ±(2ᵇ − 1) here, barring subnormal scales).
        let q = t.magnitude < 4_194_304 ? (t + 12_582_912) - 12_582_912 : t.rounded(.toNearestOrEven)
        let lo = symmetric ? -maxCode : 0
        return Swift.min(Swift.max(Int(q), lo), maxCode)
    }

    /// The reconstruction of a code.
    @inlinable
    public func dequantize(_ q: Int) -> Float {
        if scale == 0 { return minimum }
        return Float(q) * scale + minimum
    }
}

/// Errors of the quantization engine.
public enum QuantizationError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidBits(Int)
    case invalidGroupSize(Int)
    case nonFinite
    case shapeMismatch(String)
    case notRepresentableInHalf(Float)
    case invalidOutlierFraction(Double)
    case cancelled

    public var description: String {
        switch self {
        case .invalidBits(let b): return "bits must be 2...8, got \(b)"
        case .invalidGroupSize(let g): return "group size must be positive, got \(g)"
        case .nonFinite: return "input contains NaN or infinity"
        case .shapeMismatch(let s): return "shape mismatch: \(s)"
        case .notRepresentableInHalf(let v): return "value \(v) overflows fp16"
        case .invalidOutlierFraction(let p): return "outlier fraction must be in [0, 1), got \(p)"
        case .cancelled: return "cancelled"
        }
    }
}
