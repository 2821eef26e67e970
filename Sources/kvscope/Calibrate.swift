import ArgumentParser
import ExplorerCore
import Foundation
import Inference
import KVCompression
import TensorFiles

/// `kvscope calibrate MODEL --text FILE --out STATS.safetensors`: calibration statistics
/// (docs/calibration-stats.md) of a model on a text.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture calibration statistics (K/V Grams, input moments, sampled rows) of a model on a text.",
        discussion: HelpText.flow("""
            The text is read verbatim. Texts longer than --max-sequence tokens run as independent
            sequences (recorded in the file's metadata). The file is written atomically and never
            replaces an existing one without --force.
            """))

    @Argument(help: "The llama GGUF model.") var model: String
    @Option(help: "Plain-text calibration file, read verbatim.") var text: String
    @Option(help: "Output statistics file (.safetensors).") var out: String
    @Option(help: "Sampled token rows kept per layer.") var samples = 512
    @Option(name: .customLong("max-sequence"), help: "Longest sequence prefilled at once, in tokens.")
    var maxSequence = CalibrationCapture.defaultMaxSequenceLength
    @Flag(name: .customLong("input-moments"), help: "Also record XᵀX of the attention output and the MLP input (weight sensitivity).")
    var inputMoments = false
    @Flag(help: "Replace an existing output file.") var force = false

    func validate() throws {
        guard samples >= 0 else { throw ValidationError("--samples must be non-negative, got \(samples)") }
        guard maxSequence >= 2 else { throw ValidationError("--max-sequence must be at least 2, got \(maxSequence)") }
    }

    func run() throws {
        let interrupt = InterruptCancellation()
        try CLIError.reporting {
            try interrupt.run {
                if !force && FileManager.default.fileExists(atPath: out) {
                    throw CommandError("\(out): exists; pass --force to replace it")
                }
                let calibrationText = try CalibrationText(path: text)
                let session = try ModelSession(path: model)
                let loaded = try session.inferenceModel()
                let bar = ProgressReporter("calibrate")
                bar.begin("calibration", unit: "layers")
                let (statistics, provenance) = try CalibrationCapture.run(
                    model: loaded.model, tokenizer: loaded.tokenizer, text: calibrationText, sampleCount: samples,
                    maxSequenceLength: maxSequence, inputMoments: inputMoments, progress: { bar.update($0, $1) }, cancellation: interrupt.flag)
                bar.finish()
                var withModel = provenance
                if let full = session.fullModelPath { withModel.modelSHA256 = try ModelFiles.sha256(full) }
                try CalibrationFile.write(statistics, to: out, provenance: withModel, overwrite: force)
                let split = provenance.sequenceCount > 1 ? " as \(provenance.sequenceCount) sequences of ≤ \(maxSequence)" : ""
                FileHandle.standardError.write(Data(
                    "kvscope: wrote \(out): \(statistics.tokenCount) tokens\(split), \(statistics.sampleTokenIndices.count) sampled rows per layer\n".utf8))
            }
        }
    }
}
