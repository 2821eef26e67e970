import ArgumentParser
import ExplorerCore
import Foundation
import Inference
import KVCompression

/// `kvscope spectra MODEL`: singular-value spectra of every layer's K and V (DESIGN.md §4, §5).
struct Spectra: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Singular-value spectra and energy ranks of every layer's key and value projections.",
        discussion: HelpText.flow("""
            --source weights (default) uses W_k and W_v; it needs no tokenizer and no text.
            --source kv and kv-post-rope take the singular values of the calibration K (pre- or
            post-RoPE) and V from their Grams: from --stats FILE, or by running the model on
            --text FILE (cached under $XDG_CACHE_HOME/kvscope/calibration), or from a bundle. Results
            are cached under $XDG_CACHE_HOME/kvscope (default ~/.cache/kvscope), keyed by the file's
            identity, so a second run is fast. Energy rank r_p is the smallest r whose leading
            singular values hold a fraction p of Σσ². The kv spectra are uncentered (K as the cache
            holds it, biases included) unless --centered removes each channel's mean over the
            tokens first; Qwen2's K bias makes the uncentered K spectrum rank-1 dominated.
            """))

    enum Source: String, ExpressibleByArgument, CaseIterable {
        case weights, kv
        case kvPostRope = "kv-post-rope"
    }

    @Argument(help: "The model file (.gguf, or .safetensors with config.json beside it).") var model: String
    @Option(help: "What to decompose: weights, kv or kv-post-rope.") var source: Source = .weights
    @Option(help: "Plain-text file to run the model on (kv sources).") var text: String?
    @Option(help: "Calibration statistics file (kv sources).") var stats: String?
    @Flag(help: "Ignore and do not write the on-disk cache.") var noCache = false
    @Flag(help: "Remove each channel's mean over the tokens before the SVD (--source kv only).") var centered = false
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func validate() throws {
        if source == .weights && (text != nil || stats != nil) {
            throw ValidationError("--text and --stats go with --source kv or kv-post-rope")
        }
        if text != nil && stats != nil { throw ValidationError("give --text or --stats, not both") }
    }

    func run() throws {
        try CLIError.reporting {
            let session = try ModelSession(path: model)
            let spectra: [LayerSpectra]
            if centered && source != .kv { throw ValidationError("--centered applies to --source kv only") }
            switch source {
            case .weights:
                let bar = ProgressReporter("spectra")
                bar.begin("weight spectra", unit: "layers")
                defer { bar.finish() }
                spectra = try session.weightSpectra(useCache: !noCache, progress: { bar.update($0, $1) })
            case .kv, .kvPostRope:
                let statistics: CalibrationStatistics
                if let stats {
                    statistics = try CalibrationFile.read(path: stats).statistics
                    guard statistics.layers.count == session.layerCount,
                          statistics.layers.first?.keyGram.rows == session.hyperparameters.kvDim else {
                        throw CommandError("\(stats): statistics of \(statistics.layers.count) layers of d_kv \(statistics.layers.first?.keyGram.rows ?? 0) do not fit \(model) (\(session.layerCount) layers of d_kv \(session.hyperparameters.kvDim))")
                    }
                } else if let text {
                    let interrupt = InterruptCancellation()
                    let bar = ProgressReporter("spectra")
                    bar.begin("calibration", unit: "layers")
                    defer { bar.finish() }
                    statistics = try interrupt.run {
                        try session.calibration(text: try CalibrationText(path: text), useCache: !noCache,
                                                progress: { bar.update($0, $1) }, cancellation: interrupt.flag)
                    }
                } else if let bundled = try session.bundledCalibration() {
                    statistics = bundled
                } else {
                    throw CommandError("--source \(source.rawValue) needs --text FILE or --stats FILE")
                }
                spectra = try ModelSession.kvSpectra(statistics, postRoPE: source == .kvPostRope, centered: centered)
            }
            if json {
                var doc = Spectra.document(source: source.rawValue, spectra)
                if case .object(var members) = doc, source == .kv { members["centered"] = centered.json; doc = .object(members) }
                try CLIError.printJSON(doc)
            } else {
                print(Spectra.table(session: session, source: source.rawValue + (centered ? " (centered)" : ""), spectra), terminator: "")
            }
        }
    }

    static func document(source: String, _ spectra: [LayerSpectra]) -> JSON {
        func entry(_ s: Spectrum) -> JSON {
            var ranks: [String: Int] = [:]
            for p in Spectrum.standardEnergyLevels { ranks[levelKey(p)] = s.energyRank(p) }
            return ["rows": s.rows.json, "cols": s.cols.json, "singular_values": s.singularValues.json,
                    "energy_rank": ranks.json]
        }
        return ["source": source.json,
                "layers": .array(spectra.map { ["layer": $0.layer.json, "k": entry($0.k), "v": entry($0.v)] })]
    }

    /// "0.9", "0.95", "0.99" as DESIGN.md §5 spells the keys.
    static func levelKey(_ p: Double) -> String {
        var s = String(format: "%.2f", p)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }

    static func table(session: ModelSession, source: String, _ spectra: [LayerSpectra]) -> String {
        let hp = session.hyperparameters
        var out = "\(session.path): \(hp.architecture), \(hp.nLayers) layers, d \(hp.hiddenSize), d_kv \(hp.kvDim)\n"
        out += "source \(source): energy ranks r90/r95/r99 of \(hp.kvDim) and log σ from σ₁ (left) to σ_min (right)\n\n"
        out += "layer   K r90  r95  r99  spectrum            V r90  r95  r99  spectrum\n"
        for l in spectra {
            func cols(_ s: Spectrum) -> String {
                let r = Spectrum.standardEnergyLevels.map { String(s.energyRank($0)).leftPad(4) }
                return r.joined(separator: " ") + "  " + sparkline(s.singularValues, width: 18)
            }
            out += "\(String(l.layer).leftPad(5))  \(cols(l.k))  \(cols(l.v))\n"
        }
        let medianK = median(spectra.map { $0.k.energyRank(0.95) }), medianV = median(spectra.map { $0.v.energyRank(0.95) })
        out += "\nmedian r95: K \(medianK), V \(medianV)\n"
        return out
    }

    /// log σ resampled to `width` bars, scaled from the smallest to the largest.
    static func sparkline(_ values: [Float], width: Int) -> String {
        let bars = Array("▁▂▃▄▅▆▇█")
        let logs = values.map { log10(max(Double($0), 1e-30)) }
        guard let hi = logs.first, let lo = logs.last, !logs.isEmpty else { return "" }
        let span = max(hi - lo, 1e-12)
        return String((0..<width).map { i -> Character in
            let v = logs[min(logs.count - 1, i * logs.count / width)]
            return bars[min(bars.count - 1, max(0, Int((v - lo) / span * Double(bars.count - 1) + 0.5)))]
        })
    }

    static func median(_ xs: [Int]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? Double(s[s.count / 2]) : Double(s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
