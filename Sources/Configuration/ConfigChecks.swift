import Foundation
import KVCompression
import Quantization
import TensorFiles

/// The rows and columns of a weight matrix in [out, in] order.
public struct MatrixShape: Sendable, Hashable {
    /// Output features.
    public var rows: Int
    /// Input features.
    public var cols: Int

    /// A shape.
    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }

    /// rows × cols.
    public var count: Int { rows * cols }
}

/// What a config is checked against: a model's sizes and its layer weight matrices.
public struct ModelDescription: Sendable {
    /// The architecture name (GGUF `general.architecture` or the HF `model_type`).
    public var architecture: String
    /// Number of transformer layers.
    public var nLayers: Int
    /// d, the hidden size.
    public var hiddenSize: Int
    /// d_kv = n_kv_heads × head_dim.
    public var dKV: Int
    /// Shapes ([out, in]) of the plannable weight matrices (q, k, v, o, gate, up, down of every
    /// layer, whole tensors only), by their name in the file.
    public var matrices: [String: MatrixShape]
    /// The same names in file order.
    public var matrixNames: [String]
    /// The sliding window and its layers (``TensorFiles/ModelHyperparameters/slidingWindow``).
    public var slidingWindow: Int?
    public var slidingLayers: [Int] = []

    /// A description from parts.
    public init(architecture: String, nLayers: Int, hiddenSize: Int, dKV: Int, matrices: [(name: String, shape: MatrixShape)]) {
        self.architecture = architecture
        self.nLayers = nLayers
        self.hiddenSize = hiddenSize
        self.dKV = dKV
        self.matrices = Dictionary(matrices.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        self.matrixNames = matrices.map(\.name)
    }

    /// A description from a model's hyper-parameters and matrices.
    public init(hyperparameters hp: ModelHyperparameters, matrices: [(name: String, shape: MatrixShape)]) {
        self.init(architecture: hp.architecture, nLayers: hp.nLayers, hiddenSize: hp.hiddenSize, dKV: hp.kvDim, matrices: matrices)
        slidingWindow = hp.slidingWindow
        slidingLayers = hp.slidingLayers.sorted()
    }

    /// The roles a weight plan covers.
    public static let plannedRoles: Set<TensorRole> = [.q, .k, .v, .o, .gate, .up, .down]

    /// The description of an opened model.
    /// - Throws: ``ConfigError`` when the architecture is not recognized.
    public init(opened: OpenedModel, path: String) throws {
        guard let hp = opened.catalog.hyperparameters else {
            throw ConfigError(path: path, "architecture not recognized: no attention layers found")
        }
        let list = opened.catalog.entries.filter {
            $0.layer != nil && Self.plannedRoles.contains($0.role) && $0.parameter == .weight && $0.rows == nil && $0.shape.count == 2
        }.map { (name: $0.name, shape: MatrixShape(rows: $0.shape[0], cols: $0.shape[1])) }
        self.init(hyperparameters: hp, matrices: list)
    }
}

extension KVScopeConfig {
    /// A path recorded in a config (`model.path`, `kv_cache.calibration.text` or `.bundle`): as given
    /// when it is absolute or exists from the working directory, else relative to the config's
    /// directory when it exists there, else as given (so the error names it).
    public static func resolvePath(_ path: String, configPath: String) -> String {
        if path.hasPrefix("/") || FileManager.default.fileExists(atPath: path) { return path }
        let dir = URL(fileURLWithPath: configPath).deletingLastPathComponent()
        let candidate = dir.appendingPathComponent(path).path
        return FileManager.default.fileExists(atPath: candidate) ? candidate : path
    }

    static func isHexDigest(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Relative tolerance of stored memory figures against their recomputation.
    static let memoryTolerance = 1e-9

    static func close(_ a: Double, _ b: Double) -> Bool {
        abs(a - b) <= memoryTolerance * max(abs(a), abs(b), 1)
    }

    func checkInternal() throws {
        let m = model
        guard !m.path.isEmpty else { throw ConfigError(entry: "model.path", "is empty") }
        guard !m.architecture.isEmpty else { throw ConfigError(entry: "model.architecture", "is empty") }
        for (key, value) in [("n_layers", m.nLayers), ("hidden_size", m.hiddenSize), ("d_kv", m.dKV)] where value < 1 {
            throw ConfigError(entry: "model.\(key)", "\(value) is below 1")
        }
        guard Self.isHexDigest(m.sha256) else {
            throw ConfigError(entry: "model.sha256", "\"\(m.sha256)\" is not 64 lower-case hex digits")
        }
        guard kvCache != nil || weights != nil else {
            throw ConfigError("has neither a kv_cache nor a weights section")
        }
        if let kv = kvCache { try checkKV(kv) }
        if let w = weights { try checkWeights(w) }
    }

    func checkKV(_ kv: KVCacheSection) throws {
        guard kv.window >= 0 else { throw ConfigError(entry: "kv_cache.window", "\(kv.window) is negative") }
        if let g = kv.groupSize, g < 1 { throw ConfigError(entry: "kv_cache.group_size", "\(g) is below 1") }
        guard kv.contextLength >= 1 else { throw ConfigError(entry: "kv_cache.context_length", "\(kv.contextLength) is below 1") }
        if let c = kv.calibration {
            guard !c.text.isEmpty else { throw ConfigError(entry: "kv_cache.calibration.text", "is empty") }
            guard Self.isHexDigest(c.sha256) else {
                throw ConfigError(entry: "kv_cache.calibration.sha256", "\"\(c.sha256)\" is not 64 lower-case hex digits")
            }
            guard c.nTokens >= 1 else { throw ConfigError(entry: "kv_cache.calibration.n_tokens", "\(c.nTokens) is below 1") }
            if let samples = c.samples, samples < 0 {
                throw ConfigError(entry: "kv_cache.calibration.samples", "\(samples) is negative")
            }
            if let samples = c.samples, samples > c.nTokens {
                throw ConfigError(entry: "kv_cache.calibration.samples", "\(samples) sampled rows of \(c.nTokens) tokens")
            }
            switch c.source {
            case .bundle:
                guard let bundle = c.bundle else {
                    throw ConfigError(entry: "kv_cache.calibration.bundle", "missing (the source is \"bundle\")")
                }
                guard !bundle.isEmpty else { throw ConfigError(entry: "kv_cache.calibration.bundle", "is empty") }
            case .capture, nil:
                if c.bundle != nil {
                    throw ConfigError(entry: "kv_cache.calibration.bundle",
                                      "only goes with source \"bundle\" (the source is \(c.source.map { "\"\($0.rawValue)\"" } ?? "not given"))")
                }
            }
        } else if kv.basis != .weights {
            throw ConfigError(entry: "kv_cache.calibration", "missing (the \(kv.basis.rawValue) basis is computed from calibration text)")
        }
        var seen: [Int: Int] = [:]
        for (i, l) in kv.layers.enumerated() {
            let e = "kv_cache.layers[\(i)]"
            guard l.layer >= 0, l.layer < model.nLayers else {
                throw ConfigError(entry: "\(e).layer", "\(l.layer) is outside 0…\(model.nLayers - 1)")
            }
            if let first = seen[l.layer] {
                throw ConfigError(entry: "\(e).layer", "duplicate layer \(l.layer) (also kv_cache.layers[\(first)])")
            }
            seen[l.layer] = i
            for (name, b) in [("k", l.k), ("v", l.v)] {
                guard b.rank >= 1 else { throw ConfigError(entry: "\(e).\(name).rank", "\(b.rank) is below 1") }
                guard b.rank <= model.dKV else { throw ConfigError(entry: "\(e).\(name).rank", "\(b.rank) exceeds d_kv \(model.dKV)") }
            }
        }
        // Every seen layer is in range and unique, so the count of missing ones needs no loop over
        // n_layers (a hostile n_layers of 2^62 must not hang the reader).
        let missingCount = model.nLayers - seen.count
        if missingCount > 0 {
            let missing = Array((0..<model.nLayers).lazy.filter { seen[$0] == nil }.prefix(8))
            let list = missing.map(String.init).joined(separator: ", ") + (missingCount > 8 ? ", …" : "")
            throw ConfigError(entry: "kv_cache.layers", "missing layer\(missingCount == 1 ? "" : "s") \(list) (\(missingCount) of \(model.nLayers))")
        }
        let recomputed = try recomputedKVMemory()
        for (key, stored, value) in [("baseline_bytes", kv.memory.baselineBytes, recomputed.baselineBytes),
                                     ("compressed_bytes", kv.memory.compressedBytes, recomputed.compressedBytes),
                                     ("ratio", kv.memory.ratio, recomputed.ratio),
                                     ("nominal_ratio", kv.memory.nominalRatio, recomputed.nominalRatio)] where !Self.close(stored, value) {
            throw ConfigError(entry: "kv_cache.memory.\(key)", "\(stored) does not match \(value) recomputed from the layers")
        }
    }

    func checkWeights(_ w: WeightsSection) throws {
        if let g = w.groupSize, g < 1 { throw ConfigError(entry: "weights.group_size", "\(g) is below 1") }
        guard !w.layers.isEmpty else { throw ConfigError(entry: "weights.layers", "is empty") }
        var seen: [String: Int] = [:]
        for (i, l) in w.layers.enumerated() {
            guard !l.tensor.isEmpty else { throw ConfigError(entry: "weights.layers[\(i)].tensor", "is empty") }
            if let first = seen[l.tensor] {
                throw ConfigError(entry: "weights.layers[\(i)].tensor", "duplicate tensor \(l.tensor) (also weights.layers[\(first)])")
            }
            seen[l.tensor] = i
        }
    }

    /// The bi-branch memory model of the KV section (DESIGN.md §4), from the config alone.
    /// - Throws: ``ConfigError`` when there is no KV section or its sizes are invalid.
    public func kvMemoryModel() throws -> BiBranchMemoryModel {
        guard let kv = kvCache else { throw ConfigError(entry: "kv_cache", "missing") }
        do {
            return try BiBranchMemoryModel(kvSize: model.dKV, hiddenSize: model.hiddenSize, window: kv.window,
                                           groupSize: kv.groupSize, basis: kv.basis,
                                           slidingWindow: model.slidingWindow, slidingLayers: Set(model.slidingLayers))
        } catch {
            throw ConfigError(entry: "kv_cache", "\(error)")
        }
    }

    /// KV memory recomputed from the layers with the memory model (DESIGN.md §4), ignoring the stored figures.
    /// - Throws: ``ConfigError`` when there is no KV section or a rank exceeds d_kv.
    public func recomputedKVMemory() throws -> KVMemory {
        let memory = try kvMemoryModel()
        guard let kv = kvCache else { throw ConfigError(entry: "kv_cache", "missing") }
        let settings = kv.layers.map(\.setting)
        do {
            let baseline = try memory.baselineTotalBytes(layerCount: model.nLayers, contextLength: kv.contextLength)
            let compressed = try memory.totalBytes(settings, contextLength: kv.contextLength)
            return KVMemory(baselineBytes: baseline, compressedBytes: compressed,
                            ratio: baseline > 0 ? 1 - compressed / baseline : 0,  // DESIGN.md §4: ratio = 1 − kvscope/baseline
                            nominalRatio: try memory.nominalRatio(settings))
        } catch {
            throw ConfigError(entry: "kv_cache.layers", "\(error)")
        }
    }

    /// Checks the config against the model: architecture, layer count, hidden size, d_kv, that every
    /// weight tensor exists as a plannable matrix, and that the weight memory matches the shapes.
    /// The file hash is checked separately (``checkModelHash(_:allowMismatch:)``): it needs the file.
    /// - Throws: ``ConfigError`` naming the entry.
    public func validate(against description: ModelDescription) throws {
        let d = description
        guard model.architecture == d.architecture else {
            throw ConfigError(entry: "model.architecture", "config says \(model.architecture), the model is \(d.architecture)")
        }
        for (key, stored, actual) in [("n_layers", model.nLayers, d.nLayers), ("hidden_size", model.hiddenSize, d.hiddenSize),
                                      ("d_kv", model.dKV, d.dKV)] where stored != actual {
            throw ConfigError(entry: "model.\(key)", "config says \(stored), the model has \(actual)")
        }
        guard model.slidingWindow == d.slidingWindow, model.slidingLayers == d.slidingLayers else {
            func text(_ w: Int?, _ l: [Int]) -> String { w.map { "window \($0) on \(l.count) layers" } ?? "no sliding window" }
            throw ConfigError(entry: "model.sliding_window",
                              "config says \(text(model.slidingWindow, model.slidingLayers)), the model has \(text(d.slidingWindow, d.slidingLayers))")
        }
        if let w = weights {
            for (i, l) in w.layers.enumerated() where description.matrices[l.tensor] == nil {
                throw ConfigError(entry: "weights.layers[\(i)].tensor", "the model has no layer weight matrix named \(l.tensor)")
            }
            let recomputed = try recomputedWeightMemory(description)
            for (key, stored, value) in [("baseline_bytes", w.memory.baselineBytes, recomputed.baselineBytes),
                                         ("compressed_bytes", w.memory.compressedBytes, recomputed.compressedBytes),
                                         ("bits_per_weight", w.memory.bitsPerWeight, recomputed.bitsPerWeight),
                                         ("ratio", w.memory.ratio, recomputed.ratio)] where !Self.close(stored, value) {
                throw ConfigError(entry: "weights.memory.\(key)", "\(stored) does not match \(value) recomputed from the model's shapes")
            }
        }
    }

    /// Checks the model file's hash against `model.sha256`.
    /// - Parameter allowMismatch: accept a different file (the user's override).
    /// - Throws: ``ConfigError`` on a mismatch without the override.
    public func checkModelHash(_ actual: String, allowMismatch: Bool) throws {
        guard actual == model.sha256 || allowMismatch else {
            throw ConfigError(entry: "model.sha256",
                              "the config was made for \(model.sha256), the model file is \(actual) (pass --allow-model-mismatch to use it anyway)")
        }
    }

    /// Weight memory of the plan from the model's shapes (DESIGN.md §4, "Uniform quantization").
    /// - Throws: ``ConfigError`` for a missing tensor or an invalid scheme.
    public func recomputedWeightMemory(_ description: ModelDescription) throws -> WeightMemory {
        guard let w = weights else { throw ConfigError(entry: "weights", "missing") }
        var baseline = 0.0, compressed = 0.0, count = 0
        for (i, l) in w.layers.enumerated() {
            guard let shape = description.matrices[l.tensor] else {
                throw ConfigError(entry: "weights.layers[\(i)].tensor", "the model has no layer weight matrix named \(l.tensor)")
            }
            count += shape.count
            baseline += 2 * Double(shape.count)
            compressed += try Self.weightBytes(bits: l.bits, groupSize: w.groupSize, outlierFraction: l.outlierFraction,
                                               shape: shape, entry: "weights.layers[\(i)]")
        }
        return WeightMemory(baselineBytes: baseline, compressedBytes: compressed,
                            bitsPerWeight: count > 0 ? 8 * compressed / Double(count) : 0,  // DESIGN.md §4: 8·bytes/n
                            ratio: baseline > 0 ? 1 - compressed / baseline : 0)
    }

    /// Bytes of one matrix at `bits` (16: fp16, 2 per weight and no metadata; else the quantization scheme's bytes).
    static func weightBytes(bits: Int, groupSize: Int?, outlierFraction: Double, shape: MatrixShape, entry: String) throws -> Double {
        if bits == 16 { return 2 * Double(shape.count) }
        do {
            return try QuantizationScheme(bits: bits, groupSize: groupSize, outlierFraction: outlierFraction)
                .bytes(rows: shape.rows, cols: shape.cols)
        } catch {
            throw ConfigError(entry: entry, "\(error)")
        }
    }
}
