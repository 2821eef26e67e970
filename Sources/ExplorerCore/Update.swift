import Foundation
import KVCompression
import Quantization

/// The explorer's pure functions: `update` (state + action → state + effects) and, in
/// ExplorerView.swift, `view` (state + size → cells).
public enum Explorer {
    /// The bit-widths the + and − keys step through.
    public static let bitSteps = [2, 3, 4, 5, 6, 8, 16]
    /// KV group sizes the g key cycles through (nil: one group per token).
    public static let kvGroupSteps: [Int?] = [nil, 16, 32, 64, 128]
    /// Weight group sizes the g key cycles through in Weights mode (nil: one group per row).
    public static let weightGroupSteps: [Int?] = [32, 64, 128, nil]
    /// Outlier fractions the x key cycles through.
    public static let outlierSteps: [Double] = [0, 0.01]

    /// Applies `action` to `state` and returns the effects the runtime must perform. Reads only
    /// precomputed data, so it takes microseconds.
    public static func update(_ state: inout ExplorerState, _ action: ExplorerAction) -> [ExplorerEffect] {
        let kvSize = state.resources.info.kvSize
        switch action {
        case .moveSelection(let delta):
            if state.mode == .weights {
                state.selectedTensor = clamp(state.selectedTensor + delta, 0, max(0, state.resources.tensors.count - 1))
            } else {
                state.selectedLayer = clamp(state.selectedLayer + delta, 0, max(0, state.settings.layers.count - 1))
            }
        case .selectRow(let row):
            if state.mode == .weights {
                if state.resources.tensors.indices.contains(row) { state.selectedTensor = row }
            } else if state.settings.layers.indices.contains(row) {
                state.selectedLayer = row
            }
        case .click(let x, let y):
            if let row = ExplorerLayout.tableRow(at: x, y, state: state) {
                return update(&state, .selectRow(row))
            }
        case .changeRank(let delta):
            let (layer, kind) = (state.selectedLayer, state.kind)
            guard state.settings.layers.indices.contains(layer) else { break }
            edit(&state) { s in s.layers[layer][kind].rank = clamp(s.layers[layer][kind].rank + delta, 1, kvSize) }
            return kvTableEffects(&state)
        case .changeWindow(let delta):
            edit(&state) { $0.window = clamp($0.window + delta, 0, $0.contextLength) }
        case .changeBits(let delta):
            if state.mode == .weights {
                let t = state.selectedTensor
                guard state.settings.weights.indices.contains(t) else { break }
                edit(&state) { s in s.weights[t].bits = step(s.weights[t].bits, delta) }
                return weightTableEffects(&state)
            }
            let (layer, kind) = (state.selectedLayer, state.kind)
            guard state.settings.layers.indices.contains(layer) else { break }
            edit(&state) { s in s.layers[layer][kind].bits = step(s.layers[layer][kind].bits, delta) }
            return kvTableEffects(&state)
        case .cycleGroup:
            if state.mode == .weights {
                edit(&state) { $0.weightGroupSize = next(weightGroupSteps, after: $0.weightGroupSize) }
                return weightTableEffects(&state)
            }
            edit(&state) { $0.groupSize = next(kvGroupSteps, after: $0.groupSize) }
            return kvTableEffects(&state)
        case .cycleOutliers:
            edit(&state) { s in
                let i = outlierSteps.firstIndex(of: s.outlierFraction) ?? 0
                s.outlierFraction = outlierSteps[(i + 1) % outlierSteps.count]
            }
            return weightTableEffects(&state)
        case .scaleContext(let up):
            edit(&state) { s in
                s.contextLength = clamp(up ? s.contextLength * 2 : s.contextLength / 2, 1, 1 << 22)
                s.window = min(s.window, s.contextLength)
            }
        case .scaleBatch(let up):
            edit(&state) { $0.batch = clamp(up ? $0.batch * 2 : $0.batch / 2, 1, 4096) }
        case .toggleKind:
            state.kind = state.kind == .k ? .v : .k
        case .cycleMode:
            let all = ExplorerMode.allCases
            state.mode = all[((all.firstIndex(of: state.mode) ?? 0) + 1) % all.count]
            if state.mode == .weights { return weightTableEffects(&state) }
            if state.mode == .eval && !state.resources.info.canRunInference {
                state.status = "Eval needs the full model: open a GGUF llama file with `kvscope tui MODEL`."
            }
        case .toggleSource:
            if state.source == .weights {
                guard state.resources.kvSpectra != nil else {
                    state.status = "kv spectra need calibration statistics; this session has none (showing weights)"
                    break
                }
                state.source = .kv
            } else {
                state.source = .weights
            }
        case .toggleNormalize:
            state.normalized.toggle()
        case .applyToAll:
            if state.mode == .weights {
                guard state.settings.weights.indices.contains(state.selectedTensor) else { break }
                let bits = state.settings.weights[state.selectedTensor].bits
                edit(&state) { s in for i in s.weights.indices { s.weights[i].bits = bits } }
                state.status = "applied \(bits) bits to all \(state.settings.weights.count) matrices"
                return weightTableEffects(&state)
            }
            guard state.settings.layers.indices.contains(state.selectedLayer) else { break }
            let choice = state.settings.layers[state.selectedLayer]
            edit(&state) { s in for i in s.layers.indices { s.layers[i] = choice } }
            state.status = "applied layer \(state.selectedLayer)'s K and V setting to all layers"
            return kvTableEffects(&state)
        case .askBudget:
            if state.jobs.contains(where: { $0.kind == .budget }) { state.status = "a budget allocation is already running"; break }
            if state.mode != .weights, let missing = errorModelMissing(state) { state.status = missing; break }
            if state.mode == .weights {
                state.overlay = .prompt(Prompt(purpose: .budget, title: "Average bits per weight", text: "4"))
            } else {
                // The budget is measured at the current context, group and window, as `tune` measures it.
                let s = state.settings
                state.overlay = .prompt(Prompt(purpose: .budget, title: "KV budget (% of fp16 bytes at L \(s.contextLength), group "
                                               + "\(s.groupSize.map(String.init) ?? "token"), window \(s.window))", text: "25"))
            }
        case .runPerplexity:
            guard state.resources.info.canRunInference else {
                state.status = "perplexity needs the full model (a llama GGUF); this file cannot run the forward pass"
                break
            }
            if state.jobs.contains(where: { $0.kind == .perplexity }) { state.status = "perplexity is already running"; break }
            state.mode = .eval
            return [start(&state, .perplexity(state.settings))]
        case .askExport:
            state.overlay = .prompt(Prompt(purpose: .exportName, title: "Export config as", text: state.defaultExportName))
        case .askOpen:
            state.overlay = .prompt(Prompt(purpose: .openConfig, title: "Open config", text: state.defaultExportName))
        case .undo:
            guard let previous = state.history.popLast() else { state.status = "nothing to undo"; break }
            state.future.append(state.settings)
            state.settings = previous
            state.status = "undone"
            return settingsEffects(&state)
        case .redo:
            guard let next = state.future.popLast() else { state.status = "nothing to redo"; break }
            state.history.append(state.settings)
            state.settings = next
            state.status = "redone"
            return settingsEffects(&state)
        case .cycleTheme:
            if !state.themeNames.isEmpty { state.themeIndex = (state.themeIndex + 1) % state.themeNames.count }
            state.status = "theme: \(state.themeName)"
            if let warning = state.themeWarnings[state.themeName], !state.warnedThemes.contains(state.themeName) {
                state.warnedThemes.insert(state.themeName)
                state.status = warning
            }
        case .toggleHelp:
            state.overlay = state.overlay == .help ? nil : .help
        case .restartJobs:
            return restartStopped(&state)
        case .toggleLog:
            if case .log = state.overlay { state.overlay = nil } else { state.overlay = .log(scroll: 0) }
        case .scrollLog(let delta):
            guard case .log(let scroll) = state.overlay else { break }
            state.overlay = .log(scroll: clamp(scroll + delta, 0, maxLogScroll(state)))
        case .quit:
            if state.hasUnexportedChanges {
                state.overlay = .confirm(.quitWithoutExport)
            } else {
                state.finished = true
                return [.quit]
            }
        case .escape:
            if state.overlay != nil {
                state.overlay = nil
            } else if let job = state.jobs.last {
                state.status = "cancelling \(job.kind.rawValue)…"
                return [.cancelJob(id: job.id)]
            } else if let stopped = state.stoppedJobs.first {
                state.status = "nothing is running (\(stopped.rawValue) stopped earlier — R restarts it)"
            }
        case .resize(let w, let h):
            state.width = max(0, w)
            state.height = max(0, h)
        case .promptInput(let c):
            guard case .prompt(var p) = state.overlay, p.text.count < 200 else { break }
            p.text.append(c)
            state.overlay = .prompt(p)
        case .promptBackspace:
            guard case .prompt(var p) = state.overlay else { break }
            if !p.text.isEmpty { p.text.removeLast() }
            state.overlay = .prompt(p)
        case .promptSubmit:
            guard case .prompt(let p) = state.overlay else { break }
            state.overlay = nil
            return submit(&state, p)
        case .answer(let yes):
            guard case .confirm(let c) = state.overlay else { break }
            state.overlay = nil
            switch c {
            case .quitWithoutExport:
                if yes { state.finished = true; return [.quit] }
            case .overwrite(let path):
                if yes { return [.export(path: path, overwrite: true, state.settings)] }
                state.status = "not exported"
            }
        case .jobProgress(let id, let fraction):
            if let i = state.jobs.firstIndex(where: { $0.id == id }) { state.jobs[i].fraction = fraction }
        case .jobFinished(let id, let outcome):
            let job = state.jobs.first(where: { $0.id == id })
            state.jobs.removeAll { $0.id == id }
            if let kind = job?.kind { state.jobEnds[kind] = .done }
            switch outcome {
            case .errorModel(let model):
                state.resources.errorModel = model
                state.status = "error model ready (\(model.basisKind.rawValue) basis)"
                return kvTableEffects(&state)
            case .tablesFilled:
                state.status = "\(job?.kind.rawValue ?? "tables") ready"
                // Settings may have moved on while this job ran: fill what they use now.
                if job?.kind == .kvTables { return kvTableEffects(&state) }
                if job?.kind == .weightTables && state.mode == .weights { return weightTableEffects(&state) }
            case .perplexity(let compressed, let baseline, let tokens):
                state.perplexity = PerplexityFigures(compressed: compressed, baseline: baseline, tokens: tokens,
                                                     settings: state.settings)
                state.status = String(format: "KV cache only: perplexity %.3f (fp16 cache %.3f) on %d tokens, weights unquantized",
                                      compressed, baseline, tokens)
            case .allocation(let settings, let note):
                edit(&state) { $0 = settings }
                state.status = note
                return kvTableEffects(&state) + (state.mode == .weights ? weightTableEffects(&state) : [])
            }
        case .jobFailed(let id, let message):
            let kind = state.jobs.first(where: { $0.id == id })?.kind
            state.jobs.removeAll { $0.id == id }
            guard let kind else { state.status = message; break }
            state.jobEnds[kind] = .failed(message)
            state.status = "\(kind.rawValue) failed: \(message) — press R to retry"
        case .jobCancelled(let id):
            guard let kind = state.jobs.first(where: { $0.id == id })?.kind else { break }
            state.jobs.removeAll { $0.id == id }
            state.jobEnds[kind] = .cancelled
            state.status = cancelledStatus(kind)
        case .exportTargetExists(let path):
            state.overlay = .confirm(.overwrite(path: path))
        case .exported(let path):
            state.savedSettings = state.settings
            state.status = "exported \(path)"
        case .configOpened(let settings, let path):
            edit(&state) { $0 = settings }
            state.savedSettings = state.settings
            state.status = "opened \(path)"
            return kvTableEffects(&state)
        case .status(let s):
            state.status = s
        }
        return []
    }

    /// Changes the settings through `body`, recording the old ones for undo when they change.
    static func edit(_ state: inout ExplorerState, _ body: (inout ExplorerSettings) -> Void) {
        var s = state.settings
        body(&s)
        guard s != state.settings else { return }
        state.history.append(state.settings)
        if state.history.count > 500 { state.history.removeFirst() }
        state.future.removeAll()
        state.settings = s
    }

    static func start(_ state: inout ExplorerState, _ request: JobRequest) -> ExplorerEffect {
        let id = state.nextJobID
        state.nextJobID += 1
        state.jobs.append(JobStatus(id: id, kind: request.kind, fraction: 0))
        state.lastRequests[request.kind] = request
        state.note("started \(jobTitle(request))")
        return .startJob(id: id, request)
    }

    /// What a change of the settings (undo, redo) needs computed: quantized e_kv tables, and weight
    /// tables in Weights mode.
    static func settingsEffects(_ state: inout ExplorerState) -> [ExplorerEffect] {
        kvTableEffects(&state) + (state.mode == .weights ? weightTableEffects(&state) : [])
    }

    /// Starts filling quantized e_kv tables for bit-widths in use that are not filled yet (one fill at
    /// a time: the next starts when it finishes). Without an error model, rebuilds a cancelled one. A
    /// stopped fill whose tables are no longer needed is forgotten.
    static func kvTableEffects(_ state: inout ExplorerState) -> [ExplorerEffect] {
        guard let model = state.resources.errorModel else { return errorModelEffects(&state) }
        guard state.resources.kvSpectra != nil else { return [] }
        let used = Set(state.settings.layers.flatMap { [$0.k.bits, $0.v.bits] }).filter { $0 != 16 }.sorted()
        let missing = used.filter { !model.isFilled(bits: $0, groupSize: state.settings.groupSize) }
        guard let b = missing.first else {
            if state.phase(.kvTables).isStopped { state.jobEnds[.kvTables] = nil }
            return []
        }
        if state.jobs.contains(where: { $0.kind == .kvTables }) { return [] }
        return [start(&state, .fillKVTables(bits: b, groupSize: state.settings.groupSize))]
    }

    /// The weight-table grid the session computes for the current group and outlier fraction: bits
    /// 2…8 (asymmetric) less those the shipped tables already hold; nil when they hold them all.
    public static func weightChoices(_ settings: ExplorerSettings, resources: ExplorerResources) -> ErrorTableChoices? {
        var bits = Array(2...8)
        if let shipped = resources.weightChoices, shipped.mode == .asymmetric,
           shipped.groupSizes.contains(settings.weightGroupSize), shipped.outlierFractions.contains(settings.outlierFraction) {
            bits.removeAll { shipped.bits.contains($0) }
        }
        guard !bits.isEmpty else { return nil }
        return ErrorTableChoices(bits: bits, groupSizes: [settings.weightGroupSize],
                                 outlierFractions: [settings.outlierFraction], mode: .asymmetric)
    }

    /// Starts filling weight error tables for the current grid when some are missing and the
    /// matrices can be read.
    static func weightTableEffects(_ state: inout ExplorerState) -> [ExplorerEffect] {
        guard state.resources.info.canComputeWeightTables,
              let choices = weightChoices(state.settings, resources: state.resources) else { return [] }
        let cache = state.resources.weightTables
        let missing = state.resources.tensors.contains { cache.table(named: $0.name, choices: choices) == nil }
        if !missing, state.phase(.weightTables).isStopped { state.jobEnds[.weightTables] = nil }
        guard missing, !state.jobs.contains(where: { $0.kind == .weightTables }) else { return [] }
        return [start(&state, .fillWeightTables(choices: choices))]
    }

    static func submit(_ state: inout ExplorerState, _ p: Prompt) -> [ExplorerEffect] {
        let text = p.text.trimmingCharacters(in: .whitespaces)
        switch p.purpose {
        case .budget:
            guard let value = Double(text.hasSuffix("%") ? String(text.dropLast()) : text), value > 0, value.isFinite else {
                state.status = "not a number: '\(text)'"
                return []
            }
            if state.mode == .weights {
                guard value <= 16 else { state.status = "bits per weight must be at most 16"; return [] }
                return [start(&state, .weightBudget(bitsPerWeight: value, settings: state.settings))]
            }
            guard value <= 100 else { state.status = "a budget is a percentage of fp16 bytes, at most 100"; return [] }
            if let missing = errorModelMissing(state) { state.status = missing; return [] }
            guard state.resources.kvSpectra != nil else {
                state.status = "a KV budget needs e_kv, from calibration statistics; this session has none"
                return []
            }
            return [start(&state, .kvBudget(percent: value, settings: state.settings))]
        case .exportName:
            guard !text.isEmpty else { state.status = "no name given; not exported"; return [] }
            return [.export(path: text, overwrite: false, state.settings)]
        case .openConfig:
            guard !text.isEmpty else { return [] }
            return [.openConfig(path: text)]
        }
    }

    /// How far back the message log can scroll at the state's size (rows above the first screenful).
    static func maxLogScroll(_ state: ExplorerState) -> Int {
        let frame = logFrame(width: state.width, height: state.height)
        return max(0, state.log.rows(width: frame.textWidth).count - frame.visibleRows)
    }

    static func clamp(_ v: Int, _ lo: Int, _ hi: Int) -> Int { min(max(v, lo), max(lo, hi)) }

    /// The next bit-width in ``bitSteps`` (delta > 0) or the previous one.
    static func step(_ bits: Int, _ delta: Int) -> Int {
        let i = bitSteps.firstIndex(of: bits) ?? (bitSteps.lastIndex(where: { $0 < bits }) ?? 0)
        return bitSteps[clamp(i + (delta > 0 ? 1 : -1), 0, bitSteps.count - 1)]
    }

    static func next<T: Equatable>(_ steps: [T], after value: T) -> T {
        let i = steps.firstIndex(of: value) ?? -1
        return steps[(i + 1) % steps.count]
    }
}
