import ArgumentParser
import ExplorerCore
import Foundation
import LinearAlgebra
import Quantization
import TensorFiles

/// `kvscope quantize MODEL`: fake-quantizes every layer weight matrix and reports its error and bytes
/// (DESIGN.md §4 "Uniform quantization", §5).
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize every layer weight matrix and report its relative error and bytes.",
        discussion: HelpText.flow("""
            One row per layer weight matrix (q, k, v, o, gate, up, down) in [out, in] order, with
            groups of --group consecutive weights along the input dimension. rel_error is
            ‖W − Ŵ‖_F/‖W‖_F; bytes = n·b/8 + groups·metadata (4 bytes asymmetric, 2 symmetric) +
            the fp16 outlier table (DESIGN.md §4). Per-role rel_error is the aggregate
            √(Σ‖W − Ŵ‖²/Σ‖W‖²) over that role's matrices.
            """))

    @Argument(help: "The model file (.gguf, or .safetensors with config.json beside it).") var model: String
    @Option(help: "Bits per weight, 2…8.") var bits = 4
    @Option(help: "Group size along the input dimension.") var group = 128
    @Option(help: "Fraction p of the largest |w| per matrix kept in fp16, 0 ≤ p < 0.5.") var outliers = 0.0
    @Flag(help: "Symmetric quantization (no zero point).") var sym = false
    @Flag(help: "Print one JSON document on stdout.") var json = false

    /// The matrices `quantize` reports, in this order within a layer.
    static let roles: [TensorRole] = [.q, .k, .v, .o, .gate, .up, .down]

    /// One quantized matrix.
    struct Row: Sendable {
        let entry: CatalogEntry
        let relativeError: Double
        let bytes: Double
        let elements: Int
        let normSquared: Double
    }

    func run() throws {
        try CLIError.reporting {
            guard (2...8).contains(bits) else { throw CommandError("--bits must be 2…8, got \(bits)") }
            guard group > 0 else { throw CommandError("--group must be positive, got \(group)") }
            guard outliers.isFinite, outliers >= 0, outliers < 0.5 else {
                throw CommandError("--outliers must be in [0, 0.5), got \(outliers)")
            }
            let scheme = try QuantizationScheme(bits: bits, groupSize: group, mode: sym ? .symmetric : .asymmetric,
                                                outlierFraction: outliers)
            let session = try ModelSession(path: model)
            let catalog = session.opened.catalog
            let rank = Dictionary(uniqueKeysWithValues: Quantize.roles.enumerated().map { ($1, $0) })
            let entries = catalog.entries
                .filter { $0.layer != nil && $0.parameter == .weight && rank[$0.role] != nil && $0.shape.count == 2 }
                .sorted { ($0.layer ?? 0, rank[$0.role] ?? 0) < ($1.layer ?? 0, rank[$1.role] ?? 0) }
            guard !entries.isEmpty else { throw CommandError("\(model): no layer weight matrices found") }

            let results = RowResults(count: entries.count)
            let bar = ProgressReporter("quantize")
            bar.begin("quantization", unit: "matrices")
            DispatchQueue.concurrentPerform(iterations: entries.count) { i in
                let entry = entries[i]
                do {
                    let w = try catalog.matrix(entry, from: session.opened.file)
                    let error = try scheme.relativeError(w)
                    results.set(i, .success(Row(entry: entry, relativeError: error, bytes: scheme.bytes(rows: w.rows, cols: w.cols),
                                                elements: w.rows * w.cols, normSquared: w.frobeniusNormSquared)))
                } catch let error as QuantizationError {
                    results.set(i, .failure(CommandError("\(model): tensor \(entry.name): \(error)")))
                } catch {
                    results.set(i, .failure(error))
                }
                bar.update(results.completed, entries.count)
            }
            bar.finish()
            let rows = try results.values()
            if json {
                try CLIError.printJSON(document(rows))
            } else {
                print(table(rows, session: session), terminator: "")
            }
        }
    }

    /// Bytes as an integer when whole (they are, unless n·b/8 is fractional), else as a number.
    static func bytesJSON(_ b: Double) -> JSON { b.rounded() == b && abs(b) < 9e15 ? Int(b).json : b.json }

    /// Aggregate figures of one role.
    struct RoleSummary {
        let role: TensorRole
        let count: Int
        let relativeError: Double
        let meanRelativeError: Double
        let maxRelativeError: Double
        let bytes: Double
        let elements: Int
    }

    static func summaries(_ rows: [Row]) -> [RoleSummary] {
        roles.compactMap { role in
            let r = rows.filter { $0.entry.role == role }
            guard !r.isEmpty else { return nil }
            let norm = r.reduce(0) { $0 + $1.normSquared }
            let err = r.reduce(0) { $0 + $1.relativeError * $1.relativeError * $1.normSquared }
            return RoleSummary(role: role, count: r.count, relativeError: norm == 0 ? 0 : (err / norm).squareRoot(),
                               meanRelativeError: r.reduce(0) { $0 + $1.relativeError } / Double(r.count),
                               maxRelativeError: r.map(\.relativeError).max() ?? 0,
                               bytes: r.reduce(0) { $0 + $1.bytes }, elements: r.reduce(0) { $0 + $1.elements })
        }
    }

    func document(_ rows: [Row]) -> JSON {
        let total = rows.reduce(0) { $0 + $1.bytes }
        let n = rows.reduce(0) { $0 + $1.elements }
        let tensors: [JSON] = rows.map { r in
            ["tensor": r.entry.name.json, "role": r.entry.role.rawValue.json, "layer": (r.entry.layer ?? -1).json,
             "shape": r.entry.shape.json, "bits": bits.json, "group": group.json, "rel_error": r.relativeError.json,
             "bytes": Quantize.bytesJSON(r.bytes)]
        }
        let roles: [JSON] = Quantize.summaries(rows).map { s in
            ["role": s.role.rawValue.json, "tensors": s.count.json, "rel_error": s.relativeError.json,
             "mean_rel_error": s.meanRelativeError.json, "max_rel_error": s.maxRelativeError.json,
             "bytes": Quantize.bytesJSON(s.bytes), "bits_per_weight": (8 * s.bytes / Double(max(s.elements, 1))).json]
        }
        return ["tensors": .array(tensors), "total_bytes": Quantize.bytesJSON(total),
                "bits_per_weight": (8 * total / Double(max(n, 1))).json, "roles": .array(roles),
                "mode": (sym ? "symmetric" : "asymmetric").json, "outlier_fraction": outliers.json,
                "bits": bits.json, "group": group.json, "weights": n.json]
    }

    func table(_ rows: [Row], session: ModelSession) -> String {
        let hp = session.hyperparameters
        let total = rows.reduce(0) { $0 + $1.bytes }
        let n = rows.reduce(0) { $0 + $1.elements }
        let fp16 = Double(2 * n)
        var out = "\(session.path): \(hp.architecture), \(hp.nLayers) layers, \(rows.count) weight matrices\n"
        out += "\(bits) bits, group \(group), \(sym ? "symmetric" : "asymmetric"), outliers p = \(outliers)\n\n"
        let width = max(40, rows.map(\.entry.name.count).max() ?? 0)
        out += "tensor".padding(toLength: width, withPad: " ", startingAt: 0) + "  role  layer        shape  rel_error        bytes\n"
        for r in rows {
            let shape = r.entry.shape.map(String.init).joined(separator: "x")
            out += r.entry.name.padding(toLength: width, withPad: " ", startingAt: 0)
            out += "  " + r.entry.role.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)
            out += String(r.entry.layer ?? -1).leftPad(7) + shape.leftPad(13)
            out += String(format: "%11.6f", r.relativeError) + String(format: "%13.0f", r.bytes) + "\n"
        }
        out += "\nper role (rel_error = √(Σ‖W − Ŵ‖²/Σ‖W‖²)):\n"
        out += "role  tensors  rel_error   mean     max        bytes  bits/weight\n"
        for s in Quantize.summaries(rows) {
            out += s.role.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0) + String(s.count).leftPad(9)
            out += String(format: "%11.6f%9.6f%9.6f%13.0f%13.3f", s.relativeError, s.meanRelativeError, s.maxRelativeError,
                          s.bytes, 8 * s.bytes / Double(max(s.elements, 1))) + "\n"
        }
        out += String(format: "\ntotal: %.0f bytes for %d weights = %.3f bits per weight (fp16: %.0f bytes, %.2f×)\n",
                      total, n, 8 * total / Double(max(n, 1)), fp16, fp16 / max(total, 1))
        return out
    }
}

/// Per-matrix results filled from worker threads.
private final class RowResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<Quantize.Row, Error>?]
    private var done = 0

    /// How many matrices are finished.
    var completed: Int { lock.withLock { done } }

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ r: Result<Quantize.Row, Error>) {
        lock.lock(); defer { lock.unlock() }
        results[i] = r
        done += 1
    }

    /// All rows in order, or the first error (in matrix order).
    func values() throws -> [Quantize.Row] {
        try lock.withLock { results }.map { r in
            guard let r else { throw CommandError("internal: a matrix was not quantized") }
            return try r.get()
        }
    }
}
