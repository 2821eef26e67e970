import Configuration
import ExplorerCore
import Foundation
import Inference
import KVCompression
import Quantization
import TerminalUI
import Testing

/// The background jobs end to end through the runtime (real ``JobRunner`` and ``ExplorerJobs`` on
/// SmolLM2 and the sample bundle), driven by keys, with the results checked against the numpy
/// references behind `kvscope quantize` (Tests/Golden/quant/smollm2_quantize.json) and
/// `kvscope eval` (Tests/Golden/inference/smollm2_reference.json), and against `kvscope tune`'s solver.
@Suite(.serialized) struct TUIJobTests {
    static let bundlePath = repositoryRoot.appendingPathComponent("Samples/smollm2").path
    static let evalText = repositoryRoot.appendingPathComponent("Samples/eval.txt").path
    static let calibrationText = repositoryRoot.appendingPathComponent("Samples/calibration.txt").path

    /// A runtime with real jobs on `path`, its error model built (or, with `build` false, not started).
    static func runtime(_ path: String, calibration: Bool, build: Bool = true) throws -> ExplorerRuntime {
        let session = try ModelSession(path: path)
        var stats: CalibrationStatistics?
        if calibration {
            stats = session.isBundle ? try session.bundledCalibration()
                : try session.calibration(text: try CalibrationText(path: calibrationText))
        }
        let resources = try ExplorerResources.load(session: session, calibration: stats)
        var state = ExplorerState(resources: resources)
        state.width = 120
        state.height = 40
        let jobs = ExplorerJobs(session: session, calibration: stats, evalTextPath: evalText)
        let rt = ExplorerRuntime(state: state, jobs: jobs)
        guard build else { return rt }
        rt.start()
        try settle(rt)
        #expect(rt.state.resources.errorModel != nil)
        return rt
    }

    /// Pumps job messages until no job runs.
    static func settle(_ rt: ExplorerRuntime, timeout: Double = 600) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !rt.state.jobs.isEmpty {
            rt.pump()
            try #require(Date() < deadline, "jobs still running: \(rt.state.jobs)")
            Thread.sleep(forTimeInterval: 0.02)
        }
        rt.pump()
    }

    /// Sends keys through the key map.
    static func press(_ keys: [Key], _ rt: ExplorerRuntime) {
        for k in keys { if let a = KeyMap.action(for: k, in: rt.state) { rt.send(a) } }
    }

    static func golden(_ name: String) throws -> [String: Any] {
        let url = repositoryRoot.appendingPathComponent("Tests/Golden/\(name)")
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    /// Weights mode at 4 bits, group 128, no outliers (`kvscope quantize`'s defaults) shows numpy's
    /// per-matrix errors and bytes and the total bytes and bits per weight, on the model file (tables
    /// computed by the background job) and on the bundle (its shipped tables).
    @Test(arguments: [false, true])
    func weightsModeMatchesQuantize(bundle: Bool) throws {
        let rt = try Self.runtime(bundle ? Self.bundlePath : smolLM2Path, calibration: false)
        #expect(rt.state.resources.tensors.count == 210)
        Self.press([.character("m")], rt)
        #expect(rt.state.mode == .weights)
        if !bundle { #expect(rt.state.jobs.first?.kind == .weightTables) }
        // The progress bar shows in the footer while the tables fill.
        if let job = rt.state.jobs.first {
            let footer = Explorer.view(rt.state, width: 120, height: 40).text.split(separator: "\n").last.map(String.init) ?? ""
            #expect(footer.contains("\(job.kind.rawValue) ") && footer.contains("(Esc cancels)"), "\(footer)")
        }
        try Self.settle(rt)
        // 16 → 8 → 6 → 5 → 4 bits, then the same bits for every matrix.
        Self.press([.character("-"), .character("-"), .character("-"), .character("-"), .character("a")], rt)
        let s = rt.state
        #expect(s.settings.weights.allSatisfy { $0.bits == 4 })
        #expect(s.settings.weightGroupSize == 128 && s.settings.outlierFraction == 0)
        let golden = try Self.golden("quant/smollm2_quantize.json")
        let want = try #require(golden["tensors"] as? [[String: Any]])
        try #require(want.count == s.resources.tensors.count)
        for (i, w) in want.enumerated() {
            let t = s.resources.tensors[i]
            #expect(t.name == w["tensor"] as? String)
            let f = try #require(ExplorerMetrics.weight(s, tensor: i))
            #expect(f.bytes == (w["bytes"] as? NSNumber)?.doubleValue, "\(t.name)")
            let we = try #require(w["rel_error"] as? Double)
            let ge = try #require(f.relativeError.value, "\(t.name): \(f.relativeError)")
            #expect(abs(ge - we) <= 1e-5 * we, "\(t.name): \(ge) vs numpy \(we)")
        }
        let totals = ExplorerMetrics.weightTotals(s)
        let totalBytes = try #require((golden["total_bytes"] as? NSNumber)?.doubleValue)
        let bpw = try #require(golden["bits_per_weight"] as? Double)
        #expect(totals.bytes == totalBytes)
        #expect(abs(totals.bitsPerWeight - bpw) < 1e-12)
        let screen = Explorer.view(s, width: 120, height: 40).text
        #expect(screen.contains(ExplorerMetrics.mebibytes(totalBytes)))
        #expect(screen.contains(String(format: "%.3f bits/weight", bpw)))
        let q0 = try #require(want.first?["rel_error"] as? Double)
        #expect(screen.contains(String(format: "%.4f", q0)))

        // b in Weights mode: an average of at most 4.5 bits per weight, spent by the solver.
        Self.press([.character("b")], rt)
        guard case .prompt(let prompt) = rt.state.overlay else { Issue.record("no budget prompt"); return }
        #expect(prompt.title == "Average bits per weight")
        for _ in prompt.text { Self.press([.backspace], rt) }
        Self.press([.character("4"), .character("."), .character("5"), .enter], rt)
        try Self.settle(rt)
        let allocated = ExplorerMetrics.weightTotals(rt.state)
        #expect(allocated.bitsPerWeight <= 4.5 && allocated.bitsPerWeight > 4.3, "\(allocated.bitsPerWeight)")
        #expect(rt.state.status == "allocated weight bits at ≤ 4.50 bits/weight")
        #expect(Set(rt.state.settings.weights.map(\.bits)).count > 1)
    }

    /// A bundle without its source model still shows the shipped bits, and "—" for the others.
    @Test func bundleTablesWithoutTheModelAreUsedAsShipped() throws {
        let session = try ModelSession(path: Self.bundlePath)
        var resources = try ExplorerResources.load(session: session, calibration: nil)
        resources.info.canComputeWeightTables = false
        var s = ExplorerState(resources: resources)
        TUIFixture.press([.character("m"), .character("-")], &s)
        #expect(s.jobs.isEmpty)
        #expect(ExplorerMetrics.weight(s, tensor: 0)?.relativeError.value != nil)  // 8 bits: shipped
        TUIFixture.press([.character("-")], &s)
        #expect(ExplorerMetrics.weight(s, tensor: 0)?.relativeError == .unavailable("not in the shipped tables, and the source model is absent"))
    }

    /// `p` with no low rank, 4 bits, group 64, window 32 gives numpy's perplexity for those settings
    /// and the exact-cache baseline; on the bundle it runs on the source model with the bundle's statistics.
    @Test func perplexityMatchesTheNumpyReference() throws {
        let rt = try Self.runtime(Self.bundlePath, calibration: true)
        #expect(rt.state.resources.info.canRunInference)
        // Rank d_kv (no low rank) for K and V of layer 0, 4 bits, then every layer; group 32 → 64.
        #expect(rt.state.settings.groupSize == 32)
        Self.press(Array(repeating: .character("L"), count: 24) + [.character("-"), .character("-"), .character("-"), .character("-"), .tab]
                   + Array(repeating: .character("L"), count: 24) + [.character("-"), .character("-"), .character("-"), .character("-"),
                                                                     .character("a"), .character("g")], rt)
        let s = rt.state
        #expect(s.settings.layers.allSatisfy { $0 == LayerChoice(k: BranchChoice(rank: 192, bits: 4), v: BranchChoice(rank: 192, bits: 4)) })
        #expect(s.settings.groupSize == 64 && s.settings.window == 32)
        try Self.settle(rt)  // e_kv tables for 4 bits
        Self.press([.character("p")], rt)
        #expect(rt.state.mode == .eval)
        #expect(rt.state.jobs.map(\.kind) == [.perplexity])
        // Progress reaches the footer.
        let deadline = Date().addingTimeInterval(60)
        while rt.state.jobs.first.map({ $0.fraction < 0.2 }) ?? false, Date() < deadline {
            rt.pump()
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(Explorer.view(rt.state, width: 120, height: 40).text.contains("perplexity █"))
        try Self.settle(rt)
        let p = try #require(rt.state.perplexity, "status: \(rt.state.status)")
        let cases = try #require(try Self.golden("inference/smollm2_reference.json")["cases"] as? [String: [String: Any]])
        let want = try #require(cases["bits4_group64_window32"]?["perplexity"] as? Double)
        let baseline = try #require(cases["baseline"]?["perplexity"] as? Double)
        #expect(abs(p.compressed - want) <= 2e-3 * want, "\(p.compressed) vs numpy \(want)")
        #expect(abs(p.baseline - baseline) <= 2e-3 * baseline, "\(p.baseline) vs numpy \(baseline)")
        #expect(p.tokens == 355)
        #expect(Explorer.view(rt.state, width: 120, height: 40).text.contains(String(format: "perplexity %.3f", p.compressed)))

        // A low-rank setting equals `kvscope eval --config` (CompressionSettings.policy with the same statistics).
        Self.press([.character("H"), .character("H"), .character("+"), .character("a"), .character("p")], rt)
        try Self.settle(rt)
        let q = try #require(rt.state.perplexity)
        let session = try ModelSession(path: Self.bundlePath)
        let loaded = try session.inferenceModel()
        let compression = try ExplorerJobs.compressionSettings(rt.state.settings, basis: .activations)
        let policy = try compression.policy(model: loaded.model, calibration: try session.bundledCalibration())
        let tokens = loaded.tokenizer.encode(try CalibrationText(path: Self.evalText).text)
        let direct = try Perplexity.evaluate(model: loaded.model, tokens: tokens, policy: policy)
        // Not bit-equal: OpenBLAS's thread count is process-wide and other tests' parallel regions set
        // it to 1 at times, which reorders the GEMM sums. A different rank or policy moves it by far more.
        #expect(abs(q.compressed - direct.perplexity) <= 1e-5 * direct.perplexity, "\(q.compressed) vs \(direct.perplexity)")
        #expect(q.compressed > p.baseline)
    }

    @Test func escapeCancelsPerplexity() throws {
        let rt = try Self.runtime(Self.bundlePath, calibration: true)
        Self.press([.character("p")], rt)
        #expect(rt.state.jobs.map(\.kind) == [.perplexity])
        Self.press([.escape], rt)
        try Self.settle(rt, timeout: 60)
        #expect(rt.state.status == "perplexity cancelled — press p or R to run it again")
        #expect(rt.state.phase(.perplexity) == .cancelled)
        #expect(rt.state.perplexity == nil)
        // R runs it again (and Esc stops that one too).
        Self.press([.character("R")], rt)
        #expect(rt.state.jobs.map(\.kind) == [.perplexity])
        Self.press([.escape], rt)
        try Self.settle(rt, timeout: 60)
        #expect(rt.state.phase(.perplexity) == .cancelled)
    }

    /// `b` 20 at the starting settings allocates exactly what `kvscope tune --kv-budget 20%` chooses with
    /// its defaults (the same KVTuner, KVDefaults and statistics), and the plan fits the budget by the
    /// DESIGN.md §4 formula.
    @Test func budgetMatchesTune() throws {
        let rt = try Self.runtime(smolLM2Path, calibration: true)
        Self.press([.character("b")], rt)
        guard case .prompt(let prompt) = rt.state.overlay else { Issue.record("no budget prompt"); return }
        #expect(prompt.purpose == .budget)
        // The prompt says what the budget is measured at: tune's defaults.
        #expect(prompt.title == "KV budget (% of fp16 bytes at L 4096, group 32, window 32)")
        for _ in prompt.text { Self.press([.backspace], rt) }
        Self.press([.character("2"), .character("0"), .character("%"), .enter], rt)
        #expect(rt.state.jobs.map(\.kind) == [.budget])
        try Self.settle(rt)
        let s = rt.state.settings
        #expect(rt.state.status.hasPrefix("allocated ranks and bits under 20.0% of fp16"), "\(rt.state.status)")

        // tune's path, built independently from the same cached statistics.
        let session = try ModelSession(path: smolLM2Path)
        let stats = try session.calibration(text: try CalibrationText(path: Self.calibrationText))
        let tune = KVTuneSettings()  // tune's defaults, nothing copied from the explorer
        #expect(s.window == tune.window && s.groupSize == tune.groupSize && s.contextLength == tune.contextLength)
        let hp = session.hyperparameters
        let memory = try BiBranchMemoryModel(kvSize: hp.kvDim, hiddenSize: hp.hiddenSize, window: tune.window,
                                             groupSize: tune.groupSize, basis: .activations)
        let model = try KVTuner.errorModel(stats: stats, basis: .activations, groupSize: tune.groupSize,
                                           weight: { try session.projection(layer: $0, kind: $1) })
        try model.fillQuantizedTables(bits: [2, 3, 4, 8], groupSize: tune.groupSize)
        let baseline = try memory.baselineTotalBytes(layerCount: hp.nLayers, contextLength: tune.contextLength)
        let plan = try KVTuner.tune(model, layerCount: hp.nLayers, kvSize: hp.kvDim, memory: memory, settings: tune,
                                    budget: 0.2 * baseline)
        for l in plan.layers {
            #expect(s.layers[l.layer].k == BranchChoice(rank: l.k.rank, bits: l.k.bits), "layer \(l.layer) K")
            #expect(s.layers[l.layer].v == BranchChoice(rank: l.v.rank, bits: l.v.bits), "layer \(l.layer) V")
        }
        // The budget holds by the formula written out (projection basis, groups of 32 features).
        let L = 4096.0, w = 32.0, dkv = 192.0
        var bytes = 0.0
        for l in s.layers {
            for b in [l.k, l.v] {
                let meta = b.bits == 16 ? 0.0 : Double((b.rank + 31) / 32 * 4)
                bytes += min(L, w) * dkv * 2 + max(L - w, 0) * (Double(b.rank * b.bits) / 8 + meta)
            }
        }
        let fp16 = 30 * 2 * L * dkv * 2
        #expect(bytes <= 0.2 * fp16)
        #expect(bytes > 0.15 * fp16)  // the solver spends the budget
        let shown = Explorer.view(rt.state, width: 120, height: 40).text
        #expect(shown.contains(String(format: "total %.2f MiB", bytes / 1_048_576)))
        // Undo restores the settings before the allocation.
        Self.press([.character("u")], rt)
        #expect(rt.state.settings.layers == ExplorerState(resources: rt.state.resources).settings.layers)
    }
}
