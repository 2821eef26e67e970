// swift-tools-version:6.0
// Every build setting of kvscope lives here: `swift build -c release` alone builds a working binary.
import PackageDescription
import Foundation

// Release builds use SwiftPM's checked optimizer (-O, whole-module): bounds, overflow and
// precondition checks stay on. Every module that reads untrusted input (file parsers, configs, the
// tokenizer, the CLI) is built that way; `kernels` may add -Ounchecked only to numeric modules where
// `make bench` measures a difference (see the README's "Build settings").
let checked: [SwiftSetting] = []
let kernels: [SwiftSetting] = checked

var package = Package(
    name: "kvscope",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kvscope", targets: ["kvscope"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C bridges: system libraries and nothing else.
        .systemLibrary(name: "CLapack", path: "Sources/CLapack"),
        .systemLibrary(name: "CNcurses", path: "Sources/CNcurses"),

        // Numerics: the only Swift module that imports CLapack.
        .target(name: "LinearAlgebra", dependencies: ["CLapack"], swiftSettings: checked),

        // Files: safetensors, GGUF, npy; memory-mapped, lazy.
        .target(name: "TensorFiles", dependencies: ["LinearAlgebra"], swiftSettings: checked),

        // AVX2 kernels of the fused dequant-GEMV (target attributes, run-time dispatch; no -m flags).
        .target(name: "CQuantKernels"),

        // Engines: pure math over LinearAlgebra.
        .target(name: "Quantization", dependencies: ["LinearAlgebra", "CQuantKernels"], swiftSettings: checked),
        .target(name: "KVCompression", dependencies: ["LinearAlgebra", "Quantization"], swiftSettings: checked),

        // UI: cell buffer, widgets, braille plots, themes. No ncurses here.
        .target(name: "TerminalUI", swiftSettings: checked),

        // The only module that imports CNcurses: paints buffers, reads keys, restores the terminal.
        .target(name: "CursesBackend", dependencies: ["CNcurses", "TerminalUI"], swiftSettings: checked),

        // App: session state, derived metrics, background jobs. Shared by the TUI and the CLI.
        .target(name: "ExplorerCore", dependencies: ["TensorFiles", "KVCompression", "Quantization", "LinearAlgebra",
                                                   "TerminalUI", "Inference", "Configuration"],
                swiftSettings: checked),

        // Model: tokenizer, llama forward pass, KV-cache policies, perplexity.
        .target(name: "Inference", dependencies: ["LinearAlgebra", "TensorFiles", "Quantization", "KVCompression"],
                swiftSettings: checked),

        // Config files (DESIGN.md §6): the typed schema, JSON/YAML reader and writer, tune and export.
        .target(name: "Configuration",
                dependencies: ["TensorFiles", "Quantization", "KVCompression", "LinearAlgebra",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: checked),

        .executableTarget(
            name: "kvscope",
            dependencies: [
                "LinearAlgebra",
                "TensorFiles",
                "Quantization",
                "KVCompression",
                "ExplorerCore",
                "Inference",
                "Configuration",
                "TerminalUI",
                "CursesBackend",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: checked),

        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra"]),
        .testTarget(name: "TensorFilesTests", dependencies: ["TensorFiles"]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "TensorFiles", "CQuantKernels"]),
        .testTarget(name: "KVCompressionTests", dependencies: ["KVCompression", "Inference", "TensorFiles"]),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "LinearAlgebra", "TensorFiles", "Quantization", "KVCompression"]),
        .testTarget(name: "ExplorerCoreTests", dependencies: ["ExplorerCore", "KVCompression", "TensorFiles", "Inference", "TerminalUI",
                                                           "Quantization", "Configuration"]),
        .testTarget(name: "TerminalUITests", dependencies: ["TerminalUI"]),
        .testTarget(name: "CNcursesTests", dependencies: ["CNcurses"]),
        // Runs the built kvscope binary (.build/debug/kvscope); the dependency makes SwiftPM build it first.
        // Also drives the explorer's config export in-process (ExplorerCore) and reads configs (Configuration).
        .testTarget(name: "KVScopeCLITests", dependencies: ["kvscope", "ExplorerCore", "Configuration"]),
        .testTarget(name: "ConfigurationTests",
                    dependencies: ["Configuration", "KVCompression", "Quantization", "TensorFiles", "LinearAlgebra"]),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets, declared only for `make fuzz` (KVSCOPE_FUZZ=1) so that plain builds are unaffected:
// they are built with --sanitize=fuzzer, which supplies main().
if ProcessInfo.processInfo.environment["KVSCOPE_FUZZ"] != nil {
    for (name, module) in [("GGUF", "TensorFiles"), ("SafeTensors", "TensorFiles"), ("Npy", "TensorFiles"),
                           ("Config", "Configuration"), ("CheckpointIndex", "TensorFiles"), ("HFConfig", "TensorFiles"),
                           ("Tokenizer", "Inference")] {
        package.targets.append(.executableTarget(
            name: "Fuzz\(name)", dependencies: Set([module, "TensorFiles"]).sorted().map { .target(name: $0) }, path: "Fuzz/\(name)",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
    }
}
