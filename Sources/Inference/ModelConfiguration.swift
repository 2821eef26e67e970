import TensorFiles

/// How RoPE pairs the channels of a head (DESIGN.md §4, "Perplexity").
public enum RopeStyle: String, Sendable, CaseIterable {
    /// Channels (2i, 2i+1) rotate together: llama.cpp's "norm" mode, the order llama GGUF files store
    /// Q/K rows in (the converter permutes them from the HF order).
    case adjacentPairs
    /// Channels (i, i + head_dim/2) rotate together: the HF order, and llama.cpp's NEOX mode
    /// (qwen2 and gemma3 GGUFs keep it).
    case rotateHalf
}

/// The shape and constants of one model: its family's ``Architecture`` plus the numbers its file
/// gives (sizes, epsilon, RoPE bases and scaling, the sliding window, the attention scale).
public struct ModelConfiguration: Sendable, Equatable {
    /// The family: which norms, biases, activation and attention pattern the forward pass uses.
    public var architecture: Architecture
    public var layerCount: Int
    public var hiddenSize: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDimension: Int
    public var feedForwardSize: Int
    public var vocabularySize: Int
    /// RMSNorm epsilon.
    public var rmsNormEpsilon: Float
    /// RoPE base frequency θ of global layers.
    public var ropeTheta: Double
    /// RoPE base of sliding-window layers (equal to ``ropeTheta`` when there are none).
    public var localRopeTheta: Double
    /// Linear RoPE scaling of global layers: positions are divided by this factor (1: none).
    public var ropeScalingFactor: Double
    /// How the stored Q/K rows pair for RoPE.
    public var ropeStyle: RopeStyle
    /// The sliding-window length W of sliding layers: a query at t sees keys s with t − s < W.
    public var slidingWindow: Int?
    /// Per layer, whether it uses the sliding window (all false without one).
    public var slidingLayers: [Bool]
    /// The softmax scale of attention scores (1/√head_dim unless the model says otherwise).
    public var attentionScale: Float
    /// The context length the model was trained for, when the file says.
    public var contextLength: Int?

    /// Key/value width n_kv_heads · head_dim.
    public var kvDimension: Int { kvHeadCount * headDimension }
    /// Query width n_heads · head_dim.
    public var queryDimension: Int { headCount * headDimension }
    /// The embedding multiplier: √d for families that scale embeddings, else 1.
    public var embeddingScale: Float { architecture.scalesEmbedding ? Float(Double(hiddenSize).squareRoot()) : 1 }

    /// Whether layer `layer` attends through the sliding window.
    public func isSlidingWindowLayer(_ layer: Int) -> Bool {
        slidingWindow != nil && layer >= 0 && layer < slidingLayers.count && slidingLayers[layer]
    }

    /// The RoPE base of layer `layer`.
    public func ropeTheta(layer: Int) -> Double { isSlidingWindowLayer(layer) ? localRopeTheta : ropeTheta }

    /// A configuration from explicit values.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` when the sizes are inconsistent.
    public init(architecture: Architecture = .llama, layerCount: Int, hiddenSize: Int, headCount: Int, kvHeadCount: Int,
                headDimension: Int, feedForwardSize: Int, vocabularySize: Int, rmsNormEpsilon: Float, ropeTheta: Double,
                ropeStyle: RopeStyle, localRopeTheta: Double? = nil, ropeScalingFactor: Double = 1,
                slidingWindow: Int? = nil, slidingLayers: [Bool]? = nil, attentionScale: Float? = nil,
                contextLength: Int? = nil) throws {
        self.architecture = architecture
        self.layerCount = layerCount
        self.hiddenSize = hiddenSize
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension
        self.feedForwardSize = feedForwardSize
        self.vocabularySize = vocabularySize
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.localRopeTheta = localRopeTheta ?? ropeTheta
        self.ropeScalingFactor = ropeScalingFactor
        self.ropeStyle = ropeStyle
        self.slidingWindow = slidingWindow
        self.attentionScale = attentionScale ?? 1 / Float(Double(headDimension).squareRoot())
        self.contextLength = contextLength
        let sizes = [layerCount, hiddenSize, headCount, kvHeadCount, headDimension, feedForwardSize, vocabularySize]
        guard sizes.allSatisfy({ $0 > 0 && $0 < 1 << 24 }) else {
            throw InferenceError.invalidMetadata(key: "configuration", detail: "sizes must be positive: \(sizes)")
        }
        self.slidingLayers = slidingLayers
            ?? (slidingWindow == nil ? [] : (0..<layerCount).map { architecture.isSlidingWindowLayer($0) })
        guard headCount % kvHeadCount == 0 else {
            throw InferenceError.invalidMetadata(
                key: "configuration", detail: "\(headCount) heads are not a multiple of \(kvHeadCount) KV heads")
        }
        guard headDimension % 2 == 0 else {
            throw InferenceError.invalidMetadata(key: "configuration", detail: "odd head dimension \(headDimension)")
        }
        guard rmsNormEpsilon > 0, rmsNormEpsilon.isFinite, ropeTheta > 0, ropeTheta.isFinite,
              self.localRopeTheta > 0, self.localRopeTheta.isFinite else {
            throw InferenceError.invalidMetadata(key: "configuration", detail: "epsilon and RoPE bases must be positive")
        }
        guard ropeScalingFactor >= 1, ropeScalingFactor.isFinite else {
            throw InferenceError.invalidMetadata(key: "rope scaling factor", detail: "\(ropeScalingFactor) is not ≥ 1")
        }
        guard self.attentionScale > 0, self.attentionScale.isFinite else {
            throw InferenceError.invalidMetadata(key: "attention scale", detail: "must be positive")
        }
        if let w = slidingWindow, w <= 0 {
            throw InferenceError.invalidMetadata(key: "sliding_window", detail: "\(w) is not positive")
        }
        guard self.slidingLayers.isEmpty || self.slidingLayers.count == layerCount else {
            throw InferenceError.invalidMetadata(
                key: "layer_types", detail: "\(self.slidingLayers.count) entries for \(layerCount) layers")
        }
    }

    /// The configuration of a GGUF file from its metadata (`general.architecture` one of
    /// ``Architecture/known``, its `ARCH.*` keys). Q/K rows pair as the family's converter left them.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` naming the missing, bad or
    ///   unimplemented key.
    public init(ggufMetadata metadata: [String: MetadataValue]) throws {
        let archKey = "general.architecture"
        guard let name = metadata[archKey]?.stringValue else {
            throw InferenceError.invalidMetadata(key: archKey, detail: "missing or not a string")
        }
        guard let family = Architecture.gguf(name) else {
            throw InferenceError.invalidMetadata(
                key: archKey, detail: "\"\(name)\" is not a family kvscope runs (\(Architecture.knownNames))")
        }
        func key(_ suffix: String) -> String { "\(name).\(suffix)" }
        func int(_ suffix: String) throws -> Int {
            guard let v = metadata[key(suffix)]?.intValue else {
                throw InferenceError.invalidMetadata(key: key(suffix), detail: "missing or not an integer")
            }
            return v
        }
        func optionalInt(_ suffix: String) throws -> Int? { metadata[key(suffix)] == nil ? nil : try int(suffix) }
        func double(_ suffix: String) throws -> Double? {
            guard let v = metadata[key(suffix)] else { return nil }
            guard let d = v.doubleValue else {
                throw InferenceError.invalidMetadata(key: key(suffix), detail: "not a number")
            }
            return d
        }
        let hidden = try int("embedding_length"), heads = try int("attention.head_count")
        let kvHeads = try optionalInt("attention.head_count_kv") ?? heads
        guard heads > 0 else { throw InferenceError.invalidMetadata(key: key("attention.head_count"), detail: "must be positive") }
        var headDim = try optionalInt("attention.key_length")
        if headDim == nil {
            guard hidden % heads == 0 else {
                throw InferenceError.invalidMetadata(key: key("attention.head_count"), detail: "\(heads) does not divide \(hidden)")
            }
            headDim = hidden / heads
        }
        let hd = headDim ?? 0
        if let valueLength = try optionalInt("attention.value_length"), valueLength != hd {
            throw InferenceError.invalidMetadata(
                key: key("attention.value_length"), detail: "\(valueLength) differs from the key length \(hd): not supported")
        }
        if let ropeDims = try optionalInt("rope.dimension_count"), ropeDims != hd {
            throw InferenceError.invalidMetadata(
                key: key("rope.dimension_count"), detail: "partial rotary (\(ropeDims) of \(hd)) is not supported")
        }
        var scaling = 1.0
        if let type = metadata[key("rope.scaling.type")] {
            switch type.stringValue {
            case "none"?: break
            case "linear"?: scaling = try double("rope.scaling.factor") ?? 1
            default:
                throw InferenceError.invalidMetadata(
                    key: key("rope.scaling.type"), detail: "\(type.stringValue ?? "?") scaling is not implemented (only linear)")
            }
        }
        for unsupported in ["attn_logit_softcapping", "final_logit_softcapping"] where metadata[key(unsupported)] != nil {
            throw InferenceError.invalidMetadata(key: key(unsupported), detail: "logit soft-capping is not implemented")
        }
        var vocab = try optionalInt("vocab_size")
        if vocab == nil { vocab = metadata["tokenizer.ggml.tokens"]?.arrayValue?.count }
        guard let vocab else {
            throw InferenceError.invalidMetadata(key: key("vocab_size"), detail: "missing, and no tokenizer.ggml.tokens")
        }
        let window = family.slidingWindowPeriod == nil ? nil : try optionalInt("attention.sliding_window")
        guard family.slidingWindowPeriod == nil || window != nil else {
            throw InferenceError.invalidMetadata(key: key("attention.sliding_window"), detail: "missing for a \(name) model")
        }
        guard let eps = try double("attention.layer_norm_rms_epsilon") else {
            throw InferenceError.invalidMetadata(key: key("attention.layer_norm_rms_epsilon"), detail: "missing or not a number")
        }
        let theta = try double("rope.freq_base") ?? 10_000
        try self.init(
            architecture: family, layerCount: try int("block_count"), hiddenSize: hidden, headCount: heads,
            kvHeadCount: kvHeads, headDimension: hd, feedForwardSize: try int("feed_forward_length"),
            vocabularySize: vocab, rmsNormEpsilon: Float(eps), ropeTheta: theta,
            ropeStyle: family.ggufPermutesQK ? .adjacentPairs : .rotateHalf,
            localRopeTheta: window == nil ? nil : (try double("rope.freq_base_swa") ?? family.defaultLocalRopeBase),
            ropeScalingFactor: scaling, slidingWindow: window,
            attentionScale: try double("attention.scale").map(Float.init),
            contextLength: try optionalInt("context_length"))
    }

    /// The configuration of an HF transformers checkpoint from its flattened config.json
    /// (`model_type` one of the known families' types). HF stores Q/K rows for ``RopeStyle/rotateHalf``.
    ///
    /// A field the forward pass does not implement is an error that names it, never ignored:
    /// `rope_scaling` other than linear, an activation other than the family's, attention or MLP
    /// biases on llama, Qwen2's `use_sliding_window`, logit soft-capping.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` naming the missing, bad or unimplemented key.
    public init(huggingFaceConfig config: [String: MetadataValue]) throws {
        func int(_ key: String) throws -> Int {
            guard let v = config[key]?.intValue else {
                throw InferenceError.invalidMetadata(key: key, detail: "missing or not an integer")
            }
            return v
        }
        func optionalInt(_ key: String) throws -> Int? { config[key] == nil ? nil : try int(key) }
        func number(_ keys: String...) throws -> Double? {
            for key in keys {
                guard let v = config[key] else { continue }
                guard let d = v.doubleValue else { throw InferenceError.invalidMetadata(key: key, detail: "not a number") }
                return d
            }
            return nil
        }
        func isTrue(_ key: String) -> Bool { config[key]?.boolValue ?? false }
        guard let type = config["model_type"]?.stringValue else {
            throw InferenceError.invalidMetadata(key: "model_type", detail: "missing or not a string")
        }
        guard let family = Architecture.huggingFace(modelType: type) else {
            throw InferenceError.invalidMetadata(
                key: "model_type", detail: "\"\(type)\" is not a family kvscope runs (\(Architecture.knownNames))")
        }
        let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
        guard heads > 0 else { throw InferenceError.invalidMetadata(key: "num_attention_heads", detail: "must be positive") }
        let headDim = try optionalInt("head_dim") ?? hidden / heads
        guard let eps = try number("rms_norm_eps") else {
            throw InferenceError.invalidMetadata(key: "rms_norm_eps", detail: "missing or not a number")
        }
        // The activation the config names must be the family's.
        let expected = family.activation == .silu ? ["silu", "swish"] : ["gelu_pytorch_tanh"]
        for key in ["hidden_act", "hidden_activation"] {
            if let act = config[key]?.stringValue, !expected.contains(act) {
                throw InferenceError.invalidMetadata(
                    key: key, detail: "\"\(act)\" is not implemented for \(family.name) (expected \(expected[0]))")
            }
        }
        if !family.qkvBias, isTrue("attention_bias") {
            throw InferenceError.invalidMetadata(key: "attention_bias", detail: "attention biases are not implemented for \(family.name)")
        }
        if isTrue("mlp_bias") { throw InferenceError.invalidMetadata(key: "mlp_bias", detail: "MLP biases are not implemented") }
        if isTrue("use_sliding_window") {
            throw InferenceError.invalidMetadata(key: "use_sliding_window", detail: "Qwen2-style sliding windows are not implemented")
        }
        for key in ["final_logit_softcapping", "attn_logit_softcapping"] where config[key] != nil {
            throw InferenceError.invalidMetadata(key: key, detail: "logit soft-capping is not implemented")
        }
        // RoPE: transformers < 5 writes rope_theta and rope_scaling; 5.x writes rope_parameters,
        // per attention type when the model has two.
        var scaling = 1.0
        for prefix in ["rope_scaling", "rope_parameters", "rope_parameters.full_attention"] {
            guard let kind = (config["\(prefix).rope_type"] ?? config["\(prefix).type"])?.stringValue else { continue }
            switch kind {
            case "default": break
            case "linear": scaling = try number("\(prefix).factor") ?? 1
            default:
                throw InferenceError.invalidMetadata(
                    key: "\(prefix).rope_type", detail: "\"\(kind)\" RoPE scaling is not implemented (only linear)")
            }
        }
        if let kind = config["rope_parameters.sliding_attention.rope_type"]?.stringValue, kind != "default" {
            throw InferenceError.invalidMetadata(
                key: "rope_parameters.sliding_attention.rope_type", detail: "\"\(kind)\" RoPE scaling is not implemented for sliding layers")
        }
        let theta = try number("rope_theta", "rope_parameters.rope_theta", "rope_parameters.full_attention.rope_theta") ?? 10_000
        let layers = try int("num_hidden_layers")
        var window: Int?, sliding: [Bool]?, localTheta: Double?
        if family.slidingWindowPeriod != nil {
            guard let w = try optionalInt("sliding_window") else {
                throw InferenceError.invalidMetadata(key: "sliding_window", detail: "missing for a \(family.name) model")
            }
            window = w
            if let types = config["layer_types"]?.arrayValue {
                sliding = try types.enumerated().map { i, t in
                    switch t.stringValue {
                    case "sliding_attention"?: return true
                    case "full_attention"?: return false
                    default:
                        throw InferenceError.invalidMetadata(key: "layer_types", detail: "entry \(i) is not sliding_attention or full_attention")
                    }
                }
            } else if let period = try optionalInt("sliding_window_pattern") {
                guard period > 0 else { throw InferenceError.invalidMetadata(key: "sliding_window_pattern", detail: "must be positive") }
                sliding = (0..<layers).map { ($0 + 1) % period != 0 }
            }
            localTheta = try number("rope_local_base_freq", "rope_parameters.sliding_attention.rope_theta")
                ?? family.defaultLocalRopeBase
        }
        let scale = try number("query_pre_attn_scalar").map { Float(1 / $0.squareRoot()) }
        try self.init(
            architecture: family, layerCount: layers, hiddenSize: hidden, headCount: heads,
            kvHeadCount: try optionalInt("num_key_value_heads") ?? heads,
            headDimension: headDim, feedForwardSize: try int("intermediate_size"), vocabularySize: try int("vocab_size"),
            rmsNormEpsilon: Float(eps), ropeTheta: theta, ropeStyle: .rotateHalf, localRopeTheta: localTheta,
            ropeScalingFactor: scaling, slidingWindow: window, slidingLayers: sliding, attentionScale: scale,
            contextLength: try optionalInt("max_position_embeddings"))
    }
}
