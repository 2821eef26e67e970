import TensorFiles

/// Four small in-memory shards, the folder the fuzzed index describes. Their tensors (and the
/// bytes they hold, 416 + 208 + 128 + 8) are listed in Tests/Reference/checkpoint_corpus.py:
/// - shard 1: the embedding and layer 0's q (BF16), layer 0's norm (F32);
/// - shard 2: layer 1's q and the final norm (BF16), layer 1's up (F32, so a BF16 config rejects it), an I64 vector;
/// - `model-extra`: layer 0's q again (a tensor in two shards);
/// - `model.safetensors`: one F32 matrix, for an index that names it.
let shards: [String: SafeTensorsFile] = {
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
        let bytes = w.serialized()
        let file = bytes.withUnsafeBytes { MappedFile(copying: $0, path: "fuzz/\(name)") }
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

/// config.json when the input has none.
let defaultConfig: [UInt8] = Array(#"{"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 8, "num_attention_heads": 1}"#.utf8)

/// libFuzzer entry: the input is an index (`model.safetensors.index.json`), optionally followed by a NUL
/// byte and a config.json. Parsing and every consistency check against the fixed shards must end in a
/// folder or a TensorFileError, never a trap; a folder that opens reads all its tensors.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpointIndex(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let split = input.firstIndex(of: 0)
    let indexBytes = UnsafeRawBufferPointer(rebasing: input[..<(split ?? size)])
    let index = MappedFile(copying: indexBytes, path: "fuzz/model.safetensors.index.json")
    let config: MappedFile = split.map { UnsafeRawBufferPointer(rebasing: input[($0 + 1)...]) }
        .map { MappedFile(copying: $0, path: "fuzz/config.json") }
        ?? defaultConfig.withUnsafeBytes { MappedFile(copying: $0, path: "fuzz/config.json") }
    _ = try? CheckpointIndex(parsing: index.bytes, path: index.path)
    guard let folder = try? CheckpointFolder(path: "fuzz", configFile: config, indexFile: index, shards: shards) else { return 0 }
    var names = Set<String>()
    for t in folder.tensors {
        // The folder's invariants: names unique, each tensor read from the shard the index names.
        guard names.insert(t.name).inserted, folder.shard(of: t)?.path == "fuzz/" + (folder.index?.shard(of: t.name) ?? "") else {
            fatalError("folder invariant broken at \(t.name)")
        }
        _ = try? folder.floats(t)
        _ = folder.rawBytes(t).count
    }
    _ = try? ModelCatalog(tensors: folder.tensors, metadata: folder.config, path: "fuzz")
    return 0
}
