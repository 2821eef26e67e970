import Configuration
import ExplorerCore
import Foundation
import Testing

/// The explorer's `o` and `e` (driven through the runtime, no curses) on the sample bundle write a
/// config that `kvscope eval --config` accepts, with the same perplexity as the tune config it opened.
@Suite(.serialized) struct ExplorerConfigCLITests {
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

    static func type(_ text: String, into runtime: ExplorerRuntime) {
        for _ in 0..<80 { runtime.send(.promptBackspace) }
        for c in text { runtime.send(.promptInput(c)) }
        runtime.send(.promptSubmit)
    }

    static func eval(_ config: String) throws -> [String: Any] {
        let r = try CLI.run(["eval", "Samples/smollm2", "--text", "Samples/eval.txt", "--config", config, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    @Test func aConfigTheExplorerSavesEvaluatesLikeTheTuneConfigItOpened() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-tuiexport-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tuned = dir + "/tuned.json", saved = dir + "/saved.yaml"
        let tune = try CLI.run(["tune", Self.model, "--kv-budget", "20%", "--context", "4096", "--out", tuned, "--json"])
        try #require(tune.status == 0, "\(tune.stderr)")

        // The explorer on the sample bundle with its calibration (activations basis, as tune uses).
        let session = try ModelSession(path: CLI.root.appendingPathComponent("Samples/smollm2").path)
        let calibration = try session.bundledCalibration()
        var resources = try ExplorerResources.load(session: session, calibration: calibration)
        resources.errorModel = try ExplorerResources.buildErrorModel(session: session, calibration: calibration, groupSize: 32)
        let runtime = ExplorerRuntime(state: ExplorerState(resources: resources), jobs: nil,
                                      configIdentity: try ExplorerConfigIdentity(session: session, calibration: calibration))
        runtime.send(.askOpen)
        Self.type(tuned, into: runtime)
        // (The status line then reports the quantized-table jobs, which this runtime has no runner for.)
        #expect(runtime.state.settings.contextLength == 4096 && !runtime.state.hasUnexportedChanges)
        runtime.send(.askExport)
        Self.type(saved, into: runtime)
        #expect(runtime.state.status == "exported \(saved)")

        // Same plan, same model identity, same calibration text.
        let a = try KVScopeConfig.load(path: tuned), b = try KVScopeConfig.load(path: saved)
        #expect(b.model.sha256 == a.model.sha256 && b.model.dKV == a.model.dKV)
        #expect(URL(fileURLWithPath: b.model.path).standardizedFileURL == CLI.root.appendingPathComponent(Self.model).standardizedFileURL)
        let ka = try #require(a.kvCache), kb = try #require(b.kvCache)
        #expect(kb.layers == ka.layers && kb.memory == ka.memory && kb.basis == ka.basis)
        #expect(kb.window == ka.window && kb.groupSize == ka.groupSize && kb.contextLength == ka.contextLength)
        #expect(kb.calibration?.sha256 == ka.calibration?.sha256 && kb.calibration?.nTokens == ka.calibration?.nTokens)

        let pa = try Self.eval(tuned), pb = try Self.eval(saved)
        let ppl = try #require(pa["perplexity"] as? Double), baseline = try #require(pa["baseline_perplexity"] as? Double)
        #expect(pb["perplexity"] as? Double == ppl)
        #expect(pb["kv_bytes"] as? Double == pa["kv_bytes"] as? Double)
        #expect(ppl > baseline && ppl < 1.2 * baseline, "20% of the fp16 cache costs a little perplexity")
    }

    @Test func evalRejectsAConfigForAnotherModelFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-evalsha-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let session = try ModelSession(path: CLI.root.appendingPathComponent(Self.model).path)
        var identity = try ExplorerConfigIdentity(session: session, calibration: nil)
        identity.model.sha256 = String(repeating: "0", count: 64)
        var resources = try ExplorerResources.load(session: session, calibration: nil)
        resources.errorModel = nil
        let path = dir + "/other.json"
        try ExplorerConfigFile.write(ExplorerState(resources: resources).settings, state: ExplorerState(resources: resources),
                                     identity: identity, to: path, overwrite: false)
        let r = try CLI.run(["eval", Self.model, "--text", "Samples/eval.txt", "--config", path])
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("kvscope: error: \(path): model.sha256: the config was made for \(String(repeating: "0", count: 64)), the model file is "))
        #expect(r.stderr.contains("--allow-model-mismatch") && r.stderr.split(separator: "\n").count == 1)
    }
}
