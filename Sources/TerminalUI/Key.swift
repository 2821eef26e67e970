/// A key press or terminal event, decoded by the backend; the app's key map is written in these.
public enum Key: Hashable, Sendable {
    case character(Character)
    case control(Character)   // Ctrl + letter, lower-case letter
    case up, down, left, right
    case shiftLeft, shiftRight, shiftUp, shiftDown
    case pageUp, pageDown, home, end
    case tab, backTab, enter, escape, backspace, delete
    case function(Int)
    case resize
    case mouseClick(x: Int, y: Int)

    /// How the key is written in help text.
    public var label: String {
        switch self {
        case .character(" "): return "Space"
        case .character(let c): return String(c)
        case .control(let c): return "Ctrl-\(c.uppercased())"
        case .up: return "↑"
        case .down: return "↓"
        case .left: return "←"
        case .right: return "→"
        case .shiftLeft: return "Shift-←"
        case .shiftRight: return "Shift-→"
        case .shiftUp: return "Shift-↑"
        case .shiftDown: return "Shift-↓"
        case .pageUp: return "PgUp"
        case .pageDown: return "PgDn"
        case .home: return "Home"
        case .end: return "End"
        case .tab: return "Tab"
        case .backTab: return "Shift-Tab"
        case .enter: return "Enter"
        case .escape: return "Esc"
        case .backspace: return "Backspace"
        case .delete: return "Del"
        case .function(let n): return "F\(n)"
        case .resize: return "resize"
        case .mouseClick: return "click"
        }
    }
}
