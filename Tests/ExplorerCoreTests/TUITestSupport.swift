import ExplorerCore
import Foundation
import KVCompression
import TerminalUI
import Testing

/// SmolLM2's explorer resources with the error model built, loaded once per test process.
enum TUIFixture {
    nonisolated(unsafe) private static var cached: ExplorerResources?
    private static let lock = NSLock()

    static func resources() throws -> ExplorerResources {
        try lock.withLock {
            if let c = cached { return c }
            try #require(FileManager.default.fileExists(atPath: smolLM2Path), "missing \(smolLM2Path): run `make models`")
            let session = try ModelSession(path: smolLM2Path)
            var r = try ExplorerResources.load(session: session, calibration: nil)
            r.errorModel = try ExplorerResources.buildErrorModel(session: session, calibration: nil, groupSize: nil)
            cached = r
            return r
        }
    }

    /// A fresh state of SmolLM2 at `width` × `height`.
    static func state(width: Int = 120, height: Int = 40) throws -> ExplorerState {
        var s = ExplorerState(resources: try resources(), status: "Press ? for help.")
        s.width = width
        s.height = height
        return s
    }

    /// Feeds `keys` through the key map and the pure update; returns the effects.
    @discardableResult
    static func press(_ keys: [Key], _ state: inout ExplorerState) -> [ExplorerEffect] {
        var effects: [ExplorerEffect] = []
        for k in keys {
            if let a = KeyMap.action(for: k, in: state) { effects += Explorer.update(&state, a) }
        }
        return effects
    }
}

/// Compares `text` with Tests/Golden/tui/NAME.txt. With RECORD_SNAPSHOTS set it rewrites the
/// golden and fails the test, so a recording run never passes by accident.
func assertSnapshot(_ text: String, named name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = repositoryRoot.appendingPathComponent("Tests/Golden/tui/\(name).txt")
    if ProcessInfo.processInfo.environment["RECORD_SNAPSHOTS"] != nil {
        try (text + "\n").write(to: url, atomically: true, encoding: .utf8)
        Issue.record("recorded \(url.path); unset RECORD_SNAPSHOTS and run again", sourceLocation: sourceLocation)
        return
    }
    let golden = try String(contentsOf: url, encoding: .utf8)
    let want = golden.hasSuffix("\n") ? String(golden.dropLast()) : golden
    if want != text {
        let a = want.split(separator: "\n", omittingEmptySubsequences: false)
        let b = text.split(separator: "\n", omittingEmptySubsequences: false)
        var diff: [String] = []
        for i in 0..<max(a.count, b.count) where (i < a.count ? a[i] : "") != (i < b.count ? b[i] : "") {
            diff.append("row \(i):\n  want: \(i < a.count ? a[i] : "")\n  got:  \(i < b.count ? b[i] : "")")
            if diff.count > 6 { break }
        }
        let report: String = diff.joined(separator: "\n")
        Issue.record(Comment(rawValue: "snapshot \(name) differs:\n\(report)"), sourceLocation: sourceLocation)
    }
}
