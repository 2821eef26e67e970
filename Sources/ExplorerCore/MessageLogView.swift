import TerminalUI

/// Where the message log overlay goes on a screen.
struct LogFrame: Equatable {
    /// The box.
    var rect: Rect
    /// Characters of a log row (inside the box, one space of margin each side).
    var textWidth: Int
    /// Log rows that fit (the last inner row holds the key hints).
    var visibleRows: Int
}

extension Explorer {
    /// The message log overlay's box on a `width` × `height` screen: the whole screen but a margin of
    /// one cell, at most 110 wide.
    static func logFrame(width: Int, height: Int) -> LogFrame {
        let w = max(0, min(width - 2, 110)), h = max(0, height - 2)
        let rect = Rect(x: max(0, (width - w) / 2), y: max(0, (height - h) / 2), width: w, height: h)
        return LogFrame(rect: rect, textWidth: max(0, w - 4), visibleRows: max(0, h - 3))
    }

    /// The message log, newest last, scrolled back `scroll` rows (pure: draws into `buf`).
    static func drawLog(_ state: ExplorerState, scroll: Int, _ buf: inout ScreenBuffer) {
        let frame = logFrame(width: buf.width, height: buf.height)
        let r = frame.rect
        guard frame.visibleRows > 0, frame.textWidth > 0 else { return }
        buf.fill(r, with: Cell(" ", Style(.text)))
        let count = state.log.entries.count
        buf.box(r, title: "Message log: \(count) lines, newest last (keeps the last \(MessageLog.capacity))", style: Style(.accent))
        let rows = state.log.rows(width: frame.textWidth)
        let back = min(max(0, scroll), max(0, rows.count - frame.visibleRows))
        let end = rows.count - back
        let first = max(0, end - frame.visibleRows)
        if rows.isEmpty {
            buf.put("no messages yet", x: r.x + 2, y: r.y + 1, style: Style(.muted), maxWidth: frame.textWidth)
        }
        let newestStart = rows.count - lastEntryRows(rows)
        for (i, row) in rows[first..<end].enumerated() {
            // The newest message stands out.
            let newest = first + i >= newestStart
            buf.put(row, x: r.x + 2, y: r.y + 1 + i, style: Style(newest ? .text : .muted, bold: newest), maxWidth: frame.textWidth)
        }
        let position = rows.isEmpty ? "" : "rows \(first + 1)–\(end) of \(rows.count)"
        let hint = "↑↓ PgUp PgDn Home End scroll · Esc or M closes"
        let y = r.maxY - 2
        buf.put(hint, x: r.x + 2, y: y, style: Style(.muted), maxWidth: max(0, frame.textWidth - position.count - 1))
        if position.count + 1 < frame.textWidth { buf.putRight(position, rightEdge: r.maxX - 2, y: y, style: Style(.accent)) }
    }

    /// Rows the newest entry takes (it may wrap): the trailing rows after the last one with a time.
    static func lastEntryRows(_ rows: [String]) -> Int {
        var n = 0
        for row in rows.reversed() {
            n += 1
            if !row.hasPrefix(" ") { break }
        }
        return n
    }
}
