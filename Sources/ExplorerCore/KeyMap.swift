import TerminalUI

/// Something the user or a job asks of the explorer; ``ExplorerCore/update(_:_:)`` applies it.
public enum ExplorerAction: Sendable {
    case moveSelection(Int)
    case selectRow(Int)
    case changeRank(Int)
    case changeWindow(Int)
    case changeBits(Int)
    case cycleGroup
    case cycleOutliers
    case scaleContext(up: Bool)
    case scaleBatch(up: Bool)
    case toggleKind
    case cycleMode
    case toggleSource
    case toggleNormalize
    case applyToAll
    case askBudget
    case runPerplexity
    case askExport
    case askOpen
    case undo
    case redo
    case cycleTheme
    case toggleHelp
    /// Starts again the jobs that were cancelled or failed.
    case restartJobs
    /// Opens or closes the message log.
    case toggleLog
    /// Scrolls the message log by rows (positive: older).
    case scrollLog(Int)
    case quit
    case escape
    case click(x: Int, y: Int)
    case resize(width: Int, height: Int)
    // Prompts and dialogs.
    case promptInput(Character)
    case promptBackspace
    case promptSubmit
    case answer(Bool)
    // Messages from the runtime and from jobs.
    case jobProgress(id: Int, fraction: Double)
    case jobFinished(id: Int, JobOutcome)
    case jobFailed(id: Int, message: String)
    case jobCancelled(id: Int)
    case exportTargetExists(path: String)
    case exported(path: String)
    case configOpened(ExplorerSettings, path: String)
    case status(String)
}

/// One key binding: its keys, what it does, its help text and when it is enabled. The help overlay
/// and the footer hints are generated from ``KeyMap/bindings``, so they cannot drift.
public struct KeyBinding: Sendable {
    /// The keys that trigger it (the first is shown first).
    public let keys: [Key]
    /// The action.
    public let action: ExplorerAction
    /// What it does, for the help overlay.
    public let help: String
    /// The short footer hint, when it has one.
    public let hint: String?
    /// Whether it does anything in `state`.
    public let isEnabled: @Sendable (ExplorerState) -> Bool

    /// A binding.
    public init(_ keys: [Key], _ action: ExplorerAction, _ help: String, hint: String? = nil,
                enabled: @escaping @Sendable (ExplorerState) -> Bool = { _ in true }) {
        self.keys = keys
        self.action = action
        self.help = help
        self.hint = hint
        isEnabled = enabled
    }

    /// The keys as shown in help: "↑/k".
    public var keyLabel: String { keys.map(\.label).joined(separator: "/") }
}

/// The explorer's key map.
public enum KeyMap {
    static let kvModes: @Sendable (ExplorerState) -> Bool = { $0.mode != .weights }
    static let weightsMode: @Sendable (ExplorerState) -> Bool = { $0.mode == .weights }

    /// Every binding, in help order.
    public static let bindings: [KeyBinding] = [
        KeyBinding([.up, .character("k")], .moveSelection(-1), "select the previous layer (tensor in Weights mode)"),
        KeyBinding([.down, .character("j")], .moveSelection(1), "select the next layer (tensor)", hint: "↑↓ layer"),
        KeyBinding([.pageUp], .moveSelection(-10), "move the selection up 10 rows"),
        KeyBinding([.pageDown], .moveSelection(10), "move the selection down 10 rows"),
        KeyBinding([.left, .character("h")], .changeRank(-1), "rank −1", hint: "←→ rank", enabled: kvModes),
        KeyBinding([.right, .character("l")], .changeRank(1), "rank +1", enabled: kvModes),
        KeyBinding([.shiftLeft, .character("H")], .changeRank(-8), "rank −8", enabled: kvModes),
        KeyBinding([.shiftRight, .character("L")], .changeRank(8), "rank +8", enabled: kvModes),
        KeyBinding([.character("[")], .changeWindow(-8), "window −8 tokens", enabled: kvModes),
        KeyBinding([.character("]")], .changeWindow(8), "window +8 tokens", hint: "[] window", enabled: kvModes),
        KeyBinding([.character("+"), .character("=")], .changeBits(1), "bits + (2…8, 16)", hint: "+- bits"),
        KeyBinding([.character("-")], .changeBits(-1), "bits −"),
        KeyBinding([.character("g")], .cycleGroup, "cycle the group size"),
        KeyBinding([.character("x")], .cycleOutliers, "cycle the outlier fraction (0, 1%)", enabled: weightsMode),
        KeyBinding([.character("c")], .scaleContext(up: false), "context length ÷2", enabled: kvModes),
        KeyBinding([.character("C")], .scaleContext(up: true), "context length ×2", enabled: kvModes),
        KeyBinding([.character("n")], .scaleBatch(up: false), "batch ÷2", enabled: kvModes),
        KeyBinding([.character("N")], .scaleBatch(up: true), "batch ×2", enabled: kvModes),
        KeyBinding([.tab], .toggleKind, "switch K/V", hint: "Tab K/V", enabled: kvModes),
        KeyBinding([.character("m")], .cycleMode, "next mode (KV cache, Weights, Eval)", hint: "m mode"),
        KeyBinding([.character("s")], .toggleSource, "spectrum source: weights or kv", enabled: kvModes),
        KeyBinding([.character("z")], .toggleNormalize, "plot σ/σ₁ instead of σ", enabled: kvModes),
        KeyBinding([.character("a")], .applyToAll, "apply this layer's setting to all layers", hint: "a all"),
        KeyBinding([.character("b")], .askBudget, "allocate under a budget (asks for it)", hint: "b budget"),
        KeyBinding([.character("p")], .runPerplexity, "perplexity, KV cache only (weights unquantized; background, Esc cancels)",
                   hint: "p ppl"),
        KeyBinding([.character("e")], .askExport, "export the config (asks for a name)", hint: "e export"),
        KeyBinding([.character("o")], .askOpen, "open a config"),
        KeyBinding([.character("u")], .undo, "undo", hint: "u undo", enabled: { !$0.history.isEmpty }),
        KeyBinding([.control("r")], .redo, "redo", enabled: { !$0.future.isEmpty }),
        KeyBinding([.character("t")], .cycleTheme, "cycle the theme"),
        KeyBinding([.character("R")], .restartJobs, "restart cancelled or failed jobs (cells showing ?)",
                   hint: "R restart", enabled: { !$0.stoppedJobs.isEmpty }),
        KeyBinding([.character("M")], .toggleLog, "message log: the last 50 status lines"),
        KeyBinding([.character("?")], .toggleHelp, "show or hide this help", hint: "? help"),
        KeyBinding([.character("q")], .quit, "quit (asks when there are unexported changes)", hint: "q quit"),
        KeyBinding([.escape], .escape, "close help, a prompt or a dialog; cancel a running job"),
    ]

    /// The rows PgUp and PgDn scroll the message log by.
    static let logPage = 10

    static let index: [Key: Int] = {
        var d: [Key: Int] = [:]
        for (i, b) in bindings.enumerated() { for k in b.keys where d[k] == nil { d[k] = i } }
        return d
    }()

    /// The action for `key` in `state`: prompts and dialogs take keys first, then the key map
    /// (disabled bindings do nothing). Nil when the key means nothing here.
    public static func action(for key: Key, in state: ExplorerState) -> ExplorerAction? {
        switch key {
        case .resize: return nil
        case .mouseClick(let x, let y): return .click(x: x, y: y)
        default: break
        }
        switch state.overlay {
        case .prompt:
            switch key {
            case .escape: return .escape
            case .enter: return .promptSubmit
            case .backspace, .delete: return .promptBackspace
            case .character(let c): return .promptInput(c)
            default: return nil
            }
        case .confirm:
            switch key {
            case .character("y"), .character("Y"): return .answer(true)
            case .character("n"), .character("N"): return .answer(false)
            case .escape: return .answer(false)
            default: return nil
            }
        case .help:
            switch key {
            case .escape, .character("?"), .character("q"): return .toggleHelp
            default: return nil
            }
        case .log:
            switch key {
            case .escape, .character("M"), .character("q"): return .toggleLog
            case .up, .character("k"): return .scrollLog(1)
            case .down, .character("j"): return .scrollLog(-1)
            case .pageUp: return .scrollLog(logPage)
            case .pageDown: return .scrollLog(-logPage)
            case .home: return .scrollLog(MessageLog.capacity * 100)
            case .end: return .scrollLog(-MessageLog.capacity * 100)
            default: return nil
            }
        case nil:
            guard let i = index[key] else { return nil }
            let b = bindings[i]
            return b.isEnabled(state) ? b.action : nil
        }
    }
}
