import Foundation
import KVCompression
import LinearAlgebra
import TensorFiles

/// The activations of one layer that calibration statistics are built from (DESIGN.md §4,
/// "Calibration statistics"), all [T, ·] with one row per token.
public struct LayerCapture: Sendable {
    /// The layer index.
    public var layer: Int
    /// X: the attention-norm output, input of W_q, W_k, W_v. [T, d]
    public var attentionInput: Matrix
    /// Pre-RoPE K = X W_kᵀ in HF channel order (a GGUF's permutation undone). [T, d_kv]
    public var keys: Matrix
    /// V = X W_vᵀ. [T, d_kv]
    public var values: Matrix
    /// Post-RoPE K in HF channel order (exact keys, before any policy). [T, d_kv]
    public var rotatedKeys: Matrix
    /// The attention output, input of W_o. [T, n_heads·head_dim]
    public var attentionOutput: Matrix
    /// The MLP-norm output, input of W_gate and W_up. [T, d]
    public var feedForwardInput: Matrix
    /// The SwiGLU product silu(gate)·up, input of W_down. [T, ffn]
    public var feedForwardHidden: Matrix
}

/// Receives every layer's ``LayerCapture`` during a forward pass (e.g. a calibration accumulator).
public typealias LayerObserver = (LayerCapture) throws -> Void

extension CancellationFlag {
    /// Throws ``InferenceError/cancelled`` when the flag is set.
    func check() throws {
        if isCancelled { throw InferenceError.cancelled }
    }
}

/// A decoder-only transformer of any family in ``Architecture/known``, in float32: RMSNorm (and
/// the family's QK-norms and sandwich norms), RoPE (per-layer bases), grouped-query causal
/// attention (sliding-window on the layers that have it) with a pluggable ``KVCachePolicy``, a gated
/// MLP (SwiGLU or GeGLU), and a tied or separate output head. Matrix products go
/// through BLAS; a whole sequence is prefilled at once, attention in blocks of query rows so that
/// memory stays O(block · T).
public struct TransformerModel: Sendable {
    /// The weights, as loaded.
    public let weights: any ModelWeights
    /// Query rows per attention block.
    public var attentionBlockSize = 64

    /// The model's configuration.
    public var configuration: ModelConfiguration { weights.configuration }

    /// A model over `weights`, whose shapes are checked against their configuration.
    /// - Throws: ``InferenceError/invalidWeight(name:detail:)`` for a wrong shape.
    public init(weights: any ModelWeights) throws {
        let c = weights.configuration
        func check(_ m: Matrix, _ rows: Int, _ cols: Int, _ name: String) throws {
            guard m.rows == rows, m.cols == cols else {
                throw InferenceError.invalidWeight(name: name, detail: "shape [\(m.rows), \(m.cols)], expected [\(rows), \(cols)]")
            }
        }
        func check(_ v: [Float], _ n: Int, _ name: String) throws {
            guard v.count == n else { throw InferenceError.invalidWeight(name: name, detail: "length \(v.count), expected \(n)") }
        }
        let d = c.hiddenSize
        try check(weights.tokenEmbedding, c.vocabularySize, d, "token embedding")
        try check(weights.outputHead, c.vocabularySize, d, "output head")
        try check(weights.outputNorm, d, "output norm")
        guard weights.layers.count == c.layerCount else {
            throw InferenceError.invalidWeight(name: "layers", detail: "\(weights.layers.count) blocks, expected \(c.layerCount)")
        }
        for (i, l) in weights.layers.enumerated() {
            try check(l.attentionNorm, d, "layer \(i) attention norm")
            try check(l.query, c.queryDimension, d, "layer \(i) W_q")
            try check(l.key, c.kvDimension, d, "layer \(i) W_k")
            try check(l.value, c.kvDimension, d, "layer \(i) W_v")
            try check(l.output, d, c.queryDimension, "layer \(i) W_o")
            try check(l.feedForwardNorm, d, "layer \(i) MLP norm")
            try check(l.gate, c.feedForwardSize, d, "layer \(i) W_gate")
            try check(l.up, c.feedForwardSize, d, "layer \(i) W_up")
            try check(l.down, d, c.feedForwardSize, "layer \(i) W_down")
            let arch = c.architecture
            for (v, n, role) in [(l.queryBias, c.queryDimension, Architecture.Role.queryBias),
                                 (l.keyBias, c.kvDimension, .keyBias), (l.valueBias, c.kvDimension, .valueBias),
                                 (l.queryNorm, c.headDimension, .queryNorm), (l.keyNorm, c.headDimension, .keyNorm),
                                 (l.postAttentionNorm, d, .postAttentionNorm), (l.postFeedForwardNorm, d, .postFeedForwardNorm)] {
                let wanted = arch.roles.contains(role)
                guard (v != nil) == wanted else {
                    throw InferenceError.invalidWeight(
                        name: "layer \(i) \(role.rawValue)", detail: wanted ? "missing for \(arch.name)" : "\(arch.name) has no such tensor")
                }
                if let v { try check(v, n, "layer \(i) \(role.rawValue)") }
            }
        }
        self.weights = weights
    }

    /// The final-norm hidden states [T, d] of `tokens`, prefilled with a causal mask.
    ///
    /// - Parameters:
    ///   - tokens: token ids, position 0 first.
    ///   - policy: the KV-cache policy applied inside every layer.
    ///   - observer: called once per layer with its activations (nil: nothing is captured).
    ///   - progress: called after each layer with (layers done, layer count).
    ///   - cancellation: checked between layers and attention blocks.
    /// - Throws: ``InferenceError/invalidToken(id:vocabularySize:)``, ``InferenceError/cancelled``,
    ///   policy errors and errors thrown by `observer`.
    public func hiddenStates(tokens: [Int32], policy: any KVCachePolicy = ExactKVCache(),
                             observer: LayerObserver? = nil, progress: ((Int, Int) -> Void)? = nil,
                             cancellation: CancellationFlag? = nil) throws -> Matrix {
        let c = configuration
        let T = tokens.count, d = c.hiddenSize
        var x = Matrix(rows: T, cols: d)
        try weights.tokenEmbedding.withUnsafeBufferPointer { emb in
            try x.withUnsafeMutableBufferPointer { dst in
                for (t, id) in tokens.enumerated() {
                    guard id >= 0, Int(id) < c.vocabularySize else {
                        throw InferenceError.invalidToken(id: id, vocabularySize: c.vocabularySize)
                    }
                    let src = Int(id) * d
                    for j in 0..<d { dst[t * d + j] = emb[src + j] }
                }
            }
        }
        if T == 0 { return x }
        if c.embeddingScale != 1 { x.scale(by: c.embeddingScale) }
        let globalRope = RopeTable(positions: T, headDimension: c.headDimension, theta: c.ropeTheta,
                                   positionScale: 1 / c.ropeScalingFactor)
        let localRope = c.slidingWindow == nil ? globalRope
            : RopeTable(positions: T, headDimension: c.headDimension, theta: c.localRopeTheta, positionScale: 1)
        for (li, layer) in weights.layers.enumerated() {
            try cancellation?.check()
            let sliding = c.isSlidingWindowLayer(li)
            let rope = sliding ? localRope : globalRope
            let h = rmsNorm(x, layer.attentionNorm, epsilon: c.rmsNormEpsilon)
            var q = try matmul(h, .none, layer.query, .transpose)
            var k = try matmul(h, .none, layer.key, .transpose)
            var v = try matmul(h, .none, layer.value, .transpose)
            if let b = layer.queryBias { q.addRowVector(b) }
            if let b = layer.keyBias { k.addRowVector(b) }
            if let b = layer.valueBias { v.addRowVector(b) }
            if let w = layer.queryNorm { headNorm(&q, heads: c.headCount, weight: w) }
            if let w = layer.keyNorm { headNorm(&k, heads: c.kvHeadCount, weight: w) }

            // The policy sees pre-RoPE K in HF order; its K̂ goes back to the stored order for RoPE.
            let keysHF = toHFOrder(k, heads: c.kvHeadCount)
            let compressed = try policy.compress(layer: li, inputs: h, keys: keysHF, values: v)
            for m in [compressed.keys, compressed.values].compactMap({ $0 }) where m.rows != T || m.cols != c.kvDimension {
                throw InferenceError.invalidPolicy("layer \(li) returned [\(m.rows), \(m.cols)] for [\(T), \(c.kvDimension)]")
            }
            var keysHat = compressed.keys.map { fromHFOrder($0, heads: c.kvHeadCount) }

            rope.apply(to: &q, heads: c.headCount, style: c.ropeStyle)
            rope.apply(to: &k, heads: c.kvHeadCount, style: c.ropeStyle)
            if var rotated = keysHat {
                rope.apply(to: &rotated, heads: c.kvHeadCount, style: c.ropeStyle)
                keysHat = rotated
            }

            let attention = try attend(queries: q, keys: k, values: v, keysHat: keysHat, valuesHat: compressed.values,
                                       window: policy.window, slidingWindow: sliding ? c.slidingWindow : nil,
                                       cancellation: cancellation)
            if let post = layer.postAttentionNorm {
                let o = try matmul(attention, .none, layer.output, .transpose)
                x.add(rmsNorm(o, post, epsilon: c.rmsNormEpsilon))
            } else {
                try gemm(attention, .none, layer.output, .transpose, beta: 1, into: &x)  // x += attention · W_oᵀ
            }

            let h2 = rmsNorm(x, layer.feedForwardNorm, epsilon: c.rmsNormEpsilon)
            var gate = try matmul(h2, .none, layer.gate, .transpose)
            let up = try matmul(h2, .none, layer.up, .transpose)
            gatedActivation(&gate, up, c.architecture.activation)
            if let post = layer.postFeedForwardNorm {
                let m = try matmul(gate, .none, layer.down, .transpose)
                x.add(rmsNorm(m, post, epsilon: c.rmsNormEpsilon))
            } else {
                try gemm(gate, .none, layer.down, .transpose, beta: 1, into: &x)  // x += act(gate)·up · W_downᵀ
            }

            if let observer {
                try observer(LayerCapture(
                    layer: li, attentionInput: h, keys: keysHF, values: v,
                    rotatedKeys: toHFOrder(k, heads: c.kvHeadCount), attentionOutput: attention,
                    feedForwardInput: h2, feedForwardHidden: gate))
            }
            progress?(li + 1, c.layerCount)
        }
        return rmsNorm(x, weights.outputNorm, epsilon: c.rmsNormEpsilon)
    }

    /// Logits [rows.count, vocab] of the given rows of final hidden states (`rows` must lie within them).
    /// - Throws: ``LinearAlgebra/LinearAlgebraError`` when a dimension exceeds the BLAS range.
    public func logits(hiddenStates: Matrix, rows: Range<Int>) throws -> Matrix {
        precondition(rows.lowerBound >= 0 && rows.upperBound <= hiddenStates.rows, "logits: rows out of range")
        let head = weights.outputHead
        var out = Matrix(rows: rows.count, cols: head.rows)
        if rows.isEmpty { return out }
        try hiddenStates.withUnsafeBufferPointer { hs in
            try head.withUnsafeBufferPointer { w in
                try out.withUnsafeMutableBufferPointer { o in
                    guard let hb = hs.baseAddress, let wb = w.baseAddress, let ob = o.baseAddress else { return }
                    try gemmRaw(transA: .none, transB: .transpose, m: rows.count, n: head.rows, k: head.cols, alpha: 1,
                                a: hb + rows.lowerBound * hiddenStates.cols, lda: hiddenStates.cols,
                                b: wb, ldb: head.cols, beta: 0, c: ob, ldc: head.rows)
                }
            }
        }
        return out
    }

    /// Logits [T, vocab] of every position of `tokens` (for short sequences; perplexity works blockwise).
    public func logits(tokens: [Int32], policy: any KVCachePolicy = ExactKVCache()) throws -> Matrix {
        let h = try hiddenStates(tokens: tokens, policy: policy)
        return try logits(hiddenStates: h, rows: 0..<h.rows)
    }

    // MARK: - Layers

    /// x / sqrt(mean(x²) + ε) · w, per row (sum of squares in Double).
    func rmsNorm(_ x: Matrix, _ weight: [Float], epsilon: Float) -> Matrix {
        var out = Matrix(rows: x.rows, cols: x.cols)
        let n = x.cols
        x.withUnsafeBufferPointer { src in
            weight.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { dst in
                    for r in 0..<x.rows {
                        let base = r * n
                        var ss = 0.0
                        for j in 0..<n { let v = Double(src[base + j]); ss += v * v }
                        let inv = Float(1 / (ss / Double(n) + Double(epsilon)).squareRoot())
                        for j in 0..<n { dst[base + j] = src[base + j] * inv * w[j] }
                    }
                }
            }
        }
        return out
    }

    /// gate ← act(gate) · up, elementwise: SiLU (SwiGLU) or tanh-approximated GELU (GeGLU).
    func gatedActivation(_ gate: inout Matrix, _ up: Matrix, _ activation: Architecture.Activation) {
        gate.withUnsafeMutableBufferPointer { g in
            up.withUnsafeBufferPointer { u in
                switch activation {
                case .silu:
                    for i in 0..<g.count {
                        let a = g[i]
                        g[i] = a / (1 + Foundation.exp(-a)) * u[i]
                    }
                case .geluTanh:
                    let c = Float((2 / Double.pi).squareRoot())
                    for i in 0..<g.count {
                        let a = g[i]
                        g[i] = 0.5 * a * (1 + Foundation.tanh(c * (a + 0.044715 * a * a * a))) * u[i]
                    }
                }
            }
        }
    }

    /// RMSNorm of every head_dim slice of every row (QK-norm), in place.
    func headNorm(_ m: inout Matrix, heads: Int, weight: [Float]) {
        let hd = configuration.headDimension, eps = Double(configuration.rmsNormEpsilon), cols = m.cols, rows = m.rows
        weight.withUnsafeBufferPointer { w in
            m.withUnsafeMutableBufferPointer { x in
                for r in 0..<rows {
                    for h in 0..<heads {
                        let base = r * cols + h * hd
                        var ss = 0.0
                        for j in 0..<hd { let v = Double(x[base + j]); ss += v * v }
                        let inv = Float(1 / (ss / Double(hd) + eps).squareRoot())
                        for j in 0..<hd { x[base + j] = x[base + j] * inv * w[j] }
                    }
                }
            }
        }
    }

    /// A [T, heads·head_dim] matrix in the stored Q/K order, as HF order. For adjacent pairs, stored
    /// channel 2i+p of a head is HF channel p·head_dim/2 + i (the GGUF converter's permutation).
    func toHFOrder(_ m: Matrix, heads: Int) -> Matrix {
        guard configuration.ropeStyle == .adjacentPairs else { return m }
        return permuteHeads(m, heads: heads, toHF: true)
    }

    /// The inverse of ``toHFOrder(_:heads:)``.
    func fromHFOrder(_ m: Matrix, heads: Int) -> Matrix {
        guard configuration.ropeStyle == .adjacentPairs else { return m }
        return permuteHeads(m, heads: heads, toHF: false)
    }

    private func permuteHeads(_ m: Matrix, heads: Int, toHF: Bool) -> Matrix {
        let hd = configuration.headDimension, half = hd / 2
        var out = Matrix(rows: m.rows, cols: m.cols)
        m.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<m.rows {
                    for h in 0..<heads {
                        let base = r * m.cols + h * hd
                        for i in 0..<half {
                            for p in 0..<2 {
                                let stored = base + 2 * i + p, hf = base + p * half + i
                                if toHF { dst[hf] = src[stored] } else { dst[stored] = src[hf] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Causal grouped-query attention over the whole sequence with the bi-branch rule: query t reads
    /// exact K/V at s > t − window and K̂/V̂ at s ≤ t − window (DESIGN.md §4). Scores against K and
    /// K̂ are both computed by BLAS per block of queries and selected per (t, s); the probabilities
    /// are split into an exact and a compressed part that multiply V and V̂.
    ///
    /// Either branch may be exact on its own (K̂ nil, V̂ set, or the reverse). Which products run is
    /// decided by whether K̂ and V̂ exist, never by the base addresses of the scratch buffers: an
    /// empty Swift array can still hand out a non-nil base address.
    func attend(queries q: Matrix, keys k: Matrix, values v: Matrix, keysHat: Matrix?, valuesHat: Matrix?,
                window: Int, slidingWindow: Int? = nil, cancellation: CancellationFlag?) throws -> Matrix {
        let c = configuration
        let T = q.rows, hd = c.headDimension, dq = c.queryDimension, dkv = c.kvDimension
        let group = c.headCount / c.kvHeadCount
        let scale = c.attentionScale
        let hasKeysHat = keysHat != nil, hasValuesHat = valuesHat != nil
        let compressed = hasKeysHat || hasValuesHat
        let block = max(1, attentionBlockSize)
        var out = Matrix(rows: T, cols: dq)
        var scores = [Float](repeating: 0, count: block * T)
        var scoresHat = [Float](repeating: 0, count: hasKeysHat ? block * T : 0)
        var pExact = [Float](repeating: 0, count: block * T)
        var pCompressed = [Float](repeating: 0, count: hasValuesHat ? block * T : 0)
        let kHat = keysHat ?? Matrix(rows: 0, cols: 0), vHat = valuesHat ?? Matrix(rows: 0, cols: 0)

        try q.withUnsafeBufferPointer { qb in
        try k.withUnsafeBufferPointer { kb in
        try v.withUnsafeBufferPointer { vb in
        try kHat.withUnsafeBufferPointer { khb in
        try vHat.withUnsafeBufferPointer { vhb in
        try out.withUnsafeMutableBufferPointer { ob in
        try scores.withUnsafeMutableBufferPointer { sb in
        try scoresHat.withUnsafeMutableBufferPointer { shb in
        try pExact.withUnsafeMutableBufferPointer { pe in
        try pCompressed.withUnsafeMutableBufferPointer { pc in
            guard let qp = qb.baseAddress, let kp = kb.baseAddress, let vp = vb.baseAddress,
                  let op = ob.baseAddress, let sp = sb.baseAddress, let pep = pe.baseAddress else { return }
            var t0 = 0
            while t0 < T {
                try cancellation?.check()
                let t1 = min(t0 + block, T), rows = t1 - t0, n = t1
                // Keys some query of the block reads compressed: s ≤ t1 − 1 − window.
                let oldCount = compressed ? min(max(t1 - window, 0), n) : 0
                for head in 0..<c.headCount {
                    let g = head / group
                    try gemmRaw(transA: .none, transB: .transpose, m: rows, n: n, k: hd, alpha: scale,
                                a: qp + t0 * dq + head * hd, lda: dq, b: kp + g * hd, ldb: dkv,
                                beta: 0, c: sp, ldc: n)
                    if hasKeysHat, oldCount > 0, let khp = khb.baseAddress, let shp = shb.baseAddress {
                        try gemmRaw(transA: .none, transB: .transpose, m: rows, n: oldCount, k: hd, alpha: scale,
                                    a: qp + t0 * dq + head * hd, lda: dq, b: khp + g * hd, ldb: dkv,
                                    beta: 0, c: shp, ldc: oldCount)
                    }
                    for r in 0..<rows {
                        let t = t0 + r
                        let lastOld = compressed ? t - window : -1  // s ≤ lastOld reads the compressed branch
                        let srow = r * n, hrow = r * oldCount
                        // A sliding-window layer sees keys s with t − s < W only.
                        let first = slidingWindow.map { max(0, t - $0 + 1) } ?? 0
                        for s in 0..<first { sb[srow + s] = 0 }
                        var maxScore = -Float.infinity
                        for s in first...t {
                            let value = (hasKeysHat && s <= lastOld) ? shb[hrow + s] : sb[srow + s]
                            sb[srow + s] = value
                            maxScore = max(maxScore, value)
                        }
                        var sum: Float = 0
                        for s in first...t {
                            let e = Foundation.exp(sb[srow + s] - maxScore)
                            sb[srow + s] = e
                            sum += e
                        }
                        let inv = 1 / sum
                        if hasValuesHat {
                            let prow = r * oldCount
                            for s in 0..<n {
                                let p = s <= t ? sb[srow + s] * inv : 0
                                let old = s <= lastOld
                                pe[srow + s] = old ? 0 : p
                                if s < oldCount { pc[prow + s] = old ? p : 0 }
                            }
                        } else {
                            for s in 0..<n { pe[srow + s] = s <= t ? sb[srow + s] * inv : 0 }
                        }
                    }
                    try gemmRaw(transA: .none, transB: .none, m: rows, n: hd, k: n, alpha: 1,
                                a: pep, lda: n, b: vp + g * hd, ldb: dkv,
                                beta: 0, c: op + t0 * dq + head * hd, ldc: dq)
                    if hasValuesHat, oldCount > 0, let vhp = vhb.baseAddress, let pcp = pc.baseAddress {
                        try gemmRaw(transA: .none, transB: .none, m: rows, n: hd, k: oldCount, alpha: 1,
                                    a: pcp, lda: oldCount, b: vhp + g * hd, ldb: dkv,
                                    beta: 1, c: op + t0 * dq + head * hd, ldc: dq)
                    }
                }
                t0 = t1
            }
        }}}}}}}}}}
        return out
    }
}

/// cos and sin of RoPE angles p·θ^(−2i/head_dim), computed in Double, stored as Float [T, head_dim/2].
struct RopeTable {
    let half: Int
    let cos: [Float]
    let sin: [Float]

    /// - Parameter positionScale: positions are multiplied by it (linear RoPE scaling: 1/factor).
    init(positions: Int, headDimension: Int, theta: Double, positionScale: Double = 1) {
        half = headDimension / 2
        var c = [Float](repeating: 0, count: positions * half), s = c
        for i in 0..<half {
            let frequency = Foundation.pow(theta, -Double(2 * i) / Double(headDimension))
            for p in 0..<positions {
                let angle = Double(p) * positionScale * frequency
                c[p * half + i] = Float(Foundation.cos(angle))
                s[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        cos = c
        sin = s
    }

    /// Rotates every head of every row (row index = position) in place, pairing channels per `style`.
    func apply(to m: inout Matrix, heads: Int, style: RopeStyle) {
        let hd = 2 * half, cols = m.cols, rows = m.rows
        let (stride, offset) = style == .adjacentPairs ? (2, 1) : (1, half)  // pair i is (stride·i, stride·i + offset)
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                m.withUnsafeMutableBufferPointer { x in
                    for p in 0..<rows {
                        for h in 0..<heads {
                            let base = p * cols + h * hd
                            for i in 0..<half {
                                let a = base + stride * i, b = a + offset
                                let co = cb[p * half + i], si = sb[p * half + i]
                                let xa = x[a], xb = x[b]
                                x[a] = xa * co - xb * si
                                x[b] = xb * co + xa * si
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Matrix {
    /// self ← self · factor.
    mutating func scale(by factor: Float) {
        withUnsafeMutableBufferPointer { x in for i in 0..<x.count { x[i] *= factor } }
    }

    /// self ← self + other (same shape).
    mutating func add(_ other: Matrix) {
        precondition(rows == other.rows && cols == other.cols, "add: shapes differ")
        other.withUnsafeBufferPointer { o in
            withUnsafeMutableBufferPointer { x in for i in 0..<x.count { x[i] += o[i] } }
        }
    }

    /// Adds `vector` (length cols) to every row.
    mutating func addRowVector(_ vector: [Float]) {
        precondition(vector.count == cols, "addRowVector: length differs")
        let n = cols, count = rows
        vector.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { x in
                for r in 0..<count { for j in 0..<n { x[r * n + j] += b[j] } }
            }
        }
    }
}
