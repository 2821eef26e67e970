import LinearAlgebra
import Quantization

/// What a KV-cache policy makes of one layer's keys and values: the compressed branch of the
/// bi-branch cache (DESIGN.md §4, "Bi-branch cache").
///
/// All matrices are pre-RoPE, [T, d_kv], in the model's original (HF) channel order; the forward
/// pass converts from and to a GGUF's permuted Q/K order around the policy and applies RoPE to the
/// reconstruction at each token's own position.
public struct CompressedKV: Sendable {
    /// K̂ for every token, or nil when keys are kept exact at every position.
    public var keys: Matrix?
    /// V̂ for every token, or nil when values are kept exact at every position.
    public var values: Matrix?

    public init(keys: Matrix?, values: Matrix?) {
        self.keys = keys
        self.values = values
    }
}

/// A KV-cache policy, invoked inside every layer of the forward pass.
///
/// A query at position t reads exact K/V for positions s > t − ``window`` and the policy's
/// reconstruction K̂/V̂ for s ≤ t − ``window`` (so with window 0 every position, t itself included,
/// reads the reconstruction).
public protocol KVCachePolicy: Sendable {
    /// The causal exact window w.
    var window: Int { get }
    /// The compressed-branch reconstruction of layer `layer`'s pre-RoPE keys and values.
    /// - Parameters:
    ///   - keys: K, [T, d_kv], HF channel order.
    ///   - values: V, [T, d_kv].
    /// - Throws: any error of the compression (e.g. ``QuantizationError/nonFinite``).
    func compress(layer: Int, keys: Matrix, values: Matrix) throws -> CompressedKV
    /// The compressed-branch reconstruction when features are computed from the layer input X
    /// ([T, d], the attention-norm output) rather than from K/V themselves (non-projection factors,
    /// e.g. `fitted`). The default ignores X.
    func compress(layer: Int, inputs: Matrix, keys: Matrix, values: Matrix) throws -> CompressedKV
}

extension KVCachePolicy {
    public func compress(layer: Int, inputs: Matrix, keys: Matrix, values: Matrix) throws -> CompressedKV {
        try compress(layer: layer, keys: keys, values: values)
    }
}

/// The baseline: every position reads exact keys and values.
public struct ExactKVCache: KVCachePolicy {
    public init() {}
    public var window: Int { 0 }
    public func compress(layer: Int, keys: Matrix, values: Matrix) throws -> CompressedKV {
        CompressedKV(keys: nil, values: nil)
    }
}

/// How one of K or V is stored once it leaves the window: an optional projection basis, then an
/// optional uniform quantizer over the stored features (DESIGN.md §4, "Low-rank factors" and
/// "Uniform quantization").
///
/// With a basis U_r ([d_kv, r], orthonormal columns): c = U_rᵀ k per token, quantized per token in
/// groups along the r features, k̂ = U_r ĉ. Without one: k itself is quantized per token in groups
/// along its d_kv channels (HF order).
///
/// With non-projection factors (``inputFactor`` set, DESIGN.md §4 `fitted`): c = A x from the layer
/// input x, quantized, and k̂ = B ĉ with B = ``basis`` (not necessarily orthonormal).
public struct BranchCompression: Sendable {
    /// U_r, [d_kv, r] (or B for non-projection factors), or nil for no low rank.
    public var basis: Matrix?
    /// The quantizer of the stored features, or nil for 16 bits (kept as computed).
    public var quantizer: UniformQuantizer?
    /// A, [r, d]: features come from the layer input as c = A x; nil for a projection basis (c = U_rᵀ k).
    public var inputFactor: Matrix?

    public init(basis: Matrix?, quantizer: UniformQuantizer?) {
        self.basis = basis
        self.quantizer = quantizer
        self.inputFactor = nil
    }

    /// Non-projection factors W ≈ B·A: c = A x, k̂ = B Q(c).
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` when A's rows differ from B's columns.
    public init(inputFactor a: Matrix, outputFactor b: Matrix, quantizer: UniformQuantizer?) throws {
        guard a.rows == b.cols, a.rows > 0 else {
            throw InferenceError.invalidPolicy("factors A \(a.rows)x\(a.cols) and B \(b.rows)x\(b.cols) do not fit")
        }
        self.basis = b
        self.quantizer = quantizer
        self.inputFactor = a
    }

    /// True when the branch reconstructs its input unchanged.
    public var isExact: Bool { basis == nil && quantizer == nil }

    /// The reconstruction of every token, using the layer input when the features come from it.
    /// - Parameters:
    ///   - x: K or V, [T, d_kv].
    ///   - inputs: the layer input X, [T, d] (read only with an ``inputFactor``).
    /// - Throws: as ``reconstruct(_:)``.
    public func reconstruct(_ x: Matrix, inputs: Matrix) throws -> Matrix {
        guard let a = inputFactor, let b = basis else { return try reconstruct(x) }
        guard a.cols == inputs.cols, inputs.rows == x.rows, b.rows == x.cols else {
            throw InferenceError.invalidPolicy("factors A \(a.rows)x\(a.cols), B \(b.rows)x\(b.cols) for X \(inputs.rows)x\(inputs.cols), K \(x.rows)x\(x.cols)")
        }
        var features = try matmul(inputs, .none, a, .transpose)  // c = A x for every token: [T, r]
        if let quantizer {
            try features.withUnsafeMutableBufferPointer { try quantizer.fakeQuantize($0, rowLength: a.rows) }
        }
        return try matmul(features, .none, b, .transpose)  // k̂ = B ĉ
    }

    /// The reconstruction x̂ of every row of `x` ([T, d_kv]).
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` when the basis does not fit, quantizer errors.
    public func reconstruct(_ x: Matrix) throws -> Matrix {
        guard let basis else {
            guard let quantizer else { return x }
            var out = x
            try out.withUnsafeMutableBufferPointer { try quantizer.fakeQuantize($0, rowLength: x.cols) }
            return out
        }
        guard basis.rows == x.cols, basis.cols > 0 else {
            throw InferenceError.invalidPolicy("basis is \(basis.rows)x\(basis.cols) for d_kv = \(x.cols)")
        }
        var features = try matmul(x, basis)  // c = U_rᵀ k for every token: [T, r]
        if let quantizer {
            try features.withUnsafeMutableBufferPointer { try quantizer.fakeQuantize($0, rowLength: basis.cols) }
        }
        return try matmul(features, .none, basis, .transpose)  // k̂ = U_r ĉ
    }
}

/// The bi-branch cache of DESIGN.md §4 with per-layer K and V compression.
public struct BiBranchKVCache: KVCachePolicy {
    public let window: Int
    /// Per layer, how keys are compressed.
    public let keys: [BranchCompression]
    /// Per layer, how values are compressed.
    public let values: [BranchCompression]

    /// A policy from explicit per-layer branches.
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` for a negative window or different layer counts.
    public init(window: Int, keys: [BranchCompression], values: [BranchCompression]) throws {
        guard window >= 0 else { throw InferenceError.invalidPolicy("negative window \(window)") }
        guard keys.count == values.count else {
            throw InferenceError.invalidPolicy("\(keys.count) key layers but \(values.count) value layers")
        }
        self.window = window
        self.keys = keys
        self.values = values
    }

    /// The policy of `kvscope eval`: the same rank, bits and group in every layer.
    ///
    /// A rank ≥ d_kv (or nil) means no low rank; bits 16 (or nil) means no quantization, as
    /// DESIGN.md §5 specifies for `eval`. The bases are per layer, [d_kv, ≥ rank], columns in order
    /// of importance (the first `rank` are used); they are ignored when there is no low rank.
    /// - Parameters:
    ///   - layerCount: number of layers.
    ///   - kvDimension: d_kv.
    ///   - keyRank, valueRank: ranks of K and V (nil: no low rank).
    ///   - keyBases, valueBases: per-layer bases, HF channel order.
    ///   - bits: bits of the compressed branch, 2…8 or 16.
    ///   - groupSize: quantization group (nil: one group per token).
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` for missing or ill-shaped bases, bad bits or group.
    public init(window: Int, layerCount: Int, kvDimension: Int, keyRank: Int?, valueRank: Int?,
                keyBases: [Matrix] = [], valueBases: [Matrix] = [], bits: Int = 16, groupSize: Int? = nil) throws {
        var quantizer: UniformQuantizer?
        if bits != 16 {
            do {
                quantizer = try UniformQuantizer(bits: bits, groupSize: groupSize, mode: .asymmetric)
            } catch {
                throw InferenceError.invalidPolicy("\(error)")
            }
        }
        func branches(_ rank: Int?, _ bases: [Matrix], _ what: String) throws -> [BranchCompression] {
            guard let rank, rank < kvDimension else {
                return Array(repeating: BranchCompression(basis: nil, quantizer: quantizer), count: layerCount)
            }
            guard rank > 0 else { throw InferenceError.invalidPolicy("\(what) rank must be positive, got \(rank)") }
            guard bases.count == layerCount else {
                throw InferenceError.invalidPolicy("\(bases.count) \(what) bases for \(layerCount) layers")
            }
            return try bases.enumerated().map { i, b in
                guard b.rows == kvDimension, b.cols >= rank else {
                    throw InferenceError.invalidPolicy(
                        "layer \(i) \(what) basis is \(b.rows)x\(b.cols), need \(kvDimension)x\(rank) or wider")
                }
                return BranchCompression(basis: b.cols == rank ? b : b.prefixColumns(rank), quantizer: quantizer)
            }
        }
        try self.init(window: window, keys: try branches(keyRank, keyBases, "key"),
                      values: try branches(valueRank, valueBases, "value"))
    }

    public func compress(layer: Int, keys k: Matrix, values v: Matrix) throws -> CompressedKV {
        guard layer >= 0, layer < keys.count else {
            throw InferenceError.invalidPolicy("no entry for layer \(layer) (policy has \(keys.count) layers)")
        }
        let kb = keys[layer], vb = values[layer]
        guard kb.inputFactor == nil, vb.inputFactor == nil else {
            throw InferenceError.invalidPolicy("layer \(layer) has input factors: the forward pass must pass the layer input")
        }
        return CompressedKV(keys: kb.isExact ? nil : try kb.reconstruct(k),
                            values: vb.isExact ? nil : try vb.reconstruct(v))
    }

    public func compress(layer: Int, inputs x: Matrix, keys k: Matrix, values v: Matrix) throws -> CompressedKV {
        guard layer >= 0, layer < keys.count else {
            throw InferenceError.invalidPolicy("no entry for layer \(layer) (policy has \(keys.count) layers)")
        }
        let kb = keys[layer], vb = values[layer]
        return CompressedKV(keys: kb.isExact ? nil : try kb.reconstruct(k, inputs: x),
                            values: vb.isExact ? nil : try vb.reconstruct(v, inputs: x))
    }
}
