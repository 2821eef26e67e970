extension Architecture {
    /// Qwen2 / Qwen2.5: the llama block with biases on the q, k and v projections (the K bias
    /// dominates the uncentered K spectrum), SwiGLU, rotate-half RoPE in both GGUF and HF files
    /// (llama.cpp's NEOX mode: no permutation), no BOS.
    public static let qwen2 = Architecture(
        name: "qwen2", huggingFaceModelTypes: ["qwen2"], ggufPermutesQK: false,
        qkvBias: true, qkNorm: false, sandwichNorms: false, huggingFaceNormOffset: 0,
        scalesEmbedding: false, activation: .silu, slidingWindowPeriod: nil, defaultLocalRopeBase: nil,
        addsBOSByDefault: false, names: .common)
}
