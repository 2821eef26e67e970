/// A semantic color role; a ``Theme`` maps roles to colors, so widgets never name colors.
public enum ColorRole: String, CaseIterable, Sendable, Hashable {
    case background, text, muted, accent, header, headerText, selection, selectionText
    case border, good, warn, bad, plotLine, plotSecondary, plotTail, marker, axis, statusBar, statusText
}

/// How a cell is drawn: foreground and background roles plus attributes.
public struct Style: Hashable, Sendable {
    public var foreground: ColorRole
    public var background: ColorRole
    public var bold: Bool
    public var dim: Bool
    public var reverse: Bool
    public var underline: Bool

    public init(_ foreground: ColorRole = .text, on background: ColorRole = .background,
                bold: Bool = false, dim: Bool = false, reverse: Bool = false, underline: Bool = false) {
        self.foreground = foreground
        self.background = background
        self.bold = bold
        self.dim = dim
        self.reverse = reverse
        self.underline = underline
    }

    public static let plain = Style()
}

/// One terminal cell: a single-width Unicode scalar and its style.
public struct Cell: Hashable, Sendable {
    public var scalar: Unicode.Scalar
    public var style: Style

    public init(_ scalar: Unicode.Scalar = " ", _ style: Style = .plain) {
        self.scalar = scalar
        self.style = style
    }
}

/// A rectangle in cell coordinates.
public struct Rect: Hashable, Sendable {
    public var x: Int, y: Int, width: Int, height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = max(0, width)
        self.height = max(0, height)
    }

    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public var isEmpty: Bool { width == 0 || height == 0 }

    /// The rectangle shrunk by `n` cells on every side.
    public func inset(_ n: Int) -> Rect { Rect(x: x + n, y: y + n, width: width - 2 * n, height: height - 2 * n) }

    /// Splits off the top `rows` rows: (top, rest).
    public func splitTop(_ rows: Int) -> (Rect, Rect) {
        let r = min(max(rows, 0), height)
        return (Rect(x: x, y: y, width: width, height: r), Rect(x: x, y: y + r, width: width, height: height - r))
    }

    /// Splits off the left `cols` columns: (left, rest).
    public func splitLeft(_ cols: Int) -> (Rect, Rect) {
        let c = min(max(cols, 0), width)
        return (Rect(x: x, y: y, width: c, height: height), Rect(x: x + c, y: y, width: width - c, height: height))
    }
}

/// A grid of cells that views render into; the backend only paints it. Writes outside the
/// buffer are clipped, never trapped.
public struct ScreenBuffer: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int, fill: Cell = Cell()) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = [Cell](repeating: fill, count: self.width * self.height)
    }

    public var bounds: Rect { Rect(x: 0, y: 0, width: width, height: height) }

    public subscript(x: Int, y: Int) -> Cell {
        get { (x >= 0 && x < width && y >= 0 && y < height) ? cells[y * width + x] : Cell() }
        set { if x >= 0 && x < width && y >= 0 && y < height { cells[y * width + x] = newValue } }
    }

    /// Fills `rect` (clipped) with `cell`.
    public mutating func fill(_ rect: Rect, with cell: Cell) {
        for y in max(rect.y, 0)..<min(rect.maxY, height) where rect.x < width {
            for x in max(rect.x, 0)..<min(rect.maxX, width) { cells[y * width + x] = cell }
        }
    }

    /// Writes `text` at (x, y), clipped to `maxWidth` cells (and the buffer); returns the cells written.
    /// Characters that would take two cells or none are replaced so that columns stay aligned.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, style: Style = .plain, maxWidth: Int? = nil) -> Int {
        guard y >= 0, y < height else { return 0 }
        let limit = min(maxWidth ?? Int.max, width - x)
        var col = 0
        for scalar in text.unicodeScalars {
            if col >= limit { break }
            let s = ScreenBuffer.displayable(scalar)
            if x + col >= 0 { cells[y * width + x + col] = Cell(s, style) }
            col += 1
        }
        return max(col, 0)
    }

    /// Writes `text` right-aligned so that it ends at column `rightEdge` (exclusive).
    public mutating func putRight(_ text: String, rightEdge: Int, y: Int, style: Style = .plain) {
        let n = text.unicodeScalars.count
        put(text, x: rightEdge - n, y: y, style: style)
    }

    /// Sets the style of every cell in `rect`, keeping the characters.
    public mutating func restyle(_ rect: Rect, _ style: Style) {
        for y in max(rect.y, 0)..<min(rect.maxY, height) where rect.x < width {
            for x in max(rect.x, 0)..<min(rect.maxX, width) { cells[y * width + x].style = style }
        }
    }

    /// Draws a single-line box around `rect` with an optional title in the top edge.
    public mutating func box(_ rect: Rect, title: String? = nil, style: Style = Style(.border)) {
        guard rect.width >= 2, rect.height >= 2 else { return }
        let (l, r, t, b) = (rect.x, rect.maxX - 1, rect.y, rect.maxY - 1)
        for x in (l + 1)..<r {
            self[x, t] = Cell("─", style)
            self[x, b] = Cell("─", style)
        }
        for y in (t + 1)..<b {
            self[l, y] = Cell("│", style)
            self[r, y] = Cell("│", style)
        }
        self[l, t] = Cell("┌", style); self[r, t] = Cell("┐", style)
        self[l, b] = Cell("└", style); self[r, b] = Cell("┘", style)
        if let title, rect.width > 4 {
            put(" \(title) ", x: l + 1, y: t, style: Style(.accent, bold: true), maxWidth: rect.width - 2)
        }
    }

    /// The buffer as plain text, one line per row with trailing spaces removed (for snapshots).
    public var text: String {
        var lines: [String] = []
        lines.reserveCapacity(height)
        for y in 0..<height {
            var s = String.UnicodeScalarView()
            for x in 0..<width { s.append(cells[y * width + x].scalar) }
            var line = String(s)
            while line.hasSuffix(" ") { line.removeLast() }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// Replaces control characters and scalars that are not one cell wide.
    static func displayable(_ s: Unicode.Scalar) -> Unicode.Scalar {
        if s.value < 0x20 || (s.value >= 0x7F && s.value < 0xA0) { return "?" }
        if isWide(s) || isZeroWidth(s) { return "?" }
        return s
    }

    /// East Asian wide and emoji ranges (the common ones): these take two cells.
    static func isWide(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
             0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
             0xFFE0...0xFFE6, 0x1F300...0x1FAFF, 0x20000...0x3FFFD:
            return true
        default: return false
        }
    }

    static func isZeroWidth(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return true
        default: return s.value == 0x200B
        }
    }
}
