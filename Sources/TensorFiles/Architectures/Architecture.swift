/// What distinguishes one decoder-only transformer family from another: the tensor names, where
/// the norms and biases are, how RoPE pairs channels, the attention pattern, the MLP activation.
///
/// One small file per family (``Architecture/llama``, ``Architecture/qwen2``, ``Architecture/gemma3``)
/// builds its description; the loaders, the forward pass, the catalog, the memory model and the
/// exporters read it instead of comparing architecture names. The numbers of a particular model
/// (sizes, RoPE bases, the sliding-window length) come from its file: see `ModelConfiguration` in
/// the Inference module.
public struct Architecture: Sendable, Equatable, CustomStringConvertible {
    /// The GGUF `general.architecture` value (also the name kvscope prints).
    public var name: String
    /// The config.json `model_type` values of this family.
    public var huggingFaceModelTypes: [String]
    /// Whether llama.cpp's converter permuted the Q/K rows of a GGUF so that RoPE rotates adjacent
    /// channel pairs (llama); otherwise GGUF keeps the HF rotate-half order (qwen2, gemma3).
    public var ggufPermutesQK: Bool
    /// q, k and v projections carry biases (Qwen2). The output projection never does here.
    public var qkvBias: Bool
    /// Per-head RMSNorm of Q and K after the projection, before RoPE (Gemma 3, Qwen3).
    public var qkNorm: Bool
    /// RMSNorms also after attention and after the MLP, before each residual add (Gemma 2/3).
    public var sandwichNorms: Bool
    /// HF checkpoints store RMSNorm weights w and apply (offset + w); GGUF files already hold
    /// offset + w (llama.cpp's converter adds it). 1 for Gemma, 0 otherwise.
    public var huggingFaceNormOffset: Float
    /// Token embeddings are multiplied by √d before the first layer (Gemma).
    public var scalesEmbedding: Bool
    /// The MLP's gate activation: act(gate(x)) · up(x).
    public var activation: Activation
    /// Sliding-window attention: every `period`-th layer (1-based) attends to the whole context, the
    /// others only to the last `sliding_window` positions (Gemma 3: 6). Nil: every layer is global.
    public var slidingWindowPeriod: Int?
    /// The RoPE base of sliding-window layers when the file does not say (Gemma 3: 10 000).
    public var defaultLocalRopeBase: Double?
    /// Whether the tokenizer prepends BOS when the file does not say.
    public var addsBOSByDefault: Bool
    /// Tensor names by role, GGUF and HF.
    public var names: TensorNames

    public enum Activation: String, Sendable, Equatable {
        /// x·σ(x) (SwiGLU).
        case silu
        /// The tanh approximation of GELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (GeGLU).
        case geluTanh
    }

    /// The roles of a block's tensors.
    public enum Role: String, Sendable, CaseIterable {
        case attentionNorm, query, key, value, output, queryBias, keyBias, valueBias, queryNorm, keyNorm
        case postAttentionNorm, feedForwardNorm, gate, up, down, postFeedForwardNorm
    }

    /// Tensor names of the whole model and of block N by role.
    public struct TensorNames: Sendable, Equatable {
        /// HF module path of block N's tensor of each role, after `model.layers.N.`.
        public var huggingFace: [Role: String]
        /// GGUF name of block N's tensor of each role, after `blk.N.`.
        public var gguf: [Role: String]

        /// The names every family here shares; a family file changes what differs.
        public static let common = TensorNames(
            huggingFace: [.attentionNorm: "input_layernorm.weight", .query: "self_attn.q_proj.weight",
                          .key: "self_attn.k_proj.weight", .value: "self_attn.v_proj.weight",
                          .output: "self_attn.o_proj.weight", .queryBias: "self_attn.q_proj.bias",
                          .keyBias: "self_attn.k_proj.bias", .valueBias: "self_attn.v_proj.bias",
                          .queryNorm: "self_attn.q_norm.weight", .keyNorm: "self_attn.k_norm.weight",
                          .feedForwardNorm: "post_attention_layernorm.weight", .gate: "mlp.gate_proj.weight",
                          .up: "mlp.up_proj.weight", .down: "mlp.down_proj.weight"],
            gguf: [.attentionNorm: "attn_norm.weight", .query: "attn_q.weight", .key: "attn_k.weight",
                   .value: "attn_v.weight", .output: "attn_output.weight", .queryBias: "attn_q.bias",
                   .keyBias: "attn_k.bias", .valueBias: "attn_v.bias", .queryNorm: "attn_q_norm.weight",
                   .keyNorm: "attn_k_norm.weight", .postAttentionNorm: "post_attention_norm.weight",
                   .feedForwardNorm: "ffn_norm.weight", .gate: "ffn_gate.weight", .up: "ffn_up.weight",
                   .down: "ffn_down.weight", .postFeedForwardNorm: "post_ffw_norm.weight"])

        /// Whole-model tensors.
        public static let ggufEmbedding = "token_embd.weight", ggufOutputNorm = "output_norm.weight",
                           ggufOutputHead = "output.weight"
        public static let huggingFaceEmbedding = "model.embed_tokens.weight", huggingFaceOutputNorm = "model.norm.weight",
                           huggingFaceOutputHead = "lm_head.weight"

        /// The GGUF name of block `layer`'s tensor of `role` (nil: the family has no such tensor).
        public func gguf(_ layer: Int, _ role: Role) -> String? { gguf[role].map { "blk.\(layer).\($0)" } }
        /// The HF name of block `layer`'s tensor of `role`.
        public func huggingFace(_ layer: Int, _ role: Role) -> String? {
            huggingFace[role].map { "model.layers.\(layer).\($0)" }
        }
    }

    /// The roles a block of this family has (biases, QK-norms and sandwich norms only where used).
    public var roles: [Role] {
        Role.allCases.filter { role in
            switch role {
            case .queryBias, .keyBias, .valueBias: return qkvBias
            case .queryNorm, .keyNorm: return qkNorm
            case .postAttentionNorm, .postFeedForwardNorm: return sandwichNorms
            default: return true
            }
        }
    }

    /// Whether layer `layer` (0-based) uses sliding-window attention.
    public func isSlidingWindowLayer(_ layer: Int) -> Bool {
        guard let period = slidingWindowPeriod, period > 0 else { return false }
        return (layer + 1) % period != 0
    }

    public var description: String { name }

    /// Every family kvscope runs.
    public static let known: [Architecture] = [.llama, .qwen2, .gemma3]

    /// The family of a GGUF `general.architecture` value, or nil.
    public static func gguf(_ name: String) -> Architecture? { known.first { $0.name == name } }

    /// The family of a config.json `model_type`, or nil.
    public static func huggingFace(modelType: String) -> Architecture? {
        known.first { $0.huggingFaceModelTypes.contains(modelType) }
    }

    /// The names of the families, for messages ("llama, qwen2, gemma3").
    public static var knownNames: String { known.map(\.name).joined(separator: ", ") }
}
