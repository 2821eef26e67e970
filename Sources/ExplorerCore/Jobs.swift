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

    /// Starts job `id` on a background queue. `body` gets a progress callback (fraction 0…1) and a
    /// cancellation flag; its result or error comes back as a message.
    public func start(id: Int, _ body: @escaping @Sendable (_ progress: @escaping @Sendable (Double) -> Void,
                                                          _ cancellation: KVCompression.CancellationFlag) throws -> JobOutcome) {
        let flag = KVCompression.CancellationFlag()
        lock.withLock { flags[id] = flag }
        let lastPosted = LockedValue(-1.0)
        DispatchQueue.global(qos: .userInitiated).async(group: group) { [self] in
            let progress: @Sendable (Double) -> Void = { f in
                // At most one message per percent.
                if lastPosted.update({ f - $0 >= 0.01 || f >= 1 ? f : nil }) { self.post(.jobProgress(id: id, fraction: f)) }
            }
            do {
                let outcome = try body(progress, flag)
                post(flag.isCancelled ? .jobFailed(id: id, message: "cancelled") : .jobFinished(id: id, outcome))
            } catch {
                post(.jobFailed(id: id, message: flag.isCancelled ? "cancelled" : "job failed: \(error)"))
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
    /// The text perplexity is measured on.
    public let evalTextPath: String?
    private let lock = NSLock()
    private var llama: (LlamaModel, BPETokenizer)?

    /// Job bodies for `session`.
    public init(session: ModelSession, calibration: CalibrationStatistics?, evalTextPath: String?) {
        self.session = session
        self.calibration = calibration
        self.evalTextPath = evalTextPath
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
            return { [session] progress, flag in
                let tensors = resources.tensors
                let done = LockedValue(0)
                let failure = LockedError()
                DispatchQueue.concurrentPerform(iterations: tensors.count) { i in
                    guard !flag.isCancelled, failure.error == nil else { return }
                    let t = tensors[i]
                    guard resources.weightTables.table(named: t.name, choices: choices) == nil else { return }
                    do {
                        guard let role = TensorRole(rawValue: t.role),
                              let entry = session.opened.catalog.entry(layer: t.layer, role: role) else { return }
                        let w = try session.opened.catalog.matrix(entry, from: session.opened.file)
                        let table = try ErrorTable.compute(ErrorTableInput(name: t.name, weights: w), choices: choices,
                                                           isCancelled: { flag.isCancelled })
                        resources.weightTables.insert(table)
                    } catch {
                        failure.set(error)
                    }
                    _ = done.update { $0 + 1 }
                    var n = 0.0
                    _ = done.update { n = $0; return nil }
                    progress(n / Double(max(tensors.count, 1)))
                }
                if let e = failure.error { throw e }
                return .tablesFilled
            }
        case .perplexity(let settings):
            return { [self] progress, flag in
                try self.perplexity(settings: settings, resources: resources, progress: progress, flag: flag)
            }
        case .kvBudget(let percent, let settings):
            return { _, _ in try Self.kvBudget(percent: percent, settings: settings, state: state) }
        case .weightBudget(let bits, let settings):
            return { _, _ in try Self.weightBudget(bitsPerWeight: bits, settings: settings, state: state) }
        }
    }

    func loadLlama() throws -> (LlamaModel, BPETokenizer) {
        if let l = lock.withLock({ llama }) { return l }
        let weights = try DenseLlamaWeights(gguf: session.opened.file, metadata: session.opened.metadata)
        let l = (try LlamaModel(weights: weights), try BPETokenizer(metadata: session.opened.metadata))
        lock.withLock { llama = l }
        return l
    }

    /// Perplexity with an exact cache and with the settings' bi-branch cache (DESIGN.md §4, "Perplexity").
    func perplexity(settings: ExplorerSettings, resources: ExplorerResources, progress: @escaping @Sendable (Double) -> Void,
                    flag: KVCompression.CancellationFlag) throws -> JobOutcome {
        guard let path = evalTextPath, let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigFileError(path: evalTextPath ?? "Samples/eval.txt", message: "evaluation text not found")
        }
        guard let model = resources.errorModel else { throw KVCompressionError.invalidArgument("the error model is still being built") }
        let inferenceFlag = flag  // Inference and the engines share KVCompression's CancellationFlag
        progress(0.01)
        let (llama, tokenizer) = try loadLlama()
        let kvSize = resources.info.kvSize
        func branch(_ layer: Int, _ kind: ProjectionKind, _ c: BranchChoice) throws -> BranchCompression {
            let basis = c.rank < kvSize ? try model.entry(layer: layer, kind: kind)?.basis.columns(c.rank) : nil
            let q = c.bits == 16 ? nil : try UniformQuantizer(bits: c.bits, groupSize: settings.groupSize, mode: .asymmetric)
            return BranchCompression(basis: basis, quantizer: q)
        }
        let keys = try settings.layers.enumerated().map { try branch($0.offset, .k, $0.element.k) }
        let values = try settings.layers.enumerated().map { try branch($0.offset, .v, $0.element.v) }
        let policy = try BiBranchKVCache(window: settings.window, keys: keys, values: values)
        let baseline = try Perplexity.evaluate(model: llama, tokenizer: tokenizer, text: text,
                                               progress: { progress(0.05 + 0.45 * $0) }, cancellation: inferenceFlag)
        let compressed = try Perplexity.evaluate(model: llama, tokenizer: tokenizer, text: text, policy: policy,
                                                 progress: { progress(0.5 + 0.5 * $0) }, cancellation: inferenceFlag)
        return .perplexity(compressed: compressed.perplexity, baseline: baseline.perplexity, tokens: compressed.tokenCount)
    }

    /// Ranks per layer and K/V minimizing Σ e²·‖·‖² under `percent`% of the fp16 bytes
    /// (DESIGN.md §4, "Sensitivity and allocation"): e_kv when known, else e_w.
    static func kvBudget(percent: Double, settings: ExplorerSettings, state: ExplorerState) throws -> JobOutcome {
        guard let model = state.resources.errorModel, let memory = ExplorerMetrics.memoryModel(state) else {
            throw KVCompressionError.invalidArgument("the error model is still being built")
        }
        let kvSize = state.resources.info.kvSize
        var items: [[AllocationOption]] = []
        var usesKV = true
        for (layer, c) in settings.layers.enumerated() {
            for kind in ProjectionKind.allCases {
                let bits = c[kind].bits
                let curves = model.curves(layer: layer, kind: kind)
                var options: [AllocationOption] = []
                for rank in 1...kvSize {
                    let bytes = try memory.branchBytes(try BranchSetting(rank: rank, bits: bits), contextLength: settings.contextLength)
                        * Double(settings.batch)
                    var cost: Double
                    if let e = model.kvError(layer: layer, kind: kind, rank: rank, bits: bits, groupSize: settings.groupSize).value,
                       let norm = curves?.kvNormSquared {
                        cost = e * e * norm
                    } else {
                        usesKV = false
                        let e = model.weightError(layer: layer, kind: kind, rank: rank).value ?? 1
                        cost = e * e * (curves?.weightNormSquared ?? 1)
                    }
                    options.append(AllocationOption(bytes: bytes, cost: cost))
                }
                items.append(options)
            }
        }
        let baseline = try memory.baselineTotalBytes(layerCount: settings.layers.count, contextLength: settings.contextLength,
                                                     batch: settings.batch)
        let result = try BudgetAllocator.solve(items, budget: baseline * percent / 100)
        var s = settings
        for (i, choice) in result.choices.enumerated() {
            s.layers[i / 2][i % 2 == 0 ? .k : .v].rank = choice + 1
        }
        let note = String(format: "allocated ranks under %.1f%% of fp16 (%@ cost)", percent, usesKV ? "e_kv" : "e_w")
        return .allocation(s, note: note)
    }

    /// Bits per matrix minimizing Σ relerr²·‖W‖² at an average of `bitsPerWeight` bits.
    static func weightBudget(bitsPerWeight: Double, settings: ExplorerSettings, state: ExplorerState) throws -> JobOutcome {
        let choices = Explorer.weightChoices(settings)
        let bitOptions = Array(2...8)
        var items: [[AllocationOption]] = []
        var parameters = 0
        for t in state.resources.tensors {
            guard let table = state.resources.weightTables.table(named: t.name, choices: choices) else {
                throw KVCompressionError.invalidArgument("weight error tables are still being computed")
            }
            var options = bitOptions.compactMap { b -> AllocationOption? in
                guard let e = table.entry(bits: b, groupSize: settings.weightGroupSize, outlierFraction: settings.outlierFraction) else { return nil }
                return AllocationOption(bytes: e.bytes, cost: e.relativeError * e.relativeError * table.weightNormSquared)
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
