import ArgumentParser
import Foundation

@main
struct KVScope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvscope",
        abstract: "Explore low-rank and quantized compression of an LLM's KV cache and weights.",
        discussion: """
            With no subcommand, kvscope opens the explorer on the sample bundle in Samples/.
            """,
        version: KVScopeVersion.string,
        subcommands: [Bench.self,
                      MakeBundle.self,
                      Calibrate.self,
                      Eval.self,
                      Inspect.self,
                      Quantize.self,
                      Spectra.self,
                      Tune.self,
                      Export.self]
    )

    mutating func run() throws {
        // The explorer (TUI) is a later milestone; never show a fake screen.
        FileHandle.standardError.write(Data("kvscope: the explorer is not built yet; see `kvscope --help` for the commands that are.\n".utf8))
    }
}

enum KVScopeVersion {
    static let string = "0.1.0"
}
