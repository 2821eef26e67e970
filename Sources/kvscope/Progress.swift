import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress of a long command on stderr, phase by phase (calibration, fitting, prefill, baseline, …),
/// so a user always sees what is running. Thread-safe: engines report from worker threads.
///
/// On a terminal one line is redrawn in place, at most ten times a second:
/// `eval: calibration ███████░░░░░░░░ 12/30 layers`. When stderr is not a terminal (a pipe, a log
/// file, CI) it prints plain lines instead, `eval: calibration 40% (12/30 layers)`: each phase's
/// last line, and others at most one every ``interval`` seconds, so a long phase shows it is alive
/// without flooding the log. Nothing goes to stdout.
final class ProgressReporter: @unchecked Sendable {
    /// The command name every line starts with.
    let command: String
    /// Whether to draw the in-place bar (stderr is a terminal) or print plain lines.
    let terminal: Bool
    /// Seconds between two plain lines of an unfinished phase.
    let interval: Double
    private let clock: @Sendable () -> Double
    private let output: @Sendable (String) -> Void
    private let lock = NSLock()
    private var phase = ""
    private var unit = ""
    private var lastLine = -Double.infinity
    private var lastDraw = -Double.infinity
    private var finalPrinted = false
    private var drawn = false

    /// A reporter for `command`.
    /// - Parameters:
    ///   - terminal: draw a bar (default: whether stderr is a terminal).
    ///   - interval: seconds between plain lines.
    ///   - clock: seconds, for the rate limits (tests pass their own).
    ///   - output: where text goes (default: stderr).
    init(_ command: String, terminal: Bool = isatty(STDERR_FILENO) != 0, interval: Double = 2.5,
         clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 },
         output: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.command = command
        self.terminal = terminal
        self.interval = interval
        self.clock = clock
        self.output = output
    }

    /// Starts phase `name`; `unit` names what ``update(_:_:)`` counts ("layers", "matrices"; empty
    /// for a percentage).
    func begin(_ name: String, unit: String = "") {
        lock.withLock {
            phase = name
            self.unit = unit
            finalPrinted = false
            lastDraw = -Double.infinity
        }
    }

    /// Reports `completed` of `total` units of the current phase.
    func update(_ completed: Int, _ total: Int) {
        guard total > 0 else { return }
        lock.withLock {
            let now = clock()
            let done = completed >= total
            if terminal {
                guard done || now - lastDraw >= 0.1 else { return }
                lastDraw = now
                let width = 30
                let filled = min(width, max(0, completed * width / total))
                let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
                output("\r\u{1B}[K\(command): \(phase) \(bar) \(count(completed, total))")
                drawn = true
            } else {
                guard done ? !finalPrinted : now - lastLine >= interval else { return }
                lastLine = now
                if done { finalPrinted = true }
                let percent = Int((100 * Double(min(completed, total)) / Double(total)).rounded(.down))
                output("\(command): \(phase) \(percent)%\(unit.isEmpty ? "" : " (\(completed)/\(total) \(unit))")\n")
            }
        }
    }

    /// Reports a fraction 0…1 of the current phase.
    func fraction(_ f: Double) {
        update(Int((min(max(f, 0), 1) * 1000).rounded(.down)), 1000)
    }

    private func count(_ completed: Int, _ total: Int) -> String {
        unit.isEmpty ? "\(Int((100 * Double(min(completed, total)) / Double(total)).rounded(.down)))%" : "\(completed)/\(total) \(unit)"
    }

    /// Clears the bar line (a terminal); plain lines stay.
    func finish() {
        lock.withLock {
            if terminal && drawn { output("\r\u{1B}[K") }
            drawn = false
        }
    }
}
