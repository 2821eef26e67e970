import Foundation
import Testing

/// The committed sample bundle Samples/smollm2 (docs/sample-bundle.md): size, manifest, and spectra
/// equal to the full model's.
@Suite struct BundleCLITests {
    static let bundle = "Samples/smollm2"
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    @Test func samplesStayUnderTwelveMegabytes() throws {
        let root = CLI.root.appendingPathComponent("Samples")
        let files = try #require(FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.fileSizeKey]))
        var total = 0
        for case let url as URL in files { total += (try url.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0 }
        #expect(total < 12 * 1024 * 1024, "Samples/ holds \(total) bytes")
    }

    @Test func manifestDescribesTheSource() throws {
        let data = try Data(contentsOf: CLI.root.appendingPathComponent(Self.bundle + "/bundle.json"))
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(doc["format"] as? String == "kvscope-bundle" && doc["version"] as? Int == 1)
        let model = try #require(doc["model"] as? [String: Any])
        #expect(model["path"] as? String == Self.model)
        let attributes = try FileManager.default.attributesOfItem(atPath: CLI.root.appendingPathComponent(Self.model).path)
        #expect(model["size"] as? Int == (attributes[.size] as? NSNumber)?.intValue)
        let text = try #require(doc["text"] as? [String: Any])
        #expect(text["name"] as? String == "calibration.txt")
        let notice = try String(contentsOf: CLI.root.appendingPathComponent(Self.bundle + "/NOTICE"), encoding: .utf8)
        #expect(notice.contains("Apache License") && notice.contains("HuggingFaceTB"))
    }

    @Test func weightSpectraEqualTheFullModel() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-bundle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        let a = try SpectraKVCLITests.spectra([Self.bundle], cache: cache)
        let b = try SpectraKVCLITests.spectra([Self.model], cache: cache)
        #expect(a.layers.count == 30)
        for (x, y) in zip(a.layers, b.layers) {
            #expect(x.k.singular_values == y.k.singular_values && x.v.singular_values == y.v.singular_values)
        }
    }

    /// The bundle's packed fp16 Grams give the kv spectra of the numpy reference within fp16 packing
    /// tolerance (eigenvalues to about 5·10⁻⁴·λ₁).
    @Test func kvSpectraFromTheBundleMatchNumpy() throws {
        let golden = try SpectraKVCLITests.golden()
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-bundle-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        let pre = try SpectraKVCLITests.spectra([Self.bundle, "--source", "kv"], cache: cache)
        SpectraKVCLITests.check(pre, try #require(golden.sources["kv_k"]), key: \.k, tolerance: 2e-2, squaredTolerance: 1e-3,
                                rankSlack: 2, tokens: golden.n_tokens)
        SpectraKVCLITests.check(pre, try #require(golden.sources["kv_v"]), key: \.v, tolerance: 2e-2, squaredTolerance: 1e-3,
                                rankSlack: 2, tokens: golden.n_tokens)
        let post = try SpectraKVCLITests.spectra([Self.bundle, "--source", "kv-post-rope"], cache: cache)
        SpectraKVCLITests.check(post, try #require(golden.sources["kv_post_rope_k"]), key: \.k, tolerance: 2e-2,
                                squaredTolerance: 1e-3, rankSlack: 2, tokens: golden.n_tokens)
    }

    /// With the source model present, a bundle evaluates perplexity like the model itself.
    @Test func bundleEvaluatesWithItsSourceModel() throws {
        let r = try CLI.run(["eval", Self.bundle, "--text", "Samples/eval.txt", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let ppl = try #require(doc["perplexity"] as? Double)
        let ref = try EvalCLITests.reference()
        let expected = try #require(ref.cases["baseline"]).perplexity
        #expect(abs(ppl - expected) / expected < 0.005)
    }
}
