import LinearAlgebra

/// Streams token rows into the sums behind ``CalibrationStatistics``.
///
/// The forward pass calls ``addAttention(layer:inputs:keys:values:keysPostRoPE:)`` once per layer
/// and chunk of tokens (chunks in text order), and ``addInput(_:layer:rows:)`` for the other matrix
/// inputs it wants statistics of. Grams are formed per block of at most 256 rows with SGEMM (Float,
/// BLAS speed, error bounded by the block length) and added into Double accumulators, so the
/// error does not grow with the length of the text.
///
/// Sampled rows: token t is kept when its seeded hash is among the `sampleCount` smallest seen,
/// a uniform sample that depends only on (t, seed), so every layer keeps the same tokens and the
/// result does not depend on the chunking.
public struct CalibrationAccumulator: Sendable {
    /// Layers accumulated.
    public let layerCount: Int
    /// d, the width of X.
    public let hiddenSize: Int
    /// d_kv, the width of K and V.
    public let kvSize: Int
    /// Maximum number of sampled token rows per layer.
    public let sampleCount: Int
    /// Seed of the token sampling hash.
    public let seed: UInt64

    static let blockRows = 256

    struct Moments: Sendable {
        var gram: [Double]
        var absSum: [Double]
        /// Σ x per channel (for the per-channel mean of K and V).
        var sum: [Double]
        var rows = 0
        let width: Int
        let keepGram: Bool

        init(width: Int, keepGram: Bool) {
            self.width = width
            self.keepGram = keepGram
            gram = keepGram ? [Double](repeating: 0, count: width * width) : []
            absSum = [Double](repeating: 0, count: width)
            sum = [Double](repeating: 0, count: width)
        }
    }

    struct SampledRow: Sendable {
        let hash: UInt64
        let token: Int
        let x: [Float], k: [Float], v: [Float]
    }

    struct LayerState: Sendable {
        var inputs: [MatrixInput: Moments] = [:]
        var key: Moments
        var value: Moments
        var keyPostRoPE: Moments
        var tokens = 0
        var samples: [SampledRow] = []
    }

    var states: [LayerState]

    /// An empty accumulator.
    /// - Parameters:
    ///   - layerCount: number of layers.
    ///   - hiddenSize: d.
    ///   - kvSize: d_kv.
    ///   - sampleCount: token rows kept per layer for quantized-branch errors and `fitted`.
    ///   - seed: seed of the token sampling.
    ///   - keepInputGram: whether to accumulate the attention input's d×d XᵀX (mean|x| is always kept).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for non-positive sizes.
    public init(layerCount: Int, hiddenSize: Int, kvSize: Int, sampleCount: Int = 512, seed: UInt64 = 0,
                keepInputGram: Bool = true) throws {
        guard layerCount > 0, hiddenSize > 0, kvSize > 0, sampleCount >= 0 else {
            throw KVCompressionError.invalidArgument(
                "accumulator needs positive sizes (layers \(layerCount), d \(hiddenSize), d_kv \(kvSize), samples \(sampleCount))")
        }
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.kvSize = kvSize
        self.sampleCount = sampleCount
        self.seed = seed
        var state = LayerState(key: Moments(width: kvSize, keepGram: true), value: Moments(width: kvSize, keepGram: true),
                               keyPostRoPE: Moments(width: kvSize, keepGram: true))
        state.inputs[.attentionInput] = Moments(width: hiddenSize, keepGram: keepInputGram)
        states = [LayerState](repeating: state, count: layerCount)
    }

    /// Adds one chunk of a layer's attention rows: X [n, d], K and V [n, d_kv] pre-RoPE, and
    /// optionally K after RoPE [n, d_kv]. Rows are tokens in text order, following the previous chunk.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` on a bad layer, shape or non-finite value.
    public mutating func addAttention(layer: Int, inputs x: Matrix, keys k: Matrix, values v: Matrix,
                                      keysPostRoPE: Matrix? = nil) throws {
        guard layer >= 0, layer < layerCount else { throw KVCompressionError.invalidArgument("layer \(layer) out of 0..<\(layerCount)") }
        let n = x.rows
        guard x.cols == hiddenSize, k.rows == n, k.cols == kvSize, v.rows == n, v.cols == kvSize,
              keysPostRoPE.map({ $0.rows == n && $0.cols == kvSize }) ?? true else {
            throw KVCompressionError.invalidArgument(
                "attention chunk shapes X \(x.rows)x\(x.cols), K \(k.rows)x\(k.cols), V \(v.rows)x\(v.cols); want [n,\(hiddenSize)], [n,\(kvSize)]")
        }
        guard x.isFinite, k.isFinite, v.isFinite, keysPostRoPE?.isFinite ?? true else {
            throw KVCompressionError.invalidArgument("layer \(layer): non-finite activations")
        }
        try Self.accumulate(&states[layer].inputs[.attentionInput, default: Moments(width: hiddenSize, keepGram: true)], x)
        try Self.accumulate(&states[layer].key, k)
        try Self.accumulate(&states[layer].value, v)
        if let rotated = keysPostRoPE {
            try Self.accumulate(&states[layer].keyPostRoPE, rotated)
        }
        let first = states[layer].tokens
        if sampleCount > 0 {
            for i in 0..<n {
                let token = first + i
                states[layer].samples.append(SampledRow(hash: sampleHash(token), token: token,
                                                        x: x.row(i), k: k.row(i), v: v.row(i)))
            }
            if states[layer].samples.count >= 2 * sampleCount { pruneSamples(layer) }
        }
        states[layer].tokens += n
    }

    /// Adds rows of another matrix input (attention output, FFN input, SwiGLU product) of a layer.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` on a bad layer, a width that changes, or non-finite rows.
    public mutating func addInput(_ input: MatrixInput, layer: Int, rows: Matrix) throws {
        guard layer >= 0, layer < layerCount else { throw KVCompressionError.invalidArgument("layer \(layer) out of 0..<\(layerCount)") }
        guard rows.isFinite else { throw KVCompressionError.invalidArgument("layer \(layer) \(input.rawValue): non-finite rows") }
        if let width = states[layer].inputs[input]?.width, width != rows.cols {
            throw KVCompressionError.invalidArgument("layer \(layer) \(input.rawValue): width \(rows.cols), earlier \(width)")
        }
        try Self.accumulate(&states[layer].inputs[input, default: Moments(width: rows.cols, keepGram: true)], rows)
    }

    /// Number of tokens seen by `layer` so far.
    public func tokenCount(layer: Int) -> Int { states.indices.contains(layer) ? states[layer].tokens : 0 }

    /// The statistics summed so far.
    /// - Parameter textSHA256: hex SHA-256 of the calibration text.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when layers saw different numbers of tokens.
    public func finalize(textSHA256: String) throws -> CalibrationStatistics {
        let tokens = states[0].tokens
        guard states.allSatisfy({ $0.tokens == tokens }) else {
            throw KVCompressionError.invalidArgument("layers saw different token counts: \(states.map(\.tokens))")
        }
        var sampleTokens: [Int] = []
        var layers: [LayerCalibration] = []
        for (layer, state) in states.enumerated() {
            let kept = Array(state.samples.sorted { ($0.hash, $0.token) < ($1.hash, $1.token) }.prefix(sampleCount))
                .sorted { $0.token < $1.token }
            if layer == 0 { sampleTokens = kept.map(\.token) }
            var inputs: [MatrixInput: InputStatistics] = [:]
            for (input, m) in state.inputs where m.rows > 0 || input == .attentionInput {
                inputs[input] = Self.statistics(m)
            }
            layers.append(LayerCalibration(
                layer: layer, inputs: inputs,
                keyGram: Self.gramMatrix(state.key), valueGram: Self.gramMatrix(state.value),
                keyGramPostRoPE: state.keyPostRoPE.rows > 0 ? Self.gramMatrix(state.keyPostRoPE) : nil,
                keyMean: state.key.rows > 0 ? state.key.sum.map { Float($0 / Double(state.key.rows)) } : nil,
                valueMean: state.value.rows > 0 ? state.value.sum.map { Float($0 / Double(state.value.rows)) } : nil,
                sampleInputs: try Matrix(rows: kept.count, cols: hiddenSize, storage: kept.flatMap(\.x)),
                sampleKeys: try Matrix(rows: kept.count, cols: kvSize, storage: kept.flatMap(\.k)),
                sampleValues: try Matrix(rows: kept.count, cols: kvSize, storage: kept.flatMap(\.v))))
        }
        return CalibrationStatistics(tokenCount: tokens, textSHA256: textSHA256,
                                     sampleTokenIndices: sampleTokens, layers: layers)
    }

    // MARK: - Internals

    func sampleHash(_ token: Int) -> UInt64 {
        // SplitMix64 finalizer of (seed, token): a fixed pseudo-random key per token.
        var z = seed &+ UInt64(truncatingIfNeeded: token) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func pruneSamples(_ layer: Int) {
        states[layer].samples.sort { ($0.hash, $0.token) < ($1.hash, $1.token) }
        states[layer].samples.removeLast(states[layer].samples.count - sampleCount)
    }

    static func accumulate(_ m: inout Moments, _ rows: Matrix) throws {
        let w = m.width, n = rows.rows
        guard rows.cols == w else { throw KVCompressionError.invalidArgument("row width \(rows.cols), expected \(w)") }
        guard n > 0 else { return }
        rows.withUnsafeBufferPointer { p in
            for i in 0..<n {
                for j in 0..<w {
                    let x = Double(p[i * w + j])
                    m.absSum[j] += abs(x)
                    m.sum[j] += x
                }
            }
        }
        m.rows += n
        guard m.keepGram else { return }
        var block = [Float](repeating: 0, count: w * w)
        var start = 0
        while start < n {
            let count = min(blockRows, n - start)
            try rows.withUnsafeBufferPointer { p in
                try block.withUnsafeMutableBufferPointer { c in
                    guard let base = p.baseAddress, let out = c.baseAddress else { return }
                    try KVCompressionError.wrap {
                        try gemmRaw(transA: .transpose, transB: .none, m: w, n: w, k: count, alpha: 1,
                                    a: base + start * w, lda: w, b: base + start * w, ldb: w,
                                    beta: 0, c: out, ldc: w)
                    }
                }
            }
            for i in 0..<(w * w) { m.gram[i] += Double(block[i]) }
            start += count
        }
    }

    static func gramMatrix(_ m: Moments) -> Matrix {
        // Symmetrize exactly: SGEMM's two triangles can differ in the last bit.
        let w = m.width
        var out = Matrix(rows: w, cols: w)
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<w {
                for j in i..<w {
                    let x = Float(0.5 * (m.gram[i * w + j] + m.gram[j * w + i]))
                    o[i * w + j] = x
                    o[j * w + i] = x
                }
            }
        }
        return out
    }

    static func statistics(_ m: Moments) -> InputStatistics {
        let meanAbs = m.absSum.map { m.rows > 0 ? Float($0 / Double(m.rows)) : 0 }
        return InputStatistics(gram: m.keepGram ? gramMatrix(m) : nil, meanAbs: meanAbs)
    }
}
