import Configuration
import Foundation
import Inference
import KVCompression
import TensorFiles

/// What a config records about the explorer's model and calibration text, fixed for a session:
/// the `model` section and the `kv_cache.calibration` entry of every file the explorer saves.
public struct ExplorerConfigIdentity: Sendable, Equatable {
    /// The model the settings apply to: for a sample bundle, the full model it was extracted from.
    public var model: ModelReference
    /// The calibration text behind the kv spectra and the `activations` basis, when known.
    public var calibration: CalibrationReference?

    /// An identity from parts.
    public init(model: ModelReference, calibration: CalibrationReference?) {
        self.model = model
        self.calibration = calibration
    }

    /// The identity of `session`. A model file is hashed through ``Configuration/ModelHashCache``
    /// (once per file version); a bundle records its source model from `bundle.json` (the full
    /// model's path when present, else the path the manifest names) without hashing anything.
    /// - Parameters:
    ///   - calibration: the statistics the explorer uses.
    ///   - reference: where they came from (``SessionCalibration/reference``); when nil it is inferred
    ///     as ``ModelSession/calibrationRecord(textPath:preferBundle:sampleCount:model:useCache:progress:cancellation:)``
    ///     makes it: a bundle's own text means the bundle's statistics, anything else a capture, the
    ///     text looked up by its hash among the usual places (Samples/calibration.txt, the bundle's
    ///     parent directory).
    ///   - environment: where the hash cache lives.
    /// - Throws: ``TensorFiles/TensorFileError`` when the model file cannot be read.
    public init(session: ModelSession, calibration: CalibrationStatistics?, reference: CalibrationReference? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let hp = session.hyperparameters
        let path: String, sha256: String
        if let bundle = session.bundle {
            path = session.fullModelPath ?? bundle.model.path
            sha256 = bundle.model.sha256
        } else {
            path = session.path
            sha256 = try ModelHashCache.sha256(ofFile: session.path, environment: environment)
        }
        model = ModelReference(path: path, architecture: hp.architecture, nLayers: hp.nLayers,
                               hiddenSize: hp.hiddenSize, dKV: hp.kvDim, sha256: sha256,
                               slidingWindow: hp.slidingWindow, slidingLayers: hp.slidingLayers.sorted())
        self.calibration = reference ?? calibration.map { Self.calibrationReference($0, session: session) }
    }

    /// The inferred record of calibration statistics (hash, token and sample counts are always the
    /// statistics' own).
    static func calibrationReference(_ statistics: CalibrationStatistics, session: ModelSession) -> CalibrationReference {
        if let bundle = session.bundle, bundle.text.sha256 == statistics.textSHA256 {
            return session.bundleReference(statistics)
        }
        return CalibrationReference(text: session.findText(sha256: statistics.textSHA256) ?? "calibration.txt",
                                    sha256: statistics.textSHA256, nTokens: statistics.tokenCount, source: .capture,
                                    samples: statistics.sampleTokenIndices.count)
    }
}

/// The explorer's settings as schema-v1 config files (DESIGN.md §6, ``Configuration/KVScopeConfig``):
/// the same files `kvscope tune` writes and `kvscope eval --config` and `kvscope export` read.
///
/// ``config(for:state:identity:)`` and ``settings(from:state:identity:)`` are pure; ``write(_:state:identity:to:overwrite:)``
/// and ``read(path:state:identity:)`` add the file (atomic write, JSON or YAML by the name).
public enum ExplorerConfigFile {
    /// The config of `settings`: the model identity, the KV plan (every layer's K/V rank and bits,
    /// window, group, context length, memory at batch 1) and, when any matrix is below 16 bits,
    /// the weight plan of every listed matrix; perplexities measured at these settings go in `metrics`
    /// (``perplexityMetrics(_:settings:hasWeightPlan:)``).
    /// - Throws: ``Configuration/ConfigError`` naming the entry when a setting is out of range or
    ///   the `activations` basis has no known calibration text.
    public static func config(for settings: ExplorerSettings, state: ExplorerState,
                              identity: ExplorerConfigIdentity) throws -> KVScopeConfig {
        var layers: [KVLayerEntry] = []
        for (i, l) in settings.layers.enumerated() {
            func branch(_ kind: ProjectionKind, _ c: BranchChoice) throws -> BranchSetting {
                do {
                    return try BranchSetting(rank: c.rank, bits: c.bits)
                } catch {
                    throw ConfigError(entry: "kv_cache.layers[\(i)].\(kind.rawValue)", "\(error)")
                }
            }
            layers.append(KVLayerEntry(layer: i, k: try branch(.k, l.k), v: try branch(.v, l.v)))
        }
        let basis = state.resources.errorModel?.basisKind ?? .weights
        let placeholder = KVMemory(baselineBytes: 0, compressedBytes: 0, ratio: 0, nominalRatio: 0)
        var config = KVScopeConfig(
            model: identity.model,
            kvCache: KVCacheSection(basis: basis, window: settings.window, groupSize: settings.groupSize,
                                    contextLength: settings.contextLength,
                                    calibration: identity.calibration,
                                    layers: layers, memory: placeholder))
        if basis != .weights, identity.calibration == nil {
            throw ConfigError(entry: "kv_cache.calibration", "unknown: the \(basis.rawValue) basis was built from calibration statistics whose text is not known")
        }
        let kvMemory = try config.recomputedKVMemory()
        config.kvCache?.memory = kvMemory
        if settings.weights.contains(where: { $0.bits != 16 }) {
            guard settings.weights.count == state.resources.tensors.count else {
                throw ConfigError(entry: "weights.layers", "\(settings.weights.count) choices for \(state.resources.tensors.count) matrices")
            }
            let entries = zip(state.resources.tensors, settings.weights).map {
                WeightLayerEntry(tensor: $0.name, bits: $1.bits, outlierFraction: settings.outlierFraction)
            }
            config.weights = WeightsSection(groupSize: settings.weightGroupSize, layers: entries,
                                            memory: WeightMemory(baselineBytes: 0, compressedBytes: 0, bitsPerWeight: 0, ratio: 0))
            let weightMemory = try config.recomputedWeightMemory(description(state))
            config.weights?.memory = weightMemory
        }
        config.metrics = .object(Self.perplexityMetrics(state.perplexity, settings: settings, hasWeightPlan: config.weights != nil))
        try config.checked()
        return config
    }

    /// The `metrics` of a perplexity measured at `settings` (none when it was measured at other
    /// settings). The explorer's perplexity runs the KV-cache plan on the unquantized weights, so it
    /// is the config's `perplexity` (with `baseline_perplexity` and `eval_tokens`) only when the config
    /// has no weight plan; next to a weight plan it is stored as `kv_cache_only_perplexity` and
    /// `kv_cache_only_baseline_perplexity`, figures the weight plan did not enter.
    public static func perplexityMetrics(_ p: PerplexityFigures?, settings: ExplorerSettings,
                                         hasWeightPlan: Bool) -> [(key: String, value: ConfigValue)] {
        guard let p, p.settings == settings else { return [] }
        let prefix = hasWeightPlan ? "kv_cache_only_" : ""
        return [("\(prefix)perplexity", .double(p.compressed)), ("\(prefix)baseline_perplexity", .double(p.baseline)),
                ("eval_tokens", .int(p.tokens))]
    }

    /// The settings a config sets, starting from the current ones: a `kv_cache` section replaces
    /// every layer's K/V rank and bits, the window, group and context length; a `weights` section
    /// replaces every matrix's bits (matrices it does not list become fp16), the group and the
    /// outlier fraction. A missing section leaves that part unchanged. The batch is not part of a config.
    /// - Returns: the settings, and notes for the status line (a different model file, basis or
    ///   calibration text; per-matrix outlier fractions the explorer cannot show).
    /// - Throws: ``Configuration/ConfigError`` naming the exact entry that does not fit this model.
    public static func settings(from config: KVScopeConfig, state: ExplorerState,
                                identity: ExplorerConfigIdentity) throws -> (settings: ExplorerSettings, notes: [String]) {
        let info = state.resources.info
        for (key, stored, actual) in [("n_layers", config.model.nLayers, info.layerCount),
                                      ("hidden_size", config.model.hiddenSize, info.hiddenSize),
                                      ("d_kv", config.model.dKV, info.kvSize)] where stored != actual {
            throw ConfigError(entry: "model.\(key)", "config says \(stored), the model has \(actual)")
        }
        guard config.model.architecture == info.architecture else {
            throw ConfigError(entry: "model.architecture", "config says \(config.model.architecture), the model is \(info.architecture)")
        }
        var notes: [String] = []
        if config.model.sha256 != identity.model.sha256 { notes.append("made for another model file (model.sha256 differs)") }
        var s = state.settings
        if let kv = config.kvCache {
            s.window = kv.window
            s.groupSize = kv.groupSize
            s.contextLength = kv.contextLength
            // load() checked the layers: each of 0…n_layers−1 exactly once, ranks within 1…d_kv.
            for l in kv.layers where s.layers.indices.contains(l.layer) {
                s.layers[l.layer] = LayerChoice(k: BranchChoice(rank: l.k.rank, bits: l.k.bits),
                                                v: BranchChoice(rank: l.v.rank, bits: l.v.bits))
            }
            let basis = state.resources.errorModel?.basisKind ?? .weights
            if kv.basis != basis { notes.append("kv_cache.basis is \(kv.basis.rawValue), errors shown are of the \(basis.rawValue) basis") }
            if let c = kv.calibration, let mine = identity.calibration {
                if c.sha256 != mine.sha256 {
                    notes.append("calibrated on another text (\(c.text))")
                } else if let source = c.source, source != mine.source || c.samples != mine.samples {
                    notes.append("its calibration statistics are \(c.sourceDescription), the explorer's \(mine.sourceDescription)")
                }
            }
        }
        if let w = config.weights {
            try config.validate(against: description(state))
            let index = Dictionary(state.resources.tensors.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
            s.weights = Array(repeating: WeightChoice(bits: 16), count: state.resources.tensors.count)
            var fractions: [Double: Int] = [:]
            for l in w.layers {
                guard let i = index[l.tensor] else { continue }  // validate() named any unknown tensor
                s.weights[i].bits = l.bits
                if l.bits != 16 { fractions[l.outlierFraction, default: 0] += 1 }
            }
            s.weightGroupSize = w.groupSize
            let common = fractions.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }
            s.outlierFraction = common?.key ?? w.layers.first?.outlierFraction ?? s.outlierFraction
            if fractions.count > 1 {
                let others = fractions.filter { $0.key != s.outlierFraction }.values.reduce(0, +)
                notes.append(String(format: "%d matrices plan another outlier fraction; the explorer uses %g for all", others, s.outlierFraction))
            }
        }
        return (s, notes)
    }

    /// What a weight plan is checked against: the explorer's model and its listed matrices.
    static func description(_ state: ExplorerState) -> ModelDescription {
        let info = state.resources.info
        return ModelDescription(architecture: info.architecture, nLayers: info.layerCount, hiddenSize: info.hiddenSize,
                                dKV: info.kvSize, matrices: state.resources.tensors.map {
                                    (name: $0.name, shape: MatrixShape(rows: $0.rows, cols: $0.cols))
                                })
    }

    /// Writes the config of `settings` to `path` atomically (temporary file + rename), JSON, or
    /// YAML for `.yaml`/`.yml`. A failed write leaves any existing file as it was.
    /// - Parameter overwrite: replace an existing file; without it an existing file is an error.
    /// - Throws: ``Configuration/ConfigError`` (invalid settings, existing file) or
    ///   ``TensorFiles/TensorFileError`` (I/O) naming the file.
    public static func write(_ settings: ExplorerSettings, state: ExplorerState, identity: ExplorerConfigIdentity,
                             to path: String, overwrite: Bool) throws {
        try config(for: settings, state: state, identity: identity).write(to: path, force: overwrite)
    }

    /// Reads a config file (JSON, or YAML for `.yaml`/`.yml`), checks every entry and returns the
    /// settings it sets (``settings(from:state:identity:)``).
    /// - Throws: ``Configuration/ConfigError`` as `FILE: ENTRY: MESSAGE`.
    public static func read(path: String, state: ExplorerState,
                            identity: ExplorerConfigIdentity) throws -> (settings: ExplorerSettings, notes: [String]) {
        let config = try KVScopeConfig.load(path: path)
        do {
            return try settings(from: config, state: state, identity: identity)
        } catch let error as ConfigError {
            throw ConfigError(path: path, entry: error.entry, error.message)
        }
    }

    /// An error as one status line (file errors and YAML positions included, line breaks removed).
    public static func statusLine(_ error: Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

/// An error of the explorer's own files (the evaluation text): the file and what is wrong.
public struct ConfigFileError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String

    /// An error about `path`.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
