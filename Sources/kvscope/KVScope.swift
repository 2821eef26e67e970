import ArgumentParser
import Foundation

@main
struct KVScope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvscope",
        abstract: "Explore low-rank and quantized compression of an LLM's KV cache and weights.",
        discussion: HelpText.flow("""
            With no subcommand, kvscope opens the explorer on the sample bundle in Samples/.
            """),
        version: KVScopeVersion.string,
        subcommands: [Bench.self,
                      MakeBundle.self,
                      Calibrate.self,
                      Eval.self,
                      Inspect.self,
                      Quantize.self,
                      Spectra.self,
                      Tune.self,
                      Export.self,
                      TUI.self]
    )

    /// With no arguments: the explorer on the sample bundle in Samples/ under the current directory.
    mutating func run() throws {
        let sample = "Samples/smollm2"
        guard FileManager.default.fileExists(atPath: sample) else {
            CLIError.printError("no sample bundle at \(sample) in the current directory; open a model with `kvscope tui MODEL`")
            throw ExitCode(1)
        }
        try CLIError.reporting { try TUIApp.run(model: sample, config: nil, theme: nil, evalText: "Samples/eval.txt") }
    }
}

enum KVScopeVersion {
    static let string = "0.1.0"
}
