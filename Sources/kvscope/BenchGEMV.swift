import ArgumentParser
import Foundation
import Quantization

/// `kvscope bench gemv`: the fused dequant-GEMV against `cblas_sgemv`, with the machine's read bandwidth.
struct BenchGEMV: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemv",
        abstract: "Time the fused dequant-GEMV on packed weights against cblas_sgemv on the fp32 matrix.",
        discussion: HelpText.flow("""
            A random Gaussian rows×cols matrix is quantized (asymmetric, groups along a row) and packed;
            y = Ŵx is timed straight from the packed codes and y = Wx with cblas_sgemv on the fp32
            matrix, in the same run, with the multithreaded streaming read bandwidth of the machine.
            The sides are interleaved in --rounds rounds (each: two bandwidth passes, a block of fused
            GEMVs, a block of sgemv; each block after five untimed runs), and the speed-up and the
            bandwidth fraction are the medians of the per-round ratios, so a slow spell of a shared
            machine slows both sides of a ratio. Times are medians over all --repeat runs.
            """))

    @Option(help: "Rows of the matrix (output dimension).") var rows = 4096
    @Option(help: "Columns of the matrix (input dimension).") var cols = 4096
    @Option(help: "Code width, 2…8.") var bits = 4
    @Option(help: "Group size along a row.") var group = 128
    @Option(name: .customLong("repeat"), help: "Timed runs of each side in all (split over the rounds).") var repetitions = 40
    @Option(help: "Interleaved rounds.") var rounds = 5
    @Flag(help: "Print one JSON document on stdout.") var json = false

    func validate() throws {
        guard rows > 0, cols > 0, repetitions > 0, rounds > 0 else {
            throw ValidationError("rows, cols, repeat and rounds must be positive")
        }
        guard (2...8).contains(bits) else { throw ValidationError("--bits must be 2…8, got \(bits)") }
        guard group > 0 else { throw ValidationError("--group must be positive, got \(group)") }
    }

    func run() throws {
        try CLIError.reporting {
            let r = try QuantizationBenchmarks.gemv(rows: rows, cols: cols, bits: bits, groupSize: group,
                                                    repeats: repetitions, rounds: rounds)
            if json {
                try CLIError.printJSON([
                    "rows": r.rows.json, "cols": r.cols.json, "bits": r.bits.json, "group": group.json,
                    "threads": r.threads.json, "sgemv_threads": r.sgemvThreads.json, "kernel": r.kernel.json,
                    "repeats": repetitions.json, "rounds": r.rounds.json,
                    "fused_median_s": r.fused.json, "sgemv_median_s": r.sgemv.json,
                    "speedup_vs_sgemv": r.speedup.json, "speedup_of_medians": r.speedupOfMedians.json,
                    "fused_min_s": r.fusedMinimum.json, "sgemv_min_s": r.sgemvMinimum.json,
                    "speedup_of_minima": (r.sgemvMinimum / r.fusedMinimum).json,
                    "fused_bytes": r.fusedBytes.json, "sgemv_bytes": r.sgemvBytes.json,
                    "fused_read_gbs": r.fusedGBs.json, "sgemv_read_gbs": r.sgemvGBs.json,
                    "read_bandwidth_gbs": r.bandwidthGBs.json,
                    "fused_bandwidth_fraction": r.bandwidthFraction.json,
                    "round_speedups": .array(r.roundSpeedups.map(\.json)),
                    "round_bandwidth_fractions": .array(r.roundFractions.map(\.json)),
                ])
            } else {
                print("\(r.kernel) kernel, \(r.threads) threads (sgemv \(r.sgemvThreads) threads): " + String(format: "%dx%d %d-bit g%d: fused %.3f ms, sgemv %.3f ms, speedup %.2f× (median of %d rounds); fused reads %.1f GB/s, %.0f%% of the measured read bandwidth %.1f GB/s (sgemv %.1f GB/s); minima: fused %.3f ms, sgemv %.3f ms",
                             rows, cols, bits, group, r.fused * 1e3, r.sgemv * 1e3, r.speedup, r.rounds, r.fusedGBs,
                             100 * r.bandwidthFraction, r.bandwidthGBs, r.sgemvGBs,
                             r.fusedMinimum * 1e3, r.sgemvMinimum * 1e3))
            }
        }
    }
}
