import ArgumentParser
import CursesBackend
import ExplorerCore
import Foundation
import Inference
import KVCompression
import TerminalUI

/// `kvscope tui`: the interactive explorer.
struct TUI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tui",
        abstract: "Open the interactive explorer (ncurses) on a model.",
        discussion: HelpText.flow("""
            Every layer starts at the 95%-energy rank of its weight spectrum, 16 bits, with the window
            (32), KV group (32) and context length (4096, or the model's when shorter) that
            `kvscope tune --kv-budget` uses by default, so `b` allocates as tune does.
            Press ? inside for the keys. Themes: default, light, high-contrast, mono, or a path to a
            .toml file; NO_COLOR disables colors.
            """))

    @Argument(help: "The model: GGUF, or safetensors with config.json beside it.") var model: String
    @Option(help: "A config file to start from.") var config: String?
    @Option(help: "Theme name or path to a theme file.") var theme: String?
    @Option(help: "Text for perplexity in Eval mode.") var text: String = "Samples/eval.txt"

    func run() throws {
        try CLIError.reporting { try TUIApp.run(model: model, config: config, theme: theme,
                                               evalText: text == "Samples/eval.txt" ? SampleFiles.resolve(text) : text) }
    }
}

enum TUIApp {
    /// The calibration statistics that give kv spectra and e_kv, with the record exported configs
    /// keep of them: the bundle's own, or for a model file a capture of Samples/calibration.txt (from
    /// the on-disk cache, computed once with progress before the screen opens). None when neither exists.
    static func explorerCalibration(_ session: ModelSession) throws -> SessionCalibration? {
        if session.isBundle { return try session.bundleCalibration() }
        let path = SampleFiles.resolve("Samples/calibration.txt")
        guard FileManager.default.fileExists(atPath: path), ModelLoader.architecture(of: session.opened) != nil
        else { return nil }
        let bar = ProgressReporter("kvscope")
        defer { bar.finish() }
        bar.begin("calibration (once; cached)", unit: "layers")
        return try session.calibrationRecord(textPath: path, progress: { bar.update($0, $1) })
    }

    /// Opens the model (before the screen, so file errors print as usual), then runs the loop.
    static func run(model: String, config: String?, theme: String?, evalText: String) throws {
        let session = try ModelSession(path: model)
        let calibration = try explorerCalibration(session)
        let bar = ProgressReporter("kvscope")
        bar.begin("weight spectra", unit: "layers")
        let resources = try ExplorerResources.load(session: session, calibration: calibration?.statistics,
                                                   progress: { done, total in bar.update(done, total) })
        bar.finish()
        let dirs = ThemeFiles.searchDirectories()
        var names = ThemeFiles.builtInNames
        if let theme {
            names.removeAll { $0 == theme }
            names.insert(theme, at: 0)
        }
        var themes: [Theme] = []
        var warnings: [String: String] = [:]
        for n in names {
            let (t, w) = ThemeFiles.load(n, directories: dirs)
            themes.append(t)
            // One line per theme; it shows once, when the theme is first in use.
            if !w.isEmpty { warnings[t.name] = w.count == 1 ? w[0] : w[0] + " (+\(w.count - 1) more)" }
        }
        var state = ExplorerState(resources: resources, themeNames: themes.map(\.name), status: "Press ? for help.")
        state.themeWarnings = warnings
        if let first = themes.first?.name, let w = warnings[first] {
            state.status = w
            state.warnedThemes.insert(first)
        } else if resources.kvSpectra == nil {
            state.status = "weights spectra (no calibration statistics: e_kv shows —). Press ? for help."
        }
        let jobs = ExplorerJobs(session: session, calibration: calibration,
                                evalTextPath: FileManager.default.fileExists(atPath: evalText) ? evalText : nil)
        let runtime = ExplorerRuntime(state: state, jobs: jobs)
        if let config {
            let (settings, notes) = try runtime.readConfig(path: config)
            runtime.send(.configOpened(settings, path: config))
            if !notes.isEmpty { runtime.send(.status("opened \(config); " + notes.joined(separator: "; "))) }
        }
        runtime.start()
        let noColor = !(ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let terminal = try CursesTerminal(theme: themes[0], noColor: noColor)
        defer { terminal.restore() }
        DebugCrash.armIfRequested()
        if let note = terminal.localeNote { runtime.send(.status(note)) }
        var signal: Int32 = 0
        loop(runtime, terminal, themes, &signal)
        terminal.restore()
        runtime.runner.cancelAll(wait: 1)
        if signal != 0 { throw ExitCode(128 + signal) }
    }

    static func loop(_ runtime: ExplorerRuntime, _ terminal: CursesTerminal, _ themes: [Theme], _ signal: inout Int32) {
        var lastSize = (width: -1, height: -1)
        var themeIndex = 0
        var dirty = true
        while !runtime.state.finished {
            if TerminalGuard.pendingSignal != 0 { signal = TerminalGuard.pendingSignal; return }
            if runtime.pump() { dirty = true }
            let size = terminal.size
            if size != lastSize {
                lastSize = size
                terminal.invalidate()
                runtime.send(.resize(width: size.width, height: size.height))
                dirty = true
            }
            if runtime.state.themeIndex != themeIndex, themes.indices.contains(runtime.state.themeIndex) {
                themeIndex = runtime.state.themeIndex
                terminal.setTheme(themes[themeIndex])
                dirty = true
            }
            if dirty {
                terminal.paint(Explorer.view(runtime.state, width: size.width, height: size.height))
                dirty = false
            }
            // Poll faster while jobs run so the progress bar moves.
            guard let key = terminal.readKey(timeoutMilliseconds: runtime.state.jobs.isEmpty ? 200 : 50) else { continue }
            dirty = true
            if let action = KeyMap.action(for: key, in: runtime.state) { runtime.send(action) }
        }
    }
}
