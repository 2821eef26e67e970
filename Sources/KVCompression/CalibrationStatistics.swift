import LinearAlgebra

/// The input of a group of weight matrices whose statistics are collected (DESIGN.md §4, "Sensitivity").
public enum MatrixInput: String, Sendable, Hashable, Codable, CaseIterable {
    /// Attention-norm output: the input of q, k and v.
    case attentionInput = "attn_in"
    /// Attention output: the input of o.
    case attentionOutput = "attn_out"
    /// FFN-norm output: the input of gate and up.
    case ffnInput = "ffn_in"
    /// The SwiGLU product: the input of down.
    case ffnHidden = "ffn_hidden"
}

/// Uncentered second moment and mean magnitude of one matrix input over the calibration tokens.
public struct InputStatistics: Sendable, Equatable {
    /// XᵀX (d×d, uncentered, summed over tokens); nil when not stored (the sample bundle omits it).
    public var gram: Matrix?
    /// mean over tokens of |x| per channel (d values).
    public var meanAbs: [Float]

    /// Statistics of one input.
    public init(gram: Matrix?, meanAbs: [Float]) {
        self.gram = gram
        self.meanAbs = meanAbs
    }
}

/// Calibration statistics of one layer (DESIGN.md §4, "Calibration statistics").
///
/// K/V rows, Grams and samples are pre-RoPE unless named otherwise, in the model's original (HF)
/// channel order (a llama GGUF's Q/K row permutation undone), which must match the W_k passed to
/// the bases.
public struct LayerCalibration: Sendable, Equatable {
    /// Layer index.
    public let layer: Int
    /// Statistics of matrix inputs; ``MatrixInput/attentionInput`` is the one the KV engine reads.
    public var inputs: [MatrixInput: InputStatistics]
    /// KᵀK before RoPE, d_kv×d_kv, summed over all tokens.
    public var keyGram: Matrix
    /// VᵀV, d_kv×d_kv.
    public var valueGram: Matrix
    /// KᵀK after RoPE; nil when not captured.
    public var keyGramPostRoPE: Matrix?
    /// Per-channel means of pre-RoPE K and of V over the tokens (nil in files written before they were kept).
    public var keyMean: [Float]?
    public var valueMean: [Float]?
    /// Sampled rows of the attention input X, [s, d].
    public var sampleInputs: Matrix
    /// The same tokens' pre-RoPE keys, [s, d_kv].
    public var sampleKeys: Matrix
    /// The same tokens' values, [s, d_kv].
    public var sampleValues: Matrix

    /// A layer's statistics.
    public init(layer: Int, inputs: [MatrixInput: InputStatistics], keyGram: Matrix, valueGram: Matrix,
                keyGramPostRoPE: Matrix?, keyMean: [Float]? = nil, valueMean: [Float]? = nil,
                sampleInputs: Matrix, sampleKeys: Matrix, sampleValues: Matrix) {
        self.keyMean = keyMean
        self.valueMean = valueMean
        self.layer = layer
        self.inputs = inputs
        self.keyGram = keyGram
        self.valueGram = valueGram
        self.keyGramPostRoPE = keyGramPostRoPE
        self.sampleInputs = sampleInputs
        self.sampleKeys = sampleKeys
        self.sampleValues = sampleValues
    }

    /// KᵀK or VᵀV (pre-RoPE).
    public func gram(_ kind: ProjectionKind) -> Matrix { kind == .k ? keyGram : valueGram }

    /// The centered Gram (X − 1μᵀ)ᵀ(X − 1μᵀ) = XᵀX − T·μμᵀ of K or V over `tokenCount` tokens, or nil
    /// when the means were not recorded.
    public func centeredGram(_ kind: ProjectionKind, tokenCount: Int) -> Matrix? {
        guard let mean = kind == .k ? keyMean : valueMean else { return nil }
        var g = gram(kind)
        let n = g.rows, t = Double(tokenCount)
        guard mean.count == n else { return nil }
        g.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                for j in 0..<n { p[i * n + j] = Float(Double(p[i * n + j]) - t * Double(mean[i]) * Double(mean[j])) }
            }
        }
        return g
    }

    /// Sampled K or V rows.
    public func samples(_ kind: ProjectionKind) -> Matrix { kind == .k ? sampleKeys : sampleValues }

    /// Statistics of the attention input (the input of W_k and W_v), when present.
    public var attentionInput: InputStatistics? { inputs[.attentionInput] }
}

/// Everything the engines read from a calibration run: one model, one text.
///
/// On disk it is one safetensors file whose layout docs/calibration-stats.md defines.
public struct CalibrationStatistics: Sendable, Equatable {
    /// The value of the `format` metadata key.
    public static let formatName = "kvscope-calibration"
    /// The layout version this code reads and writes.
    public static let formatVersion = 1

    /// Tokens the statistics were summed over.
    public var tokenCount: Int
    /// Lower-case hex SHA-256 of the text's bytes.
    public var textSHA256: String
    /// Token positions (0-based) of the sampled rows, ascending; the same for every layer.
    public var sampleTokenIndices: [Int]
    /// Per-layer statistics, in layer order.
    public var layers: [LayerCalibration]

    /// A statistics set.
    public init(tokenCount: Int, textSHA256: String, sampleTokenIndices: [Int], layers: [LayerCalibration]) {
        self.tokenCount = tokenCount
        self.textSHA256 = textSHA256
        self.sampleTokenIndices = sampleTokenIndices
        self.layers = layers
    }
}

/// A symmetric n×n Gram matrix stored as the fp16 upper triangle, as the sample bundle ships it.
///
/// Element order is row-major over the upper triangle: (0,0), (0,1), …, (0,n−1), (1,1), (1,2), …,
/// (n−1,n−1); n(n+1)/2 values. Grams summed over many tokens exceed fp16's range (65504), so the
/// stored values are G/scale with `scale` a power of two chosen so that max|G|/scale lies in
/// [2¹³, 2¹⁴]; the relative precision of each entry is fp16's (2⁻¹¹) either way.
public struct PackedGram: Sendable, Equatable {
    /// n, the side of the matrix.
    public let size: Int
    /// The power of two the stored values were divided by.
    public let scale: Float
    /// fp16 bit patterns of G/scale, upper triangle, row-major.
    public let upper: [UInt16]

    /// Number of stored values for an n×n matrix: n(n+1)/2.
    public static func elementCount(size n: Int) -> Int { n * (n + 1) / 2 }

    /// Wraps stored data.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when the count is not n(n+1)/2 or the scale is not positive and finite.
    public init(size: Int, scale: Float, upper: [UInt16]) throws {
        guard size >= 0, upper.count == Self.elementCount(size: size) else {
            throw KVCompressionError.invalidArgument("packed Gram of size \(size) needs \(Self.elementCount(size: max(size, 0))) values, got \(upper.count)")
        }
        guard scale.isFinite, scale > 0 else { throw KVCompressionError.invalidArgument("packed Gram scale \(scale)") }
        self.size = size
        self.scale = scale
        self.upper = upper
    }

    /// Packs the upper triangle of `gram`.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when `gram` is not square or not finite.
    public init(packing gram: Matrix) throws {
        guard gram.rows == gram.cols else {
            throw KVCompressionError.invalidArgument("Gram matrix is \(gram.rows)x\(gram.cols), not square")
        }
        guard gram.isFinite else { throw KVCompressionError.invalidArgument("Gram matrix is not finite") }
        let n = gram.rows
        let maxAbs = gram.storage.reduce(Float(0)) { max($0, abs($1)) }
        // exponent(x) = ⌊log₂ x⌋, so maxAbs/2^(e−13) ∈ [2¹³, 2¹⁴).
        let scale: Float = maxAbs > 0 ? Float(sign: .plus, exponent: maxAbs.exponent - 13, significand: 1) : 1
        var packed = [UInt16]()
        packed.reserveCapacity(Self.elementCount(size: n))
        gram.withUnsafeBufferPointer { g in
            for i in 0..<n {
                for j in i..<n { packed.append(HalfPrecision.halfFromFloat(g[i * n + j] / scale)) }
            }
        }
        try self.init(size: n, scale: scale, upper: packed)
    }

    /// The full symmetric matrix.
    public func unpacked() -> Matrix {
        let n = size
        var m = Matrix(rows: n, cols: n)
        m.withUnsafeMutableBufferPointer { out in
            var index = 0
            for i in 0..<n {
                for j in i..<n {
                    let x = HalfPrecision.floatFromHalf(upper[index]) * scale
                    out[i * n + j] = x
                    out[j * n + i] = x
                    index += 1
                }
            }
        }
        return m
    }
}
