import Foundation
import KVCompression
import LinearAlgebra
import TensorFiles

/// A model opened for analysis: its file, catalog and hyper-parameters, and the K/V projection
/// weights in Hugging Face row order. Shared by the explorer and the command-line tools.
public final class ModelSession: Sendable {
    /// The path as the user gave it.
    public let path: String
    public let opened: OpenedModel
    public let hyperparameters: ModelHyperparameters

    /// Opens `path` (GGUF or safetensors with config.json beside it).
    /// - Throws: ``TensorFileError`` for unreadable files, or when the model has no K/V projections.
    public init(path: String) throws {
        self.path = path
        opened = try openModel(path: path)
        guard let hp = opened.catalog.hyperparameters else {
            throw TensorFileError(path: path, "architecture not recognized: no attention layers found")
        }
        hyperparameters = hp
        for layer in 0..<hp.nLayers {
            for role in [TensorRole.k, .v] where opened.catalog.entry(layer: layer, role: role) == nil {
                throw TensorFileError(path: path, "layer \(layer) has no \(role.rawValue) projection")
            }
        }
    }

    /// Number of layers.
    public var layerCount: Int { hyperparameters.nLayers }

    /// W_k or W_v of `layer` as [d_kv, d] in Hugging Face row order (a llama GGUF's RoPE row
    /// permutation of K undone, DESIGN.md §4).
    public func projection(layer: Int, kind: ProjectionKind) throws -> Matrix {
        let role: TensorRole = kind == .k ? .k : .v
        guard let entry = opened.catalog.entry(layer: layer, role: role) else {
            throw TensorFileError(path: path, "layer \(layer) has no \(role.rawValue) projection")
        }
        return try opened.catalog.matrix(entry, from: opened.file, hfRowOrder: true)
    }

    /// The cache key of a layer's projection: file identity, tensor name and what was computed.
    public func cacheKey(layer: Int, kind: ProjectionKind, what: String) -> String {
        let role: TensorRole = kind == .k ? .k : .v
        let name = opened.catalog.entry(layer: layer, role: role)?.name ?? "layer\(layer).\(kind.rawValue)"
        let id = opened.file.file.identity
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        return "\(absolute)|\(id.device)|\(id.inode)|\(id.size)|\(id.modificationTimeNanoseconds)|\(name)|\(what)"
    }

    /// Singular values of W_k and W_v for every layer, from the on-disk cache when present.
    public func weightSpectra(useCache: Bool = true, progress: ProgressHandler? = nil,
                              cancellation: CancellationFlag? = nil) throws -> [LayerSpectra] {
        let cache = useCache ? SpectrumCache(directory: SpectrumCache.defaultDirectory(environment: ProcessInfo.processInfo.environment)) : nil
        return try computeWeightSpectra(
            layerCount: layerCount, cache: cache,
            cacheKey: { [self] layer, kind in cacheKey(layer: layer, kind: kind, what: "weight-spectrum") },
            progress: progress, cancellation: cancellation,
            load: { [self] layer in (try projection(layer: layer, kind: .k), try projection(layer: layer, kind: .v)) })
    }
}
