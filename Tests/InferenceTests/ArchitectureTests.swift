import Foundation
import Inference
import TensorFiles
import Testing

/// The family descriptions read from the real Qwen2 and Gemma 3 GGUFs, and config.json fields the
/// forward pass does not implement refused by name.
@Suite struct ArchitectureTests {
    static let qwen2Path = repositoryFile("models/qwen2/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").path
    static let gemma3Path = repositoryFile("models/gemma3/gemma-3-270m-q4_k_m.gguf").path

    @Test func qwen2FromGGUF() throws {
        let c = try ModelConfiguration(ggufMetadata: GGUFFile(path: Self.qwen2Path).metadata)
        #expect(c.architecture == .qwen2 && c.architecture.qkvBias && !c.architecture.qkNorm)
        #expect(c.layerCount == 24 && c.hiddenSize == 896 && c.headCount == 14 && c.kvHeadCount == 2)
        #expect(c.headDimension == 64 && c.kvDimension == 128 && c.ropeTheta == 1_000_000)
        #expect(c.ropeStyle == .rotateHalf && c.slidingWindow == nil && c.contextLength == 32768)
        #expect(c.attentionScale == 1 / 8 && c.embeddingScale == 1)
    }

    @Test func gemma3FromGGUF() throws {
        let c = try ModelConfiguration(ggufMetadata: GGUFFile(path: Self.gemma3Path).metadata)
        #expect(c.architecture == .gemma3 && c.architecture.qkNorm && c.architecture.sandwichNorms)
        #expect(c.layerCount == 18 && c.hiddenSize == 640 && c.headCount == 4 && c.kvHeadCount == 1)
        // head_dim comes from key_length (256), not d / n_heads (160).
        #expect(c.headDimension == 256 && c.queryDimension == 1024 && c.vocabularySize == 262_144)
        #expect(c.slidingWindow == 512 && c.ropeTheta == 1_000_000 && c.localRopeTheta == 10_000)
        // Five sliding layers, then a global one: layers 5, 11 and 17 are global.
        #expect((0..<18).filter { !c.isSlidingWindowLayer($0) } == [5, 11, 17])
        #expect(c.ropeTheta(layer: 5) == 1_000_000 && c.ropeTheta(layer: 4) == 10_000)
        #expect(c.attentionScale == 1 / 16 && abs(c.embeddingScale - Float(640.0.squareRoot())) < 1e-6)
    }

    /// The catalog's hyper-parameters know the sliding layers too (for the memory model).
    @Test func catalogSlidingLayers() throws {
        let hp = try #require(try openModel(path: Self.gemma3Path).catalog.hyperparameters)
        #expect(hp.slidingWindow == 512 && hp.slidingLayers == Set((0..<18).filter { ($0 + 1) % 6 != 0 }))
        let qwen = try #require(try openModel(path: Self.qwen2Path).catalog.hyperparameters)
        #expect(qwen.slidingWindow == nil && qwen.slidingLayers.isEmpty)
        // Only llama GGUFs hold permuted Q/K rows.
        let k = try #require(try openModel(path: Self.qwen2Path).catalog.entry(layer: 0, role: .k))
        #expect(!k.ropePermuted)
    }

    static let gemmaConfig: [String: MetadataValue] = [
        "model_type": .string("gemma3_text"), "num_hidden_layers": .int(18), "hidden_size": .int(640),
        "num_attention_heads": .int(4), "num_key_value_heads": .int(1), "head_dim": .int(256),
        "intermediate_size": .int(2048), "vocab_size": .int(262_144), "rms_norm_eps": .float(1e-6),
        "rope_theta": .float(1_000_000), "rope_local_base_freq": .float(10_000), "sliding_window": .int(512),
        "query_pre_attn_scalar": .int(256), "hidden_activation": .string("gelu_pytorch_tanh"),
    ]

    @Test func gemma3FromConfigJSON() throws {
        let c = try ModelConfiguration(huggingFaceConfig: Self.gemmaConfig)
        #expect(c.architecture == .gemma3 && c.localRopeTheta == 10_000 && c.attentionScale == 1 / 16)
        #expect((0..<18).filter { !c.isSlidingWindowLayer($0) } == [5, 11, 17])
        var typed = Self.gemmaConfig
        typed["layer_types"] = .array((0..<18).map { .string($0 % 2 == 0 ? "sliding_attention" : "full_attention") })
        let t = try ModelConfiguration(huggingFaceConfig: typed)
        #expect((0..<18).filter { !t.isSlidingWindowLayer($0) } == Array(stride(from: 1, to: 18, by: 2)))
    }

    /// Every field the forward pass does not implement is an error naming it.
    @Test(arguments: [
        ("rope_scaling.rope_type", MetadataValue.string("llama3"), "rope_scaling.rope_type"),
        ("rope_scaling.rope_type", .string("yarn"), "rope_scaling.rope_type"),
        ("hidden_activation", .string("relu"), "hidden_activation"),
        ("final_logit_softcapping", .float(30), "final_logit_softcapping"),
        ("attn_logit_softcapping", .float(50), "attn_logit_softcapping"),
    ])
    func unimplementedGemmaFieldsAreNamed(key: String, value: MetadataValue, named: String) throws {
        var config = Self.gemmaConfig
        config[key] = value
        do {
            _ = try ModelConfiguration(huggingFaceConfig: config)
            Issue.record("\(key) = \(value) was accepted")
        } catch let InferenceError.invalidMetadata(key: k, detail: _) {
            #expect(k == named)
        }
    }

    @Test func unimplementedLlamaAndQwenFieldsAreNamed() throws {
        let llama: [String: MetadataValue] = [
            "model_type": .string("llama"), "num_hidden_layers": .int(2), "hidden_size": .int(64),
            "num_attention_heads": .int(4), "intermediate_size": .int(128), "vocab_size": .int(100),
            "rms_norm_eps": .float(1e-5),
        ]
        for (key, value) in [("attention_bias", MetadataValue.bool(true)), ("mlp_bias", .bool(true)),
                             ("hidden_act", .string("gelu")), ("rope_scaling.type", .string("dynamic"))] {
            var c = llama
            c[key] = value
            #expect(throws: InferenceError.self, "\(key)") { try ModelConfiguration(huggingFaceConfig: c) }
        }
        var linear = llama
        linear["rope_scaling.rope_type"] = .string("linear")
        linear["rope_scaling.factor"] = .float(4)
        #expect(try ModelConfiguration(huggingFaceConfig: linear).ropeScalingFactor == 4)
        var qwen = llama
        qwen["model_type"] = .string("qwen2")
        qwen["use_sliding_window"] = .bool(true)
        #expect(throws: InferenceError.invalidMetadata(key: "use_sliding_window", detail: "Qwen2-style sliding windows are not implemented")) {
            try ModelConfiguration(huggingFaceConfig: qwen)
        }
        var unknown = llama
        unknown["model_type"] = .string("phi3")
        #expect(throws: InferenceError.self) { try ModelConfiguration(huggingFaceConfig: unknown) }
    }
}
