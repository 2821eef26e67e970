import Foundation
import Testing

/// `kvscope calibrate` and `kvscope spectra --source kv|kv-post-rope` on SmolLM2 and
/// Samples/calibration.txt against the numpy reference (Tests/Reference/calib_kv_spectra.py: a direct
/// float64 SVD of the captured K/V token matrices).
@Suite(.serialized) struct SpectraKVCLITests {
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    struct Golden: Decodable {
        struct Source: Decodable {
            var singular_values: [String: [Double]]
            var energy_rank: [[String: Int]]
        }
        var n_tokens: Int
        var sources: [String: Source]
    }

    struct Document: Decodable {
        struct Entry: Decodable {
            var rows: Int
            var cols: Int
            var singular_values: [Double]
            var energy_rank: [String: Int]
        }
        struct Layer: Decodable { var layer: Int; var k: Entry; var v: Entry }
        var source: String
        var layers: [Layer]
    }

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: CLI.root.appendingPathComponent("Tests/Golden/kv/smollm2_kv_spectra.json")))
    }

    static func spectra(_ args: [String], cache: URL) throws -> Document {
        let r = try CLI.run(["spectra"] + args + ["--json"], environment: ["XDG_CACHE_HOME": cache.path])
        #expect(r.status == 0, "\(r.stderr)")
        return try JSONDecoder().decode(Document.self, from: Data(r.stdout.utf8))
    }

    /// Compares a document with the golden source: top singular values relative 1e-3 where σ ≥ σ₁/30
    /// (Gram route in Float: smaller values lose relative precision, checked as |σ² − σ²_ref| ≤ tol·σ₁²),
    /// energy ranks equal or within `rankSlack`.
    static func check(_ doc: Document, _ golden: Golden.Source, key: KeyPath<Document.Layer, Document.Entry>,
                      tolerance: Double, squaredTolerance: Double, rankSlack: Int, tokens: Int) {
        #expect(doc.layers.count == golden.energy_rank.count)
        for layer in doc.layers {
            let entry = layer[keyPath: key]
            #expect(entry.rows == tokens && entry.cols == 192)
            for (p, expected) in golden.energy_rank[layer.layer] {
                let got = entry.energy_rank[p] ?? -1
                #expect(abs(got - expected) <= rankSlack, "layer \(layer.layer) r\(p): \(got) vs numpy \(expected)")
            }
            guard let reference = golden.singular_values[String(layer.layer)] else { continue }
            let s1 = reference[0]
            for (i, expected) in reference.enumerated() {
                let got = entry.singular_values[i]
                if expected >= s1 / 30 {
                    #expect(abs(got - expected) / expected < tolerance, "layer \(layer.layer) σ\(i + 1): \(got) vs numpy \(expected)")
                }
                #expect(abs(got * got - expected * expected) <= squaredTolerance * s1 * s1,
                        "layer \(layer.layer) σ\(i + 1)²: \(got) vs numpy \(expected)")
            }
        }
    }

    /// calibrate writes a statistics file (refusing to overwrite), spectra --stats reads it, and
    /// spectra --text (capture, then the cache) gives the same numbers.
    @Test func calibrateThenSpectraMatchNumpy() throws {
        let golden = try Self.golden()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-kv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("cache"), stats = dir.appendingPathComponent("stats.safetensors").path

        let r = try CLI.run(["calibrate", Self.model, "--text", "Samples/calibration.txt", "--out", stats, "--samples", "32"],
                            environment: ["XDG_CACHE_HOME": cache.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let again = try CLI.run(["calibrate", Self.model, "--text", "Samples/calibration.txt", "--out", stats])
        #expect(again.status == 1 && again.stderr.contains("--force"), "\(again.stderr)")

        let pre = try Self.spectra([Self.model, "--source", "kv", "--stats", stats], cache: cache)
        #expect(pre.source == "kv")
        let tokens = golden.n_tokens
        Self.check(pre, try #require(golden.sources["kv_k"]), key: \.k, tolerance: 1e-3, squaredTolerance: 1e-5, rankSlack: 1, tokens: tokens)
        Self.check(pre, try #require(golden.sources["kv_v"]), key: \.v, tolerance: 1e-3, squaredTolerance: 1e-5, rankSlack: 1, tokens: tokens)
        let post = try Self.spectra([Self.model, "--source", "kv-post-rope", "--stats", stats], cache: cache)
        Self.check(post, try #require(golden.sources["kv_post_rope_k"]), key: \.k, tolerance: 1e-3, squaredTolerance: 1e-5,
                   rankSlack: 1, tokens: tokens)
        // The post-RoPE K spectrum is flatter than the pre-RoPE one (the reason CSKV caches pre-RoPE).
        let preRanks = pre.layers.map { $0.k.energy_rank["0.95"] ?? 0 }.reduce(0, +)
        let postRanks = post.layers.map { $0.k.energy_rank["0.95"] ?? 0 }.reduce(0, +)
        #expect(postRanks > preRanks)

        let fromText = try Self.spectra([Self.model, "--source", "kv", "--text", "Samples/calibration.txt"], cache: cache)
        for (a, b) in zip(fromText.layers, pre.layers) {
            #expect(a.k.singular_values == b.k.singular_values && a.v.singular_values == b.v.singular_values)
        }
        let cached = try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent("kvscope/calibration").path)
        #expect(cached.count == 1, "one cached statistics file per model and text")
    }

    @Test func wrongStatisticsFileIsAOneLineError() throws {
        let r = try CLI.run(["spectra", Self.model, "--source", "kv", "--stats", "Tests/Golden/kv/smollm2_kv_spectra.json"])
        #expect(r.status == 1 && r.stderr.hasPrefix("kvscope: error:") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}
