import ArgumentParser
import Foundation
import LinearAlgebra

/// `kvscope bench`: timings that `make bench` collects into BENCHMARKS.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run kvscope's micro-benchmarks (used by `make bench`).",
        subcommands: [BenchSVD.self]
    )
}

struct BenchSVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svd",
        abstract: "Time singular values (sgesdd, JOBZ=N) of a random Float matrix.")

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
            let doc: [String: Any] = ["rows": rows, "cols": cols, "times_s": times, "median_s": median,
                                      "blas_threads": blasThreadCount]
            let data = try JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "singular values of %dx%d: median %.3f s over %d runs", rows, cols, median, repetitions))
        }
    }
}
