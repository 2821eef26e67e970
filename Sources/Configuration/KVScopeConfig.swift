import Foundation
import KVCompression
import TensorFiles

/// A kvscope config file, schema v1 (DESIGN.md §6): the model it was made for, a KV-cache plan
/// (per-layer K/V rank and bits), a weight bit plan, or both, and free-form metrics.
///
/// Read it with ``load(path:)`` (parses and checks every entry), check it against the model with
/// ``validate(against:)``, and write it with ``write(to:force:)`` (atomic; JSON, or YAML for
/// `.yaml`/`.yml` names). Writing then reading gives an equal value.
public struct KVScopeConfig: Sendable, Equatable {
    /// The `format` value of every config.
    public static let formatName = "kvscope-config"
    /// The schema version this build reads and writes.
    public static let formatVersion = 1

    /// The model the plan was made for.
    public var model: ModelReference
    /// The KV-cache plan, if any.
    public var kvCache: KVCacheSection?
    /// The weight bit plan, if any.
    public var weights: WeightsSection?
    /// Free-form measurements (an object): predicted errors, perplexities, timings.
    public var metrics: ConfigValue

    /// A config; at least one of `kvCache` and `weights` must be given for it to validate.
    public init(model: ModelReference, kvCache: KVCacheSection? = nil, weights: WeightsSection? = nil,
                metrics: ConfigValue = .object([])) {
        self.model = model
        self.kvCache = kvCache
        self.weights = weights
        self.metrics = metrics
    }
}

/// The `model` section: where the model is and what it is, so a config is never applied to another model.
public struct ModelReference: Sendable, Equatable {
    /// The model path as given to `tune` (relative paths resolve against the working directory,
    /// then the config's directory).
    public var path: String
    /// The architecture name (GGUF `general.architecture` or the HF `model_type`).
    public var architecture: String
    /// Number of transformer layers.
    public var nLayers: Int
    /// d, the hidden size.
    public var hiddenSize: Int
    /// d_kv = n_kv_heads × head_dim.
    public var dKV: Int
    /// Lower-case hex SHA-256 of the model file.
    public var sha256: String
    /// The sliding-window length of the layers in ``slidingLayers`` (Gemma 3); nil without one.
    /// Those layers' caches hold at most this many positions, in the memory model too.
    public var slidingWindow: Int?
    /// The layers (0-based, ascending) that attend through the sliding window.
    public var slidingLayers: [Int]

    /// A model reference.
    public init(path: String, architecture: String, nLayers: Int, hiddenSize: Int, dKV: Int, sha256: String,
                slidingWindow: Int? = nil, slidingLayers: [Int] = []) {
        self.slidingWindow = slidingWindow
        self.slidingLayers = slidingWindow == nil ? [] : slidingLayers.sorted()
        self.path = path
        self.architecture = architecture
        self.nLayers = nLayers
        self.hiddenSize = hiddenSize
        self.dKV = dKV
        self.sha256 = sha256
    }
}

/// The calibration statistics a plan's errors (and the `activations`/`asvd`/`fitted` bases) were
/// computed from: the text, and whether the statistics are a sample bundle's shipped file or a
/// capture of the text (docs/config.md, "Calibration provenance").
public struct CalibrationReference: Sendable, Equatable {
    /// Where the statistics came from.
    public enum Source: String, Sendable, CaseIterable {
        /// A sample bundle's shipped statistics file (compact: fp16 Grams, few sampled rows).
        case bundle
        /// A capture of the text with kvscope's capture settings (seed 0, sequences of at most
        /// 2048 tokens) and ``CalibrationReference/samples`` sampled rows.
        case capture
    }

    /// The text file as given (a path).
    public var text: String
    /// Lower-case hex SHA-256 of the file's bytes.
    public var sha256: String
    /// Tokens the model saw (BOS included when the tokenizer adds one).
    public var nTokens: Int
    /// Bundle or capture; nil in files written before the field existed (readers then take the
    /// bundle's statistics when the model opened is a bundle of this text, else capture).
    public var source: Source?
    /// The bundle directory as given, when the source is a bundle (relative paths resolve against
    /// the working directory, then the config's directory).
    public var bundle: String?
    /// Sampled token rows per layer in the statistics (nil: not recorded).
    public var samples: Int?

    /// A calibration reference.
    public init(text: String, sha256: String, nTokens: Int, source: Source? = nil, bundle: String? = nil, samples: Int? = nil) {
        self.text = text
        self.sha256 = sha256
        self.nTokens = nTokens
        self.source = source
        self.bundle = bundle
        self.samples = samples
    }

    /// How the record reads in a note: "the bundle Samples/smollm2 (64 rows)" or "a capture of T (256 rows)".
    public var sourceDescription: String {
        let rows = samples.map { " (\($0) sampled rows)" } ?? ""
        switch source {
        case .bundle: return "the bundle \(bundle ?? "?")\(rows)"
        case .capture: return "a capture of \(text)\(rows)"
        case nil: return "\(text) (source not recorded)"
        }
    }
}

/// One layer of a KV plan: the K and V branch settings.
public struct KVLayerEntry: Sendable, Equatable {
    /// The layer index, 0…n_layers−1.
    public var layer: Int
    /// Rank and bits of the compressed K branch.
    public var k: BranchSetting
    /// Rank and bits of the compressed V branch.
    public var v: BranchSetting

    /// A layer entry.
    public init(layer: Int, k: BranchSetting, v: BranchSetting) {
        self.layer = layer
        self.k = k
        self.v = v
    }

    /// K and V together, as the memory model takes them.
    public var setting: LayerKVSetting { LayerKVSetting(k: k, v: v) }
}

/// KV-cache memory at the plan's context length (DESIGN.md §4, "Bi-branch cache").
public struct KVMemory: Sendable, Equatable {
    /// fp16 K and V of every layer: n_layers · 2 · L · d_kv · 2.
    public var baselineBytes: Double
    /// kvscope's bytes (window exact, the rest compressed).
    public var compressedBytes: Double
    /// The effective ratio 1 − compressed/baseline.
    public var ratio: Double
    /// The nominal ratio 1 − Σ(r_k·b_k + r_v·b_v)/(n_layers·2·d_kv·16).
    public var nominalRatio: Double

    /// A memory summary.
    public init(baselineBytes: Double, compressedBytes: Double, ratio: Double, nominalRatio: Double) {
        self.baselineBytes = baselineBytes
        self.compressedBytes = compressedBytes
        self.ratio = ratio
        self.nominalRatio = nominalRatio
    }
}

/// The `kv_cache` section: a bi-branch cache plan.
public struct KVCacheSection: Sendable, Equatable {
    /// How the low-rank factors are made.
    public var basis: BasisKind
    /// w, tokens kept exact.
    public var window: Int
    /// g, the quantization group along the r channels (nil: one group per token).
    public var groupSize: Int?
    /// L, the context length the memory figures are for.
    public var contextLength: Int
    /// The calibration text (required for the `activations`, `asvd` and `fitted` bases).
    public var calibration: CalibrationReference?
    /// One entry per layer.
    public var layers: [KVLayerEntry]
    /// Predicted memory; always equal to ``KVScopeConfig/recomputedKVMemory()`` in a valid config.
    public var memory: KVMemory

    /// A KV section.
    public init(basis: BasisKind, window: Int, groupSize: Int?, contextLength: Int,
                calibration: CalibrationReference?, layers: [KVLayerEntry], memory: KVMemory) {
        self.basis = basis
        self.window = window
        self.groupSize = groupSize
        self.contextLength = contextLength
        self.calibration = calibration
        self.layers = layers
        self.memory = memory
    }
}

/// One weight matrix of a weight plan.
public struct WeightLayerEntry: Sendable, Equatable {
    /// The tensor's name in the model file (e.g. `blk.0.attn_q.weight`).
    public var tensor: String
    /// Bits per weight: 2…8, or 16 for fp16 (not quantized).
    public var bits: Int
    /// p, the fraction of largest |w| kept in fp16 outside the groups (DESIGN.md §4).
    public var outlierFraction: Double

    /// A weight entry.
    public init(tensor: String, bits: Int, outlierFraction: Double) {
        self.tensor = tensor
        self.bits = bits
        self.outlierFraction = outlierFraction
    }
}

/// Weight memory of the listed tensors.
public struct WeightMemory: Sendable, Equatable {
    /// Their bytes in fp16 (2 per weight).
    public var baselineBytes: Double
    /// Their bytes as planned (codes, group metadata, outlier tables; DESIGN.md §4).
    public var compressedBytes: Double
    /// 8 · compressed / weights.
    public var bitsPerWeight: Double
    /// 1 − compressed/baseline.
    public var ratio: Double

    /// A memory summary.
    public init(baselineBytes: Double, compressedBytes: Double, bitsPerWeight: Double, ratio: Double) {
        self.baselineBytes = baselineBytes
        self.compressedBytes = compressedBytes
        self.bitsPerWeight = bitsPerWeight
        self.ratio = ratio
    }
}

/// The `weights` section: per-matrix bits (LLM-MQ style).
public struct WeightsSection: Sendable, Equatable {
    /// g, the group along the input dimension (nil: per output channel).
    public var groupSize: Int?
    /// One entry per planned matrix.
    public var layers: [WeightLayerEntry]
    /// Predicted memory; checked against the model's shapes by ``KVScopeConfig/validate(against:)``.
    public var memory: WeightMemory

    /// A weights section.
    public init(groupSize: Int?, layers: [WeightLayerEntry], memory: WeightMemory) {
        self.groupSize = groupSize
        self.layers = layers
        self.memory = memory
    }
}

/// How a config file is written: by its name, YAML for `.yaml`/`.yml`, JSON otherwise.
public enum ConfigFormat: String, Sendable, CaseIterable {
    case json, yaml

    /// The format a file name implies.
    public init(path: String) {
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        self = ext == "yaml" || ext == "yml" ? .yaml : .json
    }
}
