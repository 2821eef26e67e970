import Foundation
import Testing

/// The explorer from the command line. The tmux session test (Tests/E2E/tui_tmux.sh) is not run from
/// here: `make test` runs it directly after `swift test` through Tests/E2E/run.sh.
@Suite struct TUIEndToEndTests {
    @Test func noArgumentsWithoutTheSampleSaysSoInOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-noarg-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = Process()
        p.executableURL = CLI.binary
        p.currentDirectoryURL = dir
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(p.terminationStatus == 1)
        #expect(text.split(separator: "\n").count == 1)
        #expect(text.contains("kvscope tui MODEL"))
    }
}
