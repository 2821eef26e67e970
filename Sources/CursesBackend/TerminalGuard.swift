#if canImport(Glibc)
import Glibc
#endif

// Signal handlers may only touch async-signal-safe state: these globals are written once before
// the handlers are installed, or are sig_atomic_t flags.
nonisolated(unsafe) private var savedTermios = termios()
nonisolated(unsafe) private var haveSavedTermios: Int32 = 0
nonisolated(unsafe) private var terminationSignal: sig_atomic_t = 0

/// Restores the terminal on every exit path: normal quit, error, SIGINT, SIGTERM, SIGHUP and
/// crashes (SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT).
///
/// Termination signals only set a flag that the event loop polls, so the loop restores the
/// terminal and exits cleanly. Crash signals restore the saved termios and leave the alternate
/// screen with async-signal-safe calls, then re-raise the signal with its default action.
public enum TerminalGuard {
    /// Saves the current terminal modes and installs the handlers. Call before `initscr`.
    public static func install() {
        if tcgetattr(STDIN_FILENO, &savedTermios) == 0 { haveSavedTermios = 1 }
        // A parent may have left SIGWINCH ignored or signals blocked (both survive exec); ncurses
        // only handles resizes when SIGWINCH has its default action, and our flags need delivery.
        signal(SIGWINCH, SIG_DFL)
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for sig in [SIGWINCH, SIGINT, SIGTERM, SIGHUP] { sigaddset(&unblock, sig) }
        sigprocmask(SIG_UNBLOCK, &unblock, nil)
        for sig in [SIGINT, SIGTERM, SIGHUP] { setHandler(sig, flagHandler) }
        for sig in [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT] { setHandler(sig, crashHandler) }
    }

    /// The termination signal received since install, or 0.
    public static var pendingSignal: Int32 { Int32(terminationSignal) }

    /// Writes the reset sequences and restores the saved modes (async-signal-safe).
    public static func emergencyRestore() {
        if haveSavedTermios != 0 { tcsetattr(STDIN_FILENO, TCSANOW, &savedTermios) }
        // Leave the alternate screen, reset attributes, show the cursor, disable mouse reporting.
        let reset: StaticString = "\u{1B}[?1000l\u{1B}[?1002l\u{1B}[?1006l\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"
        _ = write(STDOUT_FILENO, reset.utf8Start, reset.utf8CodeUnitCount)
    }

    /// Puts the default actions back (after a clean shutdown).
    public static func uninstall() {
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT] {
            signal(sig, SIG_DFL)
        }
    }

    private static func setHandler(_ sig: Int32, _ handler: @escaping @convention(c) (Int32) -> Void) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(sig, &action, nil)
    }
}

private func flagHandler(_ sig: Int32) {
    terminationSignal = sig_atomic_t(sig)
}

private func crashHandler(_ sig: Int32) {
    TerminalGuard.emergencyRestore()
    signal(sig, SIG_DFL)
    raise(sig)
}
