import Foundation
import KVCompression

/// Where one kind of background work stands. ``ExplorerState/phase(_:)`` derives it: a running job
/// of the kind wins; otherwise how the last one ended (``ExplorerState/jobEnds``), or idle.
public enum JobPhase: Sendable, Equatable {
    /// Never started, or nothing of it is needed any more.
    case idle
    /// Running or queued behind other jobs, with its progress 0…1.
    case running(fraction: Double)
    /// The last one finished.
    case done
    /// The user cancelled the last one; what it computes is unknown until it runs again.
    case cancelled
    /// The last one failed with this message.
    case failed(String)

    /// Whether it stopped before finishing (cancelled or failed): R starts it again.
    public var isStopped: Bool {
        switch self {
        case .cancelled, .failed: return true
        case .idle, .running, .done: return false
        }
    }

    /// Whether a job of the kind is running (or queued).
    public var isRunning: Bool {
        if case .running = self { return true }
        return false
    }
}

extension JobKind: CaseIterable {
    /// Every kind, in the order R restarts them (the error model first: the tables need it).
    public static let allCases: [JobKind] = [.errorModel, .kvTables, .weightTables, .perplexity, .budget]
}

extension ExplorerState {
    /// Where the background work of `kind` stands.
    public func phase(_ kind: JobKind) -> JobPhase {
        if let job = jobs.first(where: { $0.kind == kind }) { return .running(fraction: job.fraction) }
        return jobEnds[kind] ?? .idle
    }

    /// The kinds whose last job was cancelled or failed, in restart order.
    public var stoppedJobs: [JobKind] { JobKind.allCases.filter { phase($0).isStopped } }

    /// Appends `text` to the message log without changing the status line (job starts, notes).
    public mutating func note(_ text: String) { log.append(text, at: clock()) }
}

/// The last ``capacity`` status lines and notes, oldest first, each with the time it was shown; an
/// immediate repeat of the same text counts instead of taking a new line.
public struct MessageLog: Sendable, Equatable {
    /// One message.
    public struct Entry: Sendable, Equatable {
        /// When it was last shown.
        public var time: Date
        public var text: String
        /// How many times in a row it was shown.
        public var count: Int
    }

    /// How many messages the log keeps.
    public static let capacity = 50
    /// The kept messages, oldest first.
    public private(set) var entries: [Entry] = []
    /// The time zone the overlay prints times in.
    public var timeZone: TimeZone = .current

    /// An empty log.
    public init() {}

    /// Adds `text` shown at `time` (empty text is not a message); drops the oldest beyond ``capacity``.
    public mutating func append(_ text: String, at time: Date) {
        guard !text.isEmpty else { return }
        if let last = entries.last, last.text == text {
            entries[entries.count - 1].count += 1
            entries[entries.count - 1].time = time
            return
        }
        entries.append(Entry(time: time, text: text, count: 1))
        if entries.count > Self.capacity { entries.removeFirst(entries.count - Self.capacity) }
    }

    /// `time` as HH:MM:SS in ``timeZone``.
    public func clockText(_ time: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.hour, .minute, .second], from: time)
        return String(format: "%02d:%02d:%02d", c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// The log as screen rows `width` cells wide, oldest first: "HH:MM:SS  text", long texts
    /// wrapped at spaces under their first line's text.
    public func rows(width: Int) -> [String] {
        let indent = 10
        guard width > indent + 4 else { return entries.map { clockText($0.time) + "  " + $0.text } }
        var out: [String] = []
        for e in entries {
            let text = e.count > 1 ? e.text + " (×\(e.count))" : e.text
            for (i, line) in Self.wrap(text, width: width - indent).enumerated() {
                out.append((i == 0 ? clockText(e.time) + "  " : String(repeating: " ", count: indent)) + line)
            }
        }
        return out
    }

    /// `text` in lines of at most `width` characters, broken at spaces where possible.
    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var rest = Substring(text)
        while rest.count > width {
            let head = rest.prefix(width + 1)
            let cut = head.lastIndex(of: " ").flatMap { $0 > rest.startIndex ? $0 : nil } ?? rest.index(rest.startIndex, offsetBy: width)
            lines.append(String(rest[..<cut]))
            rest = rest[cut...].drop(while: { $0 == " " })
        }
        lines.append(String(rest))
        return lines
    }
}

extension Explorer {
    /// The marker of a cell whose value is unknown because the job that computes it was cancelled
    /// or failed (R restarts it); "…" means that job is running, "—" that it cannot be known here.
    public static let stoppedMarker = "?"

    /// An error estimate as a table cell: its value; "…" while `job` runs; ``stoppedMarker`` when it
    /// is pending but nothing computes it; "—" when it is unavailable.
    public static func cell(_ e: ErrorEstimate, job: JobKind, _ state: ExplorerState) -> String {
        if case .pending = e, !state.phase(job).isRunning { return stoppedMarker }
        return ExplorerMetrics.text(e)
    }

    /// The job that computes what ``ExplorerMetrics/kvError(_:layer:kind:)`` answers pending for: the
    /// error model while there is none, then the quantized tables.
    public static func kvErrorJob(_ state: ExplorerState) -> JobKind {
        state.resources.errorModel == nil ? .errorModel : .kvTables
    }

    /// The status line of a job of `kind` that was cancelled: what is now unknown and how to get it.
    static func cancelledStatus(_ kind: JobKind) -> String {
        switch kind {
        case .errorModel: return "error model cancelled: e_w and e_kv show \(stoppedMarker) — press R to build it"
        case .kvTables: return "quantized e_kv cancelled: its cells show \(stoppedMarker) — R or a bits/group change refills them"
        case .weightTables: return "weight errors cancelled: rel err shows \(stoppedMarker) — R or a bits/group/outlier change refills them"
        case .perplexity: return "perplexity cancelled — press p or R to run it again"
        case .budget: return "budget cancelled, settings unchanged — press R to run it again"
        }
    }

    /// Why a KV budget cannot run yet (nil when it can): the error model is being built, or it is
    /// not built and nothing builds it.
    static func errorModelMissing(_ state: ExplorerState) -> String? {
        guard state.resources.errorModel == nil else { return nil }
        switch state.phase(.errorModel) {
        case .running(let f):
            return String(format: "the error model is still being built (%.0f%%); the budget can run when it is ready", f * 100)
        case .failed(let message):
            return "no error model (its build failed: \(message)) — press R to retry"
        case .idle, .done, .cancelled:
            return "no error model (cancelled) and nothing is building it — press R to build it"
        }
    }

    /// Starts the error model again when it was cancelled and the settings need it (every e_w does).
    static func errorModelEffects(_ state: inout ExplorerState) -> [ExplorerEffect] {
        guard state.resources.errorModel == nil, state.phase(.errorModel) == .cancelled else { return [] }
        state.status = "rebuilding the error model (the settings need it; Esc cancels)"
        return [start(&state, .buildErrorModel(groupSize: state.settings.groupSize))]
    }

    /// R: starts again every kind of work whose last job was cancelled or failed, the error model
    /// first. Table fills restart for the current settings (and clear when nothing is missing),
    /// perplexity runs at the current settings, a budget with its last target.
    static func restartStopped(_ state: inout ExplorerState) -> [ExplorerEffect] {
        let stopped = state.stoppedJobs
        guard !stopped.isEmpty else {
            state.status = "nothing to restart: no job was cancelled or failed"
            return []
        }
        var effects: [ExplorerEffect] = []
        var restarted: [String] = []
        for kind in stopped {
            switch kind {
            case .errorModel:
                state.jobEnds[kind] = nil
                if state.resources.errorModel == nil {
                    effects.append(start(&state, .buildErrorModel(groupSize: state.settings.groupSize)))
                    restarted.append(kind.rawValue)
                }
            case .kvTables:
                // Without an error model the tables wait for it: its completion fills them.
                guard state.resources.errorModel != nil else { continue }
                let e = kvTableEffects(&state)
                if !e.isEmpty { restarted.append(kind.rawValue) }
                effects += e
            case .weightTables:
                state.jobEnds[kind] = nil
                let e = weightTableEffects(&state)
                if !e.isEmpty { restarted.append(kind.rawValue) }
                effects += e
            case .perplexity:
                state.jobEnds[kind] = nil
                guard state.resources.info.canRunInference else { continue }
                effects.append(start(&state, .perplexity(state.settings)))
                restarted.append(kind.rawValue)
            case .budget:
                switch state.lastRequests[kind] {
                case .kvBudget(let percent, _)?:
                    guard state.resources.errorModel != nil else { continue }
                    state.jobEnds[kind] = nil
                    effects.append(start(&state, .kvBudget(percent: percent, settings: state.settings)))
                    restarted.append(kind.rawValue)
                case .weightBudget(let bits, _)?:
                    state.jobEnds[kind] = nil
                    effects.append(start(&state, .weightBudget(bitsPerWeight: bits, settings: state.settings)))
                    restarted.append(kind.rawValue)
                default:
                    state.jobEnds[kind] = nil
                }
            }
        }
        if restarted.isEmpty {
            state.status = "nothing to restart now: the settings need none of it"
        } else {
            let waiting = state.stoppedJobs.isEmpty ? "" : " (\(state.stoppedJobs.map(\.rawValue).joined(separator: ", ")) after the error model)"
            state.status = "restarted " + restarted.joined(separator: ", ") + waiting + " — Esc cancels"
        }
        return effects
    }

    /// What a job of `request` is called in the log.
    static func jobTitle(_ request: JobRequest) -> String {
        switch request {
        case .buildErrorModel: return "error model"
        case .fillKVTables(let bits, let g): return "quantized e_kv tables (\(bits) bits, group \(g.map(String.init) ?? "token"))"
        case .fillWeightTables(let c): return "weight error tables (group \(c.groupSizes.first.flatMap { $0 }.map(String.init) ?? "row"))"
        case .perplexity: return "perplexity"
        case .kvBudget(let p, _): return String(format: "KV budget %.1f%%", p)
        case .weightBudget(let b, _): return String(format: "weight budget %.2f bits/weight", b)
        }
    }
}
