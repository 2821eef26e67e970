import ArgumentParser
import Foundation
import Inference

/// `kvscope bundle MODEL --text FILE --out DIR`: writes the sample bundle (docs/sample-bundle.md).
struct MakeBundle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Extract a sample bundle (K/V weights, calibration statistics, weight error tables) from a llama GGUF.",
        discussion: HelpText.flow("""
            A maintainer command: `kvscope bundle models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
            --text Samples/calibration.txt --out Samples/smollm2` regenerates the bundle the explorer
            opens by default. The layout is described in docs/sample-bundle.md.
            """))

    @Argument(help: "The llama GGUF model.") var model: String
    @Option(help: "Plain-text calibration file, read verbatim.") var text: String
    @Option(help: "Output directory.") var out: String
    @Option(help: "Sampled token rows kept per layer (fp16).") var samples = 64
    @Option(name: .customLong("model-path"), help: "The model's usual path relative to the repository root (default: MODEL).")
    var modelPath: String?
    @Flag(help: "Replace an existing bundle.") var force = false

    func run() throws {
        let interrupt = InterruptCancellation()
        try CLIError.reporting {
            try interrupt.run {
                let bar = ProgressReporter("bundle")
                defer { bar.finish() }
                let phase = LockedPhase()
                let manifest = try SampleBundleWriter.write(
                    modelPath: model, modelRelativePath: modelPath ?? model, text: try CalibrationText(path: text),
                    directory: out, sampleCount: samples, overwrite: force,
                    progress: { name, done, total in
                        if phase.change(to: name) { bar.begin(name, unit: name == "calibration" ? "layers" : "matrices") }
                        bar.update(done, total)
                    }, cancellation: interrupt.flag)
                bar.finish()
                let files = [manifest.files.kv_weights, manifest.files.calibration, manifest.files.weight_errors,
                             manifest.files.notice, "bundle.json"]
                let total = files.reduce(0) { sum, name in
                    let url = URL(fileURLWithPath: out).appendingPathComponent(name)
                    return sum + ((try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)??.intValue ?? 0)
                }
                FileHandle.standardError.write(Data("kvscope: wrote \(out): \(files.count) files, \(total) bytes\n".utf8))
            }
        }
    }
}

/// The phase a progress callback last reported, so a new name starts a new phase once.
final class LockedPhase: @unchecked Sendable {
    private let lock = NSLock()
    private var name: String?

    /// Records `new`; returns whether it differs from the previous phase.
    func change(to new: String) -> Bool {
        lock.withLock {
            defer { name = new }
            return name != new
        }
    }
}
