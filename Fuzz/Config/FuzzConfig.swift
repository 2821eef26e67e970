import Configuration
import TensorFiles

/// A SmolLM2-shaped model (30 layers, d = 576, d_kv = 192) with the weight matrices of its first
/// two layers, for `validate(against:)` and the weight-memory recomputation.
let model: ModelDescription = {
    let hp = ModelHyperparameters(architecture: "llama", nLayers: 30, hiddenSize: 576, nHeads: 9, nKVHeads: 3,
                                  headDim: 64, vocabSize: 49152, ffnSize: 1536)
    var matrices: [(name: String, shape: MatrixShape)] = []
    for layer in 0..<2 {
        for (role, rows, cols) in [("attn_q", 576, 576), ("attn_k", 192, 576), ("attn_v", 192, 576),
                                   ("attn_output", 576, 576), ("ffn_gate", 1536, 576), ("ffn_up", 1536, 576),
                                   ("ffn_down", 576, 1536)] {
            matrices.append((name: "blk.\(layer).\(role).weight", shape: MatrixShape(rows: rows, cols: cols)))
        }
    }
    return ModelDescription(hyperparameters: hp, matrices: matrices)
}()

/// Reads `bytes` as one format; a config that reads must validate or throw, and must write and read
/// back to an equal config.
func exercise(_ bytes: [UInt8], _ format: ConfigFormat) {
    guard let config = try? KVScopeConfig.decode(bytes, format: format, path: "fuzz") else { return }
    _ = try? config.validate(against: model)
    _ = try? config.recomputedKVMemory()
    if config.weights != nil { _ = try? config.recomputedWeightMemory(model) }
    for out in ConfigFormat.allCases {
        guard let text = try? config.encoded(out) else { continue }
        // A config the reader accepted must survive its own writer.
        guard let again = try? KVScopeConfig.decode(Array(text.utf8), format: out, path: "fuzz-again"),
              again == config else {
            fatalError("config does not round-trip through \(out):\n\(text)")
        }
    }
}

/// libFuzzer entry: any bytes, read as JSON and as YAML, must give a ``KVScopeConfig`` or a
/// ``ConfigError``/``TensorFileError``, never a trap, hang or huge allocation.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    exercise(bytes, .json)
    exercise(bytes, .yaml)
    return 0
}
