import Foundation
import Testing
@testable import TensorFiles

/// A small Hugging Face checkpoint folder written by a test: config.json, safetensors shards and
/// (when sharded) model.safetensors.index.json, every part replaceable to make it hostile.
struct CheckpointFixture {
    /// One tensor of a shard.
    struct Tensor { var name: String; var shape: [Int]; var dtype: SafeTensorsDType }

    /// A 2-layer llama with GQA: hidden 8, 2 heads of 4, 1 KV head, FFN 12, vocab 16, tied embeddings.
    static func llamaTensors(layer: Int?, dtype: SafeTensorsDType, normDType: SafeTensorsDType? = nil) -> [Tensor] {
        let norm = normDType ?? dtype
        guard let l = layer else {
            return [Tensor(name: "model.embed_tokens.weight", shape: [16, 8], dtype: dtype),
                    Tensor(name: "model.norm.weight", shape: [8], dtype: norm)]
        }
        let p = "model.layers.\(l)."
        return [
            Tensor(name: p + "input_layernorm.weight", shape: [8], dtype: norm),
            Tensor(name: p + "self_attn.q_proj.weight", shape: [8, 8], dtype: dtype),
            Tensor(name: p + "self_attn.k_proj.weight", shape: [4, 8], dtype: dtype),
            Tensor(name: p + "self_attn.v_proj.weight", shape: [4, 8], dtype: dtype),
            Tensor(name: p + "self_attn.o_proj.weight", shape: [8, 8], dtype: dtype),
            Tensor(name: p + "post_attention_layernorm.weight", shape: [8], dtype: norm),
            Tensor(name: p + "mlp.gate_proj.weight", shape: [12, 8], dtype: dtype),
            Tensor(name: p + "mlp.up_proj.weight", shape: [12, 8], dtype: dtype),
            Tensor(name: p + "mlp.down_proj.weight", shape: [8, 12], dtype: dtype),
        ]
    }

    static let shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors"

    /// config.json as text (nil: no config.json).
    var config: String?
    /// Shard file name → its tensors, in layout order.
    var shards: [String: [Tensor]]
    /// The index as text (nil: no index). ``sharded(dtype:normDType:)`` writes a consistent one.
    var index: String?
    /// Extra files (name → contents).
    var extra: [String: String] = [:]

    static func config(dtype: String?, extra: String = "") -> String {
        let d = dtype.map { "\"torch_dtype\": \"\($0)\"," } ?? ""
        return """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", \(d) \(extra)
         "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1,
         "intermediate_size": 12, "vocab_size": 16, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "tie_word_embeddings": true}
        """
    }

    static func torchName(_ dtype: SafeTensorsDType) -> String {
        switch dtype { case .bf16: "bfloat16"; case .f16: "float16"; default: "float32" }
    }

    /// Embeddings and layer 0 in the first shard, layer 1 and the final norm in the second, with the index.
    static func sharded(dtype: SafeTensorsDType = .bf16, normDType: SafeTensorsDType? = nil) -> CheckpointFixture {
        var f = CheckpointFixture(config: config(dtype: torchName(dtype)), shards: [
            shard1: llamaTensors(layer: nil, dtype: dtype, normDType: normDType).prefix(1) + llamaTensors(layer: 0, dtype: dtype, normDType: normDType),
            shard2: llamaTensors(layer: 1, dtype: dtype, normDType: normDType) + llamaTensors(layer: nil, dtype: dtype, normDType: normDType).suffix(1),
        ])
        f.index = f.consistentIndex()
        return f
    }

    /// The unsharded folder: every tensor in model.safetensors, no index.
    static func single(dtype: SafeTensorsDType = .f32) -> CheckpointFixture {
        CheckpointFixture(config: config(dtype: torchName(dtype)), shards: [
            "model.safetensors": llamaTensors(layer: nil, dtype: dtype) + llamaTensors(layer: 0, dtype: dtype) + llamaTensors(layer: 1, dtype: dtype),
        ])
    }

    /// An index listing exactly the shards' tensors, with the right total_size.
    func consistentIndex(totalSize: Int? = nil, weightMap: [String: String]? = nil) -> String {
        var map: [String: String] = [:]
        var total = 0
        for (shard, tensors) in shards {
            for t in tensors {
                map[t.name] = shard
                total += (CheckedSize.product(t.shape) ?? 0) * t.dtype.size
            }
        }
        let entries = (weightMap ?? map).sorted { $0.key < $1.key }
            .map { "\(JSONEncoding.quoted($0.key)): \(JSONEncoding.quoted($0.value))" }
        return "{\"metadata\": {\"total_size\": \(totalSize ?? total)}, \"weight_map\": {\(entries.joined(separator: ", "))}}"
    }

    /// The values written for a tensor: small multiples of 1/16, exact in BF16, F16 and F32.
    static func values(_ t: Tensor) -> [Float] {
        let seed = t.name.utf8.reduce(0) { $0 &+ Int($1) }
        return (0..<(CheckedSize.product(t.shape) ?? 0)).map { Float(($0 + seed) % 31 - 15) / 16 }
    }

    /// Writes the folder into a fresh temporary directory and returns its path.
    func write() throws -> String {
        let dir = try TestPaths.temporaryDirectory()
        func put(_ name: String, _ text: String) throws {
            try text.write(toFile: dir + "/" + name, atomically: false, encoding: .utf8)
        }
        if let config { try put("config.json", config) }
        if let index { try put(CheckpointIndex.fileName, index) }
        for (name, text) in extra { try put(name, text) }
        for (name, tensors) in shards {
            var w = SafeTensorsWriter(metadata: ["format": "pt"])
            for t in tensors {
                if t.dtype.isFloatingPoint {
                    try w.add(t.name, floats: Self.values(t), shape: t.shape, as: t.dtype)
                } else {
                    try w.add(t.name, int64s: Self.values(t).map { Int64($0 * 16) }, shape: t.shape, as: t.dtype)
                }
            }
            try w.write(to: dir + "/" + name)
        }
        return dir
    }
}

/// Hugging Face checkpoint folders (``CheckpointFolder``): what opens, what each hostile or
/// inconsistent folder is told, and what is read back.
@Suite struct CheckpointFolderTests {
    typealias Fixture = CheckpointFixture

    // MARK: - Every hostile or inconsistent folder gets its own one-line error

    /// One broken folder per case: the fixture, the file the error must name and a substring of its message.
    enum Broken: String, CaseIterable, CustomTestStringConvertible {
        case noConfig, configNotAnObject, noWeights, indexNotJSON, indexNotAnObject, indexWithoutWeightMap,
             weightMapNotAnObject, weightMapToNonString, weightMapEmpty, shardMissing, shardWithSlash,
             shardOutsideFolder, shardDotDot, shardNotSafetensors, tensorAbsentFromShard, tensorInOtherShard,
             tensorInTwoShards, tensorNotListed, totalSizeDisagrees, totalSizeNotAnInteger, metadataNotAnObject,
             matrixDTypeContradictsConfig, f64MatrixInF32Checkpoint, dtypeKeysDisagree, torchDTypeNotAString

        var testDescription: String { rawValue }

        var fixture: Fixture {
            var f = Fixture.sharded()
            let q0 = "model.layers.0.self_attn.q_proj.weight"
            switch self {
            case .noConfig: f.config = nil
            case .configNotAnObject: f.config = "[1, 2]"
            case .noWeights: f.shards = [:]; f.index = nil; f.extra = ["pytorch_model.bin": "x"]
            case .indexNotJSON: f.index = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\",}}"
            case .indexNotAnObject: f.index = "[\"weight_map\"]"
            case .indexWithoutWeightMap: f.index = "{\"metadata\": {\"total_size\": 10}}"
            case .weightMapNotAnObject: f.index = "{\"weight_map\": [\"model-00001-of-00002.safetensors\"]}"
            case .weightMapToNonString: f.index = "{\"weight_map\": {\"\(q0)\": 1}}"
            case .weightMapEmpty: f.index = "{\"weight_map\": {}}"
            case .shardMissing:
                f.index = f.consistentIndex(weightMap: [q0: "model-00003-of-00003.safetensors"])
            case .shardWithSlash: f.index = f.consistentIndex(weightMap: [q0: "sub/model.safetensors"])
            case .shardOutsideFolder: f.index = f.consistentIndex(weightMap: [q0: "../model-00001-of-00002.safetensors"])
            case .shardDotDot: f.index = f.consistentIndex(weightMap: [q0: ".."])
            case .shardNotSafetensors: f.index = f.consistentIndex(weightMap: [q0: "config.json"])
            case .tensorAbsentFromShard:
                f.shards[Fixture.shard1]?.removeAll { $0.name == q0 }
                f.index = Fixture.sharded().index
            case .tensorInOtherShard:
                f.shards[Fixture.shard1]?.removeAll { $0.name == q0 }
                f.shards[Fixture.shard2]?.append(.init(name: q0, shape: [8, 8], dtype: .bf16))
                f.index = Fixture.sharded().index
            case .tensorInTwoShards:
                f.shards[Fixture.shard2]?.append(.init(name: q0, shape: [8, 8], dtype: .bf16))
            case .tensorNotListed:
                f.shards[Fixture.shard2]?.append(.init(name: "model.layers.1.self_attn.rotary_emb.inv_freq", shape: [2], dtype: .f32))
                f.index = Fixture.sharded().index
            case .totalSizeDisagrees: f.index = f.consistentIndex(totalSize: 123)
            case .totalSizeNotAnInteger:
                f.index = f.index?.replacingOccurrences(of: "\"total_size\": ", with: "\"total_size\": -")
            case .metadataNotAnObject:
                f.index = f.index?.replacingOccurrences(of: "{\"metadata\": {\"total_size\": ", with: "{\"metadata\": [")
                    .replacingOccurrences(of: "}, \"weight_map\"", with: "], \"weight_map\"")
            case .matrixDTypeContradictsConfig:
                f.shards[Fixture.shard2] = f.shards[Fixture.shard2]?.map {
                    $0.name.hasSuffix("mlp.up_proj.weight") ? .init(name: $0.name, shape: $0.shape, dtype: .f32) : $0
                }
                f.index = f.consistentIndex()
            case .f64MatrixInF32Checkpoint:
                f = Fixture.single(dtype: .f32)
                f.shards["model.safetensors"]?.append(.init(name: "model.layers.1.extra.weight", shape: [2, 2], dtype: .f64))
            case .dtypeKeysDisagree: f.config = Fixture.config(dtype: "bfloat16", extra: "\"dtype\": \"float16\",")
            case .torchDTypeNotAString: f.config = Fixture.config(dtype: nil, extra: "\"torch_dtype\": 16,")
            }
            return f
        }

        /// The file the message must name ("" for the folder itself) and a substring of the message.
        var expected: (file: String, message: String) {
            let index = CheckpointIndex.fileName, q0 = "model.layers.0.self_attn.q_proj.weight"
            switch self {
            case .noConfig: return ("", "checkpoint folder has no config.json")
            case .configNotAnObject: return ("config.json", "config is not a JSON object")
            case .noWeights:
                return ("", "no weights: neither model.safetensors.index.json nor model.safetensors (pytorch_model.bin is not read: only safetensors)")
            case .indexNotJSON: return (index, "bad JSON: ")
            case .indexNotAnObject: return (index, "index is not a JSON object")
            case .indexWithoutWeightMap: return (index, "index has no weight_map")
            case .weightMapNotAnObject: return (index, "weight_map is not an object of tensor name → shard file")
            case .weightMapToNonString: return (index, "weight_map value is not a string (a shard file name) (tensor \(q0))")
            case .weightMapEmpty: return (index, "weight_map lists no tensors")
            case .shardMissing: return (index, "names shard model-00003-of-00003.safetensors, which is not in the folder")
            case .shardWithSlash: return (index, "shard name \"sub/model.safetensors\" contains a path separator")
            case .shardOutsideFolder: return (index, "shard name \"../model-00001-of-00002.safetensors\" contains a path separator")
            case .shardDotDot: return (index, "shard name \"..\" is not a file name in the folder")
            case .shardNotSafetensors: return (index, "shard name \"config.json\" is not a .safetensors file")
            case .tensorAbsentFromShard:
                return (Fixture.shard1, "does not hold tensor \(q0), which the index maps to it")
            case .tensorInOtherShard:
                return (index, "maps the tensor to \(Fixture.shard1) but it is in \(Fixture.shard2) (tensor \(q0))")
            case .tensorInTwoShards:
                return (index, "tensor is in two shards: \(Fixture.shard1) and \(Fixture.shard2) (tensor \(q0))")
            case .tensorNotListed:
                return (Fixture.shard2, "holds tensor model.layers.1.self_attn.rotary_emb.inv_freq, which the index does not list")
            case .totalSizeDisagrees: return (index, "metadata.total_size is 123 but the tensors hold 2256 bytes")
            case .totalSizeNotAnInteger: return (index, "metadata.total_size is not a non-negative integer")
            case .metadataNotAnObject: return (index, "index metadata is not an object")
            case .matrixDTypeContradictsConfig:
                return (Fixture.shard2, "config.json says the weights are bfloat16 (BF16) but this matrix is F32 (tensor model.layers.1.mlp.up_proj.weight)")
            case .f64MatrixInF32Checkpoint:
                return ("model.safetensors", "config.json says the weights are float32 (F32) but this matrix is F64 (tensor model.layers.1.extra.weight)")
            case .dtypeKeysDisagree: return ("config.json", "dtype says float16 but torch_dtype says bfloat16")
            case .torchDTypeNotAString: return ("config.json", "torch_dtype is not a string")
            }
        }
    }

    @Test(arguments: Broken.allCases)
    func brokenFolderGetsItsOwnError(_ broken: Broken) throws {
        let dir = try broken.fixture.write()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (file, message) = broken.expected
        do {
            let m = try openModel(path: dir)
            Issue.record("\(broken): opened \(m.file.tensors.count) tensors")
        } catch let error as TensorFileError {
            let line = error.description
            #expect(!line.contains("\n"), "\(broken): \(line)")
            #expect(error.path == (file.isEmpty ? dir : dir + "/" + file), "\(broken): \(line)")
            #expect(line.contains(message), "\(broken): \(line)")
        }
    }

    @Test func everyBrokenFolderHasADistinctMessage() {
        let messages = Broken.allCases.map(\.expected.message)
        #expect(Set(messages).count == messages.count)
    }

    @Test func aPathGivenAsTheIndexNeverOpensAFileOutsideTheFolder() throws {
        // The shard the hostile index points at exists one level up: it must not be opened.
        let outer = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: outer) }
        let inner = outer + "/checkpoint"
        let dir = try Fixture.sharded().write()
        try FileManager.default.moveItem(atPath: dir, toPath: inner)
        try FileManager.default.copyItem(atPath: inner + "/" + Fixture.shard1, toPath: outer + "/" + Fixture.shard1)
        var f = Fixture.sharded()
        f.index = f.consistentIndex(weightMap: Dictionary(uniqueKeysWithValues: f.shards.flatMap { shard, ts in
            ts.map { ($0.name, shard == Fixture.shard1 ? "../" + shard : shard) }
        }))
        try f.index!.write(toFile: inner + "/" + CheckpointIndex.fileName, atomically: false, encoding: .utf8)
        #expect(throws: TensorFileError.self) { try CheckpointFolder(directory: inner) }
    }

    // MARK: - Dtype policy and reading

    @Test func vectorsMayBeF32InABF16Checkpoint() throws {
        let dir = try Fixture.sharded(dtype: .bf16, normDType: .f32).write()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folder = try CheckpointFolder(directory: dir)
        #expect(folder.configDType == .bf16)
        let norm = try #require(folder.tensor(named: "model.norm.weight"))
        #expect(norm.dtype == "F32")
        #expect(try folder.floats(norm) == Fixture.values(.init(name: norm.name, shape: norm.shape, dtype: .f32)))
    }

    @Test(arguments: [SafeTensorsDType.i32, .f64])
    func aMatrixThatIsNotF32F16OrBF16IsAnErrorWhenRead(_ dtype: SafeTensorsDType) throws {
        var f = Fixture.single(dtype: .f32)
        f.config = Fixture.config(dtype: nil)  // no dtype named: nothing is checked on open
        f.shards["model.safetensors"]?.append(.init(name: "model.layers.1.extra.weight", shape: [2, 3], dtype: dtype))
        f.shards["model.safetensors"]?.append(.init(name: "model.layers.1.extra.bias", shape: [3], dtype: dtype))
        let dir = try f.write()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folder = try CheckpointFolder(directory: dir)
        #expect(folder.configDType == nil)
        let matrix = try #require(folder.tensor(named: "model.layers.1.extra.weight"))
        #expect(throws: TensorFileError(path: dir + "/model.safetensors", "a weight matrix must be F32, F16 or BF16, not \(dtype.rawValue)",
                                        at: "tensor model.layers.1.extra.weight")) { try folder.floats(matrix) }
        // A vector of that dtype is converted by value, as the single-file reader does.
        let vector = try #require(folder.tensor(named: "model.layers.1.extra.bias"))
        #expect(try folder.floats(vector).count == 3)
    }

    @Test func configDTypeNames() throws {
        func dtype(_ pairs: [String: MetadataValue]) throws -> SafeTensorsDType? { try CheckpointFolder.configDType(pairs, path: "c") }
        #expect(try dtype(["torch_dtype": .string("bfloat16")]) == .bf16)
        #expect(try dtype(["dtype": .string("torch.float16")]) == .f16)
        #expect(try dtype(["torch_dtype": .string("float32"), "dtype": .string("float32")]) == .f32)
        #expect(try dtype(["torch_dtype": .string("auto")]) == nil)
        #expect(try dtype([:]) == nil)
    }

    @Test func tensorsOfAnotherFolderAreRefused() throws {
        let dir = try Fixture.sharded().write()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let folder = try CheckpointFolder(directory: dir)
        var edited = try #require(folder.tensors.first)
        #expect(throws: TensorFileError.self) { try folder.floats(TensorInfo(name: "nope", shape: [1], dtype: "F32", byteOffset: 0, byteCount: 4)) }
        edited.byteOffset += 2
        #expect(throws: TensorFileError.self) { try folder.floats(edited) }
    }

    // MARK: - Valid folders read back what was written

    @Test(arguments: [SafeTensorsDType.bf16, .f16, .f32], [true, false])
    func validFolderReadsBackEveryTensor(_ dtype: SafeTensorsDType, sharded: Bool) throws {
        var f = sharded ? Fixture.sharded(dtype: dtype) : Fixture.single(dtype: dtype)
        f.extra["tokenizer.json"] = "{}"
        let dir = try f.write()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try openModel(path: dir)
        #expect(m.format == .safetensors)
        #expect(m.configPath == dir + "/config.json")
        #expect(m.metadata["hidden_size"] == .int(8))
        #expect(m.metadata["torch_dtype"] == .string(Fixture.torchName(dtype)))
        let folder = try #require(m.file as? CheckpointFolder)
        #expect(folder.path == dir)
        #expect(folder.tokenizerPath == dir + "/tokenizer.json")
        #expect(folder.shards.map(\.path) == f.shards.keys.sorted().map { dir + "/" + $0 })
        #expect((folder.index != nil) == sharded)
        #expect(folder.fileBytes == folder.shards.reduce(0) { $0 + $1.file.count })

        let written = f.shards.values.flatMap { $0 }
        #expect(folder.tensors.count == written.count)
        #expect(Set(folder.tensors.map(\.name)).count == written.count)
        for t in written {
            let info = try #require(folder.tensor(named: t.name))
            #expect(info.shape == t.shape && info.dtype == t.dtype.rawValue, "\(t.name)")
            #expect(try folder.floats(info) == Fixture.values(t), "\(t.name)")
            #expect(folder.rawBytes(info).count == info.byteCount)
            let shardName = f.shards.first { $0.value.contains { $0.name == t.name } }?.key
            #expect(folder.shard(of: info)?.path == dir + "/" + (shardName ?? "?"), "\(t.name)")
        }
        // Through the catalog, as the explorer reads weights.
        let hp = try #require(m.catalog.hyperparameters)
        #expect(m.catalog.family == .llama && hp.nLayers == 2 && hp.nKVHeads == 1 && hp.headDim == 4 && hp.tiedEmbeddings)
        let k1 = try #require(m.catalog.entry(layer: 1, role: .k))
        let matrix = try m.catalog.matrix(k1, from: m.file)
        #expect(matrix.storage == Fixture.values(.init(name: k1.name, shape: [4, 8], dtype: dtype)))
    }

    @Test func identityChangesWhenAnyShardChanges() throws {
        let dir = try Fixture.sharded().write()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try CheckpointFolder(directory: dir).identity
        // Rewrite the second shard with one more byte of header padding's worth of metadata.
        var w = SafeTensorsWriter(metadata: ["format": "pt", "changed": "yes, longer"])
        for t in Fixture.sharded().shards[Fixture.shard2] ?? [] {
            try w.add(t.name, floats: Fixture.values(t), shape: t.shape, as: t.dtype)
        }
        try w.write(to: dir + "/" + Fixture.shard2)
        let after = try CheckpointFolder(directory: dir).identity
        #expect(before != after)
    }

    @Test func indexParsesFromBytes() throws {
        let text = "{\"metadata\": {\"total_size\": 8.0, \"format\": \"pt\"}, \"weight_map\": {\"b\": \"x.safetensors\", \"a\": \"w.safetensors\"}}"
        let index = try CheckpointIndex(parsing: Array(text.utf8), path: "i.json")
        #expect(index.totalSize == 8)
        #expect(index.shardNames == ["w.safetensors", "x.safetensors"])
        #expect(index.weightMap == [.init(tensor: "b", shard: "x.safetensors"), .init(tensor: "a", shard: "w.safetensors")])
        #expect(index.shard(of: "a") == "w.safetensors")
        #expect(index.metadata["format"] == .string("pt"))
    }

    // MARK: - The fuzz targets' seeds, replayed through the targets' calls

    /// The in-memory shards of Fuzz/CheckpointIndex (same tensors; listed in Tests/Reference/checkpoint_corpus.py).
    static let fuzzShards: [String: SafeTensorsFile] = {
        func shard(_ name: String, _ tensors: [(String, [Int], SafeTensorsDType)]) -> (String, SafeTensorsFile) {
            var w = SafeTensorsWriter(metadata: ["format": "pt"])
            for (tensor, shape, dtype) in tensors {
                let n = shape.reduce(1, *)
                if dtype.isFloatingPoint {
                    try! w.add(tensor, floats: (0..<n).map { Float($0 % 7) / 8 }, shape: shape, as: dtype)
                } else {
                    try! w.add(tensor, int64s: (0..<n).map(Int64.init), shape: shape, as: dtype)
                }
            }
            let file = w.serialized().withUnsafeBytes { MappedFile(copying: $0, path: "fuzz/\(name)") }
            return (name, try! SafeTensorsFile(file: file))
        }
        return Dictionary(uniqueKeysWithValues: [
            shard("model-00001-of-00002.safetensors", [("model.embed_tokens.weight", [16, 8], .bf16),
                                                       ("model.layers.0.self_attn.q_proj.weight", [8, 8], .bf16),
                                                       ("model.layers.0.input_layernorm.weight", [8], .f32)]),
            shard("model-00002-of-00002.safetensors", [("model.layers.1.self_attn.q_proj.weight", [8, 8], .bf16),
                                                       ("model.norm.weight", [8], .bf16),
                                                       ("model.layers.1.mlp.up_proj.weight", [2, 4], .f32),
                                                       ("model.position_ids", [4], .i64)]),
            shard("model-extra.safetensors", [("model.layers.0.self_attn.q_proj.weight", [8, 8], .bf16)]),
            shard("model.safetensors", [("lm_head.weight", [1, 2], .f32)]),
        ])
    }()

    static let indexCorpus = ResourceBoundsTests.files("checkpoint_index") + ResourceBoundsTests.files("regressions/checkpoint_index")

    /// An index seed (index bytes, then optionally NUL and config.json) assembled against the fuzz shards:
    /// `valid_*` opens and reads every tensor, anything else is a TensorFileError.
    @Test(arguments: indexCorpus)
    func corpusIndexOpensOrThrowsATypedError(path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let split = bytes.firstIndex(of: 0)
        let index = Array(bytes[..<(split ?? bytes.count)]).withUnsafeBytes { MappedFile(copying: $0, path: "fuzz/index.json") }
        let configBytes = split.map { Array(bytes[($0 + 1)...]) } ?? Array(#"{"model_type": "llama"}"#.utf8)
        let config = configBytes.withUnsafeBytes { MappedFile(copying: $0, path: "fuzz/config.json") }
        let name = URL(fileURLWithPath: path).lastPathComponent
        do {
            let folder = try CheckpointFolder(path: "fuzz", configFile: config, indexFile: index, shards: Self.fuzzShards)
            #expect(name.hasPrefix("valid_"), "\(name) opened")
            for t in folder.tensors where t.shape.count != 2 || t.dtype != "I64" { _ = try folder.floats(t) }
        } catch let error as TensorFileError {
            #expect(!name.hasPrefix("valid_"), "\(name): \(error)")
            #expect(!error.description.contains("\n"), "\(name): \(error)")
        }
    }

    static let configCorpus = ResourceBoundsTests.files("hf_config") + ResourceBoundsTests.files("regressions/hf_config")

    /// A config seed parses or throws a TensorFileError, as do its dtype and its catalog of a llama.
    @Test(arguments: configCorpus)
    func corpusConfigReadsOrThrowsATypedError(path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        do {
            let md = try bytes.withUnsafeBytes { try ModelFiles.parseConfig($0, path: path) }
            _ = try? CheckpointFolder.configDType(md, path: path)
            _ = try? ModelCatalog(tensors: Fixture.llamaTensors(layer: 0, dtype: .bf16).map {
                TensorInfo(name: $0.name, shape: $0.shape, dtype: "BF16", byteOffset: 0, byteCount: 2 * (CheckedSize.product($0.shape) ?? 0))
            }, metadata: md, path: path)
        } catch is TensorFileError {}
    }

    // MARK: - The Hugging Face folders of `make models`

    /// The checkpoints `make models` writes into models/hf/ (sharded BF16, single-file F32). Required
    /// when KVSCOPE_REQUIRE_HF_FIXTURES=1; otherwise a missing folder passes with a line on stderr.
    @Test(arguments: ["smollm2-bf16", "qwen2-bf16", "gemma3-bf16", "smollm2-f32", "qwen2-f32", "gemma3-f32"])
    func huggingFaceFolderCatalogsEveryLayer(_ name: String) throws {
        let dir = TestPaths.repo("models/hf/\(name)")
        guard ModelFiles.isDirectory(dir) else {
            if ProcessInfo.processInfo.environment["KVSCOPE_REQUIRE_HF_FIXTURES"] == "1" {
                Issue.record("HF checkpoint folder missing: \(dir); run `make models` (KVSCOPE_REQUIRE_HF_FIXTURES=1 requires it)")
            } else {
                FileHandle.standardError.write(Data("CheckpointFolderTests: \(dir) is absent, not checked (set KVSCOPE_REQUIRE_HF_FIXTURES=1 to require it)\n".utf8))
            }
            return
        }
        let m = try openModel(path: dir)
        let folder = try #require(m.file as? CheckpointFolder)
        #expect(folder.configDType == (name.hasSuffix("-bf16") ? .bf16 : .f32), "\(name)")
        #expect((folder.index != nil) == (folder.shards.count > 1), "\(name)")
        #expect(m.catalog.family == .llama, "\(name)")
        let hp = try #require(m.catalog.hyperparameters)
        #expect(m.catalog.layers == Array(0..<hp.nLayers), "\(name)")
        for layer in 0..<hp.nLayers {
            for role: TensorRole in [.q, .k, .v, .o, .gate, .up, .down] {
                #expect(m.catalog.entry(layer: layer, role: role) != nil, "\(name): layer \(layer) has no \(role)")
            }
        }
        let theta = m.metadata["rope_theta"] ?? m.metadata["rope_parameters.rope_theta"] ?? m.metadata["rope_parameters.full_attention.rope_theta"]
        #expect(hp.ropeTheta != nil && hp.ropeTheta == theta?.doubleValue, "\(name): RoPE base \(String(describing: hp.ropeTheta))")
        let k0 = try #require(m.catalog.entry(layer: 0, role: .k))
        let w = try m.catalog.matrix(k0, from: m.file)
        #expect(w.rows == hp.kvDim && w.cols == hp.hiddenSize && w.storage.allSatisfy(\.isFinite), "\(name)")
    }
}
