import Foundation
import TerminalUI
import Testing

private let themesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Themes").path

/// How every bundled theme degrades to 256, 16 and 8 colors and to none (NO_COLOR): text stays
/// readable and the header, selection and status bar stay visible.
@Suite struct ColorMappingTests {
    static let depths: [ColorDepth] = [.palette256, .sixteen, .eight]

    /// The styles the explorer draws with: every foreground on the screen background, and the
    /// emphasis bars with their own text colors.
    static let styles: [Style] = ColorRole.allCases.map { Style($0) } + [
        Style(.selectionText, on: .selection, bold: true), Style(.headerText, on: .header, bold: true),
        Style(.statusText, on: .statusBar), Style(.accent, on: .statusBar),
    ]

    @Test(arguments: ThemeFiles.builtInNames)
    func themesStayReadableAtEveryDepth(name: String) {
        let theme = ThemeFiles.load(name, directories: [themesDirectory]).theme
        for depth in Self.depths {
            let limit = depth == .eight ? 8 : depth == .sixteen ? 16 : 256
            let plain = ColorMapping.colors(for: Style(.text), theme: theme, depth: depth)
            for style in Self.styles {
                let c = ColorMapping.colors(for: style, theme: theme, depth: depth)
                let fg = c.foreground ?? -1, bg = c.background ?? -1
                #expect((0..<limit).contains(fg) && (0..<limit).contains(bg), "\(name) \(depth) \(style): \(c)")
                if style.foreground != style.background {
                    #expect(fg != bg, "\(name) \(depth): \(style.foreground) is invisible on \(style.background)")
                }
                if ColorMapping.emphasisBackgrounds.contains(style.background) {
                    // A bar differs from plain text: another background, or reverse video.
                    #expect(c.reverse || bg != plain.background, "\(name) \(depth): \(style.background) bar is invisible")
                }
            }
        }
    }

    @Test func noColorUsesAttributesOnly() {
        for name in ThemeFiles.builtInNames {
            let theme = ThemeFiles.load(name, directories: [themesDirectory]).theme
            for style in Self.styles {
                let c = ColorMapping.colors(for: style, theme: theme, depth: .none)
                #expect(c.foreground == nil && c.background == nil)
                #expect(c.reverse == ColorMapping.emphasisBackgrounds.contains(style.background), "\(style)")
            }
        }
    }

    @Test func depthFollowsTheTerminalAndNoColor() {
        #expect(ColorDepth.detect(colors: 256, noColor: false) == .palette256)
        #expect(ColorDepth.detect(colors: 16, noColor: false) == .sixteen)
        #expect(ColorDepth.detect(colors: 8, noColor: false) == .eight)
        #expect(ColorDepth.detect(colors: 2, noColor: false) == .none)
        #expect(ColorDepth.detect(colors: 256, noColor: true) == .none)
    }

    /// The default theme's dark-gray selection reduces to black with 8 colors, like the screen: it
    /// becomes a reverse-video bar. With 16 colors it is bright black, with 256 its own gray.
    @Test func aSelectionThePaletteCannotShowBecomesReverseVideo() {
        let theme = Theme.fallback
        let style = Style(.selectionText, on: .selection, bold: true)
        #expect(ColorMapping.colors(for: style, theme: theme, depth: .eight).reverse)
        #expect(ColorMapping.colors(for: style, theme: theme, depth: .sixteen) == TerminalColors(foreground: 15, background: 8, reverse: false))
        let c256 = ColorMapping.colors(for: style, theme: theme, depth: .palette256)
        #expect(!c256.reverse)
        #expect(c256.background == ColorReduction.xterm256(RGB(0x43, 0x4c, 0x5e)))
    }
}
