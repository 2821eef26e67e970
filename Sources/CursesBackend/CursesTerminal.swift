import CNcurses
import TerminalUI
#if canImport(Glibc)
import Glibc
#endif

/// An error starting the terminal.
public struct TerminalError: Error, CustomStringConvertible {
    public let description: String
}

/// The ncurses backend: paints ``ScreenBuffer``s and turns input into ``Key``s. It is the only
/// code that talks to ncurses; everything it shows comes from a buffer the app rendered.
public final class CursesTerminal {
    private let window: UnsafeMutablePointer<WINDOW>
    private var theme: Theme
    /// The color depth in use.
    public private(set) var depth: ColorDepth
    private var pairs: [PairKey: Int16] = [:]
    private var nextPair: Int16 = 1
    private var active = true
    /// A note about the locale fallback, if one was needed.
    public private(set) var localeNote: String?

    private struct PairKey: Hashable { let fg: Int16, bg: Int16 }

    /// Starts curses on the controlling terminal with `theme`.
    /// - Parameter noColor: disable colors (NO_COLOR).
    /// - Throws: ``TerminalError`` when stdin/stdout are not a terminal or curses cannot start.
    public init(theme: Theme, noColor: Bool) throws {
        guard isatty(STDIN_FILENO) != 0, isatty(STDOUT_FILENO) != 0 else {
            throw TerminalError(description: "the explorer needs a terminal (stdin and stdout must be a tty)")
        }
        localeNote = CursesTerminal.ensureUTF8Locale()
        TerminalGuard.install()
        guard let w = initscr() else {
            TerminalGuard.emergencyRestore()
            throw TerminalError(description: "cannot initialize the terminal (TERM=\(getenv("TERM").map { String(cString: $0) } ?? "unset"))")
        }
        window = w
        self.theme = theme
        cbreak()
        noecho()
        nonl()
        keypad(w, true)
        set_escdelay(25)
        curs_set(0)
        mousemask(kv_button1_clicked(), nil)
        mouseinterval(0)
        var d = ColorDepth.none
        if !noColor && has_colors() {
            start_color()
            use_default_colors()
            d = ColorDepth.detect(colors: Int(kv_colors()), noColor: false)
        }
        depth = d
    }

    deinit { restore() }

    /// Ends curses and restores the terminal; safe to call more than once.
    public func restore() {
        guard active else { return }
        active = false
        endwin()
        TerminalGuard.emergencyRestore()
        TerminalGuard.uninstall()
    }

    /// The terminal size in cells.
    public var size: (width: Int, height: Int) { (Int(kv_getmaxx(window)), Int(kv_getmaxy(window))) }

    /// Switches theme; color pairs are rebuilt lazily.
    public func setTheme(_ t: Theme) {
        theme = t
        pairs.removeAll()
        nextPair = 1
    }

    /// Forgets what is on the screen so the next ``paint(_:)`` redraws every cell (after a resize,
    /// cells outside the new buffer, such as the never-written bottom-right one, are cleared).
    public func invalidate() {
        wclear(window)
    }

    /// Paints `buffer` and refreshes the screen (ncurses sends only what changed).
    public func paint(_ buffer: ScreenBuffer) {
        let (w, h) = size
        var run: [wchar_t] = []
        run.reserveCapacity(w + 1)
        for y in 0..<min(h, buffer.height) {
            var x = 0
            let width = min(w, buffer.width)
            while x < width {
                let style = buffer[x, y].style
                run.removeAll(keepingCapacity: true)
                var end = x
                // The bottom-right cell cannot be written without scrolling on some terminals.
                let rowEnd = (y == h - 1) ? width - 1 : width
                while end < rowEnd, buffer[end, y].style == style {
                    run.append(wchar_t(bitPattern: buffer[end, y].scalar.value))
                    end += 1
                }
                if run.isEmpty { break }
                run.append(0)
                let (attrs, pair) = attributes(for: style)
                wattr_set(window, attrs, pair, nil)
                run.withUnsafeBufferPointer { _ = mvwaddnwstr(window, Int32(y), Int32(x), $0.baseAddress, Int32(end - x)) }
                x = end
            }
        }
        wattr_set(window, kv_a_normal(), 0, nil)
        wnoutrefresh(window)
        doupdate()
    }

    /// Waits up to `timeoutMilliseconds` for a key; nil on timeout.
    public func readKey(timeoutMilliseconds: Int32) -> Key? {
        wtimeout(window, timeoutMilliseconds)
        var ch: wint_t = 0
        let r = wget_wch(window, &ch)
        if r == kv_err() { return nil }
        if r == kv_key_code_yes() { return decodeKeyCode(Int32(ch)) }
        return decodeCharacter(UInt32(ch))
    }

    private func decodeKeyCode(_ code: Int32) -> Key? {
        switch code {
        case KEY_UP: return .up
        case KEY_DOWN: return .down
        case KEY_LEFT: return .left
        case KEY_RIGHT: return .right
        case KEY_SLEFT: return .shiftLeft
        case KEY_SRIGHT: return .shiftRight
        case KEY_SR: return .shiftUp
        case KEY_SF: return .shiftDown
        case KEY_PPAGE: return .pageUp
        case KEY_NPAGE: return .pageDown
        case KEY_HOME: return .home
        case KEY_END: return .end
        case KEY_BTAB: return .backTab
        case KEY_ENTER: return .enter
        case KEY_BACKSPACE: return .backspace
        case KEY_DC: return .delete
        case KEY_RESIZE: return .resize
        case KEY_MOUSE:
            var event = MEVENT()
            guard getmouse(&event) == OK, event.bstate & kv_button1_clicked() != 0 else { return nil }
            return .mouseClick(x: Int(event.x), y: Int(event.y))
        default:
            for n in 1...12 where code == kv_key_f(Int32(n)) { return .function(n) }
            return nil
        }
    }

    private func decodeCharacter(_ c: UInt32) -> Key? {
        switch c {
        case 9: return .tab
        case 10, 13: return .enter
        case 27: return .escape
        case 8, 127: return .backspace
        case 1...26: return .control(Character(Unicode.Scalar(c + 96)!))
        default:
            guard let s = Unicode.Scalar(c) else { return nil }
            return .character(Character(s))
        }
    }

    private func attributes(for style: Style) -> (attr_t, Int16) {
        var attrs = kv_a_normal()
        if style.bold { attrs |= kv_a_bold() }
        if style.dim { attrs |= kv_a_dim() }
        if style.underline { attrs |= kv_a_underline() }
        let colors = ColorMapping.colors(for: style, theme: theme, depth: depth)
        if colors.reverse { attrs |= kv_a_reverse() }
        guard let fg = colors.foreground, let bg = colors.background else { return (attrs, 0) }
        return (attrs, pair(fg: Int16(fg), bg: Int16(bg)))
    }

    private func pair(fg: Int16, bg: Int16) -> Int16 {
        let key = PairKey(fg: fg, bg: bg)
        if let p = pairs[key] { return p }
        guard Int(nextPair) < min(Int(kv_color_pairs()), Int(Int16.max)) else { return 0 }
        let p = nextPair
        nextPair += 1
        init_pair(p, fg, bg)
        pairs[key] = p
        return p
    }

    /// Makes sure the C library runs in a UTF-8 locale (braille needs it); returns a note when it
    /// had to fall back.
    static func ensureUTF8Locale() -> String? {
        func isUTF8() -> Bool {
            guard let cs = nl_langinfo(nl_item(CODESET)) else { return false }
            let s = String(cString: cs).uppercased()
            return s.contains("UTF-8") || s.contains("UTF8")
        }
        if setlocale(LC_ALL, "") != nil, isUTF8() { return nil }
        for candidate in ["C.UTF-8", "C.utf8", "en_US.UTF-8"] where setlocale(LC_ALL, candidate) != nil && isUTF8() {
            return "locale is not UTF-8; using \(candidate)"
        }
        return "no UTF-8 locale available; braille may not display"
    }
}
