import CNcurses
import Foundation
import Testing

/// The bridge must expose ncursesw's wide-character API (NCURSES_WIDECHAR) and the wrapped macros.
@Suite struct WideCharacterTests {
    @Test func brailleRoundTripsThroughAnOffscreenScreen() throws {
        // A private terminal on /dev/null: no real tty is touched.
        guard let out = fopen("/dev/null", "w"), let inp = fopen("/dev/null", "r") else {
            Issue.record("cannot open /dev/null"); return
        }
        defer { fclose(out); fclose(inp) }
        if setlocale(LC_ALL, "") == nil || !String(cString: nl_langinfo(nl_item(CODESET))).uppercased().contains("UTF") {
            _ = setlocale(LC_ALL, "C.UTF-8")
        }
        guard let screen = newterm("xterm-256color", out, inp) else {
            Issue.record("newterm failed"); return
        }
        defer { endwin(); delscreen(screen) }
        let window = try #require(stdscrOf(screen))
        let height = kv_getmaxy(window), width = kv_getmaxx(window)
        #expect(height > 0)
        #expect(width > 0)
        let braille: [wchar_t] = [0x28FF, 0x2801, 0]  // ⣿⠁
        braille.withUnsafeBufferPointer { _ = mvwaddwstr(window, 0, 0, $0.baseAddress) }
        var cell = cchar_t()
        _ = mvwin_wch(window, 0, 0, &cell)
        var chars = [wchar_t](repeating: 0, count: 8)
        var attrs: attr_t = 0
        var pair: Int16 = 0
        _ = getcchar(&cell, &chars, &attrs, &pair, nil)
        #expect(chars[0] == 0x28FF)
        let bold = kv_a_bold(), normal = kv_a_normal()
        #expect(bold != normal)
        #expect(kv_key_f(1) > 0)
    }

    /// `stdscr` is a global Swift 6 refuses; after newterm the current screen's window is what
    /// `newwin(0, 0, 0, 0)` covers, so take a full-size window instead.
    private func stdscrOf(_ screen: OpaquePointer) -> UnsafeMutablePointer<WINDOW>? {
        set_term(screen)
        return newwin(0, 0, 0, 0)
    }
}
