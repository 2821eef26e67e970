import ArgumentParser
import Configuration
import ExplorerCore
import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles

/// `kvscope tune MODEL --kv-budget X | --weight-bits X --out CONFIG`: per-layer ranks and bits
/// under a budget, written as a config file (DESIGN.md §5, §6).
struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose per-layer KV ranks/bits (and weight bits) under a budget and write a config.",
        discussion: HelpText.flow("""
            --kv-budget 20% keeps kvscope's KV bytes at context --context within 20% of the fp16
            baseline (DESIGN.md §4 memory model); a plain number is a byte budget. Each layer's K and V
            get a rank (1…8, then every --rank-step, and d_kv) and bits from --bits-choices minimizing
            Σ e_kv²·‖K‖² on the calibration text, solved exactly by dynamic programming. The defaults
            (context 4096 or the model's context when shorter, window 32, group 32) are the explorer's
            starting settings, so its `b` gives the same plan. The config records the calibration
            statistics (a capture of --calib, its hash, tokens and sampled rows) for eval --config.
            --weight-bits 3.0 chooses bits {2,3,4,8} and outliers {0, 1%} per weight matrix at an
            average of at most 3.0 bits per weight (group --weight-group); the error tables are cached
            under $XDG_CACHE_HOME/kvscope/weight-errors by the model's SHA-256 and the grid.
            The model's SHA-256 is cached under $XDG_CACHE_HOME/kvscope/sha256 by file identity.
            """))

    @Argument(help: "The model file (.gguf).") var model: String
    @Option(help: "KV budget: a percentage of the fp16 cache (20%) or bytes.") var kvBudget: String?
    @Option(help: "Average bits per weight for the weight plan (e.g. 3.0).") var weightBits: Double?
    @Option(help: "Context length the KV budget is measured at (default: 4096, or the model's context when shorter).")
    var context: Int?
    @Option(help: "Exact window w.") var window = KVDefaults.window
    @Option(help: "Bit-widths the compressed branch may use (2…8, 16).")
    var bitsChoices = KVDefaults.bitsChoices.map(String.init).joined(separator: ",")
    @Option(help: "Quantization group along the KV features (0: one group per token).") var group = KVDefaults.groupSize ?? 0
    @Option(help: "Quantization group of the weight plan (0: per channel).") var weightGroup = 128
    @Option(help: "Smallest rank.") var minRank = KVDefaults.minRank
    @Option(help: "Rank step above 8.") var rankStep = KVDefaults.rankStep
    @Option(help: "Basis: activations, weights or asvd.") var basis = "activations"
    @Option(help: "Calibration text (default Samples/calibration.txt).") var calib = "Samples/calibration.txt"
    @Option(help: "The config file to write (.json, .yaml or .yml).") var out: String
    @Flag(help: "Overwrite --out if it exists.") var force = false
    @Flag(help: "Print a JSON summary on stdout instead of the table.") var json = false

    func validate() throws {
        if kvBudget == nil && weightBits == nil { throw ValidationError("give --kv-budget, --weight-bits or both") }
        if let context, context < 1 { throw ValidationError("--context must be at least 1") }
        if window < 0 { throw ValidationError("--window must not be negative") }
        if minRank < 1 { throw ValidationError("--min-rank must be at least 1") }
        if rankStep < 1 { throw ValidationError("--rank-step must be at least 1") }
        if group < 0 || weightGroup < 0 { throw ValidationError("group sizes must not be negative") }
        if let w = weightBits, !(w > 0 && w.isFinite) { throw ValidationError("--weight-bits must be positive") }
        _ = try parsedBits()
        guard let b = BasisKind(rawValue: basis), b.isProjection else {
            throw ValidationError("--basis must be activations, weights or asvd")
        }
    }

    func parsedBits() throws -> [Int] {
        let parts = bitsChoices.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var bits: [Int] = []
        for p in parts {
            guard let b = Int(p), b == 16 || (2...8).contains(b) else {
                throw ValidationError("--bits-choices: \(p) is not in 2…8 or 16")
            }
            bits.append(b)
        }
        guard !bits.isEmpty else { throw ValidationError("--bits-choices is empty") }
        return Array(Set(bits)).sorted()
    }

    /// The budget in bytes from "20%" or "123456".
    static func budgetBytes(_ text: String, baseline: Double) throws -> Double {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasSuffix("%") {
            guard let p = Double(t.dropLast()), p > 0, p <= 100 else { throw CommandError("--kv-budget \(text): a percentage must be in (0, 100]") }
            return p / 100 * baseline
        }
        guard let b = Double(t), b > 0, b.isFinite else { throw CommandError("--kv-budget \(text): expected a percentage (20%) or bytes") }
        return b
    }

    func run() throws {
        try CLIError.reporting {
            let started = Date()
            try refuseOverwrite(out, force: force)
            let session = try ModelSession(path: model)
            let hp = session.hyperparameters
            let sha = try ModelHashCache.sha256(ofFile: model)
            let reference = ModelReference(path: model, architecture: hp.architecture, nLayers: hp.nLayers,
                                           hiddenSize: hp.hiddenSize, dKV: hp.kvDim, sha256: sha,
                                           slidingWindow: hp.slidingWindow, slidingLayers: hp.slidingLayers.sorted())
            var config = KVScopeConfig(model: reference)
            var metrics: [(key: String, value: ConfigValue)] = []
            var summary: [String: JSON] = [:]
            let progress = ProgressReporter("tune")
            defer { progress.finish() }

            if let kvBudget {
                let kv = try tuneKV(session: session, budgetText: kvBudget, progress: progress)
                config.kvCache = kv.section
                metrics += kv.metrics
                summary["kv"] = kv.summary
            }
            if let weightBits {
                let w = try tuneWeights(session: session, averageBits: weightBits, progress: progress)
                config.weights = w.section
                metrics += w.metrics
                summary["weights"] = w.summary
            }
            let seconds = Date().timeIntervalSince(started)
            metrics.append(("tune_seconds", .double((seconds * 1000).rounded() / 1000)))
            config.metrics = .object(metrics)
            try config.validate(against: ModelDescription(opened: session.opened, path: model))
            try config.write(to: out, force: force)
            progress.finish()
            summary["out"] = out.json
            summary["seconds"] = seconds.json
            if json {
                try CLIError.printJSON(.object(summary))
            } else {
                print("wrote \(out) in \(String(format: "%.1f", seconds)) s")
            }
        }
    }

    struct SectionResult {
        var metrics: [(key: String, value: ConfigValue)]
        var summary: JSON
    }

    func tuneKV(session: ModelSession, budgetText: String,
                progress: ProgressReporter) throws -> (section: KVCacheSection, metrics: [(key: String, value: ConfigValue)], summary: JSON) {
        let hp = session.hyperparameters
        guard let basisKind = BasisKind(rawValue: basis) else { throw CommandError("unknown basis \(basis)") }
        // The explorer starts at the same default (ExplorerState), so its `b` allocates as tune does.
        let context = self.context ?? KVDefaults.contextLength(modelContext: hp.contextLength)
        var settings = KVTuneSettings()
        settings.basis = basisKind
        settings.window = window
        settings.groupSize = group == 0 ? nil : group
        settings.contextLength = context
        settings.bitsChoices = try parsedBits()
        settings.minRank = minRank
        settings.rankStep = rankStep
        guard minRank <= hp.kvDim else { throw CommandError("--min-rank \(minRank) exceeds d_kv \(hp.kvDim)") }

        // The default text is found from the current directory or the binary's checkout. The statistics
        // are recorded in the config (a capture of the text, its sample count) for eval --config.
        progress.begin("calibration", unit: "layers")
        let calibration = try session.calibrationRecord(textPath: calib == "Samples/calibration.txt" ? SampleFiles.resolve(calib) : calib,
                                                        progress: { progress.update($0, $1) })
        let memory = try BiBranchMemoryModel(kvSize: hp.kvDim, hiddenSize: hp.hiddenSize, window: window,
                                             groupSize: settings.groupSize, basis: basisKind,
                                             slidingWindow: hp.slidingWindow, slidingLayers: hp.slidingLayers)
        let baseline = try memory.baselineTotalBytes(layerCount: hp.nLayers, contextLength: context)
        let budget = try Self.budgetBytes(budgetText, baseline: baseline)

        progress.begin("kv error tables", unit: "tables")
        let errorModel = try KVTuner.errorModel(stats: calibration.statistics, basis: basisKind, groupSize: settings.groupSize,
                                                weight: { try session.projection(layer: $0, kind: $1) })
        let quantizedBits = settings.bitsChoices.filter { $0 < 16 }
        try errorModel.fillQuantizedTables(bits: quantizedBits, groupSize: settings.groupSize, progress: { progress.update($0, $1) })

        let solveStart = Date()
        let plan = try KVTuner.tune(errorModel, layerCount: hp.nLayers, kvSize: hp.kvDim, memory: memory,
                                    settings: settings, budget: budget)
        let solveSeconds = Date().timeIntervalSince(solveStart)
        let uniform = try KVTuner.bestUniform(errorModel, layerCount: hp.nLayers, kvSize: hp.kvDim, memory: memory,
                                              settings: settings, budget: budget)
        let settingsList = plan.layers.map(\.setting)
        let kvMemory = KVMemory(baselineBytes: baseline, compressedBytes: plan.bytes, ratio: 1 - plan.bytes / baseline,
                                nominalRatio: try memory.nominalRatio(settingsList))
        let section = KVCacheSection(basis: basisKind, window: window, groupSize: settings.groupSize, contextLength: context,
                                     calibration: calibration.reference, layers: plan.layers, memory: kvMemory)

        var layerMetrics: [ConfigValue] = []
        var rows: [String] = []
        for l in plan.layers {
            func errors(_ kind: ProjectionKind, _ s: BranchSetting) -> (ConfigValue, Double, Double) {
                let ew = errorModel.weightError(layer: l.layer, kind: kind, rank: s.rank).value ?? .nan
                let ekv = errorModel.kvError(layer: l.layer, kind: kind, rank: s.rank, bits: s.bits, groupSize: settings.groupSize).value ?? .nan
                return (.object([("weight_error", .double(ew)), ("kv_error", .double(ekv))]), ew, ekv)
            }
            let (k, _, kkv) = errors(.k, l.k), (v, _, vkv) = errors(.v, l.v)
            layerMetrics.append(.object([("layer", .int(l.layer)), ("k", k), ("v", v)]))
            rows.append(String(format: "%5d  %4d %3d %8.4f   %4d %3d %8.4f", l.layer, l.k.rank, l.k.bits, kkv, l.v.rank, l.v.bits, vkv))
        }
        let relative = (plan.totalCost / plan.totalEnergy).squareRoot()
        var metrics: [(key: String, value: ConfigValue)] = [
            ("kv_budget_bytes", .double(budget)),
            ("kv_weighted_error", .double(plan.totalCost)),
            ("kv_relative_error", .double(relative)),
            ("kv_solve_seconds", .double((solveSeconds * 1e4).rounded() / 1e4)),
        ]
        if let uniform {
            metrics += [("uniform_kv_weighted_error", .double(uniform.totalCost)),
                        ("uniform_kv_relative_error", .double((uniform.totalCost / uniform.totalEnergy).squareRoot())),
                        ("uniform_rank", .int(uniform.layers.first?.k.rank ?? 0)),
                        ("uniform_bits", .int(uniform.layers.first?.k.bits ?? 0)),
                        ("uniform_kv_bytes", .double(uniform.bytes))]
        }
        metrics.append(("kv_layers", .array(layerMetrics)))

        if !json {
            var text = "\(model): \(hp.architecture), \(hp.nLayers) layers, d_kv \(hp.kvDim); basis \(basisKind.rawValue), window \(window), "
            text += "group \(settings.groupSize.map(String.init) ?? "per token"), context \(context)\n"
            text += "calibration \(calib): \(calibration.reference.nTokens) tokens\n\n"
            text += "layer  K rank bits  e_kv      V rank bits  e_kv\n" + rows.joined(separator: "\n") + "\n\n"
            text += String(format: "KV memory at L=%d: %.0f of %.0f bytes (%.2f%% of fp16; budget %.0f bytes), ratio %.4f, nominal %.4f\n",
                           context, plan.bytes, baseline, 100 * plan.bytes / baseline, budget, kvMemory.ratio, kvMemory.nominalRatio)
            text += String(format: "weighted kv error Σe²‖K‖² = %.6g (relative %.4f)", plan.totalCost, relative)
            if let uniform {
                text += String(format: "; best uniform (rank %d, %d bits, %.0f bytes): %.6g (relative %.4f)",
                               uniform.layers.first?.k.rank ?? 0, uniform.layers.first?.k.bits ?? 0, uniform.bytes,
                               uniform.totalCost, (uniform.totalCost / uniform.totalEnergy).squareRoot())
            }
            print(text)
        }
        let summary: JSON = ["budget_bytes": budget.json, "bytes": plan.bytes.json, "baseline_bytes": baseline.json,
                             "weighted_error": plan.totalCost.json, "uniform_weighted_error": (uniform?.totalCost ?? .nan).json,
                             "solve_seconds": solveSeconds.json]
        return (section, metrics, summary)
    }

    func tuneWeights(session: ModelSession, averageBits: Double,
                     progress: ProgressReporter) throws -> (section: WeightsSection, metrics: [(key: String, value: ConfigValue)], summary: JSON) {
        let description = try ModelDescription(opened: session.opened, path: model)
        let groupSize: Int? = weightGroup == 0 ? nil : weightGroup
        let choices = WeightTuner.choices(groupSize: groupSize)
        // From the on-disk cache ($XDG_CACHE_HOME/kvscope/weight-errors) when this model and grid were tabulated before.
        progress.begin("weight error tables", unit: "matrices")
        let tables = try session.weightErrorTables(tensors: description.matrixNames, choices: choices,
                                                   progress: { progress.update($0, $1) })
        let plan = try WeightTuner.tune(tables: tables, averageBits: averageBits, groupSize: groupSize)
        let relative = (plan.totalCost / plan.totalEnergy).squareRoot()
        if !json {
            var counts: [String: Int] = [:]
            for l in plan.section.layers { counts["\(l.bits) bits\(l.outlierFraction > 0 ? " + 1% outliers" : "")", default: 0] += 1 }
            var text = "weights: \(plan.section.layers.count) matrices, target \(averageBits) bits/weight, group \(groupSize.map(String.init) ?? "per channel")\n"
            text += counts.keys.sorted().map { "  \($0): \(counts[$0] ?? 0) matrices" }.joined(separator: "\n") + "\n"
            text += String(format: "weight memory: %.0f of %.0f bytes (%.3f bits/weight), relative error %.4f\n",
                           plan.section.memory.compressedBytes, plan.section.memory.baselineBytes, plan.section.memory.bitsPerWeight, relative)
            print(text)
        }
        let metrics: [(key: String, value: ConfigValue)] = [
            ("weight_target_bits", .double(averageBits)),
            ("weight_weighted_error", .double(plan.totalCost)),
            ("weight_relative_error", .double(relative)),
        ]
        let summary: JSON = ["bits_per_weight": plan.section.memory.bitsPerWeight.json, "weighted_error": plan.totalCost.json]
        return (plan.section, metrics, summary)
    }
}
