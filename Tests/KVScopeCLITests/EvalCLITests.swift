import Foundation
import Testing

/// `kvscope eval` on SmolLM2 and Samples/eval.txt against the numpy reference
/// (Tests/Golden/inference/smollm2_reference.json, Tests/Reference/llama_reference.py).
@Suite struct EvalCLITests {
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    struct Reference: Decodable {
        struct Case: Decodable { var perplexity: Double }
        var n_tokens: Int
        var cases: [String: Case]
    }

    static func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: CLI.root.appendingPathComponent(
            "Tests/Golden/inference/smollm2_reference.json")))
    }

    struct Output: Decodable {
        var n_tokens: Int
        var n_predictions: Int
        var mean_nll: Double
        var perplexity: Double
        var kv_bytes: Double
        var baseline_kv_bytes: Double
        var baseline_perplexity: Double?
    }

    func eval(_ options: [String]) throws -> Output {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        let r = try CLI.run(["eval", Self.model, "--text", "Samples/eval.txt", "--json"] + options,
                            environment: ["XDG_CACHE_HOME": cache.path])
        #expect(r.status == 0, "\(r.stderr)")
        return try JSONDecoder().decode(Output.self, from: Data(r.stdout.utf8))
    }

    func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }

    /// Full rank at 16 bits is the baseline, bit for bit; the baseline matches numpy within 0.5%.
    @Test func fullRankSixteenBitsIsTheBaseline() throws {
        let ref = try Self.reference()
        let out = try eval(["--rank", "192", "--bits", "16"])
        let baseline = try #require(out.baseline_perplexity)
        #expect(out.perplexity == baseline)
        #expect(out.kv_bytes == out.baseline_kv_bytes)
        #expect(out.n_tokens == ref.n_tokens && out.n_predictions == ref.n_tokens - 1)
        let expected = try #require(ref.cases["baseline"]).perplexity
        #expect(relative(baseline, expected) < 0.005, "baseline \(baseline) vs numpy \(expected)")
        #expect(abs(exp(out.mean_nll) - out.perplexity) < 1e-9 * out.perplexity)
        // 2 (K, V) · 355 tokens · 192 channels · 2 bytes · 30 layers.
        let fp16: Double = 2 * 355 * 192 * 2 * 30
        #expect(out.baseline_kv_bytes == fp16)
    }

    /// The change from the baseline, ΔNLL, against the float64 reference (Tests/Reference/kv_grid_reference.py)
    /// to 1e-4 absolute: `--rank` and `--bits` set both branches.
    func expectDeltaMatchesFloat64(_ out: Output, _ name: String) throws {
        let golden = try EvalGridCLITests.golden.get()
        let c = try #require(golden.long.cases.first { $0.name == name })
        let delta = out.mean_nll - log(try #require(out.baseline_perplexity))
        #expect(abs(delta - c.delta_nll) < c.tolerance, "\(name): ΔNLL \(delta) vs numpy float64 \(c.delta_nll)")
    }

    @Test func rankSixtyFourWindowThirtyTwoMatchesNumpy() throws {
        let out = try eval(["--rank", "64", "--window", "32", "--calib", "Samples/eval.txt"])
        try expectDeltaMatchesFloat64(out, "rank64_window32")
        // Per K and per V: 32·192·2 + (355 − 32)·64·2 bytes, 30 layers (DESIGN.md §4).
        let perBranch: Double = 32 * 192 * 2 + 323 * 64 * 2
        #expect(out.kv_bytes == 60 * perBranch)
        #expect(out.baseline_perplexity != nil)
    }

    @Test func fourBitsGroupSixtyFourWindowThirtyTwoMatchesNumpy() throws {
        let out = try eval(["--bits", "4", "--group", "64", "--window", "32"])
        try expectDeltaMatchesFloat64(out, "bits4_group64_window32")
        // Per K and per V: 32·192·2 + 323·(192·4/8 + ⌈192/64⌉·4).
        let perBranch: Double = 32 * 192 * 2 + 323 * (96 + 12)
        #expect(out.kv_bytes == 60 * perBranch)
    }

    @Test(arguments: [
        (["--rank", "0"], "--rank"),
        (["--bits", "1"], "--bits"),
        (["--bits", "17"], "--bits"),
        (["--group", "0"], "--group"),
        (["--text", "Samples/no-such-text.txt"], "no-such-text.txt"),
    ])
    func badValuesAreOneLineErrors(_ options: [String], _ mentioned: String) throws {
        var args = ["eval", Self.model, "--text", "Samples/eval.txt"]
        if options.first == "--text" { args = ["eval", Self.model] }
        let r = try CLI.run(args + options)
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines.first?.hasPrefix("kvscope: error:") == true && r.stderr.contains(mentioned), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func missingModelIsAOneLineError() throws {
        let r = try CLI.run(["eval", "models/none.gguf", "--text", "Samples/eval.txt"])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("kvscope: error:") && r.stderr.contains("models/none.gguf"), "\(r.stderr)")
    }

    /// stderr is a pipe here: progress comes as plain lines naming each phase (calibration, fitting,
    /// prefill, baseline), with no terminal control codes, and stdout holds the JSON document alone.
    @Test func progressOnAPipeIsPlainLinesNamingEachPhase() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-evalprogress-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        let r = try CLI.run(["eval", Self.model, "--text", "Samples/eval.txt", "--rank", "64", "--window", "32", "--bits", "4",
                             "--basis", "fitted", "--json"], environment: ["XDG_CACHE_HOME": cache.path])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").map(String.init)
        #expect(!r.stderr.contains("\r") && !r.stderr.contains("\u{1B}"))
        #expect(lines.allSatisfy { $0.hasPrefix("eval: ") }, "\(r.stderr)")
        for final in ["eval: calibration 100% (30/30 layers)", "eval: fitting 100% (30/30 layers)", "eval: prefill 100%",
                      "eval: baseline 100%"] {
            #expect(lines.contains(final), "\(final) missing from:\n\(r.stderr)")
        }
        // In that order.
        let order = ["calibration", "fitting", "prefill", "baseline"].compactMap { phase in
            lines.firstIndex { $0.hasPrefix("eval: \(phase) ") }
        }
        #expect(order.count == 4 && order == order.sorted())
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["perplexity"] is Double)
        #expect(r.stdout.split(separator: "\n").count == 1)
    }

    @Test func interruptExitsWith130() throws {
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["eval", Self.model, "--text", "Samples/eval.txt", "--rank", "64", "--calib", "Samples/eval.txt"]
        p.currentDirectoryURL = CLI.root
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-int-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        p.environment = ProcessInfo.processInfo.environment.merging(["XDG_CACHE_HOME": cache.path]) { _, b in b }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        Thread.sleep(forTimeInterval: 1.5)
        p.interrupt()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 130, "\(p.terminationReason) \(p.terminationStatus): \(e)")
        #expect(e.contains("kvscope: cancelled"))
    }
}
