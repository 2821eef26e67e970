import Foundation
import Testing
@testable import kvscope

/// The progress reporter's two forms, with a hand-driven clock (no timing): a bar redrawn in place
/// on a terminal, plain rate-limited lines elsewhere, each naming its phase.
@Suite struct ProgressReporterTests {
    final class Recorder: @unchecked Sendable {
        private let lock = NSLock()
        private var parts: [String] = []
        var now = 0.0
        func write(_ s: String) { lock.withLock { parts.append(s) } }
        var text: String { lock.withLock { parts.joined() } }
        func time() -> Double { lock.withLock { now } }
        func set(_ t: Double) { lock.withLock { now = t } }
    }

    @Test func plainLinesNamePhasesAtMostOneEveryIntervalPlusEachFinalLine() {
        let r = Recorder()
        let p = ProgressReporter("eval", terminal: false, interval: 2.5, clock: { r.time() }, output: { r.write($0) })
        p.begin("calibration", unit: "layers")
        r.set(0); p.update(1, 30)      // first line of the run
        r.set(1); p.update(5, 30)      // within 2.5 s: quiet
        r.set(2.4); p.update(11, 30)
        r.set(2.6); p.update(12, 30)   // 2.6 s after the last line
        r.set(2.7); p.update(30, 30)   // the phase's last line always prints
        r.set(2.8); p.update(30, 30)   // and only once
        p.begin("fitting", unit: "layers")
        r.set(3.0); p.update(3, 30)    // 0.3 s after the last line: quiet
        r.set(9.0); p.update(29, 30)
        p.begin("prefill")
        r.set(9.1); p.fraction(0.5)
        r.set(9.2); p.fraction(1)
        p.finish()
        #expect(r.text == """
            eval: calibration 3% (1/30 layers)
            eval: calibration 40% (12/30 layers)
            eval: calibration 100% (30/30 layers)
            eval: fitting 96% (29/30 layers)
            eval: prefill 100%

            """)
    }

    @Test func aTerminalGetsOneBarRedrawnInPlace() {
        let r = Recorder()
        let p = ProgressReporter("tune", terminal: true, clock: { r.time() }, output: { r.write($0) })
        p.begin("weight error tables", unit: "matrices")
        r.set(0); p.update(70, 210)
        r.set(0.05); p.update(71, 210)  // within 0.1 s: not redrawn
        r.set(0.2); p.update(210, 210)
        p.finish()
        let bar = String(repeating: "█", count: 10) + String(repeating: "░", count: 20)
        #expect(r.text == "\r\u{1B}[Ktune: weight error tables \(bar) 70/210 matrices"
                + "\r\u{1B}[Ktune: weight error tables \(String(repeating: "█", count: 30)) 210/210 matrices\r\u{1B}[K")
        #expect(!r.text.contains("\n"))
    }
}
