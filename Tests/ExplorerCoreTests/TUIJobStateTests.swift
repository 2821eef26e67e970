import ExplorerCore
import Foundation
import KVCompression
import TerminalUI
import Testing

/// Jobs that tell the truth (issue #16, part 4): every kind of background work is idle, running,
/// done, cancelled or failed; a stopped one shows `?` in the cells it computes and in the footer,
/// R (or the next change that needs it) starts it again, and every status line goes to a log of the
/// last 50 that M shows. The first tests drive the pure update; the last ones the real jobs on the
/// sample bundle (SmolLM2 with its calibration statistics, so e_kv and quantized tables exist).
@Suite(.serialized) struct TUIJobStateTests {
    /// SmolLM2 with no error model yet and a running error-model job, as at start-up.
    static func startingUp() throws -> ExplorerState {
        var s = try TUIFixture.state()
        s.resources.errorModel = nil
        s.jobs = [JobStatus(id: 1, kind: .errorModel, fraction: 0.4)]
        s.nextJobID = 2
        return s
    }

    /// The layer table's rows (its box's lines that start with a layer number) of a 120-column screen.
    static func tableRows(_ screen: String) -> [String] {
        screen.split(separator: "\n").map { String(String.UnicodeScalarView($0.unicodeScalars.prefix(58))) }
            .filter { $0.range(of: #"^│ +\d+ +\d+ +\d+ +\d+ +\d+ "#, options: .regularExpression) != nil }
    }

    static func footer(_ screen: String) -> String { screen.split(separator: "\n").last.map(String.init) ?? "" }

    @Test func escapeAtStartUpLeavesAVisibleCancelledState() throws {
        var s = try Self.startingUp()
        #expect(s.phase(.errorModel) == .running(fraction: 0.4))
        let running = Explorer.view(s, width: 120, height: 40).text
        #expect(Self.tableRows(running).allSatisfy { $0.contains("…") && !$0.contains("?") })
        // b while it builds says so, with its progress.
        TUIFixture.press([.character("b")], &s)
        #expect(s.overlay == nil)
        #expect(s.status == "the error model is still being built (40%); the budget can run when it is ready")

        #expect(TUIFixture.press([.escape], &s) == [.cancelJob(id: 1)])
        _ = Explorer.update(&s, .jobCancelled(id: 1))
        #expect(s.jobs.isEmpty && s.phase(.errorModel) == .cancelled && s.stoppedJobs == [.errorModel])
        #expect(s.status == "error model cancelled: e_w and e_kv show ? — press R to build it")
        let screen = Explorer.view(s, width: 120, height: 40).text
        let rows = Self.tableRows(screen)
        #expect(rows.count == 30)
        #expect(rows.allSatisfy { !$0.contains("…") && $0.contains("?") }, "\(rows.first ?? "")")
        #expect(screen.contains("e_w ?"))
        #expect(Self.footer(screen).contains("error model cancelled · R restarts"))
        #expect(screen.contains("R restart"))  // the footer hint, shown only while something is stopped

        // b now says nothing builds it and how to start it; it never claims a build is running.
        TUIFixture.press([.character("b")], &s)
        #expect(s.overlay == nil)
        #expect(s.status == "no error model (cancelled) and nothing is building it — press R to build it")
        // Esc with nothing running says what is stopped.
        #expect(TUIFixture.press([.escape], &s).isEmpty)
        #expect(s.status.contains("error model stopped earlier — R restarts it"))

        // R rebuilds it: the cells show … again, then values when it is done.
        let effects = TUIFixture.press([.character("R")], &s)
        guard case .startJob(let id, .buildErrorModel)? = effects.first, effects.count == 1 else {
            Issue.record("R did not rebuild the error model: \(effects)"); return
        }
        #expect(s.phase(.errorModel).isRunning && s.stoppedJobs.isEmpty)
        #expect(Self.tableRows(Explorer.view(s, width: 120, height: 40).text).allSatisfy { $0.contains("…") })
        #expect(KeyMap.action(for: .character("R"), in: s) == nil)  // nothing stopped: R is disabled
        _ = Explorer.update(&s, .jobFinished(id: id, .errorModel(try #require(try TUIFixture.resources().errorModel))))
        #expect(s.phase(.errorModel) == .done)
        let ready = Explorer.view(s, width: 120, height: 40).text
        #expect(Self.tableRows(ready).allSatisfy { !$0.contains("?") && !$0.contains("…") })
        let want = try #require(ExplorerMetrics.weightError(s, layer: 0, kind: .k).value)
        #expect(ready.contains(String(format: "e_w %.4f", want)))
        #expect(!Self.footer(ready).contains("R restarts"))
    }

    /// A setting that needs e_w (a rank, bits or group change) rebuilds a cancelled error model by itself.
    @Test func theNextChangeRebuildsACancelledErrorModel() throws {
        var s = try Self.startingUp()
        _ = Explorer.update(&s, .jobCancelled(id: 1))
        // Moving the selection changes no setting: nothing starts.
        #expect(TUIFixture.press([.down], &s).isEmpty)
        let effects = TUIFixture.press([.right], &s)
        guard case .startJob(_, .buildErrorModel)? = effects.first else { Issue.record("no rebuild: \(effects)"); return }
        #expect(s.phase(.errorModel).isRunning)
        #expect(s.status.hasPrefix("rebuilding the error model"))
    }

    /// A failed job says so with its message, keeps that visible, and R retries it.
    @Test func aFailedJobShowsItsMessageAndRetries() throws {
        var s = try TUIFixture.state()
        let effects = TUIFixture.press([.character("p")], &s)
        guard case .startJob(let id, .perplexity)? = effects.first else { Issue.record("no perplexity job"); return }
        _ = Explorer.update(&s, .jobFailed(id: id, message: "Samples/eval.txt: evaluation text not found"))
        #expect(s.phase(.perplexity) == .failed("Samples/eval.txt: evaluation text not found"))
        #expect(s.status == "perplexity failed: Samples/eval.txt: evaluation text not found — press R to retry")
        _ = Explorer.update(&s, .status("theme: light"))  // the status line moves on; the footer keeps it
        #expect(Self.footer(Explorer.view(s, width: 120, height: 40).text).contains("perplexity failed · R restarts"))
        let retry = TUIFixture.press([.character("R")], &s)
        guard case .startJob(_, .perplexity(let settings))? = retry.first else { Issue.record("R did not retry: \(retry)"); return }
        #expect(settings == s.settings)
        #expect(s.status == "restarted perplexity — Esc cancels")
    }

    /// Weight error tables: cancelled cells show ?, not …; the next bits change refills them.
    @Test func cancelledWeightTablesShowStoppedAndRefillOnTheNextChange() throws {
        var s = try TUIFixture.state()
        let effects = TUIFixture.press([.character("m"), .character("-")], &s)  // Weights mode, 8 bits
        guard case .startJob(let id, .fillWeightTables)? = effects.first else { Issue.record("no table job: \(effects)"); return }
        func q0(_ s: ExplorerState) -> String {
            Explorer.view(s, width: 120, height: 40).text.split(separator: "\n").first { $0.contains("blk.0.attn_q ") }.map(String.init) ?? ""
        }
        #expect(q0(s).contains(" 8 ") && q0(s).contains("…") && !q0(s).contains("?"), "\(q0(s))")
        _ = Explorer.update(&s, .jobCancelled(id: id))
        #expect(q0(s).contains("?") && !q0(s).contains("…"), "\(q0(s))")
        #expect(s.status == "weight errors cancelled: rel err shows ? — R or a bits/group/outlier change refills them")
        // Once the status line moves on, the footer still says what is stopped.
        TUIFixture.press([.character("t")], &s)
        #expect(Self.footer(Explorer.view(s, width: 120, height: 40).text).contains("weight errors cancelled · R restarts"))
        let again = TUIFixture.press([.character("-")], &s)
        guard case .startJob(_, .fillWeightTables)? = again.first else { Issue.record("no refill: \(again)"); return }
        #expect(s.phase(.weightTables).isRunning)
    }

    // MARK: the message log

    static let epoch = Date(timeIntervalSince1970: 1_750_000_000)  // 2025-06-15 15:06:40 UTC

    /// A state whose clock ticks one second per message, in UTC.
    static func logged(_ count: Int, width: Int = 120, height: Int = 40) throws -> ExplorerState {
        var s = try TUIFixture.state(width: width, height: height)
        let tick = LockedCounter()
        s.clock = { epoch.addingTimeInterval(Double(tick.next())) }
        s.log = MessageLog()
        s.log.timeZone = TimeZone(identifier: "UTC")!
        for i in 0..<count { _ = Explorer.update(&s, .status("message \(i)")) }
        return s
    }

    @Test func theLogKeepsThe50NewestStatusLinesWithTheirTimes() throws {
        let s = try Self.logged(60)
        #expect(s.log.entries.count == 50)
        #expect(s.log.entries.first?.text == "message 10" && s.log.entries.last?.text == "message 59")
        #expect(s.log.rows(width: 100).last == "15:07:39  message 59")
        // A status line that replaces another does not lose it.
        var t = try TUIFixture.state()
        _ = Explorer.update(&t, .undo)  // nothing to undo
        TUIFixture.press([.character("t")], &t)
        #expect(t.status == "theme: light")
        #expect(Array(t.log.entries.map(\.text).suffix(3)) == ["Press ? for help.", "nothing to undo", "theme: light"])
        // A repeat counts instead of flooding it; notes of started jobs go in without touching the status.
        _ = Explorer.update(&t, .undo)
        _ = Explorer.update(&t, .undo)
        #expect(t.log.entries.last?.text == "nothing to undo" && t.log.entries.last?.count == 2)
        TUIFixture.press([.character("p")], &t)
        #expect(t.log.entries.last?.text == "started perplexity" && t.status == "nothing to undo")
    }

    @Test(arguments: [(120, 40), (80, 24)])
    func logOverlay(width: Int, height: Int) throws {
        var s = try Self.logged(60, width: width, height: height)
        _ = Explorer.update(&s, .status("allocated ranks and bits under 60.0% of fp16 (59.8% used, relative e_kv 0.0123); a long line wraps under its text"))
        TUIFixture.press([.character("M")], &s)
        #expect(s.overlay == .log(scroll: 0))
        let screen = Explorer.view(s, width: width, height: height).text
        try assertSnapshot(screen, named: "log_\(width)x\(height)")
        // Newest last; the oldest kept is reached by scrolling back, and not beyond.
        #expect(screen.contains("a long line wraps"))
        #expect(!screen.contains("message 11 "))
        TUIFixture.press(Array(repeating: .pageUp, count: 20), &s)
        let top = Explorer.view(s, width: width, height: height).text
        #expect(top.contains("15:06:51  message 11") && !top.contains("message 10"))  // 50 kept: 11…59 and the long line
        TUIFixture.press([.end], &s)
        #expect(s.overlay == .log(scroll: 0))
        TUIFixture.press([.escape], &s)
        #expect(s.overlay == nil)
        TUIFixture.press([.character("M"), .character("M")], &s)
        #expect(s.overlay == nil)
    }

    @Test func helpExplainsTheCellMarkers() throws {
        for (w, h) in [(120, 40), (80, 24)] {
            var s = try TUIFixture.state(width: w, height: h)
            TUIFixture.press([.character("?")], &s)
            #expect(Explorer.view(s, width: w, height: h).text.contains("cells: … computing · ? stopped, R restarts · — cannot be known"))
        }
    }

    // MARK: real jobs on the sample bundle

    /// Esc right after start-up cancels the real build for good (until R): cells show ?, e_kv too; R
    /// builds it and the errors appear.
    @Test func escapeAtStartUpThenRestartOnTheBundle() throws {
        let rt = try TUIJobTests.runtime(TUIJobTests.bundlePath, calibration: true, build: false)
        rt.start()
        TUIJobTests.press([.escape], rt)
        try TUIJobTests.settle(rt, timeout: 60)
        #expect(rt.state.resources.errorModel == nil && rt.state.phase(.errorModel) == .cancelled)
        let screen = Explorer.view(rt.state, width: 120, height: 40).text
        let rows = Self.tableRows(screen)
        #expect(rows.count == 30 && rows.allSatisfy { !$0.contains("…") && $0.components(separatedBy: "?").count == 3 }, "\(rows.first ?? "")")
        #expect(screen.contains("e_w ?   e_kv ?"))
        TUIJobTests.press([.character("b")], rt)
        #expect(rt.state.status == "no error model (cancelled) and nothing is building it — press R to build it")
        TUIJobTests.press([.character("R")], rt)
        try TUIJobTests.settle(rt)
        let model = try #require(rt.state.resources.errorModel)
        #expect(rt.state.phase(.errorModel) == .done)
        let after = Explorer.view(rt.state, width: 120, height: 40).text
        #expect(Self.tableRows(after).allSatisfy { !$0.contains("?") && !$0.contains("…") && !$0.contains("—") })
        let c = rt.state.settings.layers[0].k
        let ekv = try #require(model.kvError(layer: 0, kind: .k, rank: c.rank, bits: 16, groupSize: nil).value)
        #expect(after.contains(String(format: "e_kv %.4f", ekv)))
        #expect(rt.state.log.entries.map(\.text).filter { $0 == "started error model" }.count == 2)
    }

    /// Cancelling a quantized e_kv fill leaves ? (not …) in its cells; R refills them; a later
    /// cancelled fill refills by itself on the next group change.
    @Test func cancelledQuantizedFillRestarts() throws {
        let rt = try TUIJobTests.runtime(TUIJobTests.bundlePath, calibration: true)
        TUIJobTests.press([.character("-")], rt)  // layer 0 K: 16 → 8 bits
        #expect(rt.state.jobs.map(\.kind) == [.kvTables])
        TUIJobTests.press([.escape], rt)
        try TUIJobTests.settle(rt, timeout: 60)
        #expect(rt.state.phase(.kvTables) == .cancelled)
        var screen = Explorer.view(rt.state, width: 120, height: 40).text
        #expect(Self.tableRows(screen).first?.contains(" ? ") == true, "\(Self.tableRows(screen).first ?? "")")
        #expect(screen.contains("(quantized e_kv stopped: R restarts)"))
        #expect(rt.state.status == "quantized e_kv cancelled: its cells show ? — R or a bits/group change refills them")
        TUIJobTests.press([.character("t")], rt)
        #expect(Self.footer(Explorer.view(rt.state, width: 120, height: 40).text).contains("quantized e_kv cancelled · R restarts"))
        TUIJobTests.press([.character("R")], rt)
        #expect(rt.state.jobs.map(\.kind) == [.kvTables])
        try TUIJobTests.settle(rt)
        let model = try #require(rt.state.resources.errorModel)
        let c = rt.state.settings.layers[0].k
        let want = try #require(model.kvError(layer: 0, kind: .k, rank: c.rank, bits: 8, groupSize: rt.state.settings.groupSize).value)
        screen = Explorer.view(rt.state, width: 120, height: 40).text
        #expect(screen.contains(String(format: "e_kv %.4f", want)))
        #expect(rt.state.phase(.kvTables) == .done && rt.state.stoppedJobs.isEmpty)

        // Cancel the next fill (8 → 6 bits), then change the group: the fill starts again by itself.
        TUIJobTests.press([.character("-"), .escape], rt)
        try TUIJobTests.settle(rt, timeout: 60)
        #expect(rt.state.phase(.kvTables) == .cancelled)
        TUIJobTests.press([.character("g")], rt)
        #expect(rt.state.jobs.map(\.kind) == [.kvTables])
        try TUIJobTests.settle(rt)
        #expect(rt.state.stoppedJobs.isEmpty)
        #expect(ExplorerMetrics.kvError(rt.state, layer: 0, kind: .k).value != nil)
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    /// The next value, 0 first.
    func next() -> Int { lock.withLock { defer { value += 1 }; return value } }
}
