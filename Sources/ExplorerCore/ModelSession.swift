import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles

/// A model opened for analysis: its file, catalog and hyper-parameters, and the K/V projection
/// weights in Hugging Face row order. Shared by the explorer and the command-line tools.
///
/// Opens a model file, an HF checkpoint folder (config.json and safetensors), or a sample bundle
/// directory (one with a `bundle.json`,
/// docs/sample-bundle.md); a bundle offers the same K/V projections and spectra, plus its shipped
/// calibration statistics and weight-quantization error tables.
public final class ModelSession: Sendable {
    /// The path as the user gave it (a model file or a bundle directory).
    public let path: String
    /// The opened model file: the model itself, or the bundle's K/V weights file.
    public let opened: OpenedModel
    public let hyperparameters: ModelHyperparameters
    /// The bundle's manifest when a bundle was opened.
    public let bundle: SampleBundleManifest?
    /// The bundle's directory when a bundle was opened.
    public let bundleDirectory: String?

    /// Opens `path`: a GGUF, a safetensors file with config.json beside it, an HF checkpoint folder,
    /// or a bundle directory (a directory with bundle.json).
    /// - Throws: ``TensorFileError`` for unreadable files, or when the model has no K/V projections.
    public init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        let bundleManifest = URL(fileURLWithPath: path).appendingPathComponent("bundle.json").path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
           FileManager.default.fileExists(atPath: bundleManifest) {
            let manifest = try SampleBundleManifest.read(directory: path)
            bundle = manifest
            bundleDirectory = path
            opened = try openModel(path: URL(fileURLWithPath: path).appendingPathComponent(manifest.files.kv_weights).path)
        } else {
            bundle = nil
            bundleDirectory = nil
            opened = try openModel(path: path)
        }
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

    /// Whether a bundle was opened.
    public var isBundle: Bool { bundle != nil }

    /// The full model file, when present: the opened model itself, or a bundle's source model found
    /// at its usual path (relative to the current directory or to the bundle's repository) with the
    /// recorded size. Perplexity and kv spectra of new texts need it.
    public var fullModelPath: String? {
        guard let bundle, let dir = bundleDirectory else { return path }
        let bundleURL = URL(fileURLWithPath: dir).standardizedFileURL
        let candidates = [
            URL(fileURLWithPath: bundle.model.path),
            bundleURL.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(bundle.model.path),
        ]
        for url in candidates {
            if let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
               (attributes[.size] as? NSNumber)?.intValue == bundle.model.size {
                return url.path
            }
        }
        return nil
    }

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
        let id = opened.file.identity
        let absolute = URL(fileURLWithPath: opened.file.path).standardizedFileURL.path
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

    // MARK: - Calibration and kv spectra

    /// The bundle's calibration statistics (nil when a model file was opened).
    /// - Throws: ``TensorFileError`` for a damaged statistics file.
    public func bundledCalibration() throws -> CalibrationStatistics? {
        guard let bundle, let dir = bundleDirectory else { return nil }
        return try CalibrationFile.read(path: URL(fileURLWithPath: dir).appendingPathComponent(bundle.files.calibration).path).statistics
    }

    /// The bundle's weight-quantization error tables, by tensor name (nil when a model file was opened).
    /// - Throws: ``TensorFileError`` for a damaged tables file.
    public func bundledWeightErrors() throws -> ErrorTableCache? {
        guard let bundle, let dir = bundleDirectory else { return nil }
        let file = URL(fileURLWithPath: dir).appendingPathComponent(bundle.files.weight_errors)
        do {
            return try ErrorTableCache(decoding: Data(contentsOf: file))
        } catch {
            throw TensorFileError(path: file.path, "not a weight error table file (\(error))")
        }
    }

    /// The bundle's weight-quantization error tables as a list (nil when a model file was opened).
    /// - Throws: ``TensorFileError`` for a damaged tables file.
    public func bundledWeightTables() throws -> [ErrorTable]? {
        guard let bundle, let dir = bundleDirectory else { return nil }
        let file = URL(fileURLWithPath: dir).appendingPathComponent(bundle.files.weight_errors)
        do {
            return try JSONDecoder().decode([ErrorTable].self, from: Data(contentsOf: file))
        } catch {
            throw TensorFileError(path: file.path, "not a weight error table file (\(error))")
        }
    }

    /// The file holding every layer weight matrix: the opened model, or a bundle's source model when
    /// present (nil without it: a bundle's kv.gguf holds only W_k and W_v).
    /// - Throws: ``TensorFileError`` when the source model is present but unreadable.
    public func weightModel() throws -> OpenedModel? {
        guard isBundle else { return opened }
        guard let full = fullModelPath else { return nil }
        return try openModel(path: full)
    }

    /// Loads the full model for inference (dequantized once) with its tokenizer.
    /// - Throws: ``TensorFileError`` when the full model is absent (a bundle without its source) or
    ///   unreadable; ``InferenceError`` for an unsupported model.
    public func inferenceModel() throws -> (model: TransformerModel, tokenizer: Tokenizer) {
        try Self.inferenceModel(from: try fullModel())
    }

    /// The full model file: the session's own (already open), or a bundle's source model (opened now).
    /// - Throws: ``TensorFileError`` when a bundle's source model is absent or unreadable.
    public func fullModel() throws -> OpenedModel {
        guard let full = try weightModel() else { throw missingSourceModel() }
        return full
    }

    /// The dense model and its tokenizer from an opened GGUF or HF checkpoint (``Inference/ModelLoader``).
    /// - Throws: ``TensorFileError`` for unreadable files; ``InferenceError`` for an unsupported model.
    public static func inferenceModel(from full: OpenedModel) throws -> (model: TransformerModel, tokenizer: Tokenizer) {
        try ModelLoader.load(full)
    }

    func missingSourceModel() -> TensorFileError {
        TensorFileError(path: path, "the bundle's source model \(bundle?.model.path ?? "") is not present; run `make models`")
    }

    /// Calibration statistics of the full model on `text`, from the on-disk cache
    /// (``Inference/CalibrationCache``) when present, else captured and stored there.
    /// With `preferBundle`, a bundle whose text has the same hash answers from its own statistics
    /// (``calibrationRecord(textPath:preferBundle:sampleCount:model:useCache:progress:cancellation:)``
    /// also says which of the two it was).
    /// - Parameters:
    ///   - model: an already loaded model (else it is loaded).
    ///   - progress: (layers done, total) of the capture.
    /// - Throws: as ``inferenceModel()`` and ``Inference/CalibrationCapture/run(model:tokenizer:text:sampleCount:seed:maxSequenceLength:progress:cancellation:)``.
    public func calibration(text: CalibrationText, model: (model: TransformerModel, tokenizer: Tokenizer)? = nil,
                            useCache: Bool = true, sampleCount: Int = ModelSession.defaultSampleCount, preferBundle: Bool = true,
                            progress: ((Int, Int) -> Void)? = nil,
                            cancellation: CancellationFlag? = nil) throws -> CalibrationStatistics {
        if preferBundle, let bundle, bundle.text.sha256 == text.sha256, let stats = try bundledCalibration() { return stats }
        guard let full = fullModelPath else { throw missingSourceModel() }
        let cache = CalibrationCache(directory: CalibrationCache.defaultDirectory())
        let url = cache.fileURL(modelIdentity: try CalibrationCache.modelIdentity(path: full), textSHA256: text.sha256,
                                sampleCount: sampleCount, seed: 0, maxSequenceLength: CalibrationCapture.defaultMaxSequenceLength)
        // Files cached before the per-channel means were kept are recaptured.
        if useCache, let hit = cache.load(url, textSHA256: text.sha256), hit.statistics.layers.allSatisfy({ $0.keyMean != nil }) {
            return hit.statistics
        }
        let loaded = try model ?? inferenceModel()
        let (statistics, provenance) = try CalibrationCapture.run(
            model: loaded.model, tokenizer: loaded.tokenizer, text: text, sampleCount: sampleCount,
            progress: progress, cancellation: cancellation)
        if useCache { try? cache.store(statistics, provenance: provenance, at: url) }
        return statistics
    }

    /// K/V spectra (DESIGN.md §4, "kv") from calibration statistics: σᵢ = √λᵢ of the pre-RoPE
    /// KᵀK and VᵀV, or with `postRoPE` of the post-RoPE KᵀK (V has no RoPE: its spectrum is unchanged).
    /// - Throws: ``KVCompressionError`` when a Gram is missing (no post-RoPE Gram) or the eigensolver fails.
    ///
    /// With `centered`, the per-channel mean over tokens is removed first (XᵀX − T·μμᵀ): Qwen2's K
    /// bias puts most of the uncentered energy in one direction (r99 = 1 on most layers).
    public static func kvSpectra(_ statistics: CalibrationStatistics, postRoPE: Bool = false,
                                 centered: Bool = false) throws -> [LayerSpectra] {
        if centered {
            guard !postRoPE else { throw KVCompressionError.invalidArgument("centered spectra are of pre-RoPE K and V only") }
            return try statistics.layers.map { layer in
                guard let k = layer.centeredGram(.k, tokenCount: statistics.tokenCount),
                      let v = layer.centeredGram(.v, tokenCount: statistics.tokenCount) else {
                    throw KVCompressionError.invalidArgument(
                        "layer \(layer.layer): the statistics have no per-channel means (written by an older kvscope; capture them again)")
                }
                return LayerSpectra(layer: layer.layer, k: try Spectrum(gram: k, rows: statistics.tokenCount),
                                    v: try Spectrum(gram: v, rows: statistics.tokenCount))
            }
        }
        return try statistics.layers.map { layer in
            var keyGram = layer.keyGram
            if postRoPE {
                guard let rotated = layer.keyGramPostRoPE else {
                    throw KVCompressionError.invalidArgument("layer \(layer.layer): the statistics have no post-RoPE K Gram")
                }
                keyGram = rotated
            }
            return LayerSpectra(layer: layer.layer,
                                k: try Spectrum(gram: keyGram, rows: statistics.tokenCount),
                                v: try Spectrum(gram: layer.valueGram, rows: statistics.tokenCount))
        }
    }
}
