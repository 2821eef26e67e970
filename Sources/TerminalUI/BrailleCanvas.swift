/// A canvas of braille dots: each cell holds 2×4 dots (as drawille and ratatui's Canvas).
/// Dot coordinates run x right, y down; dots outside the canvas are ignored.
public struct BrailleCanvas: Sendable {
    public let columns: Int
    public let rows: Int
    private var bits: [UInt8]
    private var styles: [Style?]

    /// A canvas `columns` × `rows` cells, i.e. 2·columns × 4·rows dots.
    public init(columns: Int, rows: Int) {
        self.columns = max(0, columns)
        self.rows = max(0, rows)
        bits = [UInt8](repeating: 0, count: self.columns * self.rows)
        styles = [Style?](repeating: nil, count: self.columns * self.rows)
    }

    public var dotWidth: Int { columns * 2 }
    public var dotHeight: Int { rows * 4 }

    // Braille dot numbering: bit for (column within cell, row within cell).
    private static let dotBit: [[UInt8]] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]]

    /// Sets the dot at (x, y); the cell takes `style`.
    public mutating func set(_ x: Int, _ y: Int, style: Style) {
        guard x >= 0, y >= 0, x < dotWidth, y < dotHeight else { return }
        let i = (y / 4) * columns + x / 2
        bits[i] |= BrailleCanvas.dotBit[x % 2][y % 4]
        styles[i] = style
    }

    /// Draws a straight line of dots between two points (Bresenham).
    public mutating func line(from p0: (Int, Int), to p1: (Int, Int), style: Style) {
        var (x0, y0) = p0
        let (x1, y1) = p1
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        var guardSteps = dx - dy + 2
        while guardSteps > 0 {
            set(x0, y0, style: style)
            if x0 == x1 && y0 == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x0 += sx }
            if e2 <= dx { err += dx; y0 += sy }
            guardSteps -= 1
        }
    }

    /// Fills a vertical run of dots at column x from y0 to y1 inclusive.
    public mutating func vertical(x: Int, from y0: Int, to y1: Int, style: Style) {
        for y in min(y0, y1)...max(y0, y1) { set(x, y, style: style) }
    }

    /// Paints the canvas into `buffer` with its top-left cell at (x, y). Empty cells are left as they are.
    public func render(into buffer: inout ScreenBuffer, x: Int, y: Int) {
        for r in 0..<rows {
            for c in 0..<columns {
                let i = r * columns + c
                guard bits[i] != 0, let scalar = Unicode.Scalar(0x2800 + UInt32(bits[i])) else { continue }
                buffer[x + c, y + r] = Cell(scalar, styles[i] ?? .plain)
            }
        }
    }
}

/// Axis ticks: log axes tick at whole decades, linear axes at 1/2/5 × 10ᵏ.
public enum AxisTicks {
    /// Whole decades 10ᵏ within [low, high] (both > 0).
    public static func logDecades(low: Double, high: Double) -> [Double] {
        guard low > 0, high >= low, low.isFinite, high.isFinite else { return [] }
        let k0 = Int(log10Exact(low).rounded(.up)), k1 = Int(log10Exact(high).rounded(.down))
        guard k1 >= k0 else { return [] }
        return (k0...k1).map { power10($0) }
    }

    /// "Nice" linear ticks (steps of 1, 2 or 5 × 10ᵏ) covering [low, high] with about `target` ticks.
    public static func linear(low: Double, high: Double, target: Int = 5) -> [Double] {
        guard high > low, low.isFinite, high.isFinite, target > 0 else { return low.isFinite ? [low] : [] }
        // Among steps 1, 2, 5 × 10ᵏ near the raw step, take the one whose tick count is closest to
        // the target (the finer one on a tie).
        let raw = (high - low) / Double(target)
        let k = Int(log10Exact(raw).rounded(.down))
        var step = power10(k), bestMiss = Int.max
        for e in (k - 1)...(k + 1) {
            for m in [1.0, 2.0, 5.0] {
                let candidate = m * power10(e)
                let count = Int((high / candidate).rounded(.down) - (low / candidate).rounded(.up)) + 1
                let miss = abs(count - target)
                if miss < bestMiss || (miss == bestMiss && candidate < step) { step = candidate; bestMiss = miss }
            }
        }
        var ticks: [Double] = []
        var v = (low / step).rounded(.up) * step
        while v <= high + step * 1e-9 {
            ticks.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return ticks
    }

    /// A short label: 1e-3, 0.01, 0.1, 1, 10, 100, 1e3 …
    public static func decadeLabel(_ v: Double) -> String {
        let k = Int(log10Exact(v).rounded())
        switch k {
        case -2: return "0.01"
        case -1: return "0.1"
        case 0: return "1"
        case 1: return "10"
        case 2: return "100"
        default: return "1e\(k)"
        }
    }

    static func power10(_ k: Int) -> Double {
        var r = 1.0
        if k >= 0 { for _ in 0..<k { r *= 10 } } else { for _ in 0..<(-k) { r /= 10 } }
        return r
    }

    /// log10 that is exact at powers of ten.
    static func log10Exact(_ x: Double) -> Double {
        let l = log10(x)
        let r = l.rounded()
        return abs(l - r) < 1e-12 ? r : l
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
