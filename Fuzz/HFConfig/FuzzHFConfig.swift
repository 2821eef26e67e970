import TensorFiles

/// A 2-layer Hugging Face llama (hidden 64, 4 heads of 16, 2 KV heads, FFN 96, vocab 32), as tensor
/// infos only: the catalog never reads data.
let llama: [TensorInfo] = llamaTensors(layers: 2, hidden: 64, qDim: 64, kvDim: 32, ffn: 96, vocab: 32) ?? []

/// The tensors of a llama with these sizes (BF16), or nil when a byte count overflows.
func llamaTensors(layers: Int, hidden: Int, qDim: Int, kvDim: Int, ffn: Int, vocab: Int) -> [TensorInfo]? {
    var out: [TensorInfo] = []
    func add(_ name: String, _ shape: [Int]) -> Bool {
        guard let n = CheckedSize.product(shape), let bytes = CheckedSize.multiply(n, 2) else { return false }
        out.append(TensorInfo(name: name, shape: shape, dtype: "BF16", byteOffset: 0, byteCount: bytes))
        return true
    }
    guard add("model.embed_tokens.weight", [vocab, hidden]), add("model.norm.weight", [hidden]) else { return nil }
    for l in 0..<layers {
        let p = "model.layers.\(l)."
        for (name, shape) in [("self_attn.q_proj.weight", [qDim, hidden]), ("self_attn.k_proj.weight", [kvDim, hidden]),
                              ("self_attn.v_proj.weight", [kvDim, hidden]), ("self_attn.o_proj.weight", [hidden, qDim]),
                              ("mlp.gate_proj.weight", [ffn, hidden]), ("mlp.up_proj.weight", [ffn, hidden]),
                              ("mlp.down_proj.weight", [hidden, ffn]), ("input_layernorm.weight", [hidden])] {
            guard add(p + name, shape) else { return nil }
        }
    }
    return out
}

/// libFuzzer entry: config.json bytes → flattened metadata → the config's dtype → ModelCatalog of a
/// fixed llama tensor set and of one shaped by the config's own (hostile) sizes. Every step must end in
/// a value or a TensorFileError, never a trap; a catalog of the config-shaped tensors must report the
/// config's sizes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHFConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let md = try? ModelFiles.parseConfig(bytes, path: "fuzz/config.json") else { return 0 }
    _ = try? CheckpointFolder.configDType(md, path: "fuzz/config.json")
    if let c = try? ModelCatalog(tensors: llama, metadata: md, path: "fuzz"), let hp = c.hyperparameters {
        _ = (hp.kvDim, hp.qDim, c.layers)
    }
    // Tensors shaped by the config (at most 3 layers built, whatever it declares).
    guard let layers = md["num_hidden_layers"]?.intValue, let hidden = md["hidden_size"]?.intValue,
          let heads = md["num_attention_heads"]?.intValue, layers > 0, hidden > 0, heads > 0,
          layers <= 1 << 24, hidden <= 1 << 24, heads <= 1 << 24 else { return 0 }
    let kvHeads = md["num_key_value_heads"]?.intValue ?? heads
    let headDim = md["head_dim"]?.intValue ?? hidden / heads
    guard kvHeads > 0, headDim > 0, kvHeads <= 1 << 24, headDim <= 1 << 24,
          let qDim = CheckedSize.multiply(heads, headDim), let kvDim = CheckedSize.multiply(kvHeads, headDim) else { return 0 }
    let ffn = max(1, min(md["intermediate_size"]?.intValue ?? hidden, 1 << 24))
    let vocab = max(1, min(md["vocab_size"]?.intValue ?? 1, 1 << 24))
    guard let shaped = llamaTensors(layers: min(layers, 3), hidden: hidden, qDim: qDim, kvDim: kvDim, ffn: ffn, vocab: vocab),
          let c = try? ModelCatalog(tensors: shaped, metadata: md, path: "fuzz") else { return 0 }
    guard let hp = c.hyperparameters, hp.nLayers == layers, hp.hiddenSize == hidden, hp.nHeads == heads,
          hp.kvDim == kvDim, c.entries.count == shaped.count else {
        fatalError("catalog disagrees with the config it was built from")
    }
    return 0
}
