import Foundation
import KVCompression
import Quantization

/// Memory figures of the KV settings (DESIGN.md §4, "Bi-branch cache"), via ``BiBranchMemoryModel``.
public struct KVMemoryFigures: Sendable, Equatable {
    /// Bytes per layer at L and N.
    public var layerBytes: [Double]
    /// Σ layer bytes.
    public var totalBytes: Double
    /// The fp16 baseline over all layers.
    public var baselineBytes: Double
    /// 1 − kvscope/baseline.
    public var effectiveRatio: Double
    /// 1 − Σ(r·b)/(n_layers·2·d_kv·16).
    public var nominalRatio: Double
    /// fp16 bytes of all factors A and B.
    public var factorBytes: Int
}

/// Weight figures of one matrix in Weights mode.
public struct WeightFigures: Sendable, Equatable {
    public var bytes: Double
    public var bitsPerWeight: Double
    /// The relative error ‖W − Ŵ‖/‖W‖: ready, pending while tables fill, or unavailable.
    public var relativeError: ErrorEstimate
}

/// Derived metrics: pure functions of the state reading precomputed data only.
public enum ExplorerMetrics {
    /// The memory model of the settings (projection basis of the error model, `weights` while none).
    public static func memoryModel(_ state: ExplorerState) -> BiBranchMemoryModel? {
        let info = state.resources.info
        return try? BiBranchMemoryModel(kvSize: info.kvSize, hiddenSize: info.hiddenSize, window: state.settings.window,
                                        groupSize: state.settings.groupSize,
                                        basis: state.resources.errorModel?.basisKind ?? .weights,
                                        slidingWindow: info.slidingWindow, slidingLayers: info.slidingLayers)
    }

    /// The settings as the memory model's checked values.
    public static func layerSettings(_ s: ExplorerSettings) -> [LayerKVSetting]? {
        try? s.layers.map {
            LayerKVSetting(k: try BranchSetting(rank: $0.k.rank, bits: $0.k.bits),
                           v: try BranchSetting(rank: $0.v.rank, bits: $0.v.bits))
        }
    }

    /// Bytes and ratios of the KV settings, or nil when a setting is out of range.
    public static func kvMemory(_ state: ExplorerState) -> KVMemoryFigures? {
        guard let model = memoryModel(state), let layers = layerSettings(state.settings) else { return nil }
        let (l, n) = (state.settings.contextLength, state.settings.batch)
        guard let perLayer = try? layers.indices.map({ try model.layerBytes(layers[$0], contextLength: l, batch: n, layer: $0) }),
              let baseline = try? model.baselineTotalBytes(layerCount: layers.count, contextLength: l, batch: n),
              let effective = try? model.effectiveRatio(layers, contextLength: l, batch: n),
              let nominal = try? model.nominalRatio(layers),
              let factors = try? model.factorParameterBytes(layers) else { return nil }
        return KVMemoryFigures(layerBytes: perLayer, totalBytes: perLayer.reduce(0, +), baselineBytes: baseline,
                               effectiveRatio: effective, nominalRatio: nominal, factorBytes: factors)
    }

    /// e_w of a layer's K or V at the current choice.
    public static func weightError(_ state: ExplorerState, layer: Int, kind: ProjectionKind) -> ErrorEstimate {
        guard let model = state.resources.errorModel else { return .pending }
        guard state.settings.layers.indices.contains(layer) else { return .unavailable("no layer \(layer)") }
        let c = state.settings.layers[layer][kind]
        return model.weightError(layer: layer, kind: kind, rank: c.rank, bits: c.bits, groupSize: state.settings.groupSize)
    }

    /// e_kv of a layer's K or V at the current choice; unavailable without calibration statistics.
    public static func kvError(_ state: ExplorerState, layer: Int, kind: ProjectionKind) -> ErrorEstimate {
        guard state.resources.kvSpectra != nil else { return .unavailable("needs calibration statistics") }
        guard let model = state.resources.errorModel else { return .pending }
        guard state.settings.layers.indices.contains(layer) else { return .unavailable("no layer \(layer)") }
        let c = state.settings.layers[layer][kind]
        return model.kvError(layer: layer, kind: kind, rank: c.rank, bits: c.bits, groupSize: state.settings.groupSize)
    }

    /// Bytes, bits per weight and error of tensor `index` (DESIGN.md §4, "Uniform quantization").
    public static func weight(_ state: ExplorerState, tensor index: Int) -> WeightFigures? {
        guard state.resources.tensors.indices.contains(index), state.settings.weights.indices.contains(index) else { return nil }
        let t = state.resources.tensors[index]
        let bits = state.settings.weights[index].bits
        if bits == 16 {
            return WeightFigures(bytes: Double(t.count) * 2, bitsPerWeight: 16, relativeError: .unavailable("fp16"))
        }
        guard let scheme = try? QuantizationScheme(bits: bits, groupSize: state.settings.weightGroupSize,
                                                   outlierFraction: state.settings.outlierFraction) else { return nil }
        let sessionChoices = Explorer.weightChoices(state.settings, resources: state.resources)
            ?? ErrorTableChoices(bits: [], groupSizes: [], outlierFractions: [])
        var error = ErrorEstimate.pending
        if let e = state.resources.weightEntry(tensor: t, bits: bits, groupSize: state.settings.weightGroupSize,
                                               outlierFraction: state.settings.outlierFraction, sessionChoices: sessionChoices) {
            error = .ready(e.entry.relativeError)
        } else if !state.resources.info.canComputeWeightTables {
            error = .unavailable("not in the shipped tables, and the source model is absent")
        }
        return WeightFigures(bytes: scheme.bytes(rows: t.rows, cols: t.cols),
                             bitsPerWeight: scheme.bitsPerWeight(rows: t.rows, cols: t.cols), relativeError: error)
    }

    /// Total bytes and bits per weight over every listed matrix.
    public static func weightTotals(_ state: ExplorerState) -> (bytes: Double, bitsPerWeight: Double, fp16Bytes: Double) {
        var bytes = 0.0, count = 0
        for i in state.resources.tensors.indices {
            bytes += weight(state, tensor: i)?.bytes ?? 0
            count += state.resources.tensors[i].count
        }
        return (bytes, count > 0 ? 8 * bytes / Double(count) : 0, Double(count) * 2)
    }

    /// Figures of one role's matrices in Weights mode.
    public struct WeightRoleFigures: Sendable, Equatable {
        public var role: String
        public var count: Int
        /// The bits shared by every matrix of the role (nil when they differ).
        public var bits: Int?
        /// √(Σ‖W − Ŵ‖²/Σ‖W‖²) over the role's matrices (what `kvscope quantize` reports per role).
        public var relativeError: ErrorEstimate
        public var bytes: Double
    }

    /// Per-role aggregates, in q, k, v, o, gate, up, down order.
    public static func weightRoles(_ state: ExplorerState) -> [WeightRoleFigures] {
        let sessionChoices = Explorer.weightChoices(state.settings, resources: state.resources)
            ?? ErrorTableChoices(bits: [], groupSizes: [], outlierFractions: [])
        var out: [WeightRoleFigures] = []
        for role in WeightTensor.roles.map(\.rawValue) {
            var count = 0, bytes = 0.0, errorSquared = 0.0, norm = 0.0
            var bitsSeen = Set<Int>()
            var error: ErrorEstimate?
            for (i, t) in state.resources.tensors.enumerated() where t.role == role && state.settings.weights.indices.contains(i) {
                let b = state.settings.weights[i].bits
                count += 1
                bitsSeen.insert(b)
                bytes += weight(state, tensor: i)?.bytes ?? 0
                if b == 16 {
                    // fp16 is exact; its norm still counts (it needs a table to know it).
                    if let (_, n) = state.resources.weightEntry(tensor: t, bits: 4, groupSize: state.settings.weightGroupSize,
                                                                outlierFraction: state.settings.outlierFraction,
                                                                sessionChoices: sessionChoices) { norm += n } else if error == nil {
                        error = .pending
                    }
                } else if let (e, n) = state.resources.weightEntry(tensor: t, bits: b, groupSize: state.settings.weightGroupSize,
                                                                   outlierFraction: state.settings.outlierFraction,
                                                                   sessionChoices: sessionChoices) {
                    errorSquared += e.relativeError * e.relativeError * n
                    norm += n
                } else if error == nil {
                    error = weight(state, tensor: i)?.relativeError ?? .pending
                }
            }
            guard count > 0 else { continue }
            if bitsSeen == [16] { error = .unavailable("fp16") }
            out.append(WeightRoleFigures(role: role, count: count, bits: bitsSeen.count == 1 ? bitsSeen.first : nil,
                                         relativeError: error ?? .ready(norm > 0 ? (errorSquared / norm).squareRoot() : 0),
                                         bytes: bytes))
        }
        return out
    }

    /// An error as shown: 4 decimals, "…" while pending, "—" when it cannot be known.
    public static func text(_ e: ErrorEstimate) -> String {
        switch e {
        case .ready(let v): return String(format: "%.4f", v)
        case .pending: return "…"
        case .unavailable: return "—"
        }
    }

    /// Bytes in MiB with two decimals (what the screen and the end-to-end test compare).
    public static func mebibytes(_ bytes: Double) -> String { String(format: "%.2f MiB", bytes / 1_048_576) }

    /// A ratio as a percentage with one decimal.
    public static func percent(_ r: Double) -> String { String(format: "%.1f%%", r * 100) }
}
