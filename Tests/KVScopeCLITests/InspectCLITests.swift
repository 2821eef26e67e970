import Foundation
import Testing

/// Runs the built binary next to the test bundle's build products.
enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The kvscope binary SwiftPM built for this test run (.build/debug/kvscope, or the same
    /// directory as the test bundle when built elsewhere).
    static var binary: URL {
        let bundleDir = Bundle.main.bundleURL
        let sibling = bundleDir.appendingPathComponent("kvscope")
        if FileManager.default.isExecutableFile(atPath: sibling.path) { return sibling }
        return root.appendingPathComponent(".build/debug/kvscope")
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// The project's Python test environment (numpy, gguf-py, safetensors, tokenizers), which
    /// `make test` sets up in .venv. Missing, it is a failure, never a skip.
    static func python() throws -> URL {
        let python = root.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw CLITestError("\(python.path) is missing: run `make pydeps` (make test does) to set up the Python test environment")
        }
        return python
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = binary
        p.arguments = arguments
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        p.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

@Suite struct InspectCLITests {
    @Test func miniLMJSONFacts() throws {
        let model = "models/minilm/model.safetensors"
        guard FileManager.default.fileExists(atPath: CLI.root.appendingPathComponent(model).path) else {
            Issue.record("model missing: \(model); run `make models` first")
            return
        }
        let r = try CLI.run(["inspect", model, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["architecture"] as? String == "bert")
        #expect(doc["n_layers"] as? Int == 6)
        #expect(doc["hidden_size"] as? Int == 384)
        #expect(doc["n_heads"] as? Int == 12)
        #expect(doc["n_kv_heads"] as? Int == 12)
        #expect(doc["head_dim"] as? Int == 32)
        #expect(doc["vocab_size"] as? Int == 30522)
        #expect(doc["context_length"] as? Int == 512)
        let tensors = try #require(doc["tensors"] as? [[String: Any]])
        #expect(tensors.count == 104)
        for key in ["name", "shape", "dtype", "layer", "role"] {
            #expect(tensors.allSatisfy { $0[key] != nil }, "every tensor has \(key)")
        }
        let k = try #require(tensors.first { $0["name"] as? String == "encoder.layer.5.attention.self.key.weight" })
        #expect(k["layer"] as? Int == 5 && k["role"] as? String == "k" && k["dtype"] as? String == "F32")
        #expect(k["shape"] as? [Int] == [384, 384])
        let embed = try #require(tensors.first { $0["role"] as? String == "embed" })
        #expect(embed["layer"] is NSNull)
        #expect(r.stderr.isEmpty)
    }

    @Test func humanTableListsLayersRolesAndBytes() throws {
        let r = try CLI.run(["inspect", "models/minilm/model.safetensors"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("architecture bert"))
        #expect(r.stdout.contains("6 layers, hidden 384, 12 heads"))
        let row = r.stdout.split(separator: "\n").first { $0.contains("encoder.layer.0.intermediate.dense.weight") }
        let cells = row.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(cells == ["0", "up", "weight", "encoder.layer.0.intermediate.dense.weight", "1536×384", "F32", "2.2", "MiB"])
    }

    static let corpus = [
        "Tests/Corpus/safetensors/truncated_length.safetensors", "Tests/Corpus/safetensors/header_too_large.safetensors",
        "Tests/Corpus/safetensors/overlapping_offsets.safetensors", "Tests/Corpus/safetensors/dims_overflow.safetensors",
        "Tests/Corpus/safetensors/non_utf8_name.safetensors", "Tests/Corpus/safetensors/unknown_dtype.safetensors",
        "Tests/Corpus/npy/fortran_order.npy", "Tests/Corpus/npy/bad_magic.npy", "Tests/Corpus/npy/truncated_data.npy",
        "Tests/Corpus/does_not_exist.safetensors",
    ]

    @Test(arguments: corpus)
    func badFilesGiveOneLineAndStatusOne(file: String) throws {
        for extra in [[], ["--json"]] {
            let r = try CLI.run(["inspect", file] + extra)
            #expect(r.status == 1, "\(file): status \(r.status)")
            #expect(r.stdout.isEmpty)
            let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 2 && lines[1].isEmpty, "\(file): \(r.stderr)")
            #expect(r.stderr.hasPrefix("kvscope: error: \(file): "), "\(r.stderr)")
        }
    }

    @Test func badArgumentsAreUsageErrors() throws {
        let r = try CLI.run(["inspect"])
        #expect(r.status != 0 && r.stderr.contains("Missing expected argument"))
    }
}

@Suite struct HelpCLITests {
    static let commands: [[String]] = [
        [], ["bench"], ["bench", "svd"], ["bench", "gguf"], ["bench", "scale"], ["bench", "prefill"], ["bench", "gemv"],
        ["bench", "alloc"], ["bench", "tui"], ["bundle"], ["calibrate"], ["eval"], ["inspect"], ["quantize"],
        ["spectra"], ["tune"], ["export"], ["tui"],
    ]

    /// Every command has --help (exit 0), and its prose is wrapped once, by ArgumentParser: no line
    /// of a paragraph ends where the next line's first word would still have fit (source line breaks
    /// kept on top of ArgumentParser's wrapping left ragged half-empty lines).
    @Test(arguments: commands)
    func helpIsFlowedText(command: [String]) throws {
        let r = try CLI.run(command + ["--help"])
        #expect(r.status == 0, "\(command): \(r.stderr)")
        let lines = r.stdout.components(separatedBy: "\n")
        #expect(lines.first?.hasPrefix("OVERVIEW:") == true, "\(command)")
        // The prose: from OVERVIEW to USAGE.
        let prose = lines.prefix { !$0.hasPrefix("USAGE:") }
        let width = prose.map(\.count).max() ?? 0
        #expect(width <= 80, "\(command): a help line of \(width) columns")
        for (line, next) in zip(prose, prose.dropFirst()) where !line.isEmpty && !next.isEmpty {
            let word = next.split(separator: " ").first.map(String.init) ?? ""
            // ArgumentParser keeps a wrapped line under 80 columns (79 at most).
            #expect(line.count + 1 + word.count >= 80, "\(command): ragged help line \"\(line)\" before \"\(next)\"")
        }
    }
}
