extension Architecture {
    /// Gemma 3 (text): embeddings × √d; RMSNorm (1 + w) before and after attention and before and
    /// after the MLP; per-head QK-norm before RoPE; GeGLU (tanh GELU); five sliding-window layers
    /// (their own RoPE base, 10 000) for every global one; attention scaled by
    /// query_pre_attn_scalar^−½; tied head; rotate-half RoPE in GGUF and HF; BOS.
    ///
    /// HF names: `post_attention_layernorm` is the norm *after* attention here (in llama it is the
    /// MLP's input norm), `pre_feedforward_layernorm` the MLP's input norm.
    public static let gemma3 = Architecture(
        name: "gemma3", huggingFaceModelTypes: ["gemma3_text", "gemma3"], ggufPermutesQK: false,
        qkvBias: false, qkNorm: true, sandwichNorms: true, huggingFaceNormOffset: 1,
        scalesEmbedding: true, activation: .geluTanh, slidingWindowPeriod: 6, defaultLocalRopeBase: 10_000,
        addsBOSByDefault: true,
        names: {
            var n = TensorNames.common
            n.huggingFace[.postAttentionNorm] = "post_attention_layernorm.weight"
            n.huggingFace[.feedForwardNorm] = "pre_feedforward_layernorm.weight"
            n.huggingFace[.postFeedForwardNorm] = "post_feedforward_layernorm.weight"
            return n
        }())
}
