import Foundation
import Testing
import LinearAlgebra
@testable import TensorFiles

/// Builds synthetic tensor lists (4-byte elements, offsets irrelevant to the catalog).
private func info(_ name: String, _ shape: [Int], _ dtype: String = "F32") -> TensorInfo {
    TensorInfo(name: name, shape: shape, dtype: dtype, byteOffset: 0, byteCount: shape.reduce(1, *) * 4)
}

private func roles(_ c: ModelCatalog, layer: Int) -> [String: TensorRole] {
    Dictionary(c.entries(layer: layer).filter { $0.parameter == .weight && $0.rows == nil }.map { ($0.name, $0.role) },
               uniquingKeysWith: { a, _ in a })
}

@Suite struct ModelCatalogTests {
    // MARK: llama-family GGUF

    /// A 2-layer llama GGUF with GQA (4 heads, 2 KV heads) and head_dim 32 ≠ hidden 64 / 4 heads.
    static func ggufLlama(keyLength: Int? = 32, kRows: Int = 64) -> ([TensorInfo], [String: MetadataValue]) {
        let d = 64, hd = 32, q = 4 * hd, ffn = 96
        var t = [info("token_embd.weight", [100, d], "Q8_0"), info("output_norm.weight", [d])]
        for l in 0..<2 {
            t += [info("blk.\(l).attn_norm.weight", [d]), info("blk.\(l).attn_q.weight", [q, d], "Q4_1"),
                  info("blk.\(l).attn_k.weight", [kRows, d], "Q4_1"), info("blk.\(l).attn_v.weight", [64, d], "Q8_0"),
                  info("blk.\(l).attn_output.weight", [d, q]), info("blk.\(l).ffn_norm.weight", [d]),
                  info("blk.\(l).ffn_gate.weight", [ffn, d]), info("blk.\(l).ffn_up.weight", [ffn, d]),
                  info("blk.\(l).ffn_down.weight", [d, ffn])]
        }
        var md: [String: MetadataValue] = [
            "general.architecture": .string("llama"), "llama.block_count": .uint(2), "llama.embedding_length": .uint(64),
            "llama.attention.head_count": .uint(4), "llama.attention.head_count_kv": .uint(2),
            "llama.context_length": .uint(2048), "llama.feed_forward_length": .uint(96),
            "llama.rope.freq_base": .float(100_000), "llama.attention.layer_norm_rms_epsilon": .float(1e-5),
            "tokenizer.ggml.tokens": .array((0..<100).map { .string("t\($0)") }),
        ]
        if let k = keyLength { md["llama.attention.key_length"] = .uint(UInt64(k)) }
        return (t, md)
    }

    @Test func ggufLlamaWithGQAAndWideHeads() throws {
        let (tensors, md) = Self.ggufLlama()
        let c = try ModelCatalog(tensors: tensors, metadata: md, path: "m.gguf")
        let hp = try #require(c.hyperparameters)
        #expect(c.family == .gguf)
        #expect(hp == ModelHyperparameters(architecture: "llama", nLayers: 2, hiddenSize: 64, nHeads: 4, nKVHeads: 2, headDim: 32,
                                           vocabSize: 100, contextLength: 2048, ffnSize: 96, ropeTheta: 100_000, normEps: 1e-5,
                                           tiedEmbeddings: true))
        #expect(hp.kvDim == 64 && hp.qDim == 128)
        #expect(roles(c, layer: 1) == [
            "blk.1.attn_norm.weight": .norm, "blk.1.attn_q.weight": .q, "blk.1.attn_k.weight": .k, "blk.1.attn_v.weight": .v,
            "blk.1.attn_output.weight": .o, "blk.1.ffn_norm.weight": .norm, "blk.1.ffn_gate.weight": .gate,
            "blk.1.ffn_up.weight": .up, "blk.1.ffn_down.weight": .down,
        ])
        #expect(c.entry(layer: nil, role: .embed)?.name == "token_embd.weight")
        #expect(c.entry(layer: nil, role: .embed)?.dtype == "Q8_0")
        #expect(c.entry(layer: nil, role: .norm)?.name == "output_norm.weight")
        #expect(c.entry(layer: 0, role: .k)?.ropePermuted == true)
        #expect(c.entry(layer: 0, role: .q)?.ropePermuted == true)
        #expect(c.entry(layer: 0, role: .v)?.ropePermuted == false)
        #expect(c.layers == [0, 1])
        #expect(c.entries.count == tensors.count)
    }

    @Test func ggufHeadDimFallsBackToTheKeyTensorThenHiddenOverHeads() throws {
        let (tensors, md) = Self.ggufLlama(keyLength: nil)
        let c = try ModelCatalog(tensors: tensors, metadata: md)
        #expect(c.hyperparameters?.headDim == 32)  // 64 k rows / 2 kv heads
        var md2 = md
        md2["llama.attention.key_length"] = .uint(16)  // says 16, tensors say 32
        do {
            _ = try ModelCatalog(tensors: tensors, metadata: md2, path: "m.gguf")
            Issue.record("accepted a q tensor that disagrees with key_length")
        } catch let e as TensorFileError {
            #expect(e.message.contains("expected [64, 64]"), "\(e.message)")
            #expect(e.location == "tensor blk.0.attn_q.weight")
        }
    }

    @Test func ggufErrorsNameWhatIsWrong() throws {
        let (tensors, md) = Self.ggufLlama()
        var noHeads = md
        noHeads["llama.attention.head_count"] = nil
        #expect(throws: TensorFileError(path: "m.gguf", "GGUF metadata has no positive llama.attention.head_count", at: "GGUF metadata")) {
            try ModelCatalog(tensors: tensors, metadata: noHeads, path: "m.gguf")
        }
        var badKV = md
        badKV["llama.attention.head_count_kv"] = .uint(3)
        #expect(throws: TensorFileError.self) { try ModelCatalog(tensors: tensors, metadata: badKV, path: "m.gguf") }
        let extra = tensors + [info("blk.7.attn_norm.weight", [64])]
        #expect(throws: TensorFileError(path: "m.gguf", "layer 7 is beyond the model's 2 layers", at: "tensor blk.7.attn_norm.weight")) {
            try ModelCatalog(tensors: extra, metadata: md, path: "m.gguf")
        }
    }

    @Test func ggufFusedQKVIsSplit() throws {
        let md: [String: MetadataValue] = ["general.architecture": .string("gpt2"), "gpt2.block_count": .uint(1),
                                           "gpt2.embedding_length": .uint(8), "gpt2.attention.head_count": .uint(2)]
        let t = [info("token_embd.weight", [10, 8]), info("blk.0.attn_qkv.weight", [24, 8], "F16"), info("blk.0.attn_qkv.bias", [24])]
        let c = try ModelCatalog(tensors: t, metadata: md)
        let parts = c.entries(layer: 0).filter { $0.parameter == .weight }
        #expect(parts.map(\.role) == [.q, .k, .v])
        #expect(parts.map(\.rows) == [0..<8, 8..<16, 16..<24])
        #expect(parts.allSatisfy { $0.shape == [8, 8] && $0.byteCount == 8 * 8 * 4 && !$0.transposed })
        #expect(c.entry(layer: 0, role: .v, parameter: .bias)?.rows == 16..<24)
    }

    // MARK: Hugging Face llama / qwen

    static func hfQwen(config: Bool = true) -> ([TensorInfo], [String: MetadataValue]) {
        let d = 64, hd = 32, q = 4 * hd, kv = 2 * hd
        var t = [info("model.embed_tokens.weight", [100, d], "BF16"), info("model.norm.weight", [d]), info("lm_head.weight", [100, d])]
        for l in 0..<3 {
            let p = "model.layers.\(l)."
            t += [info(p + "input_layernorm.weight", [d]), info(p + "self_attn.q_proj.weight", [q, d]),
                  info(p + "self_attn.q_proj.bias", [q]), info(p + "self_attn.k_proj.weight", [kv, d]),
                  info(p + "self_attn.k_proj.bias", [kv]), info(p + "self_attn.v_proj.weight", [kv, d]),
                  info(p + "self_attn.o_proj.weight", [d, q]), info(p + "post_attention_layernorm.weight", [d]),
                  info(p + "mlp.gate_proj.weight", [80, d]), info(p + "mlp.up_proj.weight", [80, d]),
                  info(p + "mlp.down_proj.weight", [d, 80]), info(p + "self_attn.rotary_emb.inv_freq", [16])]
        }
        guard config else { return (t, [:]) }
        let json = """
            {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 3, "hidden_size": 64,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 100,
             "max_position_embeddings": 4096, "intermediate_size": 80, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
             "tie_word_embeddings": false, "rope_scaling": {"type": "yarn", "factor": 4.0}}
            """
        let md = Array(json.utf8).withUnsafeBytes { (try? JSONParser.parse($0, path: "config.json"))?.flattenedMetadata() ?? [:] }
        return (t, md)
    }

    /// transformers ≥ 5 nests the RoPE base in `rope_parameters` (Gemma 3: one per attention type).
    @Test(arguments: [("{\"rope_theta\": 5.0}", 5.0), ("{\"rope_parameters\": {\"rope_theta\": 100000.0, \"rope_type\": \"default\"}}", 1e5),
                      ("{\"rope_parameters\": {\"full_attention\": {\"rope_theta\": 1e6}, \"sliding_attention\": {\"rope_theta\": 1e4}}}", 1e6),
                      ("{}", 10_000)])
    func huggingFaceRoPEBase(_ json: String, _ theta: Double) throws {
        var (tensors, md) = Self.hfQwen()
        md = md.filter { $0.key != "rope_theta" }
        let extra = Array(json.utf8).withUnsafeBytes { (try? JSONParser.parse($0, path: "config.json"))?.flattenedMetadata() ?? [:] }
        md.merge(extra) { _, b in b }
        #expect(try ModelCatalog(tensors: tensors, metadata: md).hyperparameters?.ropeTheta == theta, "\(json)")
    }

    @Test func huggingFaceQwenWithGQAAndHeadDim() throws {
        let (tensors, md) = Self.hfQwen()
        #expect(md["rope_scaling.factor"]?.doubleValue == 4)
        let c = try ModelCatalog(tensors: tensors, metadata: md)
        #expect(c.family == .llama)
        #expect(c.hyperparameters == ModelHyperparameters(
            architecture: "qwen2", nLayers: 3, hiddenSize: 64, nHeads: 4, nKVHeads: 2, headDim: 32, vocabSize: 100,
            contextLength: 4096, ffnSize: 80, ropeTheta: 1e6, normEps: 1e-6, tiedEmbeddings: false))
        #expect(roles(c, layer: 2)["model.layers.2.self_attn.k_proj.weight"] == .k)
        #expect(roles(c, layer: 2)["model.layers.2.mlp.gate_proj.weight"] == .gate)
        #expect(roles(c, layer: 2)["model.layers.2.post_attention_layernorm.weight"] == .norm)
        #expect(c.entry(layer: 1, role: .k, parameter: .bias)?.shape == [64])
        #expect(c.entry(layer: 1, role: .other, parameter: .other)?.name == "model.layers.1.self_attn.rotary_emb.inv_freq")
        #expect(c.entry(layer: nil, role: .output)?.name == "lm_head.weight")
        #expect(c.entry(layer: nil, role: .embed)?.dtype == "BF16")
        #expect(c.entries.allSatisfy { !$0.ropePermuted })
    }

    @Test func huggingFaceHeadDimFromTheKeyTensorAndMissingConfig() throws {
        let (tensors, _) = Self.hfQwen()
        // No head_dim: it comes from k rows / n_kv_heads = 64 / 2.
        var md: [String: MetadataValue] = ["model_type": .string("llama"), "num_hidden_layers": .int(3), "hidden_size": .int(64),
                                           "num_attention_heads": .int(4), "num_key_value_heads": .int(2)]
        let c = try ModelCatalog(tensors: tensors, metadata: md)
        #expect(c.hyperparameters?.headDim == 32)
        #expect(c.hyperparameters?.vocabSize == 100)  // from the embedding's rows
        #expect(c.hyperparameters?.ropeTheta == 10_000)
        // Without n_kv_heads, k rows 64 / 4 heads = 16 and the q tensor (128 rows) disagrees.
        md["num_key_value_heads"] = nil
        do {
            _ = try ModelCatalog(tensors: tensors, metadata: md, path: "m.safetensors")
            Issue.record("accepted inconsistent shapes")
        } catch let e as TensorFileError {
            #expect(e.location == "tensor model.layers.0.self_attn.q_proj.weight")
            #expect(e.message == "q weight has shape [128, 64], expected [64, 64] (n_heads×head_dim = 4×16, hidden 64)")
        }
        do {
            _ = try ModelCatalog(tensors: tensors, metadata: [:], path: "x/model.safetensors")
            Issue.record("accepted llama tensors without config.json")
        } catch let e as TensorFileError {
            #expect(e.message.hasPrefix("no config.json beside the file"), "\(e.message)")
        }
    }

    // MARK: BERT

    static func bert(prefix: String) -> [TensorInfo] {
        let d = 32
        var t = [info(prefix + "embeddings.word_embeddings.weight", [50, d]), info(prefix + "embeddings.position_embeddings.weight", [16, d]),
                 info(prefix + "embeddings.LayerNorm.weight", [d]), info(prefix + "embeddings.LayerNorm.bias", [d])]
        for l in 0..<2 {
            let p = prefix + "encoder.layer.\(l)."
            for (m, shape) in [("attention.self.query", [d, d]), ("attention.self.key", [d, d]), ("attention.self.value", [d, d]),
                               ("attention.output.dense", [d, d]), ("intermediate.dense", [64, d]), ("output.dense", [d, 64])] {
                t += [info(p + m + ".weight", shape), info(p + m + ".bias", [shape[0]])]
            }
            t += [info(p + "attention.output.LayerNorm.weight", [d]), info(p + "output.LayerNorm.weight", [d])]
        }
        return t + [info(prefix + "pooler.dense.weight", [d, d])]
    }

    @Test(arguments: ["", "bert."])
    func bertWithAndWithoutPrefix(prefix: String) throws {
        let md: [String: MetadataValue] = ["model_type": .string("bert"), "num_hidden_layers": .int(2), "hidden_size": .int(32),
                                           "num_attention_heads": .int(4), "vocab_size": .int(50), "max_position_embeddings": .int(16),
                                           "intermediate_size": .int(64), "layer_norm_eps": .float(1e-12)]
        let c = try ModelCatalog(tensors: Self.bert(prefix: prefix), metadata: md)
        #expect(c.family == .bert)
        #expect(c.hyperparameters == ModelHyperparameters(architecture: "bert", nLayers: 2, hiddenSize: 32, nHeads: 4, nKVHeads: 4,
                                                          headDim: 8, vocabSize: 50, contextLength: 16, ffnSize: 64,
                                                          normEps: 1e-12, tiedEmbeddings: false))
        let p = prefix + "encoder.layer.1."
        #expect(roles(c, layer: 1) == [
            p + "attention.self.query.weight": .q, p + "attention.self.key.weight": .k, p + "attention.self.value.weight": .v,
            p + "attention.output.dense.weight": .o, p + "intermediate.dense.weight": .up, p + "output.dense.weight": .down,
            p + "attention.output.LayerNorm.weight": .norm, p + "output.LayerNorm.weight": .norm,
        ])
        #expect(c.entry(layer: 0, role: .k, parameter: .bias)?.name == prefix + "encoder.layer.0.attention.self.key.bias")
        #expect(c.entry(layer: nil, role: .embed)?.name == prefix + "embeddings.word_embeddings.weight")
        #expect(c.entry(layer: nil, role: .norm, parameter: .bias)?.name == prefix + "embeddings.LayerNorm.bias")
        #expect(c.entries.first { $0.name.hasSuffix("position_embeddings.weight") }?.role == .other)
        #expect(c.entries.first { $0.name.hasSuffix("pooler.dense.weight") }?.layer == nil)
    }

    // MARK: GPT-2

    static let gpt2Config: [String: MetadataValue] = [
        "model_type": .string("gpt2"), "n_layer": .int(2), "n_embd": .int(8), "n_head": .int(2), "vocab_size": .int(20),
        "n_positions": .int(32), "layer_norm_epsilon": .float(1e-5),
    ]

    static func gpt2() -> [TensorInfo] {
        var t = [info("wte.weight", [20, 8]), info("wpe.weight", [32, 8])]
        for l in 0..<2 {
            let p = "h.\(l)."
            t += [info(p + "ln_1.weight", [8]), info(p + "ln_1.bias", [8]), info(p + "attn.bias", [1, 1, 32, 32]),
                  info(p + "attn.c_attn.weight", [8, 24]), info(p + "attn.c_attn.bias", [24]),
                  info(p + "attn.c_proj.weight", [8, 8]), info(p + "attn.c_proj.bias", [8]), info(p + "ln_2.weight", [8]),
                  info(p + "mlp.c_fc.weight", [8, 32]), info(p + "mlp.c_fc.bias", [32]),
                  info(p + "mlp.c_proj.weight", [32, 8]), info(p + "mlp.c_proj.bias", [8])]
        }
        return t + [info("ln_f.weight", [8]), info("ln_f.bias", [8])]
    }

    @Test func gpt2FusedAttentionIsSplitAndConv1DTransposed() throws {
        let c = try ModelCatalog(tensors: Self.gpt2(), metadata: Self.gpt2Config)
        #expect(c.family == .gpt2)
        #expect(c.hyperparameters == ModelHyperparameters(architecture: "gpt2", nLayers: 2, hiddenSize: 8, nHeads: 2, nKVHeads: 2,
                                                          headDim: 4, vocabSize: 20, contextLength: 32, ffnSize: 32,
                                                          normEps: 1e-5, tiedEmbeddings: true))
        let qkv = c.entries(layer: 1).filter { $0.name == "h.1.attn.c_attn.weight" }
        #expect(qkv.map(\.role) == [.q, .k, .v])
        #expect(qkv.map(\.rows) == [0..<8, 8..<16, 16..<24])
        #expect(qkv.allSatisfy { $0.shape == [8, 8] && $0.transposed && $0.byteCount == 256 })
        let bias = c.entries(layer: 1).filter { $0.name == "h.1.attn.c_attn.bias" }
        #expect(bias.map(\.shape) == [[8], [8], [8]])
        #expect(bias.allSatisfy { !$0.transposed && $0.parameter == .bias })
        #expect(c.entry(layer: 0, role: .up)?.shape == [32, 8])      // file [8, 32] = [in, out]
        #expect(c.entry(layer: 0, role: .down)?.shape == [8, 32])
        #expect(c.entry(layer: 0, role: .o)?.transposed == true)
        #expect(c.entry(layer: 0, role: .other, parameter: .bias)?.name == "h.0.attn.bias")
        #expect(c.entry(layer: nil, role: .embed)?.name == "wte.weight")
        #expect(c.entry(layer: nil, role: .norm)?.name == "ln_f.weight")
        #expect(c.entries.count == Self.gpt2().count + 2 * 2 * 2)  // each fused weight and bias gains two entries
    }

    @Test func gpt2ReadsLogicalMatricesFromAFile() throws {
        let dir = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var w = SafeTensorsWriter()
        var fusedRows: [[Float]] = []  // the file's [in=8, out=24] storage
        for i in 0..<8 { fusedRows.append((0..<24).map { Float(i * 100 + $0) }) }
        for t in Self.gpt2() {
            if t.name == "h.0.attn.c_attn.weight" {
                try w.add(t.name, floats: fusedRows.flatMap { $0 }, shape: t.shape)
            } else {
                try w.add(t.name, floats: [Float](repeating: 0.5, count: t.elementCount), shape: t.shape)
            }
        }
        try w.write(to: dir + "/model.safetensors")
        let config = "{\"model_type\": \"gpt2\", \"n_layer\": 2, \"n_embd\": 8, \"n_head\": 2, \"vocab_size\": 20, \"n_positions\": 32}"
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let m = try openModel(path: dir + "/model.safetensors")
        #expect(m.configPath == dir + "/config.json")
        let k = try #require(m.catalog.entry(layer: 0, role: .k))
        let matrix = try m.catalog.matrix(k, from: m.file)
        // W_k[out, in] = fused storage[in][8 + out].
        #expect(matrix.rows == 8 && matrix.cols == 8)
        for o in 0..<8 { for i in 0..<8 { #expect(matrix[o, i] == fusedRows[i][8 + o]) } }
        let up = try m.catalog.matrix(try #require(m.catalog.entry(layer: 1, role: .up)), from: m.file)
        #expect(up.rows == 32 && up.cols == 8)
    }

    // MARK: RoPE permutation, unknown files, the real MiniLM

    @Test func undoesLlamaCppRoPEPermutation() throws {
        // llama.cpp's convert: w.reshape(heads, 2, hd/2, cols).swapaxes(1, 2).reshape(w.shape).
        let heads = 2, hd = 6, cols = 3
        let hf = try Matrix(rows: heads * hd, cols: cols, storage: (0..<(heads * hd * cols)).map(Float.init))
        var permuted = [Float](repeating: 0, count: hf.rows * cols)
        for h in 0..<heads { for a in 0..<2 { for b in 0..<(hd / 2) { for c in 0..<cols {
            // source index [h, a, b, c] lands at [h, b, a, c]
            permuted[((h * (hd / 2) + b) * 2 + a) * cols + c] = hf[h * hd + a * (hd / 2) + b, c]
        } } } }
        let gguf = try Matrix(rows: hf.rows, cols: cols, storage: permuted)
        #expect(gguf != hf)
        #expect(try ModelCatalog.undoRoPEPermutation(gguf, heads: heads) == hf)
        #expect(throws: TensorFileError.self) { try ModelCatalog.undoRoPEPermutation(gguf, heads: 5) }
    }

    @Test func unknownFilesListEveryTensorAsOther() throws {
        let c = try ModelCatalog(tensors: [info("stats.layer0.xtx", [4, 4]), info("text_sha256", [32], "U8")], metadata: [:])
        #expect(c.family == .unknown && c.hyperparameters == nil)
        #expect(c.entries.map(\.role) == [.other, .other])
        #expect(c.entries.allSatisfy { $0.layer == nil })
    }

    @Test func realMiniLM() throws {
        guard TestPaths.requireModel(TestPaths.minilm) else { return }
        let m = try openModel(path: TestPaths.minilm)
        let hp = try #require(m.catalog.hyperparameters)
        #expect(m.catalog.family == .bert && hp.architecture == "bert")
        #expect(hp.nLayers == 6 && hp.hiddenSize == 384 && hp.nHeads == 12 && hp.nKVHeads == 12 && hp.headDim == 32)
        #expect(hp.vocabSize == 30522 && hp.contextLength == 512 && hp.ffnSize == 1536)
        for layer in 0..<6 {
            for role in [TensorRole.q, .k, .v, .o] {
                #expect(m.catalog.entry(layer: layer, role: role)?.shape == [384, 384], "layer \(layer) \(role)")
            }
            #expect(m.catalog.entry(layer: layer, role: .up)?.shape == [1536, 384])
            #expect(m.catalog.entry(layer: layer, role: .down)?.shape == [384, 1536])
        }
        let k3 = try m.catalog.matrix(try #require(m.catalog.entry(layer: 3, role: .k)), from: m.file)
        let raw = try m.file.floats(try #require(m.file.tensor(named: "encoder.layer.3.attention.self.key.weight")))
        #expect(k3.storage == raw)
    }
}

/// The catalog on SmolLM2's real GGUF header, as gguf-py reads it (Tests/Reference/catalog_smollm2.py).
@Suite struct ModelCatalogSmolLM2Tests {
    static func header() throws -> (tensors: [TensorInfo], metadata: [String: MetadataValue], tokens: Int) {
        let doc = try #require(try TestPaths.json("Tests/Golden/catalog/smollm2.json") as? [String: Any])
        let list = try #require(doc["tensors"] as? [[String: Any]])
        var offset = 0
        let tensors = try list.map { d -> TensorInfo in
            let bytes = try #require(d["bytes"] as? Int)
            defer { offset += bytes }
            return TensorInfo(name: try #require(d["name"] as? String), shape: try #require(d["shape"] as? [Int]),
                              dtype: try #require(d["dtype"] as? String), byteOffset: offset, byteCount: bytes)
        }
        var metadata: [String: MetadataValue] = [:]
        for (key, entry) in try #require(doc["metadata"] as? [String: [String: Any]]) {
            switch (entry["type"] as? String, entry["value"]) {
            case ("STRING", let s as String): metadata[key] = .string(s)
            case ("UINT32", let n as Int): metadata[key] = .uint(UInt64(n))
            case ("FLOAT32", let x as Double): metadata[key] = .float(x)
            default: Issue.record("unexpected metadata \(key): \(entry)")
            }
        }
        return (tensors, metadata, try #require(doc["tokenizer_tokens"] as? Int))
    }

    @Test func architectureFactsAndEveryTensorsRole() throws {
        let (tensors, metadata, _) = try Self.header()
        let c = try ModelCatalog(tensors: tensors, metadata: metadata, path: "SmolLM2.gguf")
        let hp = try #require(c.hyperparameters)
        #expect(hp.architecture == "llama" && hp.nLayers == 30 && hp.hiddenSize == 576)
        #expect(hp.nHeads == 9 && hp.nKVHeads == 3 && hp.headDim == 64 && hp.kvDim == 192)
        #expect(hp.vocabSize == 49152 && hp.contextLength == 8192 && hp.ffnSize == 1536)
        #expect(hp.ropeTheta == 100_000 && hp.tiedEmbeddings)
        #expect(abs((hp.normEps ?? 0) - 1e-5) < 1e-10)
        #expect(c.entries.count == 272)
        // Every tensor keeps its name, shape, GGML type and bytes, in file order.
        #expect(c.entries.map(\.name) == tensors.map(\.name))
        #expect(c.entries.map(\.dtype) == tensors.map(\.dtype))
        #expect(c.entries.map(\.shape) == tensors.map(\.shape))
        #expect(c.entries.map(\.byteCount) == tensors.map(\.byteCount))
        for layer in 0..<30 {
            let weights = c.entries(layer: layer)
            #expect(weights.count == 9, "layer \(layer)")
            #expect(Set(weights.map(\.role)) == [.q, .k, .v, .o, .gate, .up, .down, .norm])
            #expect(c.entry(layer: layer, role: .k)?.shape == [192, 576])
            #expect(c.entry(layer: layer, role: .q)?.shape == [576, 576])
            #expect(c.entry(layer: layer, role: .down)?.shape == [576, 1536])
        }
        #expect(c.entry(layer: nil, role: .embed)?.dtype == "Q8_0")
        #expect(c.entry(layer: nil, role: .embed)?.shape == [49152, 576])
        #expect(c.entry(layer: nil, role: .norm)?.name == "output_norm.weight")
        #expect(c.entry(layer: nil, role: .output) == nil)
        #expect(!c.entries.contains { $0.role == .other })
    }

    @Test func vocabFallsBackToTheTokenList() throws {
        var (tensors, metadata, tokens) = try Self.header()
        metadata["llama.vocab_size"] = nil
        metadata["tokenizer.ggml.tokens"] = .array([MetadataValue](repeating: .string("x"), count: tokens))
        #expect(try ModelCatalog(tensors: tensors, metadata: metadata).hyperparameters?.vocabSize == 49152)
        metadata["tokenizer.ggml.tokens"] = nil
        tensors.removeAll { $0.name == "token_embd.weight" }
        #expect(throws: TensorFileError.self) { try ModelCatalog(tensors: tensors, metadata: metadata) }
    }
}
