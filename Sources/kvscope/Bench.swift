import ArgumentParser
import Foundation
import LinearAlgebra
import TensorFiles

/// `kvscope bench`: timings that `make bench` collects into BENCHMARKS.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run kvscope's micro-benchmarks (used by `make bench`).",
        subcommands: [BenchSVD.self, BenchGGUF.self, BenchScale.self, BenchPrefill.self, BenchGEMV.self, BenchAlloc.self, BenchTUI.self]
    )
}

struct BenchSVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svd",
        abstract: "Time singular values of a random Float matrix (sgeqrf, then sgesdd JOBZ=N on R, for tall ones).")

    @Option(help: "Rows of the matrix.") var rows = 4096
    @Option(help: "Columns of the matrix.") var cols = 1024
    @Option(name: .customLong("repeat"), help: "Timed repetitions (after one warm-up).") var repetitions = 5
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func validate() throws {
        guard rows > 0, cols > 0, repetitions > 0 else { throw ValidationError("rows, cols and repeat must be positive") }
    }

    func run() throws {
        let a = Matrix.gaussian(rows: rows, cols: cols, seed: 42)
        _ = try singularValues(a)
        var times: [Double] = []
        for _ in 0..<repetitions {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try singularValues(a)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let median = times.sorted()[times.count / 2]
        if json {
            try CLIError.printJSON(["rows": rows.json, "cols": cols.json, "times_s": times.json, "median_s": median.json,
                                "blas_threads": blasThreadCount.json])
        } else {
            print(String(format: "singular values of %dx%d: median %.3f s over %d runs", rows, cols, median, repetitions))
        }
    }
}

struct BenchGGUF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Time opening a GGUF file and listing its tensors, and dequantizing every tensor.")

    @Argument(help: "The GGUF file.") var model: String
    @Option(name: .customLong("repeat"), help: "Timed repetitions (after one warm-up).") var repetitions = 5
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func run() throws {
        try CLIError.reporting {
            func seconds(_ body: () throws -> Void) rethrows -> Double {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try body()
                return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            }
            var open: [Double] = [], dequant: [Double] = []
            var listed = 0, elements = 0
            for i in 0...repetitions {
                var file: GGUFFile?
                let t = try seconds {
                    let f = try GGUFFile(path: model)
                    listed = f.tensors.map { "\($0.name) \($0.shape) \($0.dtype)" }.count
                    file = f
                }
                guard let opened = file else { throw CommandError("\(model): could not be opened") }
                let d = try seconds { elements = try opened.dequantizeAll().elements }
                if i > 0 { open.append(t); dequant.append(d) }
            }
            let medOpen = open.sorted()[open.count / 2], medDequant = dequant.sorted()[dequant.count / 2]
            if json {
                try CLIError.printJSON(["open_list_median_s": medOpen.json, "dequantize_all_median_s": medDequant.json,
                                    "tensors": listed.json, "elements": elements.json, "open_times_s": open.json,
                                    "dequantize_times_s": dequant.json])
            } else {
                print(String(format: "open + list %d tensors: %.1f ms; dequantize %d values: %.0f ms (medians)",
                             listed, medOpen * 1e3, elements, medDequant * 1e3))
            }
        }
    }
}
