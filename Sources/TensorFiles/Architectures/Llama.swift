extension Architecture {
    /// Llama 2/3, SmolLM, Mistral-style models: RMSNorm before attention and MLP, no biases,
    /// SwiGLU, RoPE on every layer. llama.cpp's converter permutes the Q/K rows of a GGUF so that
    /// RoPE rotates adjacent pairs (2i, 2i+1); HF checkpoints rotate halves (i, i + head_dim/2).
    public static let llama = Architecture(
        name: "llama", huggingFaceModelTypes: ["llama", "mistral"], ggufPermutesQK: true,
        qkvBias: false, qkNorm: false, sandwichNorms: false, huggingFaceNormOffset: 0,
        scalesEmbedding: false, activation: .silu, slidingWindowPeriod: nil, defaultLocalRopeBase: nil,
        addsBOSByDefault: true, names: .common)
}
