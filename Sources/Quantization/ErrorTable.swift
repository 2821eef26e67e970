import Foundation
import LinearAlgebra

/// The choices an ``ErrorTable`` covers: every bit width × group size × outlier fraction.
public struct ErrorTableChoices: Sendable, Hashable, Codable {
    /// Bit widths, each 2…8.
    public var bits: [Int]
    /// Group sizes; `nil` is per channel (one group per row).
    public var groupSizes: [Int?]
    /// Outlier fractions p, each in [0, 1).
    public var outlierFractions: [Double]
    /// Asymmetric (default) or symmetric quantization.
    public var mode: UniformQuantizer.Mode

    /// The default grid: bits 2…8, groups 32/64/128/per channel, p ∈ {0, 0.1%, 0.5%, 1%}, asymmetric.
    public init(bits: [Int] = Array(2...8), groupSizes: [Int?] = [32, 64, 128, nil],
                outlierFractions: [Double] = [0, 0.001, 0.005, 0.01], mode: UniformQuantizer.Mode = .asymmetric) {
        self.bits = bits
        self.groupSizes = groupSizes
        self.outlierFractions = outlierFractions
        self.mode = mode
    }

    /// Number of choices.
    public var count: Int { bits.count * groupSizes.count * outlierFractions.count }

    /// The flat index of (bits, group, outlier) positions: ((b·G) + g)·P + p.
    @inlinable
    public func index(bitsIndex b: Int, groupIndex g: Int, outlierIndex p: Int) -> Int {
        (b * groupSizes.count + g) * outlierFractions.count + p
    }

    /// The scheme at a flat index.
    /// - Throws: the scheme's validation errors.
    public func scheme(at index: Int) throws -> QuantizationScheme {
        let p = index % outlierFractions.count
        let g = (index / outlierFractions.count) % groupSizes.count
        let b = index / (outlierFractions.count * groupSizes.count)
        return try QuantizationScheme(bits: bits[b], groupSize: groupSizes[g], mode: mode, outlierFraction: outlierFractions[p])
    }
}

/// One matrix to tabulate: its weights [out, in] and, when calibration statistics exist, the
/// uncentered Gram G = XᵀX [in, in] of its input activations (DESIGN.md §4).
public struct ErrorTableInput: Sendable {
    /// The tensor's name (e.g. `blk.0.attn_q.weight`); the cache key.
    public let name: String
    /// The weights, [out, in].
    public let weights: Matrix
    /// XᵀX of the matrix's own input, or nil.
    public let gram: Matrix?

    /// An input from its parts.
    public init(name: String, weights: Matrix, gram: Matrix? = nil) {
        self.name = name
        self.weights = weights
        self.gram = gram
    }
}

/// Per-matrix quantization errors and bytes for every choice of an ``ErrorTableChoices`` grid,
/// with O(1) lookup. Serializable (Codable) so it can be cached on disk.
public struct ErrorTable: Sendable, Hashable, Codable {
    /// The tensor's name.
    public let name: String
    /// Rows (out).
    public let rows: Int
    /// Columns (in).
    public let cols: Int
    /// The grid of choices.
    public let choices: ErrorTableChoices
    /// ‖W‖²_F.
    public let weightNormSquared: Double
    /// ‖W − Ŵ‖_F/‖W‖_F per choice (flat index, see ``ErrorTableChoices/index(bitsIndex:groupIndex:outlierIndex:)``).
    public let relativeErrors: [Double]
    /// ‖X(W − Ŵ)ᵀ‖²_F = trace(ΔGΔᵀ) per choice, when a Gram matrix was given.
    public let outputErrors: [Double]?
    /// Bytes per choice (DESIGN.md §4 accounting).
    public let bytes: [Double]

    /// One looked-up choice.
    public struct Entry: Sendable, Hashable {
        public let relativeError: Double
        public let outputError: Double?
        public let bytes: Double
        public let bitsPerWeight: Double
    }

    /// The entry of (bits, group size, outlier fraction), or nil when the grid lacks it.
    public func entry(bits: Int, groupSize: Int?, outlierFraction: Double) -> Entry? {
        guard let b = choices.bits.firstIndex(of: bits), let g = choices.groupSizes.firstIndex(of: groupSize),
              let p = choices.outlierFractions.firstIndex(of: outlierFraction) else { return nil }
        return entry(at: choices.index(bitsIndex: b, groupIndex: g, outlierIndex: p))
    }

    /// The entry at a flat index.
    public func entry(at i: Int) -> Entry {
        Entry(relativeError: relativeErrors[i], outputError: outputErrors?[i], bytes: bytes[i],
              bitsPerWeight: rows * cols == 0 ? 0 : 8 * bytes[i] / Double(rows * cols))
    }

    /// Allocation options, one per choice in flat-index order: cost is the output error when known,
    /// else the squared Frobenius error ‖W − Ŵ‖²_F.
    public var allocationOptions: [AllocationOption] {
        relativeErrors.indices.map { i in
            AllocationOption(bytes: bytes[i],
                             cost: outputErrors?[i] ?? relativeErrors[i] * relativeErrors[i] * weightNormSquared)
        }
    }

    /// Computes the table of one matrix.
    /// - Parameters:
    ///   - input: the weights and optional Gram matrix.
    ///   - choices: the grid.
    ///   - isCancelled: polled between choices.
    /// - Throws: ``QuantizationError`` (non-finite weights, shape mismatch, cancelled) or BLAS errors.
    public static func compute(_ input: ErrorTableInput, choices: ErrorTableChoices,
                               isCancelled: @Sendable () -> Bool = { false }) throws -> ErrorTable {
        let w = input.weights
        let (rows, cols) = (w.rows, w.cols)
        if let g = input.gram, g.rows != cols || g.cols != cols {
            throw QuantizationError.shapeMismatch("\(input.name): Gram is \(g.rows)x\(g.cols), weights have \(cols) columns")
        }
        let schemes = try (0..<choices.count).map { try choices.scheme(at: $0) }
        let normSquared = w.frobeniusNormSquared
        let maxOutliers = schemes.map { $0.outlierCount(rows: rows, cols: cols) }.max() ?? 0
        var relative = [Double](repeating: 0, count: schemes.count)
        var output: [Double]? = input.gram == nil ? nil : [Double](repeating: 0, count: schemes.count)
        var reconstruction = [Float](repeating: 0, count: rows * cols)
        var product = [Float](repeating: 0, count: input.gram == nil ? 0 : rows * cols)
        try w.withUnsafeBufferPointer { wp in
            try checkFinite(wp)
            let ranking = OutlierRanking(values: wp, maximumCount: maxOutliers)
            for v in ranking.order where !Float16(wp[v]).isFinite { throw QuantizationError.notRepresentableInHalf(wp[v]) }
            var mask = [Bool](repeating: false, count: maxOutliers > 0 ? rows * cols : 0)
            var maskedCount = 0
            for (i, scheme) in schemes.enumerated() {
                if isCancelled() { throw QuantizationError.cancelled }
                let k = scheme.outlierCount(rows: rows, cols: cols)
                if k != maskedCount {
                    mask.withUnsafeMutableBufferPointer { m in
                        m.update(repeating: false)
                        for idx in ranking.order.prefix(k) { m[idx] = true }
                    }
                    maskedCount = k
                }
                let squared = mask.withUnsafeBufferPointer { m in
                    reconstruction.withUnsafeMutableBufferPointer { r in
                        GroupQuantization.run(values: wp, rows: rows, cols: cols, quantizer: scheme.quantizer,
                                              outlierMask: k > 0 ? m : nil, codes: nil, reconstruction: r.baseAddress,
                                              scales: nil, minima: nil)
                    }
                }
                relative[i] = normSquared == 0 ? squared.squareRoot() : (squared / normSquared).squareRoot()
                if let gram = input.gram {
                    output?[i] = try outputError(weights: wp, reconstruction: &reconstruction, product: &product,
                                                 rows: rows, cols: cols, gram: gram)
                }
            }
        }
        let bytes = schemes.map { $0.bytes(rows: rows, cols: cols) }
        return ErrorTable(name: input.name, rows: rows, cols: cols, choices: choices, weightNormSquared: normSquared,
                          relativeErrors: relative, outputErrors: output, bytes: bytes)
    }

    /// ‖X(W − Ŵ)ᵀ‖²_F = trace(Δ G Δᵀ) = Σ_ij Δ_ij (ΔG)_ij with Δ = W − Ŵ (DESIGN.md §4). `reconstruction`
    /// is overwritten with Δ. Clamped at 0 (G is positive semidefinite; rounding could dip below).
    static func outputError(weights: UnsafeBufferPointer<Float>, reconstruction: inout [Float], product: inout [Float],
                            rows: Int, cols: Int, gram: Matrix) throws -> Double {
        try reconstruction.withUnsafeMutableBufferPointer { d in
            for i in 0..<d.count { d[i] = weights[i] - d[i] }
            return try product.withUnsafeMutableBufferPointer { p in
                try gram.withUnsafeBufferPointer { g in
                    try gemmRaw(transA: .none, transB: .none, m: rows, n: cols, k: cols, alpha: 1,
                                a: UnsafePointer(d.baseAddress!), lda: cols, b: g.baseAddress!, ldb: cols,
                                beta: 0, c: p.baseAddress!, ldc: cols)
                }
                var s = 0.0
                for i in 0..<d.count { s += Double(d[i]) * Double(p[i]) }
                return Swift.max(0, s)
            }
        }
    }
}

/// An in-memory cache of error tables, computed in parallel across matrices with progress and
/// cancellation. Thread-safe. ``encoded()`` / ``init(decoding:)`` give a form for a disk cache.
public final class ErrorTableCache: @unchecked Sendable {
    private let lock = NSLock()
    private var tables: [Key: ErrorTable] = [:]

    struct Key: Hashable { let name: String; let choices: ErrorTableChoices; let hasGram: Bool }

    /// An empty cache.
    public init() {}

    /// A cache holding previously encoded tables.
    /// - Throws: `DecodingError` when `data` is not an encoded cache.
    public convenience init(decoding data: Data) throws {
        self.init()
        for t in try JSONDecoder().decode([ErrorTable].self, from: data) { insert(t) }
    }

    /// The cached tables as JSON, sorted by name.
    public func encoded() throws -> Data {
        let all = lock.withLock { Array(tables.values) }.sorted { $0.name < $1.name }
        return try JSONEncoder().encode(all)
    }

    /// Adds (or replaces) a table.
    public func insert(_ table: ErrorTable) {
        let key = Key(name: table.name, choices: table.choices, hasGram: table.outputErrors != nil)
        lock.withLock { tables[key] = table }
    }

    /// The cached table of `name` for `choices` (with output errors when `withOutputErrors`), if any.
    public func table(named name: String, choices: ErrorTableChoices, withOutputErrors: Bool = false) -> ErrorTable? {
        lock.withLock { tables[Key(name: name, choices: choices, hasGram: withOutputErrors)] }
    }

    /// Tables for every input (in input order), computing the missing ones in parallel.
    /// - Parameters:
    ///   - inputs: the matrices.
    ///   - choices: the grid.
    ///   - progress: called after each matrix with (done, total), from a worker thread.
    ///   - isCancelled: polled between matrices and between choices.
    /// - Throws: ``QuantizationError/cancelled`` when cancelled, or the first error of a matrix.
    public func tables(for inputs: [ErrorTableInput], choices: ErrorTableChoices,
                       progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in },
                       isCancelled: @escaping @Sendable () -> Bool = { false }) throws -> [ErrorTable] {
        let results = ResultBox(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            let input = inputs[i]
            if let cached = table(named: input.name, choices: choices, withOutputErrors: input.gram != nil) {
                results.set(i, .success(cached))
            } else if isCancelled() {
                results.set(i, .failure(QuantizationError.cancelled))
            } else {
                do {
                    let t = try ErrorTable.compute(input, choices: choices, isCancelled: isCancelled)
                    insert(t)
                    results.set(i, .success(t))
                } catch {
                    results.set(i, .failure(error))
                }
            }
            progress(results.completed, inputs.count)
        }
        return try results.values()
    }
}

/// Collects per-index results from worker threads.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<ErrorTable, any Error>?]
    private(set) var completedCount = 0
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<ErrorTable, any Error>) {
        lock.withLock { slots[i] = r; completedCount += 1 }
    }
    var completed: Int { lock.withLock { completedCount } }
    func values() throws -> [ErrorTable] {
        try lock.withLock { slots }.map { slot in
            guard let slot else { throw QuantizationError.cancelled }
            return try slot.get()
        }
    }
}
