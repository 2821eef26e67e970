import ArgumentParser
import Foundation
import LinearAlgebra
import TensorFiles
#if canImport(Glibc)
import Glibc
#endif

/// `kvscope bench scale`: how cost grows with model size. Writes a Llama-3-8B-shaped F16 GGUF with
/// kvscope's own writer (K/V projections random, every other tensor zero and sparse on disk, no
/// tokenizer metadata), then times opening it and a cold `kvscope spectra` run in a child process,
/// with the child's peak RSS, beside the same figures for a reference model (SmolLM2).
struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Time spectra and peak memory on a generated Llama-3-8B-shaped model against a small model.")

    @Option(help: "Folder for the generated model (about 0.5 GB on disk, 16 GB sparse).") var dir = NSTemporaryDirectory()
    @Option(help: "The small model to compare with.") var reference = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Flag(help: "Keep the generated model.") var keep = false
    @Flag(help: "Print one JSON document on stdout.") var json = false
    @Option(help: .hidden) var generateOnly: String?

    // Llama-3-8B: 32 layers, d 4096, 32 heads, 8 KV heads of 128, ffn 14336, vocab 128256.
    static let shape = (layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, ffn: 14336, vocab: 128256)

    func run() throws {
        try CLIError.reporting {
            if let target = generateOnly {
                try Self.writeModel(to: target)
                return
            }
            let path = (dir as NSString).appendingPathComponent("kvscope-llama3-8b-shape-\(getpid()).gguf")
            let genStart = Date()
            // Generate in a child process: a child's peak RSS starts from its parent's RSS at fork
            // (Linux keeps the hiwater mark across exec), so this process must stay small.
            try Self.runChild(["bench", "scale", "--generate-only", path])
            let generated = Date().timeIntervalSince(genStart)
            defer { if !keep { unlink(path) } }
            var st = stat()
            stat(path, &st)
            let onDisk = Int(st.st_blocks) * 512, logical = Int(st.st_size)

            let big = try Self.measure(model: path)
            let small = try Self.measure(model: reference)
            let doc: JSON = [
                "model": ["path": path.json, "logical_bytes": logical.json, "disk_bytes": onDisk.json,
                          "generate_s": generated.json],
                "large": big.json, "reference": small.json,
            ]
            if json {
                try CLIError.printJSON(doc)
            } else {
                print(String(format: "8B-shape: open %.1f ms, spectra %.2f s, peak RSS %.0f MB; %@: open %.1f ms, spectra %.2f s, peak RSS %.0f MB",
                             big.openMs, big.spectraSeconds, Double(big.peakRSSBytes) / 1e6, reference,
                             small.openMs, small.spectraSeconds, Double(small.peakRSSBytes) / 1e6))
            }
        }
    }

    struct Measurement {
        var openMs: Double
        var spectraSeconds: Double
        var peakRSSBytes: Int
        var json: JSON {
            ["open_list_ms": openMs.json, "spectra_cold_s": spectraSeconds.json, "spectra_peak_rss_bytes": peakRSSBytes.json]
        }
    }

    /// Median in-process open + list time, then one cold `spectra` run in a child process.
    static func measure(model: String) throws -> Measurement {
        var opens: [Double] = []
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let f = try GGUFFile(path: model)
            _ = f.tensors.map(\.name).count
            opens.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        let cache = NSTemporaryDirectory() + "kvscope-scale-cache-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let t0 = Date()
        let usage = try runChild(["spectra", model, "--no-cache", "--json"], environment: ["XDG_CACHE_HOME": cache])
        let elapsed = Date().timeIntervalSince(t0)
        return Measurement(openMs: opens.sorted()[2], spectraSeconds: elapsed, peakRSSBytes: Int(usage.ru_maxrss) * 1024)
    }

    /// Runs this executable with `arguments` (stdout discarded) and returns the child's rusage.
    /// posix_spawn + wait4 directly: Foundation's Process reaps children itself, which loses rusage.
    @discardableResult
    static func runChild(_ arguments: [String], environment: [String: String] = [:]) throws -> rusage {
        let exe = CommandLine.arguments[0]
        let path = exe.hasPrefix("/") ? exe : FileManager.default.currentDirectoryPath + "/" + exe
        let env = ProcessInfo.processInfo.environment.merging(environment) { _, n in n }.map { "\($0.key)=\($0.value)" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard rc == 0 else { throw CommandError("cannot run \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        guard status == 0 else { throw CommandError("kvscope \(arguments.joined(separator: " ")) failed (status \(status))") }
        return usage
    }

    static func writeModel(to path: String) throws {
        let s = shape
        var w = GGUFWriter()
        w.addMetadata("general.architecture", .string("llama"))
        w.addMetadata("general.name", .string("kvscope Llama-3-8B-shaped benchmark model"))
        w.addMetadata("llama.block_count", .uint32(UInt32(s.layers)))
        w.addMetadata("llama.embedding_length", .uint32(UInt32(s.hidden)))
        w.addMetadata("llama.feed_forward_length", .uint32(UInt32(s.ffn)))
        w.addMetadata("llama.attention.head_count", .uint32(UInt32(s.heads)))
        w.addMetadata("llama.attention.head_count_kv", .uint32(UInt32(s.kvHeads)))
        w.addMetadata("llama.rope.dimension_count", .uint32(UInt32(s.headDim)))
        w.addMetadata("llama.context_length", .uint32(8192))
        w.addMetadata("llama.rope.freq_base", .float32(500_000))
        w.addMetadata("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.addMetadata("llama.vocab_size", .uint32(UInt32(s.vocab)))
        let kv = s.kvHeads * s.headDim
        var g = SeededGenerator(seed: 8)
        func random(_ rows: Int, _ cols: Int) -> [Float] {
            (0..<(rows * cols)).map { _ in Float(Int64(bitPattern: g.next() >> 40) - (1 << 23)) * 0x1p-30 }
        }
        try w.addZeroTensor(name: "token_embd.weight", shape: [s.vocab, s.hidden], type: .f16)
        for l in 0..<s.layers {
            try w.addTensor(name: "blk.\(l).attn_norm.weight", shape: [s.hidden], floats: [Float](repeating: 1, count: s.hidden), as: .f32)
            try w.addZeroTensor(name: "blk.\(l).attn_q.weight", shape: [s.heads * s.headDim, s.hidden], type: .f16)
            try w.addTensor(name: "blk.\(l).attn_k.weight", shape: [kv, s.hidden], floats: random(kv, s.hidden), as: .f16)
            try w.addTensor(name: "blk.\(l).attn_v.weight", shape: [kv, s.hidden], floats: random(kv, s.hidden), as: .f16)
            try w.addZeroTensor(name: "blk.\(l).attn_output.weight", shape: [s.hidden, s.heads * s.headDim], type: .f16)
            try w.addTensor(name: "blk.\(l).ffn_norm.weight", shape: [s.hidden], floats: [Float](repeating: 1, count: s.hidden), as: .f32)
            try w.addZeroTensor(name: "blk.\(l).ffn_gate.weight", shape: [s.ffn, s.hidden], type: .f16)
            try w.addZeroTensor(name: "blk.\(l).ffn_up.weight", shape: [s.ffn, s.hidden], type: .f16)
            try w.addZeroTensor(name: "blk.\(l).ffn_down.weight", shape: [s.hidden, s.ffn], type: .f16)
        }
        try w.addTensor(name: "output_norm.weight", shape: [s.hidden], floats: [Float](repeating: 1, count: s.hidden), as: .f32)
        try w.addZeroTensor(name: "output.weight", shape: [s.vocab, s.hidden], type: .f16)
        try w.write(to: path)
    }
}
