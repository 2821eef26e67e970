import ArgumentParser
import ExplorerCore
import Foundation
import TerminalUI

/// `kvscope bench tui`: the time from a key to a rendered frame (update + view), per key.
struct BenchTUI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tui",
        abstract: "Time the explorer's update + render path for a scripted key sequence (goal: p99 < 16 ms).")

    @Argument(help: "The model (GGUF or safetensors).") var model: String
    @Option(help: "Screen width.") var width = 120
    @Option(help: "Screen height.") var height = 40
    @Option(name: .customLong("repeat"), help: "How many times the script runs.") var repetitions = 20
    @Flag(help: "Print one JSON document on stdout.") var json = false

    /// The scripted keys: every knob, mode and overlay.
    static let script: [(String, Key)] = [
        ("j", .character("j")), ("j", .character("j")), ("l", .character("l")), ("L", .character("L")),
        ("h", .character("h")), ("H", .character("H")), ("+", .character("+")), ("-", .character("-")),
        ("]", .character("]")), ("[", .character("[")), ("Tab", .tab), ("z", .character("z")), ("s", .character("s")),
        ("g", .character("g")), ("C", .character("C")), ("c", .character("c")), ("N", .character("N")), ("n", .character("n")),
        ("a", .character("a")), ("u", .character("u")), ("Ctrl-R", .control("r")), ("t", .character("t")),
        ("?", .character("?")), ("Esc", .escape), ("m", .character("m")), ("+", .character("+")), ("j", .character("j")),
        ("m", .character("m")), ("m", .character("m")), ("k", .character("k")), ("Tab", .tab),
    ]

    func run() throws {
        try CLIError.reporting {
            guard width > 0, height > 0, repetitions > 0 else { throw CommandError("width, height and repeat must be positive") }
            let session = try ModelSession(path: model)
            var resources = try ExplorerResources.load(session: session, calibration: nil)
            resources.errorModel = try ExplorerResources.buildErrorModel(session: session, calibration: nil, groupSize: nil)
            var state = ExplorerState(resources: resources)
            state.width = width
            state.height = height
            _ = Explorer.view(state, width: width, height: height)
            var perKey: [String: [Double]] = [:]
            var all: [Double] = []
            for _ in 0..<repetitions {
                for (name, key) in Self.script {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    if let action = KeyMap.action(for: key, in: state) {
                        // Effects (jobs) are not run: the bench measures the frame path only.
                        _ = Explorer.update(&state, action)
                    }
                    let buffer = Explorer.view(state, width: width, height: height)
                    let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                    precondition(buffer.width == width)
                    perKey[name, default: []].append(ms)
                    all.append(ms)
                }
            }
            func quantile(_ v: [Double], _ q: Double) -> Double {
                let s = v.sorted()
                return s[min(s.count - 1, Int((Double(s.count - 1) * q).rounded()))]
            }
            let keys = perKey.keys.sorted()
            if json {
                var rows: [String: JSON] = [:]
                for k in keys {
                    let v = perKey[k] ?? []
                    rows[k] = ["p50_ms": quantile(v, 0.5).json, "p99_ms": quantile(v, 0.99).json, "count": v.count.json]
                }
                try CLIError.printJSON(["width": width.json, "height": height.json, "keys": .object(rows),
                                    "p50_ms": quantile(all, 0.5).json, "p99_ms": quantile(all, 0.99).json,
                                    "max_ms": (all.max() ?? 0).json, "frames": all.count.json])
            } else {
                for k in keys {
                    let v = perKey[k] ?? []
                    print(k.padding(toLength: 7, withPad: " ", startingAt: 0)
                          + String(format: " p50 %6.2f ms  p99 %6.2f ms", quantile(v, 0.5), quantile(v, 0.99)))
                }
                print(String(format: "all %d frames at %dx%d: p50 %.2f ms, p99 %.2f ms", all.count, width, height,
                             quantile(all, 0.5), quantile(all, 0.99)))
            }
        }
    }
}
