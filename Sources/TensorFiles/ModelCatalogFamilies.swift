/// Name patterns and hyper-parameter keys of the families ``ModelCatalog`` recognizes.

/// What a tensor name says about the tensor.
struct NameParse: Equatable {
    var layer: Int?
    var role: TensorRole
    var parameter: TensorParameter
    /// A fused q/k/v tensor (GPT-2 `c_attn`, GGUF `attn_qkv`) to be split.
    var fusedQKV = false
    /// Stored [in, out] (GPT-2 Conv1D weight).
    var transposed = false
}

extension ModelCatalog {
    /// Picks the family: GGUF metadata first, then the tensor names (config.json only names the architecture).
    static func recognize(tensors: [TensorInfo], metadata: [String: MetadataValue]) -> ModelFamily {
        if metadata["general.architecture"]?.stringValue != nil { return .gguf }
        var votes: [ModelFamily: Int] = [:]
        for t in tensors {
            let n = t.name
            if n.contains(".self_attn.") && n.contains("_proj.") || n.hasSuffix("embed_tokens.weight") {
                votes[.llama, default: 0] += 1
            } else if n.contains(".attention.self.") || n.contains("embeddings.word_embeddings") {
                votes[.bert, default: 0] += 1
            } else if n.contains(".attn.c_attn.") || n.hasPrefix("h.") && n.contains(".attn.c_attn") || n.hasSuffix("wte.weight") {
                votes[.gpt2, default: 0] += 1
            }
        }
        return votes.max { $0.value < $1.value }?.key ?? .unknown
    }

    /// The last component as a parameter kind.
    static func parameterKind(_ last: Substring) -> TensorParameter {
        switch last {
        case "weight", "gamma": return .weight
        case "bias", "beta": return .bias
        default: return .other
        }
    }

    /// Splits `name` at the block index that follows `marker` (e.g. `layers`, `layer`, `h`, `blk`):
    /// returns the layer and the components after it, or nil when there is no such block.
    static func splitAtBlock(_ parts: [Substring], marker: Substring) -> (layer: Int, rest: [Substring])? {
        guard parts.count >= 3 else { return nil }
        for i in 0..<(parts.count - 2) where parts[i] == marker {
            if let layer = Int(parts[i + 1]), layer >= 0 { return (layer, Array(parts[(i + 2)...])) }
        }
        return nil
    }

    static func parseName(_ name: String, family: ModelFamily) -> NameParse {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        let kind = parts.last.map(parameterKind) ?? .other
        let module = parts.count >= 2 ? parts[parts.count - 2] : (parts.first ?? "")
        func other(_ layer: Int? = nil) -> NameParse { NameParse(layer: layer, role: .other, parameter: kind) }

        switch family {
        case .unknown:
            return other()

        case .gguf:
            if let (layer, rest) = splitAtBlock(parts, marker: "blk") {
                guard let base = rest.first else { return other(layer) }
                let role: TensorRole
                switch base {
                case "attn_q": role = .q
                case "attn_k": role = .k
                case "attn_v": role = .v
                case "attn_output": role = .o
                case "attn_qkv": return NameParse(layer: layer, role: .other, parameter: kind, fusedQKV: true)
                case "ffn_gate": role = .gate
                case "ffn_up": role = .up
                case "ffn_down": role = .down
                case "attn_norm", "ffn_norm", "attn_q_norm", "attn_k_norm", "attn_output_norm",
                     "layer_output_norm", "post_attention_norm", "post_ffw_norm", "attn_norm_2":
                    role = .norm
                default: role = .other
                }
                return NameParse(layer: layer, role: role, parameter: kind)
            }
            switch parts.first {
            case "token_embd": return NameParse(layer: nil, role: .embed, parameter: kind)
            case "output_norm", "token_embd_norm": return NameParse(layer: nil, role: .norm, parameter: kind)
            case "output": return NameParse(layer: nil, role: .output, parameter: kind)
            default: return other()
            }

        case .llama:
            if let (layer, rest) = splitAtBlock(parts, marker: "layers") {
                let m = rest.count >= 2 ? rest[rest.count - 2] : ""
                let role: TensorRole
                switch m {
                case "q_proj": role = .q
                case "k_proj": role = .k
                case "v_proj": role = .v
                case "o_proj": role = .o
                case "gate_proj": role = .gate
                case "up_proj": role = .up
                case "down_proj": role = .down
                case "input_layernorm", "post_attention_layernorm", "q_norm", "k_norm",
                     "pre_feedforward_layernorm", "post_feedforward_layernorm":
                    role = .norm
                default: role = .other
                }
                return NameParse(layer: layer, role: role, parameter: kind)
            }
            switch module {
            case "embed_tokens": return NameParse(layer: nil, role: .embed, parameter: kind)
            case "norm": return NameParse(layer: nil, role: .norm, parameter: kind)
            case "lm_head": return NameParse(layer: nil, role: .output, parameter: kind)
            default: return other()
            }

        case .bert:
            if let (layer, rest) = splitAtBlock(parts, marker: "layer") {
                let path = rest.dropLast().joined(separator: ".")
                let role: TensorRole
                switch path {
                case "attention.self.query": role = .q
                case "attention.self.key": role = .k
                case "attention.self.value": role = .v
                case "attention.output.dense": role = .o
                case "intermediate.dense": role = .up
                case "output.dense": role = .down
                case "attention.output.LayerNorm", "output.LayerNorm": role = .norm
                default: role = .other
                }
                return NameParse(layer: layer, role: role, parameter: kind)
            }
            if name.contains("embeddings.word_embeddings.") { return NameParse(layer: nil, role: .embed, parameter: kind) }
            if name.contains("embeddings.LayerNorm.") { return NameParse(layer: nil, role: .norm, parameter: kind) }
            return other()

        case .gpt2:
            if let (layer, rest) = splitAtBlock(parts, marker: "h") {
                let path = rest.dropLast().joined(separator: ".")
                let conv = kind == .weight
                switch path {
                case "attn.c_attn": return NameParse(layer: layer, role: .other, parameter: kind, fusedQKV: true, transposed: conv)
                case "attn.c_proj": return NameParse(layer: layer, role: .o, parameter: kind, transposed: conv)
                case "mlp.c_fc": return NameParse(layer: layer, role: .up, parameter: kind, transposed: conv)
                case "mlp.c_proj": return NameParse(layer: layer, role: .down, parameter: kind, transposed: conv)
                case "ln_1", "ln_2": return NameParse(layer: layer, role: .norm, parameter: kind)
                default: return other(layer)  // attn.bias / attn.masked_bias are mask buffers
                }
            }
            switch module {
            case "wte": return NameParse(layer: nil, role: .embed, parameter: kind)
            case "ln_f": return NameParse(layer: nil, role: .norm, parameter: kind)
            case "lm_head": return NameParse(layer: nil, role: .output, parameter: kind)
            default: return other()
            }
        }
    }

    /// The largest layer count, width, head count or vocabulary a model may declare (2^24): far above
    /// any real model, and small enough that products of two never overflow and no reservation
    /// sized by one of them is huge.
    static let largestHyperparameter = 1 << 24

    /// Reads the hyper-parameters for a recognized family.
    static func hyperparameters(family: ModelFamily, metadata md: [String: MetadataValue],
                                parsed: [(TensorInfo, NameParse)], path: String) throws -> ModelHyperparameters {
        func int(_ key: String) -> Int? { md[key]?.intValue }
        func double(_ key: String) -> Double? { md[key]?.doubleValue }
        func weight(_ role: TensorRole) -> TensorInfo? {
            parsed.first { $0.1.role == role && $0.1.parameter == .weight && ($0.1.layer == nil) == (role == .embed || role == .output) }?.0
        }
        func layerWeightRows(_ role: TensorRole) -> Int? {
            guard let t = parsed.first(where: { $0.1.role == role && $0.1.parameter == .weight && $0.1.layer != nil })?.0 else { return nil }
            return t.shape.first
        }
        let countedLayers = (parsed.compactMap { $0.1.layer }.max() ?? -1) + 1
        let source = family == .gguf ? "GGUF metadata" : "config.json"
        func bounded(_ v: Int, _ key: String) throws -> Int {
            // A hostile count (2^62 layers, heads × head_dim overflowing) must not reach the products
            // and reservations below (DESIGN.md: sizes from a file never allocate beyond it).
            guard v <= largestHyperparameter else {
                throw TensorFileError(path: path, "\(key) \(v) is implausibly large (at most \(largestHyperparameter))", at: source)
            }
            return v
        }
        func required(_ value: Int?, _ key: String) throws -> Int {
            guard let v = value, v > 0 else {
                throw TensorFileError(path: path, family == .gguf || !md.isEmpty
                                      ? "\(source) has no positive \(key)"
                                      : "no config.json beside the file: \(key) is unknown", at: source)
            }
            return try bounded(v, key)
        }
        let architecture: String
        let nLayers: Int, hidden: Int, nHeads: Int, nKV: Int
        var headDim: Int?, vocab: Int?, context: Int?, ffn: Int?, theta: Double?, eps: Double?

        switch family {
        case .gguf:
            let arch = md["general.architecture"]?.stringValue ?? ""
            architecture = arch
            nLayers = try required(int("\(arch).block_count"), "\(arch).block_count")
            hidden = try required(int("\(arch).embedding_length"), "\(arch).embedding_length")
            nHeads = try required(int("\(arch).attention.head_count"), "\(arch).attention.head_count")
            nKV = int("\(arch).attention.head_count_kv") ?? nHeads
            headDim = int("\(arch).attention.key_length")
            if headDim == nil, let rows = layerWeightRows(.k), nKV > 0, rows % nKV == 0 { headDim = rows / nKV }
            headDim = headDim ?? int("\(arch).rope.dimension_count")
            vocab = int("\(arch).vocab_size") ?? md["tokenizer.ggml.tokens"]?.arrayValue?.count
            context = int("\(arch).context_length")
            ffn = int("\(arch).feed_forward_length")
            theta = double("\(arch).rope.freq_base") ?? (md["\(arch).rope.dimension_count"] != nil ? 10_000 : nil)
            eps = double("\(arch).attention.layer_norm_rms_epsilon") ?? double("\(arch).attention.layer_norm_epsilon")

        case .llama:
            architecture = md["model_type"]?.stringValue ?? "llama"
            nLayers = try required(int("num_hidden_layers") ?? (md.isEmpty && countedLayers > 0 ? countedLayers : nil), "num_hidden_layers")
            hidden = try required(int("hidden_size"), "hidden_size")
            nHeads = try required(int("num_attention_heads"), "num_attention_heads")
            nKV = int("num_key_value_heads") ?? nHeads
            headDim = int("head_dim")
            if headDim == nil, let rows = layerWeightRows(.k), nKV > 0, rows % nKV == 0 { headDim = rows / nKV }
            vocab = int("vocab_size")
            context = int("max_position_embeddings")
            ffn = int("intermediate_size")
            // transformers ≥ 5 writes `rope_parameters: {rope_theta, …}`; Gemma 3 one per attention
            // type, of which the full-attention base is the model's (GGUF `gemma3.rope.freq_base`).
            theta = double("rope_theta") ?? double("rope_parameters.rope_theta")
                ?? double("rope_parameters.full_attention.rope_theta") ?? 10_000
            eps = double("rms_norm_eps")

        case .bert:
            architecture = md["model_type"]?.stringValue ?? "bert"
            nLayers = try required(int("num_hidden_layers"), "num_hidden_layers")
            hidden = try required(int("hidden_size"), "hidden_size")
            nHeads = try required(int("num_attention_heads"), "num_attention_heads")
            nKV = nHeads
            vocab = int("vocab_size")
            context = int("max_position_embeddings")
            ffn = int("intermediate_size")
            eps = double("layer_norm_eps")

        case .gpt2:
            architecture = md["model_type"]?.stringValue ?? "gpt2"
            nLayers = try required(int("n_layer"), "n_layer")
            hidden = try required(int("n_embd"), "n_embd")
            nHeads = try required(int("n_head"), "n_head")
            nKV = nHeads
            vocab = int("vocab_size")
            context = int("n_positions") ?? int("n_ctx")
            ffn = int("n_inner") ?? 4 * hidden
            eps = double("layer_norm_epsilon")

        case .unknown:
            throw TensorFileError(path: path, "unrecognized architecture")
        }

        _ = try bounded(nKV, "n_kv_heads")
        if let f = ffn { _ = try bounded(f, "feed-forward length") }
        guard nKV > 0, nHeads % nKV == 0 else {
            throw TensorFileError(path: path, "\(nHeads) heads cannot share \(nKV) key/value heads (n_heads must be a multiple of n_kv_heads)",
                                  at: source)
        }
        if headDim == nil {
            guard hidden % nHeads == 0 else {
                throw TensorFileError(path: path, "head_dim is not given and hidden size \(hidden) is not a multiple of \(nHeads) heads",
                                      at: source)
            }
            headDim = hidden / nHeads
        }
        let embed = weight(.embed)
        let vocabSize = try required(vocab ?? embed?.shape.first, family == .gguf ? "vocab size" : "vocab_size")
        var hp = ModelHyperparameters(architecture: architecture, nLayers: nLayers, hiddenSize: hidden, nHeads: nHeads,
                                      nKVHeads: nKV, headDim: try required(headDim, "head_dim"), vocabSize: vocabSize,
                                      contextLength: context, ffnSize: ffn, ropeTheta: theta, normEps: eps,
                                      tiedEmbeddings: family != .bert && weight(.output) == nil)
        // Sliding-window layers, from the family's description and the file's window length.
        let described = family == .gguf ? Architecture.gguf(architecture)
            : family == .llama ? Architecture.huggingFace(modelType: architecture) : nil
        if let described, described.slidingWindowPeriod != nil,
           let window = family == .gguf ? int("\(architecture).attention.sliding_window") : int("sliding_window"), window > 0 {
            hp.slidingWindow = window
            if family == .llama, let types = md["layer_types"]?.arrayValue, types.count == nLayers {
                hp.slidingLayers = Set(types.indices.filter { types[$0].stringValue == "sliding_attention" })
            } else {
                hp.slidingLayers = Set((0..<nLayers).filter { described.isSlidingWindowLayer($0) })
            }
        }
        return hp
    }

    /// Checks a layer weight's shape against the hyper-parameters (q, k, v, o; fused parts included).
    static func checkShape(_ e: CatalogEntry, _ hp: ModelHyperparameters, path: String) throws {
        guard e.layer != nil else { return }
        let expected: [Int]
        switch (e.role, e.parameter) {
        case (.q, .weight): expected = [hp.qDim, hp.hiddenSize]
        case (.k, .weight), (.v, .weight): expected = [hp.kvDim, hp.hiddenSize]
        case (.o, .weight): expected = [hp.hiddenSize, hp.qDim]
        case (.q, .bias): expected = [hp.qDim]
        case (.k, .bias), (.v, .bias): expected = [hp.kvDim]
        default: return
        }
        guard e.shape == expected else {
            let what = e.role == .q || e.role == .o ? "n_heads×head_dim = \(hp.nHeads)×\(hp.headDim)"
                                                    : "n_kv_heads×head_dim = \(hp.nKVHeads)×\(hp.headDim)"
            throw TensorFileError(path: path, "\(e.role.rawValue) \(e.parameter.rawValue) has shape \(e.shape), expected \(expected) (\(what), hidden \(hp.hiddenSize))",
                                  at: "tensor \(e.name)")
        }
    }
}
