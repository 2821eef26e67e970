import ArgumentParser
import Configuration
import ExplorerCore
import Foundation
import Quantization

/// `kvscope bench alloc`: the per-matrix bit allocation of `tune --weight-bits` (the multiple-choice
/// knapsack of DESIGN.md §4) on a model's error tables, timed alone.
struct BenchAlloc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Time the weight bit allocation (multiple-choice knapsack) over every matrix of a model (goal: < 100 ms).",
        discussion: HelpText.flow("""
            The error tables (bits 2, 3, 4, 8 × outliers 0 or 1%, group 128) are computed first, from the
            on-disk cache when present, exactly as `kvscope tune --weight-bits` does; then the solver alone
            runs --repeat times for an average of --bits bits per weight. Prints the median and the plan's size.
            """))

    @Argument(help: "The model (GGUF or safetensors).") var model: String
    @Option(help: "Average bits per weight to allocate.") var bits = 3.0
    @Option(name: .customLong("repeat"), help: "Timed repetitions.") var repetitions = 9
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func validate() throws {
        guard bits > 0, bits.isFinite, repetitions > 0 else { throw ValidationError("--bits and --repeat must be positive") }
    }

    func run() throws {
        try CLIError.reporting {
            let session = try ModelSession(path: model)
            let description = try ModelDescription(opened: session.opened, path: model)
            let progress = ProgressReporter("bench alloc")
            progress.begin("weight error tables", unit: "matrices")
            let tables = try session.weightErrorTables(tensors: description.matrixNames, choices: WeightTuner.choices(groupSize: 128),
                                                       progress: { progress.update($0, $1) })
            progress.finish()
            var times: [Double] = []
            var plan: WeightTuner.Plan?
            for _ in 0..<repetitions {
                let t0 = DispatchTime.now().uptimeNanoseconds
                plan = try WeightTuner.tune(tables: tables, averageBits: bits, groupSize: 128)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            times.sort()
            let median = times[times.count / 2]
            let options = tables.map { $0.bytes.count }.reduce(0, +)
            let bpw = plan?.section.memory.bitsPerWeight ?? .nan
            if json {
                try CLIError.printJSON(["matrices": tables.count.json, "options": options.json, "bits": bits.json,
                                    "median_s": median.json, "min_s": (times.first ?? .nan).json,
                                    "bits_per_weight": bpw.json, "repeats": repetitions.json])
            } else {
                print(String(format: "%d matrices, %d options: allocation for %.2f bits/weight in %.2f ms (median of %d); plan %.3f bits/weight",
                             tables.count, options, bits, median * 1e3, repetitions, bpw))
            }
        }
    }
}
