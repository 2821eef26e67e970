import ExplorerCore
import Foundation
import KVCompression
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
let smolLM2Path = repositoryRoot.appendingPathComponent("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path

/// SmolLM2's W_k/W_v spectra, end to end (GGUF dequantization → catalog, HF row order → LAPACK),
/// against numpy on gguf-py's dequantization (Tests/Reference/kv_weight_spectra.py).
@Suite struct SmolLM2SpectraTests {
    @Test func weightSpectraMatchNumpy() throws {
        try #require(FileManager.default.fileExists(atPath: smolLM2Path), "missing \(smolLM2Path): run `make models`")
        let url = repositoryRoot.appendingPathComponent("Tests/Golden/kv/smollm2_weight_spectra.json")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
        let layers = golden["layers"] as? [[String: Any]] ?? []
        try #require(layers.count == 30)
        let session = try ModelSession(path: smolLM2Path)
        let spectra = try session.weightSpectra(useCache: false)
        #expect(spectra.count == 30)
        for (entry, computed) in zip(layers, spectra) {
            for kind in ProjectionKind.allCases {
                let g = entry[kind.rawValue] as? [String: Any] ?? [:]
                let s = computed[kind]
                #expect(s.rows == 192 && s.cols == 576)
                let want = (g["singular_values"] as? [Double]) ?? []
                try #require(want.count == s.singularValues.count)
                var worst = 0.0
                for (got, w) in zip(s.singularValues, want) { worst = max(worst, abs(Double(got) - w) / w) }
                #expect(worst <= 1e-4, "layer \(computed.layer) \(kind): worst relative error \(worst)")
                let ranks = g["energy_rank"] as? [String: Int] ?? [:]
                #expect(s.energyRank(0.9) == ranks["0.9"], "layer \(computed.layer) \(kind) r90")
                #expect(s.energyRank(0.95) == ranks["0.95"], "layer \(computed.layer) \(kind) r95")
                #expect(s.energyRank(0.99) == ranks["0.99"], "layer \(computed.layer) \(kind) r99")
            }
        }
    }

    /// The K rows come back in Hugging Face order: undoing llama.cpp's permutation twice is not
    /// the identity, so compare against gguf-py's raw rows permuted by the documented rule.
    @Test func keyProjectionIsInHuggingFaceRowOrder() throws {
        let session = try ModelSession(path: smolLM2Path)
        let hf = try session.projection(layer: 0, kind: .k)
        let raw = try session.opened.catalog.matrix(try #require(session.opened.catalog.entry(layer: 0, role: .k)),
                                                    from: session.opened.file, hfRowOrder: false)
        // llama.cpp: GGUF row (h, i, j) for j in 0..<2, i in 0..<hd/2 holds HF row (h, j, i).
        let hd = 64
        for h in 0..<3 {
            for i in 0..<(hd / 2) {
                for j in 0..<2 {
                    let ggufRow = h * hd + i * 2 + j, hfRow = h * hd + j * (hd / 2) + i
                    #expect(raw.row(ggufRow) == hf.row(hfRow))
                }
            }
        }
    }
}
