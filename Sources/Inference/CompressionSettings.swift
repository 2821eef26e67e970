import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles

/// A KV-cache compression choice, as `kvscope eval` takes it (DESIGN.md §5): one rank and bit-width
/// for every layer, or per-layer K/V ranks and bits (a config's `kv_cache.layers`).
///
/// A rank of nil or ≥ d_kv means no low rank; bits 16 means no quantization; window 0 means every
/// position reads the compressed branch.
public struct CompressionSettings: Sendable, Equatable {
    /// Rank of K (nil: no low rank).
    public var keyRank: Int?
    /// Rank of V (nil: no low rank).
    public var valueRank: Int?
    /// The causal exact window w.
    public var window: Int
    /// Bits of the compressed K branch: 2…8, or 16.
    public var keyBits: Int
    /// Bits of the compressed V branch: 2…8, or 16.
    public var valueBits: Int
    /// Quantization group along a token's stored features (nil: one group per token).
    public var groupSize: Int?
    /// How the low-rank factors are chosen.
    public var basis: BasisKind
    /// Per-layer K/V ranks and bits; when set, it replaces `keyRank`, `valueRank`, `keyBits` and `valueBits`.
    public var layers: [LayerKVSetting]?

    /// Settings, checked.
    /// - Parameters:
    ///   - bits: bits of both branches, unless `keyBits` or `valueBits` overrides one.
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` for a rank < 1, a negative window, bits outside
    ///   {2…8, 16} or a group < 1.
    public init(keyRank: Int? = nil, valueRank: Int? = nil, window: Int = 0, bits: Int = 16, keyBits: Int? = nil,
                valueBits: Int? = nil, groupSize: Int? = nil, basis: BasisKind = .activations) throws {
        for (name, r) in [("key rank", keyRank), ("value rank", valueRank)] {
            if let r, r < 1 { throw InferenceError.invalidPolicy("\(name) must be at least 1, got \(r)") }
        }
        guard window >= 0 else { throw InferenceError.invalidPolicy("window must be non-negative, got \(window)") }
        for (name, b) in [("bits", bits), ("key bits", keyBits ?? bits), ("value bits", valueBits ?? bits)] {
            guard b == 16 || (2...8).contains(b) else {
                throw InferenceError.invalidPolicy("\(name) must be 2…8 or 16, got \(b)")
            }
        }
        if let g = groupSize, g < 1 { throw InferenceError.invalidPolicy("group size must be at least 1, got \(g)") }
        self.keyRank = keyRank
        self.valueRank = valueRank
        self.window = window
        self.keyBits = keyBits ?? bits
        self.valueBits = valueBits ?? bits
        self.groupSize = groupSize
        self.basis = basis
    }

    /// Per-layer settings (a config's `kv_cache.layers`), checked as ``init(keyRank:valueRank:window:bits:groupSize:basis:)``.
    public init(layers: [LayerKVSetting], window: Int, groupSize: Int?, basis: BasisKind) throws {
        try self.init(window: window, groupSize: groupSize, basis: basis)
        for (i, l) in layers.enumerated() {
            for (name, b) in [("k", l.k), ("v", l.v)] {
                guard b.rank >= 1 else { throw InferenceError.invalidPolicy("layer \(i) \(name): rank must be at least 1, got \(b.rank)") }
                guard b.bits == 16 || (2...8).contains(b.bits) else {
                    throw InferenceError.invalidPolicy("layer \(i) \(name): bits must be 2…8 or 16, got \(b.bits)")
                }
            }
        }
        self.layers = layers
    }

    /// The same settings applied only to `selected` layers; every other layer keeps an exact cache
    /// (rank d_kv, 16 bits). For per-layer sensitivity sweeps (`kvscope eval --layers`).
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` for a layer outside 0..<layerCount.
    public func restricted(to selected: Set<Int>, layerCount: Int, kvDimension: Int) throws -> CompressionSettings {
        if let bad = selected.sorted().first(where: { !(0..<layerCount).contains($0) }) {
            throw InferenceError.invalidPolicy("layer \(bad) is outside the model's 0…\(layerCount - 1)")
        }
        let full = try layerSettings(layerCount: layerCount, kvDimension: kvDimension)
        let exact = LayerKVSetting(k: try BranchSetting(rank: kvDimension, bits: 16), v: try BranchSetting(rank: kvDimension, bits: 16))
        return try CompressionSettings(layers: full.enumerated().map { selected.contains($0.offset) ? $0.element : exact },
                                       window: window, groupSize: groupSize, basis: basis)
    }

    /// The rank (nil: no low rank) and bits of one layer's K or V branch.
    func branch(layer: Int, kind: ProjectionKind, kvDimension: Int) -> (rank: Int?, bits: Int) {
        if let layers {
            let s = kind == .k ? layers[layer].k : layers[layer].v
            return (effectiveRank(s.rank, kvDimension), s.bits)
        }
        return kind == .k ? (effectiveRank(keyRank, kvDimension), keyBits) : (effectiveRank(valueRank, kvDimension), valueBits)
    }

    /// Every (layer, kind) branch of a model with `layerCount` layers.
    private func branches(layerCount: Int, kvDimension: Int) -> [(rank: Int?, bits: Int)] {
        (0..<(layers?.count ?? layerCount)).flatMap { l in
            ProjectionKind.allCases.map { branch(layer: l, kind: $0, kvDimension: kvDimension) }
        }
    }

    /// Whether the settings leave the cache exact (no low rank below d_kv, 16 bits).
    public func isExact(kvDimension: Int) -> Bool {
        branches(layerCount: 1, kvDimension: kvDimension).allSatisfy { $0.rank == nil && $0.bits == 16 }
    }

    /// Whether the low-rank branch needs calibration statistics (every basis but `weights`).
    public func needsCalibration(kvDimension: Int) -> Bool {
        basis != .weights && branches(layerCount: 1, kvDimension: kvDimension).contains { $0.rank != nil }
    }

    func needsLowRank(layerCount: Int, kvDimension: Int) -> Bool {
        branches(layerCount: layerCount, kvDimension: kvDimension).contains { $0.rank != nil }
    }

    func effectiveRank(_ r: Int?, _ dkv: Int) -> Int? {
        guard let r, r < dkv else { return nil }
        return r
    }

    /// The per-layer settings of the memory model (rank d_kv for no low rank).
    /// - Throws: ``KVCompressionError`` for invalid settings.
    public func layerSettings(layerCount: Int, kvDimension: Int) throws -> [LayerKVSetting] {
        if let layers {
            guard layers.count == layerCount else {
                throw InferenceError.invalidPolicy("the settings have \(layers.count) layers, the model \(layerCount)")
            }
            return try layers.map { l in
                LayerKVSetting(k: try BranchSetting(rank: min(l.k.rank, kvDimension), bits: l.k.bits),
                               v: try BranchSetting(rank: min(l.v.rank, kvDimension), bits: l.v.bits))
            }
        }
        let k = try BranchSetting(rank: effectiveRank(keyRank, kvDimension) ?? kvDimension, bits: keyBits)
        let v = try BranchSetting(rank: effectiveRank(valueRank, kvDimension) ?? kvDimension, bits: valueBits)
        return Array(repeating: LayerKVSetting(k: k, v: v), count: layerCount)
    }

    /// The bi-branch memory model of these settings (DESIGN.md §4).
    /// - Throws: ``KVCompressionError`` for invalid sizes.
    public func memoryModel(configuration c: ModelConfiguration) throws -> BiBranchMemoryModel {
        let lowRank = branches(layerCount: c.layerCount, kvDimension: c.kvDimension).contains { $0.rank != nil }
        return try BiBranchMemoryModel(kvSize: c.kvDimension, hiddenSize: c.hiddenSize, window: window,
                                       groupSize: groupSize, basis: lowRank ? basis : .activations,
                                       slidingWindow: c.slidingWindow,
                                       slidingLayers: Set(c.slidingLayers.indices.filter { c.slidingLayers[$0] }))
    }

    /// The KV-cache policy of these settings on `model`.
    ///
    /// Bases are computed per layer in HF channel order from W_k/W_v (`weights`, `asvd`), the
    /// calibration K/V Grams (`activations`), or trained from the sampled rows (`fitted`); their
    /// eigenvector signs are canonical (largest-magnitude entry of each column positive), which
    /// matters for a quantized feature branch.
    /// - Parameters:
    ///   - calibration: required unless there is no low rank or the basis is `weights`.
    ///   - progress: (layers done, layer count).
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` when calibration data is missing or does not
    ///   fit the model; KVCompression errors.
    public func policy(model: TransformerModel, calibration: CalibrationStatistics?,
                       progress: ((Int, Int) -> Void)? = nil,
                       cancellation: CancellationFlag? = nil) throws -> BiBranchKVCache {
        let c = model.configuration
        if let layers, layers.count != c.layerCount {
            throw InferenceError.invalidPolicy("the settings have \(layers.count) layers, the model \(c.layerCount)")
        }
        func quantizer(_ bits: Int) throws -> UniformQuantizer? {
            guard bits != 16 else { return nil }
            do { return try UniformQuantizer(bits: bits, groupSize: groupSize, mode: .asymmetric) } catch {
                throw InferenceError.invalidPolicy("\(error)")
            }
        }
        if !needsLowRank(layerCount: c.layerCount, kvDimension: c.kvDimension) {
            var keys: [BranchCompression] = [], values: [BranchCompression] = []
            for layer in 0..<c.layerCount {
                keys.append(BranchCompression(basis: nil, quantizer: try quantizer(branch(layer: layer, kind: .k, kvDimension: c.kvDimension).bits)))
                values.append(BranchCompression(basis: nil, quantizer: try quantizer(branch(layer: layer, kind: .v, kvDimension: c.kvDimension).bits)))
            }
            return try BiBranchKVCache(window: window, keys: keys, values: values)
        }
        if basis != .weights {
            guard let calibration else {
                throw InferenceError.invalidPolicy("the \(basis.rawValue) basis needs calibration statistics")
            }
            guard calibration.layers.count == c.layerCount,
                  calibration.layers.allSatisfy({ $0.keyGram.rows == c.kvDimension }) else {
                throw InferenceError.invalidPolicy(
                    "calibration statistics have \(calibration.layers.count) layers of d_kv \(calibration.layers.first?.keyGram.rows ?? 0), the model \(c.layerCount) of \(c.kvDimension)")
            }
            if basis == .fitted, calibration.layers.contains(where: { $0.sampleInputs.rows == 0 }) {
                throw InferenceError.invalidPolicy("the fitted basis needs sampled token rows in the calibration statistics")
            }
        }
        var keys: [BranchCompression] = [], values: [BranchCompression] = []
        for layer in 0..<c.layerCount {
            try cancellation?.check()
            for kind in ProjectionKind.allCases {
                let choice = branch(layer: layer, kind: kind, kvDimension: c.kvDimension)
                let quantizer = try quantizer(choice.bits)
                guard let rank = choice.rank else {
                    (kind == .k ? { keys.append($0) } : { values.append($0) })(BranchCompression(basis: nil, quantizer: quantizer))
                    continue
                }
                let weight = try model.projectionHF(layer: layer, kind: kind)
                let stats = calibration?.layers[layer]
                let projection: ProjectionBasis
                switch basis {
                case .weights:
                    projection = try ProjectionBasis.weights(weight)
                case .asvd:
                    guard let meanAbs = stats?.attentionInput?.meanAbs else {
                        throw InferenceError.invalidPolicy("layer \(layer): the asvd basis needs mean|x| of the attention input")
                    }
                    projection = try ProjectionBasis.asvd(weight: weight, inputMeanAbs: meanAbs)
                case .activations, .fitted:
                    guard let stats else { throw InferenceError.invalidPolicy("layer \(layer): no calibration statistics") }
                    projection = try ProjectionBasis.activations(keyGram: stats.gram(kind))
                }
                let u = projection.u  // signs are canonical (ProjectionBasis.canonicalSigns)
                let branch: BranchCompression
                if basis == .fitted, let stats {
                    let start = try ProjectionBasis(kind: .activations, u: u, strengths: projection.strengths)
                    let fitted = try fitFactors(weight: weight, inputs: stats.sampleInputs, targets: stats.samples(kind),
                                                start: start, rank: rank, bits: choice.bits, groupSize: groupSize,
                                                cancellation: cancellation)
                    branch = try BranchCompression(inputFactor: fitted.factors.a, outputFactor: fitted.factors.b,
                                                   quantizer: quantizer)
                } else {
                    branch = BranchCompression(basis: u.prefixColumns(rank), quantizer: quantizer)
                }
                if kind == .k { keys.append(branch) } else { values.append(branch) }
            }
            progress?(layer + 1, c.layerCount)
        }
        return try BiBranchKVCache(window: window, keys: keys, values: values)
    }
}

extension TransformerModel {
    /// W_k or W_v of `layer` as [d_kv, d] in HF row order (a GGUF's adjacent-pair permutation of K
    /// undone by the catalog's ``ModelCatalog/undoRoPEPermutation(_:heads:path:name:)``).
    public func projectionHF(layer: Int, kind: ProjectionKind) throws -> Matrix {
        let l = weights.layers[layer]
        guard kind == .k, configuration.ropeStyle == .adjacentPairs else { return kind == .k ? l.key : l.value }
        return try ModelCatalog.undoRoPEPermutation(l.key, heads: configuration.kvHeadCount, name: "layer \(layer) k")
    }
}
