import Configuration
import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Quantization
import TensorFiles

/// Runs background jobs off the UI thread. Jobs report progress and results as
/// ``ExplorerAction`` messages in a mailbox that the UI thread drains between frames.
public final class JobRunner: @unchecked Sendable {
    private let lock = NSLock()
    private var inbox: [ExplorerAction] = []
    private var flags: [Int: KVCompression.CancellationFlag] = [:]
    private let group = DispatchGroup()
    /// Jobs run one after another: OpenBLAS's thread count is process-wide and a parallel engine
    /// region sets it to 1 (KVCompression's SingleThreadedBLAS), so a forward pass overlapping a
    /// table fill would sum in another order and give a perplexity that differs from
    /// `kvscope eval`'s in the last digits. Each job is itself parallel.
    private let queue = DispatchQueue(label: "kvscope.explorer.jobs", qos: .userInitiated)

    /// A runner with an empty mailbox.
    public init() {}

    /// Adds a message for the UI thread.
    public func post(_ action: ExplorerAction) { lock.withLock { inbox.append(action) } }

    /// Takes every waiting message, oldest first.
    public func drain() -> [ExplorerAction] {
        lock.withLock {
            let out = inbox
            inbox.removeAll()
            return out
        }
    }

    /// Starts job `id` on the background queue (after the jobs started before it). `body` gets a progress callback (fraction 0…1) and a
    /// cancellation flag; its result, its error or its cancellation (also while it waited) comes back as a message.
    public func start(id: Int, _ body: @escaping @Sendable (_ progress: @escaping @Sendable (Double) -> Void,
                                                          _ cancellation: KVCompression.CancellationFlag) throws -> JobOutcome) {
        let flag = KVCompression.CancellationFlag()
        lock.withLock { flags[id] = flag }
        let lastPosted = LockedValue(-1.0)
        queue.async(group: group) { [self] in
            let progress: @Sendable (Double) -> Void = { f in
                // At most one message per percent.
                if lastPosted.update({ f - $0 >= 0.01 || f >= 1 ? f : nil }) { self.post(.jobProgress(id: id, fraction: f)) }
            }
            do {
                // Cancelled while it waited for the jobs before it.
                if flag.isCancelled { throw KVCompressionError.cancelled }
                let outcome = try body(progress, flag)
                post(flag.isCancelled ? .jobCancelled(id: id) : .jobFinished(id: id, outcome))
            } catch {
                post(flag.isCancelled ? .jobCancelled(id: id) : .jobFailed(id: id, message: "\(error)"))
            }
            lock.withLock { flags[id] = nil }
        }
    }

    /// Asks job `id` to stop.
    public func cancel(id: Int) { lock.withLock { flags[id] }?.cancel() }

    /// Asks every job to stop and waits up to `seconds` for them.
    public func cancelAll(wait seconds: Double = 2) {
        for f in lock.withLock({ Array(flags.values) }) { f.cancel() }
        _ = group.wait(timeout: .now() + seconds)
    }
}

final class LockedValue: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Double
    init(_ v: Double) { value = v }
    /// Replaces the value with `f(value)` when that is non-nil; returns whether it did.
    func update(_ f: (Double) -> Double?) -> Bool {
        lock.withLock {
            guard let v = f(value) else { return false }
            value = v
            return true
        }
    }
}

/// What the job bodies need beyond the state: the open model, calibration statistics and the
/// evaluation text.
public final class ExplorerJobs: @unchecked Sendable {
    public let session: ModelSession
    public let calibration: CalibrationStatistics?
    /// Where `calibration` came from, as exported configs record it (nil: inferred, see
    /// ``ExplorerConfigIdentity/init(session:calibration:reference:environment:)``).
    public let calibrationReference: CalibrationReference?
    /// The text perplexity is measured on.
    public let evalTextPath: String?
    private let lock = NSLock()
    private var llama: (model: TransformerModel, tokenizer: Tokenizer)?

    /// Job bodies for `session`.
    public init(session: ModelSession, calibration: CalibrationStatistics?, evalTextPath: String?,
                calibrationReference: CalibrationReference? = nil) {
        self.session = session
        self.calibration = calibration
        self.calibrationReference = calibrationReference
        self.evalTextPath = evalTextPath
    }

    /// Job bodies for `session` with calibration statistics and their record.
    public convenience init(session: ModelSession, calibration: SessionCalibration?, evalTextPath: String?) {
        self.init(session: session, calibration: calibration?.statistics, evalTextPath: evalTextPath,
                  calibrationReference: calibration?.reference)
    }

    /// The body of `request` against a snapshot of `state`.
    public func body(for request: JobRequest, state: ExplorerState)
        -> @Sendable (@escaping @Sendable (Double) -> Void, KVCompression.CancellationFlag) throws -> JobOutcome {
        let resources = state.resources
        switch request {
        case .buildErrorModel(let groupSize):
            return { [session, calibration] progress, flag in
                .errorModel(try ExplorerResources.buildErrorModel(
                    session: session, calibration: calibration, groupSize: groupSize,
                    progress: { done, total in progress(Double(done) / Double(max(total, 1))) }, cancellation: flag))
            }
        case .fillKVTables(let bits, let groupSize):
            return { progress, flag in
                guard let model = resources.errorModel else { throw KVCompressionError.invalidArgument("no error model yet") }
                try model.fillQuantizedTables(bits: [bits], groupSize: groupSize,
                                              progress: { d, t in progress(Double(d) / Double(max(t, 1))) }, cancellation: flag)
                return .tablesFilled
            }
        case .fillWeightTables(let choices):
            return { [self] progress, flag in
                try self.fillWeightTables(choices: choices, resources: resources, progress: progress, flag: flag)
            }
        case .perplexity(let settings):
            return { [self] progress, flag in
                try self.perplexity(settings: settings, resources: resources, progress: progress, flag: flag)
            }
        case .kvBudget(let percent, let settings):
            return { progress, flag in try Self.kvBudget(percent: percent, settings: settings, state: state,
                                                         progress: progress, flag: flag) }
        case .weightBudget(let bits, let settings):
            return { _, _ in try Self.weightBudget(bitsPerWeight: bits, settings: settings, state: state) }
        }
    }

    /// The model and tokenizer for perplexity, loaded once (a bundle's source model when present).
    func loadLlama() throws -> (model: TransformerModel, tokenizer: Tokenizer) {
        if let l = lock.withLock({ llama }) { return l }
        let l = try session.inferenceModel()
        lock.withLock { llama = l }
        return l
    }

    /// Error tables of every listed matrix over `choices` (the same computation as `kvscope quantize`:
    /// ‖W − Ŵ‖_F/‖W‖_F and the bytes of DESIGN.md §4), from the on-disk cache or computed and stored
    /// there (``ModelSession/weightErrorTables(tensors:choices:useCache:environment:progress:cancellation:)``),
    /// into the session's shared cache.
    func fillWeightTables(choices: ErrorTableChoices, resources: ExplorerResources,
                          progress: @escaping @Sendable (Double) -> Void, flag: KVCompression.CancellationFlag) throws -> JobOutcome {
        let tables = try session.weightErrorTables(tensors: resources.tensors.map(\.name), choices: choices,
                                                   progress: { done, total in progress(Double(done) / Double(max(total, 1))) },
                                                   cancellation: flag)
        for t in tables { resources.weightTables.insert(t) }
        if flag.isCancelled { throw KVCompressionError.cancelled }
        return .tablesFilled
    }

    /// The settings as `kvscope eval --config` reads an exported config: per-layer ranks and bits, the
    /// window, the group and the error model's basis.
    public static func compressionSettings(_ settings: ExplorerSettings, basis: BasisKind) throws -> CompressionSettings {
        let layers = try settings.layers.map {
            LayerKVSetting(k: try BranchSetting(rank: $0.k.rank, bits: $0.k.bits), v: try BranchSetting(rank: $0.v.rank, bits: $0.v.bits))
        }
        return try CompressionSettings(layers: layers, window: settings.window, groupSize: settings.groupSize, basis: basis)
    }

    /// Perplexity with an exact cache and with the settings' bi-branch cache (DESIGN.md §4, "Perplexity"),
    /// computed as `kvscope eval --config` does: the same policy, calibration statistics and tokens.
    func perplexity(settings: ExplorerSettings, resources: ExplorerResources, progress: @escaping @Sendable (Double) -> Void,
                    flag: KVCompression.CancellationFlag) throws -> JobOutcome {
        guard let path = evalTextPath else {
            throw ConfigFileError(path: "Samples/eval.txt", message: "evaluation text not found (run from the repository root or pass --text)")
        }
        let text = try CalibrationText(path: path)
        let basis = resources.errorModel?.basisKind ?? (calibration == nil ? .weights : .activations)
        let compression = try Self.compressionSettings(settings, basis: basis)
        progress(0.01)
        let (llama, tokenizer) = try loadLlama()
        progress(0.05)
        let policy = try compression.policy(model: llama, calibration: calibration, cancellation: flag)
        let tokens = tokenizer.encode(text.text)
        guard tokens.count >= 2 else { throw ConfigFileError(path: path, message: "fewer than 2 tokens") }
        let compressed = try Perplexity.evaluate(model: llama, tokens: tokens, policy: policy,
                                                 progress: { progress(0.1 + 0.45 * $0) }, cancellation: flag)
        let baseline = try Perplexity.evaluate(model: llama, tokens: tokens,
                                               progress: { progress(0.55 + 0.45 * $0) }, cancellation: flag)
        return .perplexity(compressed: compressed.perplexity, baseline: baseline.perplexity, tokens: compressed.tokenCount)
    }

    /// The `kvscope tune --kv-budget` settings for the explorer's state: its basis, window, group and
    /// context length, with tune's default bit-widths and rank grid.
    public static func tuneSettings(_ settings: ExplorerSettings, basis: BasisKind) -> KVTuneSettings {
        var t = KVTuneSettings()
        t.basis = basis
        t.window = settings.window
        t.groupSize = settings.groupSize
        t.contextLength = settings.contextLength
        return t
    }

    /// Ranks and bits per layer and K/V minimizing Σ e_kv²·‖K‖² under `percent`% of the fp16 bytes
    /// (DESIGN.md §4, "Sensitivity and allocation"), exactly as `kvscope tune --kv-budget X%` with
    /// the same window, group, context and basis (``Configuration/KVTuner``).
    static func kvBudget(percent: Double, settings: ExplorerSettings, state: ExplorerState,
                         progress: @escaping @Sendable (Double) -> Void, flag: KVCompression.CancellationFlag) throws -> JobOutcome {
        guard let model = state.resources.errorModel, state.resources.kvSpectra != nil else {
            throw KVCompressionError.invalidArgument("a budget needs e_kv, from calibration statistics")
        }
        let info = state.resources.info
        let tune = tuneSettings(settings, basis: model.basisKind)
        let memory = try BiBranchMemoryModel(kvSize: info.kvSize, hiddenSize: info.hiddenSize, window: tune.window,
                                             groupSize: tune.groupSize, basis: tune.basis,
                                             slidingWindow: info.slidingWindow, slidingLayers: info.slidingLayers)
        let quantized = tune.bitsChoices.filter { $0 < 16 && !model.isFilled(bits: $0, groupSize: tune.groupSize) }
        try model.fillQuantizedTables(bits: quantized, groupSize: tune.groupSize,
                                      progress: { d, t in progress(0.95 * Double(d) / Double(max(t, 1))) }, cancellation: flag)
        let baseline = try memory.baselineTotalBytes(layerCount: info.layerCount, contextLength: tune.contextLength)
        let plan = try KVTuner.tune(model, layerCount: info.layerCount, kvSize: info.kvSize, memory: memory,
                                    settings: tune, budget: baseline * percent / 100)
        var s = settings
        for l in plan.layers where s.layers.indices.contains(l.layer) {
            s.layers[l.layer] = LayerChoice(k: BranchChoice(rank: l.k.rank, bits: l.k.bits), v: BranchChoice(rank: l.v.rank, bits: l.v.bits))
        }
        let note = String(format: "allocated ranks and bits under %.1f%% of fp16 (%.1f%% used, relative e_kv %.4f)", percent,
                          100 * plan.bytes / baseline, (plan.totalCost / max(plan.totalEnergy, .leastNonzeroMagnitude)).squareRoot())
        return .allocation(s, note: note)
    }

    /// Bits per matrix minimizing Σ relerr²·‖W‖² at an average of `bitsPerWeight` bits, over the
    /// bit-widths whose errors are known for every matrix (and fp16).
    static func weightBudget(bitsPerWeight: Double, settings: ExplorerSettings, state: ExplorerState) throws -> JobOutcome {
        let resources = state.resources
        let sessionChoices = Explorer.weightChoices(settings, resources: resources)
            ?? ErrorTableChoices(bits: [], groupSizes: [], outlierFractions: [])
        func entry(_ t: WeightTensor, _ b: Int) -> (entry: ErrorTable.Entry, weightNormSquared: Double)? {
            resources.weightEntry(tensor: t, bits: b, groupSize: settings.weightGroupSize,
                                  outlierFraction: settings.outlierFraction, sessionChoices: sessionChoices)
        }
        let bitOptions = Array(2...8).filter { b in resources.tensors.allSatisfy { entry($0, b) != nil } }
        guard !bitOptions.isEmpty else {
            throw KVCompressionError.invalidArgument("no bit-width has error tables for every matrix yet (they fill in Weights mode; R restarts a stopped fill)")
        }
        var items: [[AllocationOption]] = []
        var parameters = 0
        for t in resources.tensors {
            var options: [AllocationOption] = []
            for b in bitOptions {
                guard let (e, norm) = entry(t, b) else { continue }
                options.append(AllocationOption(bytes: e.bytes, cost: e.relativeError * e.relativeError * norm))
            }
            options.append(AllocationOption(bytes: Double(t.count) * 2, cost: 0))
            items.append(options)
            parameters += t.count
        }
        let result = try BudgetAllocator.solve(items, averageBits: bitsPerWeight, parameterCount: parameters)
        var s = settings
        for (i, c) in result.choices.enumerated() { s.weights[i].bits = c < bitOptions.count ? bitOptions[c] : 16 }
        return .allocation(s, note: String(format: "allocated weight bits at ≤ %.2f bits/weight", bitsPerWeight))
    }
}

final class LockedError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    var error: Error? { lock.withLock { stored } }
    func set(_ e: Error) { lock.withLock { if stored == nil { stored = e } } }
}
