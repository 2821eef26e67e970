import Configuration
import ExplorerCore
import Foundation
import KVCompression
import TerminalUI
import Testing

/// The explorer saves (e) and opens (o) schema-v1 config files (DESIGN.md §6), the same files
/// `kvscope tune` writes and `kvscope eval --config` reads.
@Suite struct TUIConfigFileTests {
    /// SmolLM2's identity: path and SHA-256 (through the hash cache), no calibration (the fixture's
    /// error model uses the `weights` basis).
    static let identity: Result<ExplorerConfigIdentity, any Error> = Result {
        try ExplorerConfigIdentity(session: ModelSession(path: smolLM2Path), calibration: nil)
    }

    static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-tuicfg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A state changed through the key map and the pure update: K/V ranks and bits of several
    /// layers, window, group, context, then weight bits, outliers and group in Weights mode.
    static func editedState() throws -> ExplorerState {
        var s = try TUIFixture.state()
        TUIFixture.press([.right, .right, .character("-"), .character("-"), .down, .character("L"), .character("]"),
                          .character("g"), .character("c"), .tab, .down, .down, .character("H"), .character("-")], &s)
        TUIFixture.press([.character("m"), .down, .character("-"), .character("-"), .character("-"), .down, .down,
                          .character("-"), .character("x"), .character("g")], &s)
        return s
    }

    /// The settings an `e` keystroke hands to the runtime.
    static func exportedSettings(_ state: inout ExplorerState, name: String) -> ExplorerSettings? {
        TUIFixture.press([.character("e")], &state)
        let effects = TUIFixture.press(Array(repeating: Key.backspace, count: 60) + name.map { Key.character($0) } + [.enter], &state)
        guard case .export(let path, false, let settings)? = effects.first, path == name else { return nil }
        return settings
    }

    @Test(arguments: ["c.json", "c.yaml", "c.yml"])
    func exportThenOpenGivesTheSameSettings(name: String) throws {
        var s = try Self.editedState()
        let identity = try Self.identity.get()
        let settings = try #require(Self.exportedSettings(&s, name: name))
        #expect(settings.weights.contains { $0.bits != 16 } && settings.outlierFraction > 0, "the weights plan was edited")
        #expect(settings != (try TUIFixture.state()).settings)
        let path = try Self.temporaryDirectory() + "/" + name
        try ExplorerConfigFile.write(settings, state: s, identity: identity, to: path, overwrite: false)
        let config = try KVScopeConfig.load(path: path)
        // Field for field: the model, every layer, the window/group/context and the weight plan.
        #expect(config.model == identity.model)
        let kv = try #require(config.kvCache)
        #expect(kv.basis == .weights && kv.window == settings.window && kv.groupSize == settings.groupSize
                && kv.contextLength == settings.contextLength)
        #expect(kv.layers.map(\.layer) == Array(0..<30))
        #expect(kv.layers.map { [$0.k.rank, $0.k.bits, $0.v.rank, $0.v.bits] }
                == settings.layers.map { [$0.k.rank, $0.k.bits, $0.v.rank, $0.v.bits] })
        let w = try #require(config.weights)
        #expect(w.groupSize == settings.weightGroupSize)
        #expect(w.layers.map(\.tensor) == s.resources.tensors.map(\.name))
        #expect(w.layers.map(\.bits) == settings.weights.map(\.bits))
        #expect(w.layers.allSatisfy { $0.outlierFraction == settings.outlierFraction })
        // Memory equals what the explorer shows (batch 1).
        var batchOne = s
        batchOne.settings = settings
        batchOne.settings.batch = 1
        let shown = try #require(ExplorerMetrics.kvMemory(batchOne))
        #expect(abs(kv.memory.compressedBytes - shown.totalBytes) <= 1e-12 * shown.totalBytes && kv.memory.baselineBytes == shown.baselineBytes)
        #expect(abs(w.memory.compressedBytes - ExplorerMetrics.weightTotals(batchOne).bytes) <= 1e-9 * w.memory.compressedBytes)
        // Opening it in a fresh explorer restores exactly the exported settings.
        let (back, notes) = try ExplorerConfigFile.read(path: path, state: try TUIFixture.state(), identity: identity)
        #expect(back == settings)
        #expect(notes.isEmpty)
    }

    @Test func modelSHA256MatchesCoreutils() throws {
        let identity = try Self.identity.get()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum", smolLM2Path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(identity.model.sha256 == text.split(separator: " ").first.map(String.init))
        #expect(identity.model.path == smolLM2Path && identity.model.dKV == 192 && identity.model.nLayers == 30)
    }

    @Test func theSampleBundleRecordsItsSourceModelAndCalibrationText() throws {
        let bundle = repositoryRoot.appendingPathComponent("Samples/smollm2").path
        let session = try ModelSession(path: bundle)
        let stats = try #require(try session.bundledCalibration())
        let identity = try ExplorerConfigIdentity(session: session, calibration: stats)
        let gguf = try ExplorerConfigIdentity(session: ModelSession(path: smolLM2Path), calibration: nil)
        #expect(identity.model == gguf.model, "the full model's path and hash, not the bundle's kv.gguf")
        let calibration = try #require(identity.calibration)
        #expect(calibration.nTokens == 952)
        #expect(URL(fileURLWithPath: calibration.text).standardizedFileURL
                == repositoryRoot.appendingPathComponent("Samples/calibration.txt").standardizedFileURL)
        #expect(calibration.sha256 == session.bundle?.text.sha256)
        // The statistics are the bundle's shipped file (64 rows), not a capture: eval --config loads that file.
        #expect(calibration.source == .bundle && calibration.bundle == bundle && calibration.samples == 64)
        #expect(stats.sampleTokenIndices.count == 64)
        #expect(try session.bundleCalibration()?.reference == calibration)
        // A model file's statistics are a capture with their own sample count.
        let capture = try ExplorerConfigIdentity(session: ModelSession(path: smolLM2Path), calibration: stats).calibration
        #expect(capture?.source == .capture && capture?.bundle == nil && capture?.samples == 64)
    }

    /// Opening a config whose statistics are the same text's from another source says so.
    @Test func openingAConfigOfOtherStatisticsOfTheSameTextNotesIt() throws {
        let bundle = repositoryRoot.appendingPathComponent("Samples/smollm2").path
        let session = try ModelSession(path: bundle)
        let mine = try #require(try session.bundleCalibration())
        let explorer = try ExplorerConfigIdentity(session: session, calibration: mine.statistics, reference: mine.reference)
        var capture = mine.reference
        capture.source = .capture
        capture.bundle = nil
        capture.samples = 256
        let state = try TUIFixture.state()
        let config = try ExplorerConfigFile.config(for: state.settings, state: state,
                                                   identity: ExplorerConfigIdentity(model: explorer.model, calibration: capture))
        let (_, notes) = try ExplorerConfigFile.settings(from: config, state: state, identity: explorer)
        #expect(notes == ["its calibration statistics are a capture of \(capture.text) (256 sampled rows), the explorer's the bundle \(bundle) (64 sampled rows)"])
    }

    /// A measured perplexity goes into `metrics` as the config's perplexity only when there is no
    /// weight plan: the forward pass never applied one. Next to a weight plan it is named KV-cache-only.
    @Test func aPerplexityNextToAWeightPlanIsNamedKVCacheOnly() throws {
        let identity = try Self.identity.get()
        let dir = try Self.temporaryDirectory()
        func measured(_ s: inout ExplorerState) {
            _ = Explorer.update(&s, .jobFinished(id: 99, .perplexity(compressed: 25.5, baseline: 24.25, tokens: 355)))
        }
        var kvOnly = try TUIFixture.state()
        TUIFixture.press([.right, .character("-")], &kvOnly)
        measured(&kvOnly)
        #expect(kvOnly.status.hasPrefix("KV cache only: perplexity 25.500"))
        #expect(Explorer.view(kvOnly, width: 120, height: 40).text.contains("KV-only perplexity 25.500  (fp16 cache 24.250, 355 tokens)"))
        kvOnly.mode = .eval
        #expect(Explorer.view(kvOnly, width: 120, height: 40).text.contains("Knobs · metrics · perplexity of the KV cache only"))
        try ExplorerConfigFile.write(kvOnly.settings, state: kvOnly, identity: identity, to: dir + "/kv.json", overwrite: false)
        let a = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/kv.json"))) as? [String: Any])
        let am = try #require(a["metrics"] as? [String: Any])
        #expect(a["weights"] == nil)
        #expect(am["perplexity"] as? Double == 25.5 && am["baseline_perplexity"] as? Double == 24.25 && am["eval_tokens"] as? Int == 355)

        var withWeights = kvOnly
        withWeights.mode = .weights
        TUIFixture.press([.character("-")], &withWeights)  // blk.0.attn_q at 8 bits
        #expect(withWeights.settings.weights[0].bits == 8)
        measured(&withWeights)
        try ExplorerConfigFile.write(withWeights.settings, state: withWeights, identity: identity, to: dir + "/w.json", overwrite: false)
        let b = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/w.json"))) as? [String: Any])
        let bm = try #require(b["metrics"] as? [String: Any])
        #expect(b["weights"] != nil)
        #expect(bm["perplexity"] == nil && bm["baseline_perplexity"] == nil, "\(bm)")
        #expect(bm["kv_cache_only_perplexity"] as? Double == 25.5 && bm["kv_cache_only_baseline_perplexity"] as? Double == 24.25)
    }

    /// Writes `text` to a fresh file and opens it through the runtime's `o` path.
    static func open(_ text: String, name: String) throws -> (runtime: ExplorerRuntime, path: String) {
        let path = try temporaryDirectory() + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let runtime = ExplorerRuntime(state: try TUIFixture.state(), jobs: nil, configIdentity: try identity.get())
        runtime.send(.askOpen)
        for _ in 0..<60 { runtime.send(.promptBackspace) }
        for c in path { runtime.send(.promptInput(c)) }
        runtime.send(.promptSubmit)
        return (runtime, path)
    }

    static func kvYAML(layers: [(Int, Int, Int, Int, Int)], window: Int = 16, group: Int = 32, context: Int = 4096,
                       sha: String = String(repeating: "0", count: 64)) throws -> String {
        // Memory figures recomputed by the library from the same layers (the reader checks them).
        var config = KVScopeConfig(model: ModelReference(path: "m.gguf", architecture: "llama", nLayers: 30, hiddenSize: 576,
                                                         dKV: 192, sha256: sha))
        config.kvCache = KVCacheSection(
            basis: .weights, window: window, groupSize: group, contextLength: context, calibration: nil,
            layers: try layers.map { KVLayerEntry(layer: $0.0, k: try BranchSetting(rank: min($0.1, 192), bits: $0.2),
                                                  v: try BranchSetting(rank: $0.3, bits: $0.4)) },
            memory: KVMemory(baselineBytes: 0, compressedBytes: 0, ratio: 0, nominalRatio: 0))
        let memory = try config.recomputedKVMemory()
        let m = memory
        var lines = ["# written by hand", "format: kvscope-config", "version: 1",
                     "model: {path: m.gguf, architecture: llama, n_layers: 30, hidden_size: 576, d_kv: 192, sha256: \"\(sha)\"}",
                     "kv_cache:", "  basis: weights", "  window: \(window)", "  group_size: \(group)", "  context_length: \(context)",
                     "  layers:"]
        for l in layers { lines.append("    - {layer: \(l.0), k: {rank: \(l.1), bits: \(l.2)}, v: {rank: \(l.3), bits: \(l.4)}}") }
        lines += ["  memory:", "    baseline_bytes: \(m.baselineBytes)", "    compressed_bytes: \(m.compressedBytes)",
                  "    ratio: \(m.ratio)", "    nominal_ratio: \(m.nominalRatio)", "metrics: {note: by hand}"]
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func aHandWrittenYAMLConfigOpensWithLayersInAnyOrder() throws {
        let layers = (0..<30).reversed().map { ($0, 64 + $0, 8, 128, 4) }
        let (runtime, path) = try Self.open(try Self.kvYAML(layers: layers), name: "hand.yaml")
        let s = runtime.state.settings
        #expect(s.window == 16 && s.groupSize == 32 && s.contextLength == 4096)
        #expect(s.layers[3] == LayerChoice(k: BranchChoice(rank: 67, bits: 8), v: BranchChoice(rank: 128, bits: 4)))
        #expect(s.weights == (try TUIFixture.state()).settings.weights, "no weights section: the weights stay")
        #expect(runtime.state.status == "opened \(path); made for another model file (model.sha256 differs)")
        #expect(!runtime.state.hasUnexportedChanges)
    }

    @Test func openErrorsNameTheEntryInOneStatusLine() throws {
        var layers = (0..<30).map { ($0, 64, 8, 128, 4) }
        layers[12] = (12, 300, 8, 128, 4)
        let (bad, path) = try Self.open(try Self.kvYAML(layers: layers), name: "bad.yaml")
        #expect(bad.state.status == "\(path): kv_cache.layers[12].k.rank: 300 exceeds d_kv 192")
        #expect(bad.state.settings == (try TUIFixture.state()).settings, "nothing applied")

        let (missing, path2) = try Self.open(#"{"format": "kvscope-config", "version": 1, "model": {"path": "m"}}"#, name: "m.json")
        #expect(missing.state.status == "\(path2): model.architecture: missing")

        let (syntax, path3) = try Self.open("format: kvscope-config\nversion: [1\n", name: "s.yml")
        #expect(syntax.state.status.hasPrefix("\(path3): bad YAML:") && !syntax.state.status.contains("\n"))

        let (absent, _) = try Self.open("", name: "x.json")
        #expect(!absent.state.status.isEmpty && !absent.state.status.contains("\n"))
    }

    @Test func aWeightsOnlyConfigOpensAndNamesUnknownTensors() throws {
        let s = try TUIFixture.state()
        let identity = try Self.identity.get()
        // As `kvscope tune --weight-bits` writes it: only a weights section, outliers per matrix.
        var config = KVScopeConfig(model: identity.model)
        let tensors = s.resources.tensors
        config.weights = WeightsSection(groupSize: 64, layers: tensors.enumerated().map {
            WeightLayerEntry(tensor: $1.name, bits: [2, 3, 4, 8][$0 % 4], outlierFraction: $0 % 10 == 0 ? 0.01 : 0)
        }, memory: WeightMemory(baselineBytes: 0, compressedBytes: 0, bitsPerWeight: 0, ratio: 0))
        let description = ModelDescription(architecture: "llama", nLayers: 30, hiddenSize: 576, dKV: 192,
                                           matrices: tensors.map { (name: $0.name, shape: MatrixShape(rows: $0.rows, cols: $0.cols)) })
        let memory = try config.recomputedWeightMemory(description)
        config.weights?.memory = memory
        let (settings, notes) = try ExplorerConfigFile.settings(from: config, state: s, identity: identity)
        #expect(settings.weights.map(\.bits) == tensors.indices.map { [2, 3, 4, 8][$0 % 4] })
        #expect(settings.weightGroupSize == 64 && settings.outlierFraction == 0)
        #expect(settings.layers == s.settings.layers, "no kv_cache section: the KV settings stay")
        #expect(notes == ["21 matrices plan another outlier fraction; the explorer uses 0 for all"])

        config.weights?.layers[5].tensor = "blk.99.attn_q.weight"
        #expect(throws: ConfigError(entry: "weights.layers[5].tensor", "the model has no layer weight matrix named blk.99.attn_q.weight")) {
            try ExplorerConfigFile.settings(from: config, state: s, identity: identity)
        }
    }

    /// Runs an export of the current settings to `path` through the runtime.
    static func export(_ runtime: ExplorerRuntime, to path: String) {
        runtime.send(.askExport)
        for _ in 0..<80 { runtime.send(.promptBackspace) }
        for c in path { runtime.send(.promptInput(c)) }
        runtime.send(.promptSubmit)
    }

    @Test func aFailedExportLeavesTheOldFileAndSaysSoInOneLine() throws {
        let dir = try Self.temporaryDirectory()
        let runtime = ExplorerRuntime(state: try TUIFixture.state(), jobs: nil, configIdentity: try Self.identity.get())
        // No such directory: nothing is written.
        Self.export(runtime, to: dir + "/missing/c.json")
        #expect(runtime.state.status.hasPrefix("export failed: \(dir)/missing/c.json: cannot create a temporary file"))
        #expect(!runtime.state.status.contains("\n"))
        #expect(runtime.state.hasUnexportedChanges == false)  // nothing was changed yet
        // An existing file: the explorer asks; "y" writes atomically over it.
        let path = dir + "/c.json"
        let old = Data("old contents\n".utf8)
        try old.write(to: URL(fileURLWithPath: path))
        runtime.send(.changeRank(-3))
        Self.export(runtime, to: path)
        #expect(runtime.state.overlay == .confirm(.overwrite(path: path)))
        runtime.send(.answer(false))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old && runtime.state.status == "not exported")
        // Settings that cannot be written (a rank of 0 set from outside the key map) fail before
        // anything touches the file.
        var broken = runtime.state
        broken.settings.layers[4].v.rank = 0
        let failing = ExplorerRuntime(state: broken, jobs: nil, configIdentity: try Self.identity.get())
        Self.export(failing, to: path)
        failing.send(.answer(true))
        #expect(failing.state.status == "export failed: kv_cache.layers[4].v.rank: 0 is below 1")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old)
        #expect(failing.state.hasUnexportedChanges)
        // A destination that is not a regular file (a directory): the writer refuses it before creating
        // anything; the error names it, nothing is left behind.
        let blocked = dir + "/blocked.json"
        try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: false)
        Self.export(runtime, to: blocked)
        runtime.send(.answer(true))
        #expect(runtime.state.status == "export failed: \(blocked): is not a regular file; not writing to it")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["blocked.json", "c.json"], "no temporary files left")
        // And "y" on the real file replaces it with the config.
        Self.export(runtime, to: path)
        runtime.send(.answer(true))
        #expect(runtime.state.status == "exported \(path)")
        #expect(try KVScopeConfig.load(path: path).kvCache?.layers[0].k.rank == runtime.state.settings.layers[0].k.rank)
        #expect(!runtime.state.hasUnexportedChanges)
    }
}
