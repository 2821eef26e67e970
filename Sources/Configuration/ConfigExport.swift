import Foundation
import KVCompression
import LinearAlgebra
import TensorFiles

/// Export formats of a config (`kvscope export`): low-rank factors as safetensors, llama-quantize
/// overrides for the weight plan, and Palu's `head_wise_ranks`.
public enum ConfigExport {
    /// The safetensors metadata key holding the whole config (its JSON text).
    public static let configMetadataKey = "kvscope_config"

    /// HF-style tensor names of a layer's factors, PEFT LoRA convention: `lora_A` is A [r, d]
    /// (token → features, c = A x) and `lora_B` is B [d_kv, r] (features → key, k̂ = B c).
    public static func factorName(layer: Int, kind: ProjectionKind, factor: String) -> String {
        "model.layers.\(layer).self_attn.\(kind == .k ? "k_proj" : "v_proj").lora_\(factor).weight"
    }

    /// A safetensors file of every layer's K and V factors in fp16 (HF row order) with the config
    /// JSON embedded in `__metadata__` under ``configMetadataKey``.
    /// - Parameters:
    ///   - config: the config (its KV section gives the ranks).
    ///   - factors: A [r, d] and B [d_kv, r] of (layer, kind, rank).
    /// - Throws: ``ConfigError`` without a KV section or on a factor of the wrong shape; writer errors.
    public static func factorsFile(config: KVScopeConfig,
                                   factors: (Int, ProjectionKind, Int) throws -> LowRankFactors) throws -> SafeTensorsWriter {
        guard let kv = config.kvCache else { throw ConfigError(entry: "kv_cache", "missing: there are no factors to export") }
        var writer = SafeTensorsWriter(metadata: [configMetadataKey: config.document.compactJSON,
                                                  "format": "kvscope-factors"])
        for entry in kv.layers.sorted(by: { $0.layer < $1.layer }) {
            for (kind, setting) in [(ProjectionKind.k, entry.k), (.v, entry.v)] {
                let f = try factors(entry.layer, kind, setting.rank)
                guard f.a.rows == setting.rank, f.a.cols == config.model.hiddenSize,
                      f.b.rows == config.model.dKV, f.b.cols == setting.rank else {
                    throw ConfigError(entry: "kv_cache.layers[\(entry.layer)].\(kind.rawValue)",
                                      "factors are A \(f.a.rows)x\(f.a.cols), B \(f.b.rows)x\(f.b.cols); expected A \(setting.rank)x\(config.model.hiddenSize), B \(config.model.dKV)x\(setting.rank)")
                }
                try writer.add(factorName(layer: entry.layer, kind: kind, factor: "A"), matrix: f.a, as: .f16)
                try writer.add(factorName(layer: entry.layer, kind: kind, factor: "B"), matrix: f.b, as: .f16)
            }
        }
        return writer
    }

    /// The GGUF type llama-quantize gets for `bits` bits per weight: the nearest of
    /// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0 and F16 (7 rounds up to Q8_0, keeping at least the planned precision).
    public static func ggufType(bits: Int) -> String {
        switch bits {
        case ...2: return "Q2_K"
        case 3: return "Q3_K"
        case 4: return "Q4_K"
        case 5: return "Q5_K"
        case 6: return "Q6_K"
        case 7, 8: return "Q8_0"
        default: return "F16"
        }
    }

    /// llama-quantize arguments carrying out the weight plan: one `--tensor-type NAME=TYPE` per
    /// matrix, the name a regular expression matching exactly that tensor (dots escaped, anchored).
    /// - Returns: the arguments, and notes on what the mapping could not carry (outliers, groups).
    /// - Throws: ``ConfigError`` without a weights section.
    public static func llamaQuantizeArguments(config: KVScopeConfig) throws -> (arguments: [String], notes: [String]) {
        guard let w = config.weights else { throw ConfigError(entry: "weights", "missing: there is no weight plan to export") }
        var arguments: [String] = []
        var mapping: [Int: String] = [:]
        var outliers = 0
        for l in w.layers {
            let type = ggufType(bits: l.bits)
            mapping[l.bits] = type
            if l.outlierFraction > 0 { outliers += 1 }
            let pattern = "^" + ggufTensorName(l.tensor).replacingOccurrences(of: ".", with: "\\.") + "$"
            arguments += ["--tensor-type", "\(pattern)=\(type.lowercased())"]
        }
        var notes = ["bits → GGUF type: " + mapping.keys.sorted().map { "\($0)→\(mapping[$0] ?? "")" }.joined(separator: ", ")]
        notes.append("GGUF types fix their own block sizes (K-quants 256, Q8_0 32); the plan's group size \(w.groupSize.map(String.init) ?? "per channel") is not carried over")
        if outliers > 0 {
            notes.append("\(outliers) tensors plan fp16 outliers, which GGUF types cannot hold: they are quantized without them")
        }
        return (arguments, notes)
    }

    /// The GGUF name of a layer matrix: an HF name (`model.layers.N.self_attn.q_proj.weight`, a
    /// plan made on a checkpoint folder) maps through ``TensorFiles/Architecture/TensorNames`` (the
    /// matrices are named alike in every family); a GGUF name stays.
    static func ggufTensorName(_ name: String) -> String {
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return name }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return name }
        let suffix = String(rest[rest.index(after: dot)...])
        let names = Architecture.TensorNames.common
        guard let role = names.huggingFace.first(where: { $0.value == suffix })?.key,
              let gguf = names.gguf(layer, role) else { return name }
        return gguf
    }

    /// Palu's `head_wise_ranks`: for each `model.layers.N.self_attn.{k,v}_proj`, a list of ranks, one
    /// per low-rank head group. kvscope decomposes each projection as a whole, so every list has one
    /// entry (Palu's joint, one-group decomposition).
    /// - Throws: ``ConfigError`` without a KV section.
    public static func paluDocument(config: KVScopeConfig) throws -> ConfigValue {
        guard let kv = config.kvCache else { throw ConfigError(entry: "kv_cache", "missing: there are no ranks to export") }
        var ranks: [(key: String, value: ConfigValue)] = []
        for l in kv.layers.sorted(by: { $0.layer < $1.layer }) {
            ranks.append(("model.layers.\(l.layer).self_attn.k_proj", .array([.int(l.k.rank)])))
            ranks.append(("model.layers.\(l.layer).self_attn.v_proj", .array([.int(l.v.rank)])))
        }
        return .object([("head_wise_ranks", .object(ranks)), ("num_lr_groups", .int(1)),
                        ("kvscope_bits", .object(kv.layers.sorted(by: { $0.layer < $1.layer }).flatMap { l in
                            [("model.layers.\(l.layer).self_attn.k_proj", ConfigValue.int(l.k.bits)),
                             ("model.layers.\(l.layer).self_attn.v_proj", ConfigValue.int(l.v.bits))]
                        }))])
    }
}
