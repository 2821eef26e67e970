/// A 24-bit color.
public struct RGB: Hashable, Sendable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    /// Parses `#rrggbb`.
    public init?(hex: String) {
        var s = Substring(hex)
        guard s.first == "#" else { return nil }
        s = s.dropFirst()
        guard s.count == 6, let v = UInt32(s, radix: 16) else { return nil }
        self.init(UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF))
    }

    public var hex: String {
        let d = Array("0123456789abcdef")
        return "#" + [r, g, b].map { "\(d[Int($0 >> 4)])\(d[Int($0 & 15)])" }.joined()
    }
}

/// How many colors the terminal can show.
public enum ColorDepth: Int, Sendable, Comparable {
    case none = 0, eight = 8, sixteen = 16, palette256 = 256

    public static func < (a: ColorDepth, b: ColorDepth) -> Bool { a.rawValue < b.rawValue }

    /// The depth for a terminal reporting `colors` colors, with NO_COLOR honoured.
    public static func detect(colors: Int, noColor: Bool) -> ColorDepth {
        if noColor || colors < 8 { return .none }
        if colors >= 256 { return .palette256 }
        if colors >= 16 { return .sixteen }
        return .eight
    }
}

/// A color theme: every ``ColorRole`` mapped to a color. Theme files are flat TOML,
/// `role = "#rrggbb"` lines (plus `name = "…"`), that override the compiled-in default.
public struct Theme: Sendable, Equatable {
    public var name: String
    public var colors: [ColorRole: RGB]

    /// The compiled-in default (dark) theme.
    public static let fallback = Theme(name: "default", colors: [
        .background: RGB(0x1c, 0x1f, 0x26), .text: RGB(0xd8, 0xde, 0xe9), .muted: RGB(0x7a, 0x84, 0x96),
        .accent: RGB(0x88, 0xc0, 0xd0), .header: RGB(0x2e, 0x34, 0x40), .headerText: RGB(0xec, 0xef, 0xf4),
        .selection: RGB(0x43, 0x4c, 0x5e), .selectionText: RGB(0xff, 0xff, 0xff), .border: RGB(0x4c, 0x56, 0x6a),
        .good: RGB(0xa3, 0xbe, 0x8c), .warn: RGB(0xeb, 0xcb, 0x8b), .bad: RGB(0xbf, 0x61, 0x6a),
        .plotLine: RGB(0x88, 0xc0, 0xd0), .plotSecondary: RGB(0xb4, 0x8e, 0xad), .plotTail: RGB(0x5e, 0x68, 0x7a),
        .marker: RGB(0xeb, 0xcb, 0x8b), .axis: RGB(0x7a, 0x84, 0x96), .statusBar: RGB(0x2e, 0x34, 0x40),
        .statusText: RGB(0xd8, 0xde, 0xe9),
    ])

    /// The color of `role` (the default theme's when this theme lacks it).
    public func color(_ role: ColorRole) -> RGB { colors[role] ?? Theme.fallback.colors[role] ?? RGB(255, 255, 255) }

    /// Parses a theme file over the default. Unknown keys and bad values are reported in `warnings`,
    /// never fatal; missing keys fall back to the default.
    public static func parse(_ text: String, name fallbackName: String) -> (theme: Theme, warnings: [String]) {
        var theme = Theme.fallback
        theme.name = fallbackName
        var warnings: [String] = []
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = stripComment(rawLine).trimmingSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("[") { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                warnings.append("line \(n + 1): expected key = \"value\""); continue
            }
            let key = trimmed[..<eq].trimmingSpaces
            var value = trimmed[trimmed.index(after: eq)...].trimmingSpaces
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            if key == "name" { theme.name = value; continue }
            guard let role = ColorRole(rawValue: key) else { warnings.append("unknown key '\(key)'"); continue }
            guard let rgb = RGB(hex: value) else { warnings.append("\(key): '\(value)' is not #rrggbb"); continue }
            theme.colors[role] = rgb
        }
        return (theme, warnings)
    }

    /// The line without a `#` comment that starts outside double quotes.
    static func stripComment(_ line: Substring) -> Substring {
        var inQuotes = false
        for i in line.indices {
            if line[i] == "\"" { inQuotes.toggle() }
            if line[i] == "#" && !inQuotes { return line[..<i] }
        }
        return line
    }

    /// The theme as a file (every role), for writing new themes.
    public var fileText: String {
        (["name = \"\(name)\""] + ColorRole.allCases.map { "\($0.rawValue) = \"\(color($0).hex)\"" })
            .joined(separator: "\n") + "\n"
    }
}

/// Color reduction for terminals with fewer colors.
public enum ColorReduction {
    /// The nearest xterm-256 palette index (6×6×6 cube or gray ramp).
    public static func xterm256(_ c: RGB) -> Int {
        func level(_ v: UInt8) -> Int { v < 48 ? 0 : v < 115 ? 1 : (Int(v) - 35) / 40 }
        let levels = [0, 95, 135, 175, 215, 255]
        let (r, g, b) = (level(c.r), level(c.g), level(c.b))
        let cube = 16 + 36 * r + 6 * g + b
        let cubeRGB = (levels[r], levels[g], levels[b])
        let avg = (Int(c.r) + Int(c.g) + Int(c.b)) / 3
        let grayIndex = avg > 238 ? 23 : max(0, (avg - 3) / 10)
        let grayValue = 8 + 10 * grayIndex
        let dCube = dist((Int(c.r), Int(c.g), Int(c.b)), cubeRGB)
        let dGray = dist((Int(c.r), Int(c.g), Int(c.b)), (grayValue, grayValue, grayValue))
        return dGray < dCube ? 232 + grayIndex : cube
    }

    /// The nearest of the 16 (or first 8) ANSI colors.
    public static func ansi(_ c: RGB, count: Int) -> Int {
        let table: [(Int, Int, Int)] = [
            (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
            (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
        ]
        let n = count >= 16 ? 16 : 8
        var best = 0, bestD = Int.max
        for i in 0..<n {
            let d = dist((Int(c.r), Int(c.g), Int(c.b)), table[i])
            if d < bestD { best = i; bestD = d }
        }
        return best
    }

    private static func dist(_ a: (Int, Int, Int), _ b: (Int, Int, Int)) -> Int {
        let (dr, dg, db) = (a.0 - b.0, a.1 - b.1, a.2 - b.2)
        return dr * dr + dg * dg + db * db
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// The terminal colors of one style at a color depth: palette indices (nil: no color) and whether
/// the cell is drawn in reverse video.
public struct TerminalColors: Equatable, Sendable {
    /// The foreground palette index, or nil without colors.
    public var foreground: Int?
    /// The background palette index, or nil without colors.
    public var background: Int?
    /// Whether to draw in reverse video.
    public var reverse: Bool

    /// Colors of a cell.
    public init(foreground: Int?, background: Int?, reverse: Bool) {
        self.foreground = foreground
        self.background = background
        self.reverse = reverse
    }
}

/// How themes degrade: 24-bit theme colors to the 256-, 16- or 8-color palette, or to attributes only
/// (NO_COLOR or a terminal without colors). Pure, so the degradation is tested without a terminal.
public enum ColorMapping {
    /// Backgrounds that mark something (the header, the selection, the status bar): when the palette
    /// cannot tell them from the screen background they become reverse video.
    public static let emphasisBackgrounds: Set<ColorRole> = [.selection, .header, .statusBar]

    /// The palette index of `color` at `depth` (nil for ``ColorDepth/none``).
    public static func index(_ color: RGB, depth: ColorDepth) -> Int? {
        switch depth {
        case .none: return nil
        case .palette256: return ColorReduction.xterm256(color)
        case .sixteen: return ColorReduction.ansi(color, count: 16)
        case .eight: return ColorReduction.ansi(color, count: 8)
        }
    }

    /// The colors of `style` under `theme` at `depth`:
    /// - no colors: emphasis backgrounds become reverse video;
    /// - an emphasis background that reduces to the screen background's color becomes reverse video;
    /// - a foreground that reduces to its background's color becomes black or white, whichever contrasts.
    public static func colors(for style: Style, theme: Theme, depth: ColorDepth) -> TerminalColors {
        let emphasis = emphasisBackgrounds.contains(style.background)
        guard depth != .none,
              var fg = index(theme.color(style.foreground), depth: depth),
              let bg = index(theme.color(style.background), depth: depth),
              let screen = index(theme.color(.background), depth: depth) else {
            return TerminalColors(foreground: nil, background: nil, reverse: style.reverse != emphasis)
        }
        if emphasis && bg == screen && style.background != .background {
            // Reverse of (text color on the screen background): the row stands out as a bar.
            let text = fg == screen ? contrasting(screen, depth: depth) : fg
            return TerminalColors(foreground: text, background: screen, reverse: !style.reverse)
        }
        if fg == bg && style.foreground != style.background { fg = contrasting(bg, depth: depth) }
        return TerminalColors(foreground: fg, background: bg, reverse: style.reverse)
    }

    /// Black or white (the palette's bright white with 16 colors or more), whichever contrasts with `index`.
    static func contrasting(_ index: Int, depth: ColorDepth) -> Int {
        let light = isLight(index)
        if light { return 0 }
        return depth == .eight ? 7 : 15
    }

    /// Whether palette color `index` is light (luma above one half).
    static func isLight(_ index: Int) -> Bool {
        let ansi: [(Int, Int, Int)] = [
            (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
            (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
        ]
        let rgb: (Int, Int, Int)
        if index < 16 {
            rgb = ansi[max(0, index)]
        } else if index < 232 {
            let levels = [0, 95, 135, 175, 215, 255]
            let i = index - 16
            rgb = (levels[i / 36], levels[(i / 6) % 6], levels[i % 6])
        } else {
            let v = 8 + 10 * (index - 232)
            rgb = (v, v, v)
        }
        return 299 * rgb.0 + 587 * rgb.1 + 114 * rgb.2 > 128_000
    }
}
