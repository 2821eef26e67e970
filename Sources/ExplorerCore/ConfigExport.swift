import Foundation
import KVCompression
import TensorFiles

/// Writes and reads explorer settings as a config file. The explorer only talks to this protocol,
/// so the shared config module (KVScopeConfig) can replace ``MinimalConfigFile`` at merge time.
public protocol ConfigFileFormat: Sendable {
    /// The file's bytes for `settings` of the model in `state`.
    func encode(_ settings: ExplorerSettings, state: ExplorerState) throws -> Data
    /// Settings read from `data`, checked against the model in `state`.
    func decode(_ data: Data, path: String, state: ExplorerState) throws -> ExplorerSettings
}

/// An error reading a config: the file and exactly which entry is wrong.
public struct ConfigFileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// A minimal writer and reader of the DESIGN.md §6 JSON config (`"format": "kvscope-config"`, version 1).
public struct MinimalConfigFile: ConfigFileFormat {
    /// A config file format.
    public init() {}

    struct Document: Codable {
        var format = "kvscope-config"
        var version = 1
        var model: Model
        // DESIGN.md §6: each section is optional (at least one is present); `tune` writes one.
        var kv_cache: KVCache?
        var weights: Weights?
        var metrics: [String: Double]?

        struct Model: Codable {
            var path: String, architecture: String, n_layers: Int, hidden_size: Int, d_kv: Int, sha256: String?
        }
        struct Branch: Codable { var rank: Int, bits: Int }
        struct Layer: Codable { var layer: Int, k: Branch, v: Branch }
        struct Memory: Codable {
            var baseline_bytes: Double, compressed_bytes: Double, ratio: Double?, nominal_ratio: Double?
        }
        struct KVCache: Codable {
            var basis: String, window: Int, group_size: Int?, context_length: Int, batch: Int?
            var layers: [Layer]
            var memory: Memory?
        }
        struct WeightLayer: Codable { var tensor: String, bits: Int, outlier_fraction: Double }
        struct Weights: Codable {
            var group_size: Int?
            var layers: [WeightLayer]
            var memory: Memory?
        }
    }

    public func encode(_ settings: ExplorerSettings, state: ExplorerState) throws -> Data {
        var s = state
        s.settings = settings
        let info = state.resources.info
        let memory = ExplorerMetrics.kvMemory(s)
        let weightTotals = ExplorerMetrics.weightTotals(s)
        var metrics: [String: Double] = [:]
        if let p = state.perplexity, p.settings == settings {
            metrics["perplexity"] = p.compressed
            metrics["baseline_perplexity"] = p.baseline
        }
        let doc = Document(
            model: .init(path: info.path, architecture: info.architecture, n_layers: info.layerCount,
                         hidden_size: info.hiddenSize, d_kv: info.kvSize, sha256: nil),
            kv_cache: .init(
                basis: state.resources.errorModel?.basisKind.rawValue ?? BasisKind.weights.rawValue,
                window: settings.window, group_size: settings.groupSize, context_length: settings.contextLength,
                batch: settings.batch,
                layers: settings.layers.enumerated().map {
                    .init(layer: $0.offset, k: .init(rank: $0.element.k.rank, bits: $0.element.k.bits),
                          v: .init(rank: $0.element.v.rank, bits: $0.element.v.bits))
                },
                memory: memory.map { .init(baseline_bytes: $0.baselineBytes, compressed_bytes: $0.totalBytes,
                                           ratio: $0.effectiveRatio, nominal_ratio: $0.nominalRatio) }),
            weights: .init(
                group_size: settings.weightGroupSize,
                layers: zip(state.resources.tensors, settings.weights).map {
                    .init(tensor: $0.name, bits: $1.bits, outlier_fraction: settings.outlierFraction)
                },
                memory: .init(baseline_bytes: weightTotals.fp16Bytes, compressed_bytes: weightTotals.bytes,
                              ratio: weightTotals.fp16Bytes > 0 ? 1 - weightTotals.bytes / weightTotals.fp16Bytes : nil,
                              nominal_ratio: nil)),
            metrics: metrics)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(doc)
        data.append(0x0A)
        return data
    }

    public func decode(_ data: Data, path: String, state: ExplorerState) throws -> ExplorerSettings {
        let doc: Document
        do {
            doc = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw ConfigFileError(path: path, message: "not a kvscope config: \(error)")
        }
        let info = state.resources.info
        guard doc.format == "kvscope-config", doc.version == 1 else {
            throw ConfigFileError(path: path, message: "format \(doc.format) version \(doc.version), expected kvscope-config 1")
        }
        guard doc.model.n_layers == info.layerCount, doc.model.d_kv == info.kvSize else {
            throw ConfigFileError(path: path, message: "model: \(doc.model.n_layers) layers, d_kv \(doc.model.d_kv); this model has \(info.layerCount), \(info.kvSize)")
        }
        var s = state.settings
        guard doc.kv_cache != nil || doc.weights != nil else {
            throw ConfigFileError(path: path, message: "the config has neither a kv_cache nor a weights section")
        }
        if let kv = doc.kv_cache { try apply(kv, to: &s, path: path, info: info) }
        if let weights = doc.weights { try apply(weights, to: &s, path: path, state: state) }
        return s
    }

    private func apply(_ kv: Document.KVCache, to s: inout ExplorerSettings, path: String, info: ExplorerModelInfo) throws {
        s.window = kv.window
        s.groupSize = kv.group_size
        s.contextLength = kv.context_length
        s.batch = kv.batch ?? 1
        guard s.window >= 0, s.contextLength >= 1, s.batch >= 1 else {
            throw ConfigFileError(path: path, message: "kv_cache: window \(s.window), context_length \(s.contextLength), batch \(s.batch)")
        }
        if let g = s.groupSize, g < 1 { throw ConfigFileError(path: path, message: "kv_cache.group_size \(g)") }
        guard kv.layers.count == info.layerCount else {
            throw ConfigFileError(path: path, message: "kv_cache.layers has \(kv.layers.count) entries, the model \(info.layerCount) layers")
        }
        for (i, l) in kv.layers.enumerated() {
            for (name, b) in [("k", l.k), ("v", l.v)] {
                guard (1...info.kvSize).contains(b.rank), b.bits == 16 || (2...8).contains(b.bits) else {
                    throw ConfigFileError(path: path, message: "kv_cache.layers[\(i)].\(name): rank \(b.rank) (1…\(info.kvSize)), bits \(b.bits) (2…8 or 16)")
                }
            }
            guard l.layer == i else { throw ConfigFileError(path: path, message: "kv_cache.layers[\(i)].layer is \(l.layer)") }
            s.layers[i] = LayerChoice(k: BranchChoice(rank: l.k.rank, bits: l.k.bits), v: BranchChoice(rank: l.v.rank, bits: l.v.bits))
        }
    }

    private func apply(_ weights: Document.Weights, to s: inout ExplorerSettings, path: String, state: ExplorerState) throws {
        s.weightGroupSize = weights.group_size
        for (i, w) in weights.layers.enumerated() {
            guard let t = state.resources.tensors.firstIndex(where: { $0.name == w.tensor }) else {
                throw ConfigFileError(path: path, message: "weights.layers[\(i)].tensor '\(w.tensor)' is not in the model")
            }
            guard w.bits == 16 || (2...8).contains(w.bits) else {
                throw ConfigFileError(path: path, message: "weights.layers[\(i)].bits \(w.bits)")
            }
            s.weights[t].bits = w.bits
            s.outlierFraction = w.outlier_fraction
        }
    }
}

/// Writes `data` to `path` atomically (temporary file + rename); refuses to replace an existing
/// file unless `overwrite`.
/// - Throws: ``TensorFileError`` naming the file.
public func writeFileAtomically(_ data: Data, to path: String, overwrite: Bool) throws {
    let writer = try AtomicFileWriter(path: path, overwrite: overwrite)
    try writer.write([UInt8](data))
    try writer.commit()
}
