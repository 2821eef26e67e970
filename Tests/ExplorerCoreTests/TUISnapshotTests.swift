import ExplorerCore
import Foundation
import KVCompression
import TerminalUI
import Testing

/// The whole screen rendered to a buffer and compared as text (goldens in Tests/Golden/tui/;
/// regenerate with RECORD_SNAPSHOTS=1, which fails the run).
@Suite(.serialized) struct TUISnapshotTests {
    @Test(arguments: [(120, 40), (80, 24), (40, 12)])
    func mainScreen(width: Int, height: Int) throws {
        let s = try TUIFixture.state(width: width, height: height)
        try assertSnapshot(Explorer.view(s, width: width, height: height).text, named: "main_\(width)x\(height)")
    }

    @Test func afterKeys() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.down, .down, .down, .right, .right, .character("L"), .character("-"), .character("-"), .tab, .character("z")], &s)
        try assertSnapshot(Explorer.view(s, width: 120, height: 40).text, named: "keys_120x40")
    }

    @Test func helpOverlay() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.character("?")], &s)
        try assertSnapshot(Explorer.view(s, width: 120, height: 40).text, named: "help_120x40")
    }

    @Test func weightsMode() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.character("m"), .character("-"), .character("-"), .character("-")], &s)
        try assertSnapshot(Explorer.view(s, width: 120, height: 40).text, named: "weights_120x40")
    }

    @Test func everyBindingAppearsInTheHelpOverlay() throws {
        for (w, h) in [(120, 40), (80, 24)] {
            var s = try TUIFixture.state(width: w, height: h)
            TUIFixture.press([.character("?")], &s)
            let text = Explorer.view(s, width: w, height: h).text
            for b in KeyMap.bindings {
                #expect(text.contains(b.keyLabel), "\(b.keyLabel) missing at \(w)x\(h)")
                // The help text may be cut at narrow sizes; its first 20 characters must show.
                #expect(text.contains(String(b.help.prefix(20))), "'\(b.help)' missing at \(w)x\(h)")
            }
        }
    }

    @Test(arguments: [(1, 1), (0, 0), (2, 50), (79, 24), (80, 23), (300, 3)])
    func tinyAndOddSizesAreSafe(width: Int, height: Int) throws {
        var s = try TUIFixture.state(width: width, height: height)
        for key: Key in [.character("?"), .escape, .character("M"), .pageUp, .up, .escape, .down, .right, .character("m"), .character("e")] {
            TUIFixture.press([key], &s)
            let b = Explorer.view(s, width: width, height: height)
            #expect(b.width == max(0, width) && b.height == max(0, height))
        }
        if width > 0 && height > 0 && (width < 80 || height < 24) && height >= 3 {
            #expect(Explorer.view(s, width: width, height: height).text.contains("too small") || width < 20)
        }
    }
}
