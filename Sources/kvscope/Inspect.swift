import ArgumentParser
import Foundation
import Inference
import TensorFiles

/// `kvscope inspect MODEL [--json]`: the architecture and every tensor's layer, role, shape, dtype and bytes.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's architecture and its tensors (layer, role, shape, dtype, bytes).",
        discussion: HelpText.flow("""
            MODEL is a GGUF, safetensors or npy file. For safetensors, config.json beside the file
            gives the hyper-parameters. Weights are shown [out, in]; GPT-2's fused c_attn appears
            as three rows (q, k, v) with their row ranges.
            """))

    @Argument(help: "The model file (.gguf, .safetensors or .npy).") var model: String
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func run() throws {
        try CLIError.reporting {
            let opened = try openModel(path: model)
            if json {
                try CLIError.printJSON(Inspect.document(opened))
            } else {
                print(Inspect.table(opened, path: model), terminator: "")
            }
        }
    }

    /// The JSON document of DESIGN.md §5 (fixed keys first, extras after).
    static func document(_ m: OpenedModel) -> JSON {
        let hp = m.catalog.hyperparameters
        let tensors: [JSON] = m.catalog.entries.map { e in
            [
                "name": e.name.json, "shape": e.shape.json, "dtype": e.dtype.json, "layer": e.layer.json,
                "role": e.role.rawValue.json, "parameter": e.parameter.rawValue.json, "bytes": e.byteCount.json,
                "rows": e.rows.map { [$0.lowerBound, $0.upperBound] }.json, "transposed": e.transposed.json,
            ]
        }
        return [
            "architecture": hp?.architecture.json ?? nil, "n_layers": hp?.nLayers.json ?? nil,
            "hidden_size": hp?.hiddenSize.json ?? nil, "n_heads": hp?.nHeads.json ?? nil,
            "n_kv_heads": hp?.nKVHeads.json ?? nil, "head_dim": hp?.headDim.json ?? nil,
            "vocab_size": hp?.vocabSize.json ?? nil, "context_length": hp?.contextLength.json ?? nil,
            "tensors": .array(tensors),
            "format": m.format.rawValue.json, "family": m.catalog.family.rawValue.json, "d_kv": hp?.kvDim.json ?? nil,
            "ffn_size": hp?.ffnSize.json ?? nil, "rope_theta": hp?.ropeTheta.json ?? nil, "norm_eps": hp?.normEps.json ?? nil,
            "tied_embeddings": hp?.tiedEmbeddings.json ?? nil,
            "sliding_window": hp?.slidingWindow.json ?? nil,
            "sliding_layers": hp.map { $0.slidingWindow == nil ? JSON.null : $0.slidingLayers.sorted().json } ?? nil,
            "runs": (ModelLoader.architecture(of: m) != nil).json,
            "total_bytes": m.file.tensors.reduce(0) { $0 + $1.byteCount }.json, "file_bytes": m.file.fileBytes.json,
        ]
    }

    /// Bytes in binary units: 512 B, 1.5 KiB, 44.2 MiB.
    static func formatBytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), u = 0
        while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    /// The human-readable report: a summary of the architecture, then one row per tensor.
    static func table(_ m: OpenedModel, path: String) -> String {
        var out = ""
        let total = m.file.tensors.reduce(0) { $0 + $1.byteCount }
        out += "\(path): \(m.format.rawValue), \(m.file.tensors.count) tensors, \(formatBytes(total)) of tensor data\n"
        if let hp = m.catalog.hyperparameters {
            func opt(_ v: Int?) -> String { v.map(String.init) ?? "?" }
            out += "architecture \(hp.architecture) (\(m.catalog.family.rawValue) names): \(hp.nLayers) layers, hidden \(hp.hiddenSize), "
            out += "\(hp.nHeads) heads, \(hp.nKVHeads) kv heads, head_dim \(hp.headDim), d_kv \(hp.kvDim)\n"
            out += "vocab \(hp.vocabSize), context \(opt(hp.contextLength)), ffn \(opt(hp.ffnSize))"
            if let t = hp.ropeTheta { out += ", rope theta \(t)" }
            if let e = hp.normEps { out += ", norm eps \(e)" }
            out += hp.tiedEmbeddings ? ", tied embeddings\n" : "\n"
            if let a = ModelLoader.architecture(of: m) {
                var traits = [a.qkvBias ? "q/k/v biases" : nil, a.qkNorm ? "QK-norm" : nil,
                              a.sandwichNorms ? "norms before and after attention and MLP" : nil,
                              a.scalesEmbedding ? "embeddings × √d" : nil,
                              a.activation == .silu ? "SwiGLU" : "GeGLU (tanh GELU)"].compactMap { $0 }
                if let w = hp.slidingWindow { traits.append("sliding window \(w) on \(hp.slidingLayers.count) of \(hp.nLayers) layers") }
                out += "family \(a.name): " + traits.joined(separator: ", ") + "\n"
            } else {
                out += "inference: \(ModelLoader.unsupportedReason(m) ?? "not supported")\n"
            }
        } else {
            out += "architecture not recognized: tensors listed with role other\n"
        }
        out += "\n"
        let header = ["layer", "role", "param", "name", "shape", "dtype", "bytes"]
        var rows: [[String]] = [header]
        for e in m.catalog.entries {
            var name = e.name
            if let r = e.rows { name += " [rows \(r.lowerBound)..<\(r.upperBound)]" }
            if e.transposed { name += " (stored [in, out])" }
            rows.append([e.layer.map(String.init) ?? "-", e.role.rawValue, e.parameter.rawValue, name,
                         e.shape.isEmpty ? "scalar" : e.shape.map(String.init).joined(separator: "×"), e.dtype, formatBytes(e.byteCount)])
        }
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        let rightAligned: Set<Int> = [0, 6]
        for row in rows {
            let cells = row.enumerated().map { c, s in
                let pad = String(repeating: " ", count: widths[c] - s.count)
                return rightAligned.contains(c) ? pad + s : s + pad
            }
            out += cells.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) + "\n"
        }
        var byRole: [TensorRole: Int] = [:]
        for e in m.catalog.entries { byRole[e.role, default: 0] += e.byteCount }
        out += "\nbytes by role: " + TensorRole.allCases.compactMap { r in byRole[r].map { "\(r.rawValue) \(formatBytes($0))" } }
            .joined(separator: ", ") + "\n"
        return out
    }
}
