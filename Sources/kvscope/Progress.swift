import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A progress bar on stderr for long work. It draws only when stderr is a terminal, redraws at
/// most ten times a second, and is thread-safe (engines report from worker threads).
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let lock = NSLock()
    private let enabled: Bool
    private var lastDraw = 0.0
    private var drawn = false

    init(_ label: String) {
        self.label = label
        enabled = isatty(STDERR_FILENO) != 0
    }

    /// Reports `completed` of `total` units.
    func update(_ completed: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        lock.lock(); defer { lock.unlock() }
        let now = Date().timeIntervalSince1970
        guard completed >= total || now - lastDraw >= 0.1 else { return }
        lastDraw = now
        let width = 30
        let filled = min(width, completed * width / total)
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) \(bar) \(completed)/\(total)".utf8))
        drawn = true
    }

    /// Clears the bar line.
    func finish() {
        lock.lock(); defer { lock.unlock() }
        if enabled && drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        drawn = false
    }
}
