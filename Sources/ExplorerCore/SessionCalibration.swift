import Configuration
import Foundation
import Inference
import KVCompression
import Quantization
import TensorFiles

/// Calibration statistics together with the record a config keeps of them (`kv_cache.calibration`):
/// the text and its hash, whether they are a bundle's shipped file or a capture, and the sample count.
public struct SessionCalibration: Sendable {
    /// The statistics.
    public let statistics: CalibrationStatistics
    /// Where they came from.
    public let reference: CalibrationReference

    /// A record from parts.
    public init(statistics: CalibrationStatistics, reference: CalibrationReference) {
        self.statistics = statistics
        self.reference = reference
    }
}

extension ModelSession {
    /// Sampled token rows per layer of a capture when nothing else is asked for (the explorer, `tune`, `eval`).
    public static let defaultSampleCount = 256

    /// The bundle's shipped statistics with their record (source `bundle`, the bundle path as given,
    /// the text found by its hash), or nil when a model file was opened.
    /// - Throws: ``TensorFiles/TensorFileError`` for a damaged statistics file.
    public func bundleCalibration() throws -> SessionCalibration? {
        guard let statistics = try bundledCalibration() else { return nil }
        return SessionCalibration(statistics: statistics, reference: bundleReference(statistics))
    }

    /// The record of the bundle's own statistics.
    func bundleReference(_ statistics: CalibrationStatistics, textPath: String? = nil) -> CalibrationReference {
        CalibrationReference(text: textPath ?? findText(sha256: statistics.textSHA256) ?? bundle?.text.name ?? "calibration.txt",
                             sha256: statistics.textSHA256, nTokens: statistics.tokenCount, source: .bundle, bundle: path,
                             samples: statistics.sampleTokenIndices.count)
    }

    /// A calibration text with this SHA-256 among the usual places (Samples/calibration.txt, the
    /// bundle's parent directory and the bundle itself), or nil.
    func findText(sha256: String) -> String? {
        var candidates = ["Samples/calibration.txt"]
        if let dir = bundleDirectory, let bundle {
            let parent = URL(fileURLWithPath: dir).standardizedFileURL.deletingLastPathComponent()
            candidates.append(parent.appendingPathComponent(bundle.text.name).path)
            candidates.append(URL(fileURLWithPath: dir).appendingPathComponent(bundle.text.name).path)
        }
        return candidates.first { path in
            guard let data = FileManager.default.contents(atPath: path) else { return false }
            return SHA256.hex(Array(data)) == sha256
        }
    }

    /// Statistics of the text at `textPath` with their record: a bundle's shipped statistics when this
    /// is a bundle of that text and `preferBundle`, else a capture (``calibration(text:model:useCache:sampleCount:preferBundle:progress:cancellation:)``).
    /// - Throws: as ``calibration(text:model:useCache:sampleCount:preferBundle:progress:cancellation:)``; a missing text.
    public func calibrationRecord(textPath: String, preferBundle: Bool = true, sampleCount: Int = defaultSampleCount,
                                  model: (model: TransformerModel, tokenizer: Tokenizer)? = nil, useCache: Bool = true,
                                  progress: ((Int, Int) -> Void)? = nil,
                                  cancellation: CancellationFlag? = nil) throws -> SessionCalibration {
        let text = try CalibrationText(path: textPath)
        if preferBundle, let bundle, bundle.text.sha256 == text.sha256, let statistics = try bundledCalibration() {
            return SessionCalibration(statistics: statistics, reference: bundleReference(statistics, textPath: textPath))
        }
        let statistics = try calibration(text: text, model: model, useCache: useCache, sampleCount: sampleCount,
                                         preferBundle: false, progress: progress, cancellation: cancellation)
        return SessionCalibration(statistics: statistics, reference: CalibrationReference(
            text: textPath, sha256: text.sha256, nTokens: statistics.tokenCount, source: .capture,
            samples: statistics.sampleTokenIndices.count))
    }

    /// The statistics a config's `kv_cache.calibration` records, checked against the record, so that
    /// `kvscope eval --config` and `export --factors` use what the explorer or `tune` used:
    /// - source `bundle`: the bundle's shipped statistics file (the bundle path resolved as the model
    ///   path is); it must exist, be extracted from the config's model, and hold statistics of the
    ///   recorded text hash, token count and sample count. The text file itself is not needed.
    /// - source `capture`: a capture of the text (path resolved likewise; its SHA-256 must match) with
    ///   the recorded sample count, from the on-disk cache when present; tokens and rows must match.
    /// - no source (files written before the field): the text as given, through this session (a bundle
    ///   of that text answers with its own statistics), 256 rows unless recorded.
    /// - Parameters:
    ///   - configPath: the config file (for relative paths and error messages).
    ///   - modelSHA256: the config's `model.sha256`, which a bundle must have been extracted from.
    /// - Throws: ``Configuration/ConfigError`` naming the config and the entry that does not hold; capture errors.
    public func calibration(recordedIn reference: CalibrationReference, configPath: String, modelSHA256: String?,
                            model: (model: TransformerModel, tokenizer: Tokenizer)? = nil,
                            progress: ((Int, Int) -> Void)? = nil,
                            cancellation: CancellationFlag? = nil) throws -> CalibrationStatistics {
        let entry = "kv_cache.calibration"
        func fail(_ key: String, _ message: String) -> ConfigError { ConfigError(path: configPath, entry: "\(entry).\(key)", message) }
        func check(_ statistics: CalibrationStatistics, what: String) throws -> CalibrationStatistics {
            guard statistics.textSHA256 == reference.sha256 else {
                throw fail("sha256", "\(what) are of a text with SHA-256 \(statistics.textSHA256), the config records \(reference.sha256)")
            }
            guard statistics.tokenCount == reference.nTokens else {
                throw fail("n_tokens", "\(reference.nTokens) recorded, \(what) have \(statistics.tokenCount)")
            }
            if let samples = reference.samples, samples != statistics.sampleTokenIndices.count {
                throw fail("samples", "\(samples) recorded, \(what) have \(statistics.sampleTokenIndices.count) sampled rows")
            }
            return statistics
        }
        if reference.source == .bundle {
            let given = reference.bundle ?? ""
            let dir = KVScopeConfig.resolvePath(given, configPath: configPath)
            let manifest: SampleBundleManifest
            do { manifest = try SampleBundleManifest.read(directory: dir) } catch {
                throw fail("bundle", "\(given): no sample bundle there (\(ExplorerConfigFile.statusLine(error))); the config's statistics are that bundle's")
            }
            if let modelSHA256, manifest.model.sha256 != modelSHA256 {
                throw fail("bundle", "\(given) was extracted from the model \(manifest.model.sha256), the config is for \(modelSHA256)")
            }
            let file = URL(fileURLWithPath: dir).appendingPathComponent(manifest.files.calibration).path
            let statistics: CalibrationStatistics
            do { statistics = try CalibrationFile.read(path: file).statistics } catch {
                throw fail("bundle", "\(ExplorerConfigFile.statusLine(error))")
            }
            return try check(statistics, what: "the statistics of the bundle \(given)")
        }
        let textPath = KVScopeConfig.resolvePath(reference.text, configPath: configPath)
        let text: CalibrationText
        do { text = try CalibrationText(path: textPath) } catch {
            throw fail("text", "\(reference.text): cannot read the calibration text (\(ExplorerConfigFile.statusLine(error)))")
        }
        guard text.sha256 == reference.sha256 else {
            throw fail("sha256", "\(textPath) has SHA-256 \(text.sha256), the config records \(reference.sha256)")
        }
        let statistics = try calibrationRecord(textPath: textPath, preferBundle: reference.source == nil,
                                               sampleCount: reference.samples ?? Self.defaultSampleCount, model: model,
                                               progress: progress, cancellation: cancellation).statistics
        return try check(statistics, what: reference.source == nil ? "the statistics of \(textPath)" : "a capture of \(textPath)")
    }

    // MARK: - Weight error tables

    /// The quantization error tables (``Quantization/ErrorTable``: ‖W − Ŵ‖_F/‖W‖_F and the bytes of
    /// DESIGN.md §4 at every choice of `choices`) of the named layer weight matrices of the full model,
    /// in the order given: from the on-disk cache (``Inference/WeightErrorCache``, keyed by the model
    /// file's SHA-256 and the grid) when it holds them, else computed one layer at a time (that
    /// layer's matrices in parallel) and stored there. Cache failures are ignored: the tables are
    /// then computed, never read from a file that fails its checks.
    /// - Parameters:
    ///   - tensors: tensor names; nil for every q/k/v/o/gate/up/down matrix of every layer.
    ///   - progress: (matrices done, total), cached ones counted at once.
    /// - Throws: ``TensorFiles/TensorFileError`` (no full model, unknown tensor), ``Quantization/QuantizationError``
    ///   (`cancelled`, non-finite weights).
    public func weightErrorTables(tensors: [String]? = nil, choices: ErrorTableChoices, useCache: Bool = true,
                                  environment: [String: String] = ProcessInfo.processInfo.environment,
                                  progress: (@Sendable (Int, Int) -> Void)? = nil,
                                  cancellation: CancellationFlag? = nil) throws -> [ErrorTable] {
        let full = try fullModel()
        let catalog = full.catalog
        let plannable = catalog.entries.filter {
            $0.layer != nil && ModelDescription.plannedRoles.contains($0.role) && $0.parameter == .weight && $0.rows == nil
                && $0.shape.count == 2
        }
        let byName = Dictionary(plannable.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let entries = try (tensors ?? plannable.map(\.name)).map { name in
            guard let e = byName[name] else { throw TensorFileError(path: full.file.path, "no layer weight matrix named \(name)") }
            return e
        }
        let shapes = Dictionary(plannable.map { ($0.name, (rows: $0.shape[0], cols: $0.shape[1])) }, uniquingKeysWith: { a, _ in a })
        let cache = WeightErrorCache(directory: WeightErrorCache.defaultDirectory(environment: environment))
        let sha = useCache ? try? ModelHashCache.sha256(ofFile: full.file.path, environment: environment) : nil
        var known: [String: ErrorTable] = [:]
        if let sha, let cached = cache.load(modelSHA256: sha, choices: choices, shapes: shapes) {
            for t in cached { known[t.name] = t }
        }
        let missing = entries.filter { known[$0.name] == nil }
        let total = entries.count
        let counted = total - missing.count
        progress?(counted, total)
        if !missing.isEmpty {
            let memory = ErrorTableCache()
            var done = counted
            for layer in Array(Set(missing.compactMap(\.layer))).sorted() {
                if cancellation?.isCancelled == true { throw QuantizationError.cancelled }
                let inputs = try missing.filter { $0.layer == layer }.map {
                    ErrorTableInput(name: $0.name, weights: try catalog.matrix($0, from: full.file))
                }
                let base = done
                for t in try memory.tables(for: inputs, choices: choices,
                                           progress: { d, _ in progress?(base + d, total) },
                                           isCancelled: { cancellation?.isCancelled ?? false }) {
                    known[t.name] = t
                }
                done += inputs.count
            }
            if let sha { try? cache.store(Array(known.values), modelSHA256: sha, choices: choices) }
        }
        return try entries.map { e in
            guard let t = known[e.name] else { throw QuantizationError.cancelled }
            return t
        }
    }
}
