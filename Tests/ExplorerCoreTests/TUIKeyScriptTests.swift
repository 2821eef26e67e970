import ExplorerCore
import Foundation
import KVCompression
import TerminalUI
import Testing

/// Key scripts through the pure update path; numbers checked against numpy's singular values
/// (Tests/Golden/kv/smollm2_weight_spectra.json) and the DESIGN.md §4 memory formula.
@Suite(.serialized) struct TUIKeyScriptTests {
    func numpySpectra() throws -> [[String: [Double]]] {
        let url = repositoryRoot.appendingPathComponent("Tests/Golden/kv/smollm2_weight_spectra.json")
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
        let layers = golden["layers"] as? [[String: Any]] ?? []
        return layers.map { l in
            ["k": ((l["k"] as? [String: Any])?["singular_values"] as? [Double]) ?? [],
             "v": ((l["v"] as? [String: Any])?["singular_values"] as? [Double]) ?? []]
        }
    }

    func energyRank(_ sv: [Double], _ p: Double) -> Int {
        let total = sv.reduce(0) { $0 + $1 * $1 }
        var acc = 0.0
        for (i, s) in sv.enumerated() {
            acc += s * s
            if acc >= p * total { return i + 1 }
        }
        return sv.count
    }

    @Test func startsAtThe95PercentRankWindow32And16Bits() throws {
        let s = try TUIFixture.state()
        let reference = try numpySpectra()
        try #require(reference.count == 30)
        #expect(s.settings.window == 32)
        for (i, layer) in s.settings.layers.enumerated() {
            #expect(layer.k.rank == energyRank(reference[i]["k"] ?? [], 0.95), "layer \(i) K")
            #expect(layer.v.rank == energyRank(reference[i]["v"] ?? [], 0.95), "layer \(i) V")
            #expect(layer.k.bits == 16 && layer.v.bits == 16)
        }
    }

    /// The window, group and context start at `kvscope tune`'s defaults (4096, not the model's 8192;
    /// groups of 32, not one per token) and the screen shows the context and group `b` uses.
    @Test func startsAtTuneDefaultsAndShowsThem() throws {
        var s = try TUIFixture.state()
        #expect(s.resources.info.contextLength == 8192)
        #expect(s.settings.contextLength == 4096 && s.settings.groupSize == 32 && s.settings.window == 32)
        let screen = Explorer.view(s, width: 120, height: 40).text
        #expect(screen.split(separator: "\n").first?.contains("L 4096 · g 32 · N 1 · KV") == true, "\(screen)")
        #expect(screen.contains("window 32  group 32  L 4096  N 1"))
        TUIFixture.press([.character("b")], &s)
        guard case .prompt(let p) = s.overlay else { Issue.record("no budget prompt"); return }
        #expect(p.title == "KV budget (% of fp16 bytes at L 4096, group 32, window 32)")
        #expect(Explorer.view(s, width: 120, height: 40).text.contains("KV budget (% of fp16 bytes at L 4096, group 32, window 32)"))
    }

    @Test func rankBitsWindowKeysAndTheNumbersTheyShow() throws {
        var s = try TUIFixture.state()
        let r0 = s.settings.layers[2].k.rank
        TUIFixture.press([.down, .down, .right, .right, .right, .character("H"), .character("-"), .character("-"),
                          .character("]"), .character("]")], &s)
        #expect(s.selectedLayer == 2)
        #expect(s.settings.layers[2].k.rank == r0 + 3 - 8)
        #expect(s.settings.layers[2].k.bits == 6)
        #expect(s.settings.window == 48)
        // e_w from numpy's σ: √(Σ_{i>r}σᵢ²/Σσᵢ²) (DESIGN.md §4, `weights` basis).
        let sv = try numpySpectra()[2]["k"] ?? []
        let r = s.settings.layers[2].k.rank
        let tail = sv[r...].reduce(0) { $0 + $1 * $1 }, total = sv.reduce(0) { $0 + $1 * $1 }
        let want = (tail / total).squareRoot()
        let got = try #require(ExplorerMetrics.weightError(s, layer: 2, kind: .k).value)
        #expect(abs(got - want) < 1e-4)
        let screen = Explorer.view(s, width: 120, height: 40).text
        #expect(screen.contains(String(format: "e_w %.4f", want)))
        // Memory: DESIGN.md §4 formula, written out independently of BiBranchMemoryModel.
        #expect(s.settings.contextLength == 4096 && s.settings.groupSize == 32)
        let L = 4096.0, w = 48.0, dkv = 192.0
        var total16 = 0.0, compressed = 0.0
        for l in s.settings.layers {
            total16 += 2 * L * dkv * 2
            for b in [l.k, l.v] {
                let meta = b.bits == 16 ? 0.0 : Double((b.rank + 31) / 32 * 4)  // groups of 32 features
                compressed += min(L, w) * dkv * 2 + max(L - w, 0) * (Double(b.rank * b.bits) / 8 + meta)
            }
        }
        let m = try #require(ExplorerMetrics.kvMemory(s))
        #expect(abs(m.totalBytes - compressed) < 1e-6 * compressed)
        #expect(abs(m.baselineBytes - total16) < 1e-9 * total16)
        #expect(screen.contains(String(format: "total %.2f MiB", compressed / 1_048_576)))
        #expect(screen.contains(String(format: "fp16 %.2f MiB", total16 / 1_048_576)))
        #expect(screen.contains(String(format: "effective %.1f%%", (1 - compressed / total16) * 100)))
    }

    @Test func undoRedoAndApplyToAll() throws {
        var s = try TUIFixture.state()
        let start = s.settings
        TUIFixture.press([.right, .character("+"), .character("a")], &s)
        #expect(s.settings.layers.allSatisfy { $0 == s.settings.layers[0] })
        TUIFixture.press([.character("u"), .character("u"), .character("u")], &s)
        #expect(s.settings == start)
        TUIFixture.press([.control("r")], &s)
        #expect(s.settings.layers[0].k.rank == start.layers[0].k.rank + 1)
        // Undo is disabled with nothing to undo: the key map says so.
        var fresh = try TUIFixture.state()
        #expect(KeyMap.action(for: .character("u"), in: fresh) == nil)
        TUIFixture.press([.character("u")], &fresh)
        #expect(fresh.settings == start)
    }

    @Test func quitAsksOnlyWithUnexportedChanges() throws {
        var s = try TUIFixture.state()
        #expect(TUIFixture.press([.character("q")], &s) == [.quit])
        var t = try TUIFixture.state()
        TUIFixture.press([.right, .character("q")], &t)
        #expect(t.overlay == .confirm(.quitWithoutExport))
        #expect(Explorer.view(t, width: 120, height: 40).text.contains("Quit without exporting? (y/n)"))
        TUIFixture.press([.character("n")], &t)
        #expect(t.overlay == nil && !t.finished)
        TUIFixture.press([.character("q")], &t)
        #expect(TUIFixture.press([.character("y")], &t) == [.quit])
        #expect(t.finished)
    }

    @Test func exportAsksForANameAndNeverOverwritesSilently() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.right, .character("e")], &s)
        guard case .prompt(let p) = s.overlay else { Issue.record("no prompt"); return }
        #expect(p.text == "SmolLM2-135M-Instruct.kvscope.json")
        let effects = TUIFixture.press([.backspace, .backspace, .backspace, .backspace, .character("x"), .enter], &s)
        guard case .export(let path, false, _)? = effects.first else { Issue.record("no export effect: \(effects)"); return }
        #expect(path == "SmolLM2-135M-Instruct.kvscope.x")
        _ = Explorer.update(&s, .exportTargetExists(path: path))
        #expect(s.overlay == .confirm(.overwrite(path: path)))
        let yes = TUIFixture.press([.character("y")], &s)
        guard case .export(_, true, _)? = yes.first else { Issue.record("no overwrite effect"); return }
        _ = Explorer.update(&s, .exported(path: path))
        #expect(!s.hasUnexportedChanges)
    }

    @Test func exportWritesAConfigThatOpensBackToTheSameSettings() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.right, .right, .character("-"), .down, .character("L"), .character("]"), .character("g")], &s)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-tui-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.json").path
        let runtime = ExplorerRuntime(state: s, jobs: nil)
        runtime.send(.promptSubmit)  // no prompt open: nothing happens
        runtime.send(.askExport)
        runtime.send(.promptBackspace)
        for _ in 0..<60 { runtime.send(.promptBackspace) }
        for c in path { runtime.send(.promptInput(c)) }
        runtime.send(.promptSubmit)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(runtime.state.status == "exported \(path)")
        // A second export to the same name asks first.
        runtime.send(.askExport)
        for _ in 0..<60 { runtime.send(.promptBackspace) }
        for c in path { runtime.send(.promptInput(c)) }
        runtime.send(.promptSubmit)
        #expect(runtime.state.overlay == .confirm(.overwrite(path: path)))
        runtime.send(.answer(false))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
        #expect(json["format"] as? String == "kvscope-config")
        let kv = json["kv_cache"] as? [String: Any] ?? [:]
        #expect(kv["window"] as? Int == 40)
        #expect((kv["layers"] as? [Any])?.count == 30)
        // Opening it in a fresh session restores the settings.
        let fresh = ExplorerRuntime(state: try TUIFixture.state(), jobs: nil)
        fresh.send(.askOpen)
        for _ in 0..<60 { fresh.send(.promptBackspace) }
        for c in path { fresh.send(.promptInput(c)) }
        fresh.send(.promptSubmit)
        #expect(fresh.state.settings == s.settings)
        #expect(!fresh.state.hasUnexportedChanges)
    }

    @Test func escapeClosesOverlaysThenCancelsJobs() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.character("?")], &s)
        #expect(s.overlay == .help)
        TUIFixture.press([.escape], &s)
        #expect(s.overlay == nil)
        let effects = TUIFixture.press([.character("p")], &s)
        guard case .startJob(let id, .perplexity)? = effects.first else { Issue.record("no perplexity job: \(effects)"); return }
        #expect(s.mode == .eval)
        #expect(TUIFixture.press([.escape], &s) == [.cancelJob(id: id)])
        _ = Explorer.update(&s, .jobProgress(id: id, fraction: 0.5))
        #expect(Explorer.view(s, width: 120, height: 40).text.contains("perplexity ████████░░░░░░░░  50%"))
        _ = Explorer.update(&s, .jobCancelled(id: id))
        #expect(s.jobs.isEmpty && s.status == "perplexity cancelled — press p or R to run it again")
    }

    @Test func sourceToggleWithoutCalibrationExplains() throws {
        var s = try TUIFixture.state()
        TUIFixture.press([.character("s")], &s)
        #expect(s.source == .weights)
        #expect(s.status.contains("calibration"))
        #expect(Explorer.view(s, width: 120, height: 40).text.contains("e_kv —"))
    }

    @Test func themesCycleThroughTheFour() throws {
        var s = try TUIFixture.state()
        var seen: [String] = [s.themeName]
        for _ in 0..<4 { TUIFixture.press([.character("t")], &s); seen.append(s.themeName) }
        #expect(seen == ["default", "light", "high-contrast", "mono", "default"])
    }

    /// A theme file with unknown keys warns in the status line the first time it is used, once.
    @Test func themeWarningsShowOncePerTheme() throws {
        var s = try TUIFixture.state()
        s.themeWarnings = ["light": "theme light: unknown key 'sparkle'"]
        TUIFixture.press([.character("t")], &s)
        #expect(s.themeName == "light" && s.status == "theme light: unknown key 'sparkle'")
        #expect(Explorer.view(s, width: 120, height: 40).text.contains("unknown key 'sparkle'"))
        TUIFixture.press([.character("t"), .character("t"), .character("t"), .character("t")], &s)
        #expect(s.themeName == "light" && s.status == "theme: light")
    }

    @Test func mouseClickSelectsALayer() throws {
        var s = try TUIFixture.state()
        // Table rows start below the header (2), the box edge (1) and the column headings (1).
        TUIFixture.press([.mouseClick(x: 5, y: 4 + 7)], &s)
        #expect(s.selectedLayer == 7)
    }
}
