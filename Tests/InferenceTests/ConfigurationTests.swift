import Inference
import TensorFiles
import Testing

@Suite struct ConfigurationTests {
    /// The llama.* keys of SmolLM2-135M-Instruct.Q4_1.gguf, as gguf-py prints them.
    static let smolLM2: [String: MetadataValue] = [
        "general.architecture": .string("llama"), "llama.block_count": .uint(30),
        "llama.embedding_length": .uint(576), "llama.feed_forward_length": .uint(1536),
        "llama.attention.head_count": .uint(9), "llama.attention.head_count_kv": .uint(3),
        "llama.rope.freq_base": .float(100_000), "llama.attention.layer_norm_rms_epsilon": .float(9.999999747378752e-06),
        "llama.vocab_size": .uint(49152), "llama.rope.dimension_count": .uint(64),
    ]

    @Test func ggufMetadata() throws {
        let c = try ModelConfiguration(ggufMetadata: Self.smolLM2)
        #expect(c.layerCount == 30 && c.hiddenSize == 576 && c.headCount == 9 && c.kvHeadCount == 3)
        #expect(c.headDimension == 64 && c.kvDimension == 192 && c.queryDimension == 576)
        #expect(c.feedForwardSize == 1536 && c.vocabularySize == 49152)
        #expect(c.ropeTheta == 100_000 && c.rmsNormEpsilon == 1e-5 && c.ropeStyle == .adjacentPairs)
    }

    @Test func ggufMetadataErrorsNameTheKey() throws {
        var m = Self.smolLM2
        m["general.architecture"] = .string("bert")
        #expect(throws: InferenceError.invalidMetadata(key: "general.architecture", detail: "\"bert\" is not a family kvscope runs (llama, qwen2, gemma3)")) {
            try ModelConfiguration(ggufMetadata: m)
        }
        m = Self.smolLM2
        m["llama.block_count"] = nil
        #expect(throws: InferenceError.invalidMetadata(key: "llama.block_count", detail: "missing or not an integer")) {
            try ModelConfiguration(ggufMetadata: m)
        }
        m = Self.smolLM2
        m["llama.rope.dimension_count"] = .uint(32)
        #expect(throws: InferenceError.self) { try ModelConfiguration(ggufMetadata: m) }
        m = Self.smolLM2
        m["llama.attention.head_count_kv"] = .uint(4)
        #expect(throws: InferenceError.self) { try ModelConfiguration(ggufMetadata: m) }
    }

    @Test func huggingFaceConfig() throws {
        // SmolLM2-135M's config.json values.
        let json: [String: MetadataValue] = [
            "model_type": .string("llama"), "num_hidden_layers": .int(30), "hidden_size": .int(576),
            "num_attention_heads": .int(9), "num_key_value_heads": .int(3), "intermediate_size": .int(1536),
            "vocab_size": .int(49152), "rms_norm_eps": .float(1e-5), "rope_theta": .float(100_000),
        ]
        let c = try ModelConfiguration(huggingFaceConfig: json)
        #expect(c.headDimension == 64 && c.kvDimension == 192 && c.ropeStyle == .rotateHalf)
        var bad = json
        bad["rms_norm_eps"] = nil
        #expect(throws: InferenceError.invalidMetadata(key: "rms_norm_eps", detail: "missing or not a number")) {
            try ModelConfiguration(huggingFaceConfig: bad)
        }
    }

    @Test func tensorNames() {
        #expect(TensorNaming.gguf.layerTensor(3, .key) == "blk.3.attn_k.weight")
        #expect(TensorNaming.huggingFace.layerTensor(3, .key) == "model.layers.3.self_attn.k_proj.weight")
        #expect(TensorNaming.huggingFace.layerTensor(0, .feedForwardNorm) == "model.layers.0.post_attention_layernorm.weight")
        #expect(TensorNaming.gguf.outputHead == "output.weight")
    }

    @Test func missingWeightIsNamed() throws {
        let c = try ModelConfiguration(ggufMetadata: Self.smolLM2)
        #expect(throws: InferenceError.invalidWeight(name: "token_embd.weight", detail: "missing")) {
            try DenseModelWeights(configuration: c, naming: .gguf) { _ in nil }
        }
        #expect(throws: InferenceError.self) {
            try DenseModelWeights(configuration: c, naming: .gguf) { _ in ([2, 2], [1, 2, 3, 4]) }
        }
    }
}
