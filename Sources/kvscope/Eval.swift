import ArgumentParser
import Configuration
import Dispatch
import ExplorerCore
import Foundation
import Inference
import TensorFiles
import KVCompression
#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C (SIGINT) sets a ``CancellationFlag`` instead of killing the process, so a long run stops
/// at its next check and the command exits 130 with one line.
final class InterruptCancellation: @unchecked Sendable {
    let flag = CancellationFlag()
    private let source: DispatchSourceSignal

    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue.global())
        let flag = self.flag
        source.setEventHandler { flag.cancel() }
        source.resume()
    }

    deinit {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }

    /// Runs `body`; a cancellation becomes the line `kvscope: cancelled` and exit status 130.
    func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error where flag.isCancelled || Self.isCancellation(error) {
            FileHandle.standardError.write(Data("\r\u{1B}[Kkvscope: cancelled\n".utf8))
            throw ExitCode(130)
        }
    }

    static func isCancellation(_ error: Error) -> Bool {
        if let e = error as? InferenceError, e == .cancelled { return true }
        if let e = error as? KVCompressionError, case .cancelled = e { return true }
        return false
    }
}

/// The sample calibration text `--calib` defaults to (DESIGN.md §3), relative to the current directory.
let defaultCalibrationText = "Samples/calibration.txt"

/// `kvscope eval MODEL --text FILE`: perplexity under a compressed KV cache (DESIGN.md §4, §5).
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text with the KV cache compressed inside every layer.",
        discussion: HelpText.flow("""
            The text is read verbatim and tokenized by the model's tokenizer; one sequence is prefilled
            with a causal mask. Without --rank (or with R ≥ d_kv) there is no low rank; without --bits
            (or with 16) no quantization; --k-bits and --v-bits set one branch's bits apart from
            --bits; --window defaults to 0. Bases other than `weights` come from calibration
            statistics of --calib (default Samples/calibration.txt), cached under
            $XDG_CACHE_HOME/kvscope/calibration. With --config the statistics are those the config
            records in kv_cache.calibration: a sample bundle's shipped file (source "bundle") or a
            capture of its text with the recorded sample count (source "capture"), checked against the
            recorded SHA-256 and counts; --calib overrides. With any compression option the baseline
            perplexity and mean NLL are reported too (unless --no-baseline). A perplexity that is not
            finite is an error (exit status 1). Progress goes to stderr by phase (calibration, bases or
            fitting, prefill, baseline): a bar on a terminal, else a plain line every few seconds.
            Ctrl-C cancels (exit status 130).
            """))

    @Argument(help: "The model file (llama GGUF) or a sample bundle whose source model is present.") var model: String
    @Option(help: "Plain-text file to evaluate, read verbatim.") var text: String
    @Option(help: "Calibration text for the basis (default: Samples/calibration.txt).") var calib: String?
    @Option(help: "Rank of K and V (1…d_kv).") var rank: Int?
    @Option(name: .customLong("k-rank"), help: "Rank of K.") var keyRank: Int?
    @Option(name: .customLong("v-rank"), help: "Rank of V.") var valueRank: Int?
    @Option(help: "Exact window w (tokens).") var window: Int?
    @Option(help: "Bits of the compressed branch: 2…8, or 16 for none.") var bits: Int?
    @Option(name: .customLong("k-bits"), help: "Bits of the compressed K branch (overrides --bits for K).") var keyBits: Int?
    @Option(name: .customLong("v-bits"), help: "Bits of the compressed V branch (overrides --bits for V).") var valueBits: Int?
    @Option(help: "Quantization group size (default: one group per token).") var group: Int?
    @Option(help: "Basis: activations, weights, asvd or fitted.") var basis: BasisKind = .activations
    @Option(help: "A kvscope config (JSON or YAML): its kv_cache section sets per-layer ranks and bits, the window, group, basis and the calibration statistics (the bundle's or a capture, as recorded).")
    var config: String?
    @Flag(help: "With --config: use the model even if its SHA-256 differs from the config's model.sha256.")
    var allowModelMismatch = false
    @Option(help: "Compress only these layers (e.g. 0,5,10-12); the others keep an exact cache. For per-layer sensitivity.")
    var layers: String?
    @Flag(help: "Skip the baseline (exact-cache) run that is reported next to a compressed one; it halves the time of a sweep whose baseline is already known.")
    var noBaseline = false
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func validate() throws {
        if rank != nil && (keyRank != nil || valueRank != nil) { throw ValidationError("give --rank or --k-rank/--v-rank, not both") }
        if config != nil && hasCompressionOption {
            throw ValidationError("--config sets the ranks, bits, window and group; do not combine it with those options")
        }
    }

    /// The settings and calibration of a config's kv_cache section, checked against the model
    /// (sizes, and the file's SHA-256 unless --allow-model-mismatch). The calibration is the one the
    /// config records (a bundle's statistics or a capture, ``ModelSession/calibration(recordedIn:configPath:modelSHA256:model:progress:cancellation:)``)
    /// unless --calib overrides it.
    func configSettings(_ path: String, model opened: EvalModel) throws -> (settings: CompressionSettings, calibration: EvalRun.Calibration) {
        let cfg = try KVScopeConfig.load(path: path)
        do {
            try cfg.validate(against: try ModelDescription(opened: opened.full, path: opened.fullPath))
            try cfg.checkModelHash(try ModelHashCache.sha256(ofFile: opened.fullPath), allowMismatch: allowModelMismatch)
        } catch let error as ConfigError {
            throw ConfigError(path: path, entry: error.entry, error.message + " (model \(opened.fullPath))")
        }
        guard let kv = cfg.kvCache else { throw ConfigError(path: path, entry: "kv_cache", "missing: there is no KV plan to evaluate") }
        if cfg.weights != nil {
            FileHandle.standardError.write(Data("kvscope: note: \(path) has a weights plan; eval applies its kv_cache section to the unquantized weights\n".utf8))
        }
        let settings = try CompressionSettings(layers: kv.layers.map(\.setting), window: kv.window,
                                               groupSize: kv.groupSize, basis: kv.basis)
        if let calib { return (settings, .text(calib)) }
        guard let reference = kv.calibration else { return (settings, .text(nil)) }
        return (settings, .recorded(reference, configPath: path, modelSHA256: cfg.model.sha256))
    }

    /// Value checks, reported as one-line errors with exit status 1.
    func checkValues() throws {
        for (name, value) in [("--rank", rank), ("--k-rank", keyRank), ("--v-rank", valueRank)] {
            if let value, value < 1 { throw CommandError("\(name) must be at least 1, got \(value)") }
        }
        if let window, window < 0 { throw CommandError("--window must be non-negative, got \(window)") }
        for (name, value) in [("--bits", bits), ("--k-bits", keyBits), ("--v-bits", valueBits)] {
            if let value, value != 16 && !(2...8).contains(value) { throw CommandError("\(name) must be 2…8 or 16, got \(value)") }
        }
        if let group, group < 1 { throw CommandError("--group must be at least 1, got \(group)") }
        if let layers { _ = try Self.parseLayers(layers) }
    }

    /// The layers of --layers ("0,5,10-12").
    static func parseLayers(_ text: String) throws -> Set<Int> {
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(ends.count), let a = ends.first ?? nil, let b = ends.last ?? nil, a >= 0, a <= b else {
                throw CommandError("--layers: '\(part)' is not a layer or a range a-b of layers (e.g. 0,5,10-12)")
            }
            out.formUnion(a...b)
        }
        return out
    }

    /// Whether any compression option was given (then the baseline is reported too).
    var hasCompressionOption: Bool {
        rank != nil || keyRank != nil || valueRank != nil || window != nil || bits != nil || keyBits != nil
            || valueBits != nil || group != nil || layers != nil
    }

    func settings() throws -> CompressionSettings {
        try CompressionSettings(keyRank: rank ?? keyRank, valueRank: rank ?? valueRank, window: window ?? 0,
                                bits: bits ?? 16, keyBits: keyBits, valueBits: valueBits, groupSize: group, basis: basis)
    }

    func run() throws {
        let interrupt = InterruptCancellation()
        try CLIError.reporting {
            try interrupt.run {
                try checkValues()
                let opened = try EvalModel(path: model)
                var settings = try settings(), calibration = EvalRun.Calibration.text(calib)
                if let config { (settings, calibration) = try configSettings(config, model: opened) }
                let result = try EvalRun(model: opened, textPath: text, calibration: calibration, settings: settings,
                                         onlyLayers: try layers.map(Self.parseLayers),
                                         reportBaseline: (hasCompressionOption || config != nil) && !noBaseline, cancellation: interrupt.flag).run()
                if json {
                    try CLIError.printJSON(result.json)
                } else {
                    print(result.summary)
                }
            }
        }
    }
}

extension BasisKind: ExpressibleByArgument {}

/// The model `eval` runs, opened once: the session (a model file, or a bundle with its shipped
/// calibration statistics) and the full model file the forward pass and the config checks read.
struct EvalModel {
    let session: ModelSession
    /// The full model: the session's own file, or a bundle's source model.
    let full: OpenedModel
    let fullPath: String

    init(path: String) throws {
        session = try ModelSession(path: path)
        full = try session.fullModel()
        fullPath = full.file.path
    }

    /// The dense llama model and its tokenizer, from the already opened file.
    func inferenceModel() throws -> (model: TransformerModel, tokenizer: Tokenizer) {
        try ModelSession.inferenceModel(from: full)
    }
}

/// One `eval` computation: the command's options or a config's plan on an opened model.
struct EvalRun {
    /// Where the calibration statistics come from.
    enum Calibration {
        /// A text (--calib, or the default Samples/calibration.txt when nil), through the session: a
        /// bundle of that text answers with its own statistics, else a capture of 256 rows.
        case text(String?)
        /// What a config's `kv_cache.calibration` records (its bundle, or a capture of its text).
        case recorded(CalibrationReference, configPath: String, modelSHA256: String)
    }

    var model: EvalModel
    var textPath: String
    var calibration: Calibration
    var settings: CompressionSettings
    /// Compress only these layers (nil: all).
    var onlyLayers: Set<Int>?
    var reportBaseline: Bool
    var cancellation: CancellationFlag

    struct Result {
        var compressed: PerplexityResult
        var baseline: PerplexityResult?
        var kvBytes: Double
        var baselineKVBytes: Double

        var json: JSON {
            var doc: [String: JSON] = [
                "n_tokens": compressed.tokenCount.json, "n_predictions": compressed.predictionCount.json,
                "mean_nll": compressed.meanNegativeLogLikelihood.json, "perplexity": compressed.perplexity.json,
                "kv_bytes": kvBytes.json, "baseline_kv_bytes": baselineKVBytes.json,
            ]
            if let baseline {
                doc["baseline_perplexity"] = baseline.perplexity.json
                doc["baseline_mean_nll"] = baseline.meanNegativeLogLikelihood.json
            }
            return .object(doc)
        }

        var summary: String {
            var lines = [String(format: "perplexity %.4f (mean NLL %.5f) over %d predictions of %d tokens",
                                compressed.perplexity, compressed.meanNegativeLogLikelihood,
                                compressed.predictionCount, compressed.tokenCount)]
            if let baseline { lines.append(String(format: "baseline perplexity %.4f", baseline.perplexity)) }
            lines.append(String(format: "KV cache %.0f bytes vs %.0f fp16 baseline (ratio %.3f)", kvBytes, baselineKVBytes,
                                baselineKVBytes > 0 ? 1 - kvBytes / baselineKVBytes : 0))
            return lines.joined(separator: "\n")
        }
    }

    func run() throws -> Result {
        let text = try CalibrationText(path: textPath)
        let session = model.session
        let progress = ProgressReporter("eval")
        defer { progress.finish() }
        let loaded = try model.inferenceModel()
        let c = loaded.model.configuration
        var settings = self.settings
        if let onlyLayers {
            settings = try settings.restricted(to: onlyLayers, layerCount: c.layerCount, kvDimension: c.kvDimension)
        }
        var statistics: CalibrationStatistics?
        if settings.needsCalibration(kvDimension: c.kvDimension) {
            progress.begin("calibration", unit: "layers")
            switch calibration {
            case .text(let given):
                let path = given ?? SampleFiles.resolve(defaultCalibrationText)
                guard FileManager.default.fileExists(atPath: path) else {
                    throw CommandError(given == nil
                        ? "\(path): the default calibration text is not here (run from the repository root or pass --calib FILE)"
                        : "\(path): no such calibration text")
                }
                statistics = try session.calibration(text: try CalibrationText(path: path), model: loaded,
                                                     progress: { progress.update($0, $1) }, cancellation: cancellation)
            case .recorded(let reference, let configPath, let sha):
                statistics = try session.calibration(recordedIn: reference, configPath: configPath, modelSHA256: sha, model: loaded,
                                                     progress: { progress.update($0, $1) }, cancellation: cancellation)
            }
        }
        // Bases per layer (eigenvectors of the Grams), or for `fitted` the training of every factor pair.
        progress.begin(settings.basis == .fitted ? "fitting" : "bases", unit: "layers")
        let policy = try settings.policy(model: loaded.model, calibration: statistics,
                                         progress: { progress.update($0, $1) }, cancellation: cancellation)
        let tokens = loaded.tokenizer.encode(text.text)
        guard tokens.count >= 2 else { throw CommandError("\(textPath): the text has \(tokens.count) tokens; perplexity needs at least 2") }
        progress.begin("prefill")
        let compressed = try Perplexity.evaluate(model: loaded.model, tokens: tokens, policy: policy,
                                                 progress: { progress.fraction($0) }, cancellation: cancellation)
        var baseline: PerplexityResult?
        if reportBaseline {
            progress.begin("baseline")
            baseline = try Perplexity.evaluate(model: loaded.model, tokens: tokens,
                                               progress: { progress.fraction($0) }, cancellation: cancellation)
        }
        let memory = try settings.memoryModel(configuration: c)
        let layers = try settings.layerSettings(layerCount: c.layerCount, kvDimension: c.kvDimension)
        return Result(compressed: compressed, baseline: baseline,
                      kvBytes: try memory.totalBytes(layers, contextLength: tokens.count),
                      baselineKVBytes: try memory.baselineTotalBytes(layerCount: c.layerCount, contextLength: tokens.count))
    }
}

/// `kvscope bench prefill MODEL --text FILE`: tokens/s of a baseline prefill (median of 3).
struct BenchPrefill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefill",
        abstract: "Time a baseline prefill (forward pass and logits of every position) of a text.")

    @Argument(help: "The llama GGUF model.") var model: String
    @Option(help: "Plain-text file, read verbatim.") var text: String
    @Option(name: .customLong("repeat"), help: "Timed repetitions (after one warm-up).") var repetitions = 3
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func run() throws {
        try CLIError.reporting {
            let t = try CalibrationText(path: text)
            let session = try ModelSession(path: model)
            let loaded = try session.inferenceModel()
            let tokens = loaded.tokenizer.encode(t.text)
            guard tokens.count >= 2 else { throw CommandError("\(text): fewer than 2 tokens") }
            _ = try Perplexity.evaluate(model: loaded.model, tokens: tokens)
            var times: [Double] = []
            var ppl = 0.0
            for _ in 0..<max(repetitions, 1) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                ppl = try Perplexity.evaluate(model: loaded.model, tokens: tokens).perplexity
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            let median = times.sorted()[times.count / 2]
            let rate = Double(tokens.count) / median
            if json {
                try CLIError.printJSON(["n_tokens": tokens.count.json, "times_s": times.json, "median_s": median.json,
                                    "tokens_per_second": rate.json, "perplexity": ppl.json])
            } else {
                print(String(format: "prefill of %d tokens: median %.3f s = %.1f tokens/s (PPL %.4f)", tokens.count, median, rate, ppl))
            }
        }
    }
}
