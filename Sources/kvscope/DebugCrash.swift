import Foundation

/// A deliberate crash for the terminal-safety end-to-end test (Tests/E2E/terminal_safety_e2e.sh):
/// with `KVSCOPE_DEBUG_CRASH_AFTER_MS=N` in the environment, the explorer traps N ms after its screen
/// opens, so the test can check that the crash handler restores the terminal. Not in `--help`.
enum DebugCrash {
    /// The environment variable that arms the crash.
    static let variable = "KVSCOPE_DEBUG_CRASH_AFTER_MS"

    /// Arms the crash when the variable holds a non-negative number of milliseconds.
    static func armIfRequested() {
        guard let text = ProcessInfo.processInfo.environment[variable], let ms = Int(text), ms >= 0 else { return }
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: Double(ms) / 1000)
            fatalError("\(variable)=\(ms): deliberate crash")
        }
    }
}
