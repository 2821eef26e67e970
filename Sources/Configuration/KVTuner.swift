import Foundation
import KVCompression
import LinearAlgebra
import Quantization

/// Settings of a KV-cache tuning run (`kvscope tune --kv-budget`, the explorer's `b`); the
/// defaults are ``KVDefaults``'.
public struct KVTuneSettings: Sendable, Equatable {
    /// The basis of the factors (`fitted` cannot be tuned from tables).
    public var basis: BasisKind = .activations
    /// w, the exact window.
    public var window: Int = KVDefaults.window
    /// g along the r channels (nil: one group per token).
    public var groupSize: Int? = KVDefaults.groupSize
    /// L, the context length the budget is measured at.
    public var contextLength: Int = KVDefaults.contextLength
    /// Bits the compressed branch may use (2…8, 16).
    public var bitsChoices: [Int] = KVDefaults.bitsChoices
    /// The smallest rank allowed (≥ 1).
    public var minRank: Int = KVDefaults.minRank
    /// Ranks above 8 are tried in steps of this (plus d_kv itself).
    public var rankStep: Int = KVDefaults.rankStep

    /// Default settings.
    public init() {}
}

/// Per-layer K/V ranks and bits that minimize Σ e_kv²·‖K‖² under a byte budget (DESIGN.md §4,
/// "Sensitivity and allocation"), solved with ``Quantization/BudgetAllocator``.
public enum KVTuner {
    /// The ranks tried: every r in minRank…8, then multiples of `step` up to d_kv, and d_kv.
    public static func rankChoices(kvSize: Int, minRank: Int, step: Int) -> [Int] {
        let lo = max(1, minRank)
        guard lo <= kvSize else { return [] }
        var ranks = Set(lo...min(8, kvSize))
        if step >= 1 {
            for r in stride(from: step, through: kvSize, by: step) where r >= lo { ranks.insert(r) }
        }
        ranks.insert(kvSize)
        return ranks.filter { $0 >= lo }.sorted()
    }

    /// An error model over every layer's K and V from calibration statistics (b = 16 from the
    /// Grams; b < 16 from the sampled rows once ``ErrorModel/fillQuantizedTables(bits:groupSize:progress:cancellation:)`` ran).
    /// - Parameters:
    ///   - stats: calibration statistics.
    ///   - basis: activations, weights or asvd.
    ///   - groupSize: the default group for lookups.
    ///   - weight: W_k or W_v of a layer in HF row order.
    /// - Throws: ``ConfigError`` for `fitted`; engine errors.
    public static func errorModel(stats: CalibrationStatistics, basis: BasisKind, groupSize: Int?,
                                  weight: (Int, ProjectionKind) throws -> Matrix,
                                  progress: ProgressHandler? = nil) throws -> ErrorModel {
        guard basis.isProjection else {
            throw ConfigError(entry: "basis", "the fitted basis is trained per rank and bits; tune supports activations, weights and asvd")
        }
        var entries: [ErrorModelEntry] = []
        for layer in stats.layers {
            for kind in [ProjectionKind.k, .v] {
                let w = try weight(layer.layer, kind)
                let b: ProjectionBasis
                switch basis {
                case .activations: b = try ProjectionBasis.activations(keyGram: layer.gram(kind))
                case .weights: b = try ProjectionBasis.weights(w)
                case .asvd:
                    guard let x = layer.attentionInput else { throw ConfigError(entry: "calibration", "no mean|x| for layer \(layer.layer)") }
                    b = try ProjectionBasis.asvd(weight: w, inputMeanAbs: x.meanAbs)
                case .fitted: throw ConfigError(entry: "basis", "fitted is not supported")
                }
                entries.append(ErrorModelEntry(layer: layer.layer, kind: kind, basis: b, weight: w, gram: layer.gram(kind),
                                               samples: layer.samples(kind)))
            }
        }
        return try ErrorModel(basisKind: basis, entries: entries, defaultGroupSize: groupSize, progress: progress)
    }

    /// e_kv(r, b)²·‖K‖², the absolute squared error of a branch on the calibration tokens.
    /// - Throws: ``ConfigError`` when the model cannot answer (tables not filled, no Gram).
    public static func cost(_ model: ErrorModel, layer: Int, kind: ProjectionKind, rank: Int, bits: Int, groupSize: Int?) throws -> Double {
        guard let norm = model.curves(layer: layer, kind: kind)?.kvNormSquared else {
            throw ConfigError(entry: "calibration", "no KᵀK for layer \(layer) \(kind.rawValue)")
        }
        switch model.kvError(layer: layer, kind: kind, rank: rank, bits: bits, groupSize: groupSize) {
        case .ready(let e): return e * e * norm
        case .pending: throw ConfigError(entry: "calibration", "error table for \(bits) bits not filled (layer \(layer) \(kind.rawValue))")
        case .unavailable(let why): throw ConfigError(entry: "calibration", why)
        }
    }

    /// The result of a tuning run.
    public struct Plan: Sendable {
        /// One entry per layer.
        public var layers: [KVLayerEntry]
        /// Σ e_kv²·‖K‖² over layers and K/V.
        public var totalCost: Double
        /// Σ ‖K‖² + ‖V‖² over layers (so totalCost/totalEnergy is a relative squared error).
        public var totalEnergy: Double
        /// kvscope bytes of the plan at the context length.
        public var bytes: Double
        /// The budget in bytes.
        public var budget: Double
    }

    /// The best per-layer plan under `budget` bytes.
    /// - Throws: ``Quantization/AllocationError`` when even the smallest choice does not fit; ``ConfigError``.
    public static func tune(_ model: ErrorModel, layerCount: Int, kvSize: Int, memory: BiBranchMemoryModel,
                            settings: KVTuneSettings, budget: Double) throws -> Plan {
        let ranks = rankChoices(kvSize: kvSize, minRank: settings.minRank, step: settings.rankStep)
        guard !ranks.isEmpty else { throw ConfigError(entry: "min_rank", "\(settings.minRank) exceeds d_kv \(kvSize)") }
        var options: [BranchSetting] = []
        for r in ranks {
            for b in settings.bitsChoices { options.append(try BranchSetting(rank: r, bits: b)) }
        }
        // Bytes per layer: a sliding-window layer's cache holds at most W positions, so compressing
        // it saves little (nothing when W ≤ the exact window) and the allocator spends no budget there.
        var items: [[AllocationOption]] = []
        for layer in 0..<layerCount {
            let bytes = try options.map { try memory.branchBytes($0, contextLength: settings.contextLength, layer: layer) }
            for kind in [ProjectionKind.k, .v] {
                items.append(try options.indices.map { i in
                    let s = options[i]
                    return AllocationOption(bytes: bytes[i], cost: try cost(model, layer: layer, kind: kind, rank: s.rank, bits: s.bits,
                                                                            groupSize: settings.groupSize))
                })
            }
        }
        let result = try BudgetAllocator.solve(items, budget: budget)
        var layers: [KVLayerEntry] = []
        for layer in 0..<layerCount {
            layers.append(KVLayerEntry(layer: layer, k: options[result.choices[2 * layer]], v: options[result.choices[2 * layer + 1]]))
        }
        return Plan(layers: layers, totalCost: result.totalCost, totalEnergy: try energy(model, layerCount: layerCount),
                    bytes: try memory.totalBytes(layers.map(\.setting), contextLength: settings.contextLength), budget: budget)
    }

    /// Σ ‖K‖² + ‖V‖² over layers.
    static func energy(_ model: ErrorModel, layerCount: Int) throws -> Double {
        var total = 0.0
        for layer in 0..<layerCount {
            for kind in [ProjectionKind.k, .v] { total += model.curves(layer: layer, kind: kind)?.kvNormSquared ?? 0 }
        }
        return total
    }

    /// Σ e_kv²·‖K‖² of a given plan.
    /// - Throws: as ``cost(_:layer:kind:rank:bits:groupSize:)``.
    public static func totalCost(_ model: ErrorModel, layers: [KVLayerEntry], groupSize: Int?) throws -> Double {
        try layers.reduce(0) { sum, l in
            sum + (try cost(model, layer: l.layer, kind: .k, rank: l.k.rank, bits: l.k.bits, groupSize: groupSize))
                + (try cost(model, layer: l.layer, kind: .v, rank: l.v.rank, bits: l.v.bits, groupSize: groupSize))
        }
    }

    /// The best uniform plan (one rank and one bit-width for every layer's K and V) within `budget`,
    /// or nil when none fits.
    /// - Throws: as ``cost(_:layer:kind:rank:bits:groupSize:)``.
    public static func bestUniform(_ model: ErrorModel, layerCount: Int, kvSize: Int, memory: BiBranchMemoryModel,
                                   settings: KVTuneSettings, budget: Double) throws -> Plan? {
        var best: Plan? = nil
        for r in 1...kvSize {
            for b in settings.bitsChoices {
                let s = try BranchSetting(rank: r, bits: b)
                let layers = (0..<layerCount).map { KVLayerEntry(layer: $0, k: s, v: s) }
                let bytes = try memory.totalBytes(layers.map(\.setting), contextLength: settings.contextLength)
                guard bytes <= budget else { continue }
                let c = try totalCost(model, layers: layers, groupSize: settings.groupSize)
                if c < (best?.totalCost ?? .infinity) {
                    best = Plan(layers: layers, totalCost: c, totalEnergy: try energy(model, layerCount: layerCount), bytes: bytes, budget: budget)
                }
            }
        }
        return best
    }
}
