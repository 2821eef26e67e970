import TensorFiles

/// How RoPE pairs the channels of a head (DESIGN.md §4, "Perplexity").
public enum RopeStyle: String, Sendable, CaseIterable {
    /// Channels (2i, 2i+1) rotate together: llama.cpp's "norm" mode, the order llama GGUF files store
    /// Q/K rows in (the converter permutes them from the HF order).
    case adjacentPairs
    /// Channels (i, i + head_dim/2) rotate together: the HF (safetensors) llama order.
    case rotateHalf
}

/// The shape and constants of a llama-family model.
public struct LlamaConfiguration: Sendable, Equatable {
    public var layerCount: Int
    public var hiddenSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int
    public var feedForwardSize: Int
    public var vocabularySize: Int
    /// RMSNorm epsilon.
    public var rmsNormEpsilon: Float
    /// RoPE base frequency θ.
    public var ropeTheta: Double
    /// How the stored Q/K rows pair for RoPE.
    public var ropeStyle: RopeStyle

    /// Key/value width n_kv_heads · head_dim.
    public var kvDimension: Int { kvHeadCount * headDimension }
    /// Query width n_heads · head_dim.
    public var queryDimension: Int { headCount * headDimension }

    /// A configuration from explicit values.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` when the sizes are inconsistent.
    public init(layerCount: Int, hiddenSize: Int, headCount: Int, kvHeadCount: Int, headDimension: Int,
                feedForwardSize: Int, vocabularySize: Int, rmsNormEpsilon: Float, ropeTheta: Double,
                ropeStyle: RopeStyle) throws {
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension
        self.feedForwardSize = feedForwardSize
        self.vocabularySize = vocabularySize
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.ropeStyle = ropeStyle
        let sizes = [layerCount, hiddenSize, headCount, kvHeadCount, headDimension, feedForwardSize, vocabularySize]
        guard sizes.allSatisfy({ $0 > 0 && $0 < 1 << 24 }) else {
            throw InferenceError.invalidMetadata(key: "configuration", detail: "sizes must be positive: \(sizes)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw InferenceError.invalidMetadata(
                key: "configuration", detail: "\(headCount) heads are not a multiple of \(kvHeadCount) KV heads")
        }
        guard headDimension % 2 == 0 else {
            throw InferenceError.invalidMetadata(key: "configuration", detail: "odd head dimension \(headDimension)")
        }
        guard rmsNormEpsilon > 0, rmsNormEpsilon.isFinite, ropeTheta > 0, ropeTheta.isFinite else {
            throw InferenceError.invalidMetadata(key: "configuration", detail: "epsilon and RoPE theta must be positive")
        }
    }

    /// The configuration of a llama GGUF file from its metadata (`general.architecture` = `llama`,
    /// `llama.*` keys); Q/K rows in GGUF are stored for ``RopeStyle/adjacentPairs``.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` naming the missing or bad key.
    public init(ggufMetadata metadata: [String: MetadataValue]) throws {
        let archKey = "general.architecture"
        guard let arch = metadata[archKey]?.stringValue else {
            throw InferenceError.invalidMetadata(key: archKey, detail: "missing or not a string")
        }
        guard arch == "llama" else {
            throw InferenceError.invalidMetadata(key: archKey, detail: "\"\(arch)\" is not a llama-family model")
        }
        func int(_ suffix: String) throws -> Int {
            let key = "\(arch).\(suffix)"
            guard let v = metadata[key]?.intValue else {
                throw InferenceError.invalidMetadata(key: key, detail: "missing or not an integer")
            }
            return v
        }
        func double(_ suffix: String, default value: Double?) throws -> Double {
            let key = "\(arch).\(suffix)"
            if let v = metadata[key]?.doubleValue { return v }
            if let value { return value }
            throw InferenceError.invalidMetadata(key: key, detail: "missing or not a number")
        }
        let hidden = try int("embedding_length"), heads = try int("attention.head_count")
        let kvHeads = metadata["\(arch).attention.head_count_kv"] == nil ? heads : try int("attention.head_count_kv")
        guard heads > 0, hidden % heads == 0 else {
            throw InferenceError.invalidMetadata(key: "\(arch).attention.head_count", detail: "\(heads) does not divide \(hidden)")
        }
        let headDim = hidden / heads
        if metadata["\(arch).rope.dimension_count"] != nil {
            let ropeDims = try int("rope.dimension_count")
            guard ropeDims == headDim else {
                throw InferenceError.invalidMetadata(
                    key: "\(arch).rope.dimension_count", detail: "partial rotary (\(ropeDims) of \(headDim)) is not supported")
            }
        }
        var vocab = metadata["\(arch).vocab_size"]?.intValue
        if vocab == nil { vocab = metadata["tokenizer.ggml.tokens"]?.arrayValue?.count }
        guard let vocab else {
            throw InferenceError.invalidMetadata(key: "\(arch).vocab_size", detail: "missing, and no tokenizer.ggml.tokens")
        }
        try self.init(
            layerCount: try int("block_count"), hiddenSize: hidden, headCount: heads, kvHeadCount: kvHeads,
            headDimension: headDim, feedForwardSize: try int("feed_forward_length"), vocabularySize: vocab,
            rmsNormEpsilon: Float(try double("attention.layer_norm_rms_epsilon", default: nil)),
            ropeTheta: try double("rope.freq_base", default: 10_000), ropeStyle: .adjacentPairs)
    }

    /// The configuration of an HF transformers llama checkpoint from its config.json entries
    /// (`num_hidden_layers`, `hidden_size`, `num_attention_heads`, `num_key_value_heads`,
    /// `intermediate_size`, `vocab_size`, `rms_norm_eps`, `rope_theta`, optional `head_dim`);
    /// HF stores Q/K rows for ``RopeStyle/rotateHalf``.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` naming the missing or bad key.
    public init(huggingFaceConfig config: [String: MetadataValue]) throws {
        func int(_ key: String) throws -> Int {
            guard let v = config[key]?.intValue else {
                throw InferenceError.invalidMetadata(key: key, detail: "missing or not an integer")
            }
            return v
        }
        if let types = config["model_type"]?.stringValue, types != "llama" {
            throw InferenceError.invalidMetadata(key: "model_type", detail: "\"\(types)\" is not llama")
        }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        guard heads > 0 else { throw InferenceError.invalidMetadata(key: "num_attention_heads", detail: "must be positive") }
        let headDim = config["head_dim"] == nil ? hidden / heads : try int("head_dim")
        guard let eps = config["rms_norm_eps"]?.doubleValue else {
            throw InferenceError.invalidMetadata(key: "rms_norm_eps", detail: "missing or not a number")
        }
        try self.init(
            layerCount: try int("num_hidden_layers"), hiddenSize: hidden, headCount: heads,
            kvHeadCount: config["num_key_value_heads"] == nil ? heads : try int("num_key_value_heads"),
            headDimension: headDim, feedForwardSize: try int("intermediate_size"), vocabularySize: try int("vocab_size"),
            rmsNormEpsilon: Float(eps), ropeTheta: config["rope_theta"]?.doubleValue ?? 10_000, ropeStyle: .rotateHalf)
    }
}
