import Testing
import Foundation
@testable import TerminalUI

@Suite struct ScreenBufferTests {
    @Test func writesAreClippedNotTrapped() {
        var b = ScreenBuffer(width: 5, height: 2)
        b.put("hello world", x: 2, y: 0)
        b.put("x", x: -1, y: 1)
        b.put("y", x: 9, y: 9)
        #expect(b.text == "  hel\n")
    }

    @Test func boxWithTitle() {
        var b = ScreenBuffer(width: 10, height: 3)
        b.box(b.bounds, title: "KV")
        #expect(b.text == "┌ KV ────┐\n│        │\n└────────┘")
    }

    @Test func controlAndWideCharactersKeepColumnsAligned() {
        var b = ScreenBuffer(width: 6, height: 1)
        b.put("a\tb漢c", x: 0, y: 0)
        #expect(b.text == "a?b?c")
    }

    @Test func tinyBuffersAreSafe() {
        var b = ScreenBuffer(width: 1, height: 1)
        b.box(b.bounds, title: "x")
        b.fill(Rect(x: -3, y: -3, width: 10, height: 10), with: Cell("#"))
        #expect(b.text == "#")
        var z = ScreenBuffer(width: 0, height: 0)
        z.put("abc", x: 0, y: 0)
        #expect(z.text == "")
    }
}

@Suite struct BrailleTests {
    @Test func dotsMapToBrailleBits() {
        var c = BrailleCanvas(columns: 1, rows: 1)
        c.set(0, 0, style: .plain)   // dot 1
        c.set(1, 3, style: .plain)   // dot 8
        var b = ScreenBuffer(width: 1, height: 1)
        c.render(into: &b, x: 0, y: 0)
        #expect(b[0, 0].scalar == Unicode.Scalar(0x2800 + 0x01 + 0x80))
    }

    @Test func fullCellAndLine() {
        var c = BrailleCanvas(columns: 2, rows: 1)
        for x in 0..<2 { for y in 0..<4 { c.set(x, y, style: .plain) } }
        c.line(from: (2, 3), to: (3, 0), style: .plain)
        var b = ScreenBuffer(width: 2, height: 1)
        c.render(into: &b, x: 0, y: 0)
        #expect(b[0, 0].scalar == "⣿")
        #expect(b[1, 0].scalar != " ")
        c.set(100, 100, style: .plain)  // ignored
    }
}

@Suite struct AxisTickTests {
    @Test func decades() {
        #expect(AxisTicks.logDecades(low: 0.003, high: 250) == [0.01, 0.1, 1, 10, 100])
        #expect(AxisTicks.logDecades(low: 1, high: 1000) == [1, 10, 100, 1000])
        #expect(AxisTicks.logDecades(low: 2, high: 3).isEmpty)
        #expect(AxisTicks.logDecades(low: 0, high: 3).isEmpty)
        #expect(AxisTicks.decadeLabel(0.01) == "0.01")
        #expect(AxisTicks.decadeLabel(1e-5) == "1e-5")
    }

    @Test func linearTicksAreOneTwoFive() {
        #expect(AxisTicks.linear(low: 0, high: 192, target: 4) == [0, 50, 100, 150])
        #expect(AxisTicks.linear(low: 0, high: 1, target: 5) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1])
        #expect(AxisTicks.linear(low: 0, high: 64, target: 3) == [0, 20, 40, 60])
    }
}

@Suite struct ThemeTests {
    @Test func fileOverridesDefaultAndWarnsOnUnknownKeys() {
        let text = """
            # a comment
            name = "light"
            background = "#ffffff"
            text = "#000000"   # trailing comment
            sparkles = "#123456"
            accent = "blue"
            """
        let (theme, warnings) = Theme.parse(text, name: "file")
        #expect(theme.name == "light")
        #expect(theme.color(.background) == RGB(255, 255, 255))
        #expect(theme.color(.text) == RGB(0, 0, 0))
        #expect(theme.color(.good) == Theme.fallback.color(.good))
        #expect(warnings == ["unknown key 'sparkles'", "accent: 'blue' is not #rrggbb"])
    }

    @Test func fileTextRoundTrips() {
        let (theme, warnings) = Theme.parse(Theme.fallback.fileText, name: "x")
        #expect(warnings.isEmpty)
        #expect(theme == Theme.fallback)
    }

    @Test(arguments: [
        (RGB(255, 0, 0), 196), (RGB(0, 0, 0), 16), (RGB(255, 255, 255), 231),
        (RGB(0x80, 0x80, 0x80), 244), (RGB(0, 0x87, 0xff), 33),
    ])
    func xterm256(color: RGB, index: Int) {
        #expect(ColorReduction.xterm256(color) == index)
    }

    @Test func depthDetection() {
        #expect(ColorDepth.detect(colors: 256, noColor: true) == ColorDepth.none)
        #expect(ColorDepth.detect(colors: 8, noColor: false) == .eight)
        #expect(ColorDepth.detect(colors: 16, noColor: false) == .sixteen)
        #expect(ColorDepth.detect(colors: 1 << 24, noColor: false) == .palette256)
        #expect(ColorReduction.ansi(RGB(250, 10, 10), count: 8) == 1)
        #expect(ColorReduction.ansi(RGB(250, 10, 10), count: 16) == 9)
    }
}

@Suite struct ShippedThemeTests {
    @Test(arguments: ["default", "light", "high-contrast", "mono"])
    func shippedThemesParseWithoutWarningsAndCoverEveryRole(name: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Themes/\(name).toml")
        let text = try String(contentsOf: url, encoding: .utf8)
        let (theme, warnings) = Theme.parse(text, name: name)
        #expect(warnings.isEmpty)
        #expect(theme.name == name)
        for role in ColorRole.allCases {
            #expect(text.contains("\n\(role.rawValue) = "), "\(name) lacks \(role)")
        }
    }

    @Test func defaultFileMatchesCompiledDefault() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Themes/default.toml")
        let (theme, _) = Theme.parse(try String(contentsOf: url, encoding: .utf8), name: "default")
        #expect(theme == Theme.fallback)
    }
}
