import Foundation
import TerminalUI
import Testing

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite struct ThemeFilesTests {
    @Test(arguments: ThemeFiles.builtInNames)
    func bundledThemesLoadWithoutWarnings(name: String) {
        let (theme, warnings) = ThemeFiles.load(name, directories: [root.appendingPathComponent("Themes").path])
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(theme.name == name)
    }

    @Test func unknownKeysWarnAndMissingThemesFallBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-theme-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("odd.toml").path
        try "name = \"odd\"\naccent = \"#ff0000\"\nsparkle = \"#00ff00\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        let (theme, warnings) = ThemeFiles.load(path, directories: [])
        #expect(theme.color(.accent) == RGB(255, 0, 0))
        #expect(theme.color(.text) == Theme.fallback.color(.text))
        #expect(warnings == ["theme odd: unknown key 'sparkle'"])
        let (missing, w2) = ThemeFiles.load("nope", directories: [dir.path])
        #expect(missing.colors == Theme.fallback.colors)
        #expect(w2.count == 1)
    }
}
