import Foundation
import Testing

/// The issue acceptance checks on the real SmolLM2 GGUF, through the built binary.
@Suite struct SmolLM2CLITests {
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    static func json(_ r: CLI.Result) throws -> [String: Any] {
        try #require(r.status == 0, "stderr: \(r.stderr)")
        return try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    static func golden(_ path: String) throws -> [String: Any] {
        let url = CLI.root.appendingPathComponent("Tests/Golden").appendingPathComponent(path)
        return try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    @Test func inspectGivesTheArchitectureFactsAndEveryDtype() throws {
        let doc = try Self.json(try CLI.run(["inspect", Self.model, "--json"]))
        #expect(doc["architecture"] as? String == "llama")
        #expect(doc["n_layers"] as? Int == 30)
        #expect(doc["hidden_size"] as? Int == 576)
        #expect(doc["n_heads"] as? Int == 9)
        #expect(doc["n_kv_heads"] as? Int == 3)
        #expect(doc["head_dim"] as? Int == 64)
        #expect(doc["vocab_size"] as? Int == 49152)
        #expect(doc["context_length"] as? Int == 8192)
        // Every tensor's GGML type and [out, in] shape as gguf-py reads them.
        let reference = try Self.golden("catalog/smollm2.json")
        let refTensors = try #require(reference["tensors"] as? [[String: Any]])
        var refByName: [String: [String: Any]] = [:]
        for t in refTensors { if let n = t["name"] as? String { refByName[n] = t } }
        let tensors = try #require(doc["tensors"] as? [[String: Any]])
        #expect(tensors.count == 272)
        #expect(refByName.count == 272)
        for t in tensors {
            let name = t["name"] as? String ?? "?"
            let ref = try #require(refByName[name], "\(name) not in gguf-py's list")
            #expect(t["dtype"] as? String == ref["dtype"] as? String, "\(name)")
            #expect(t["shape"] as? [Int] == ref["shape"] as? [Int], "\(name)")
        }
    }

    @Test func spectraColdAndWarmMatchNumpy() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-cli-cache-\(getpid())")
        defer { try? FileManager.default.removeItem(at: cache) }
        let golden = try Self.golden("kv/smollm2_weight_spectra.json")
        let want = try #require(golden["layers"] as? [[String: Any]])
        for pass in ["cold", "warm"] {
            let doc = try Self.json(try CLI.run(["spectra", Self.model, "--json"], environment: ["XDG_CACHE_HOME": cache.path]))
            #expect(doc["source"] as? String == "weights")
            let layers = try #require(doc["layers"] as? [[String: Any]])
            #expect(layers.count == 30, "\(pass)")
            for (got, ref) in zip(layers, want) {
                for kind in ["k", "v"] {
                    let g = got[kind] as? [String: Any] ?? [:], r = ref[kind] as? [String: Any] ?? [:]
                    #expect(g["energy_rank"] as? [String: Int] == r["energy_rank"] as? [String: Int], "\(pass) layer \(got["layer"] ?? "?") \(kind)")
                    let gs = g["singular_values"] as? [Double] ?? [], rs = r["singular_values"] as? [Double] ?? []
                    #expect(gs.count == 192 && rs.count == 192)
                    let worst = zip(gs, rs).map { abs($0 - $1) / $1 }.max() ?? 1
                    #expect(worst <= 1e-4, "\(pass) layer \(got["layer"] ?? "?") \(kind): \(worst)")
                }
            }
        }
    }
}
