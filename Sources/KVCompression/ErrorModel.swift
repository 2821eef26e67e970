import Foundation
import LinearAlgebra
import Quantization

/// The answer of an error lookup: a value, "still being computed", or "cannot be known".
public enum ErrorEstimate: Sendable, Equatable {
    /// The relative error.
    case ready(Double)
    /// A background fill has not reached this entry yet.
    case pending
    /// The inputs needed for it were not given (no W, no Gram, no sample rows) or the query is out of range.
    case unavailable(String)

    /// The value when ready.
    public var value: Double? {
        if case .ready(let v) = self { return v }
        return nil
    }
}

/// e_w(r) and e_kv(r, 16) of one projection basis at every rank, from cumulative sums (DESIGN.md §4, "Errors").
///
/// DESIGN.md §4: ‖W − U_rU_rᵀW‖² = ‖W‖² − Σ_{i≤r}‖u_iᵀW‖² and ‖K − KU_rU_rᵀ‖² = ‖K‖² − Σ_{i≤r}u_iᵀ(KᵀK)u_i.
/// U is a complete orthonormal basis, so ‖W‖² = Σ_i‖u_iᵀW‖² and the difference equals the tail sum
/// Σ_{i>r}; the tail is accumulated from the end, which avoids the cancellation of the difference
/// (e(d_kv) is exactly 0). For `weights`, ‖u_iᵀW‖² = σᵢ², which gives e_w(r) = √(Σ_{i>r}σᵢ²)/√(Σσᵢ²).
public struct ProjectionErrorCurves: Sendable {
    /// ‖W‖²_F, when W was given.
    public let weightNormSquared: Double?
    /// ‖K‖²_F = trace(KᵀK), when the Gram was given.
    public let kvNormSquared: Double?
    /// weightResidual[r] = ‖W − U_rU_rᵀW‖², r = 0…d_kv.
    public let weightResidual: [Double]?
    /// kvResidual[r] = ‖K − KU_rU_rᵀ‖², r = 0…d_kv.
    public let kvResidual: [Double]?

    /// Precomputes both curves (O(d_kv²·d) once; every query afterwards is O(1)).
    /// - Parameters:
    ///   - basis: the projection basis U.
    ///   - weight: W [d_kv, d], or nil.
    ///   - gram: KᵀK [d_kv, d_kv], or nil.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` on shapes that do not match the basis.
    public init(basis: ProjectionBasis, weight: Matrix?, gram: Matrix?) throws {
        let n = basis.dimension
        if let weight {
            guard weight.rows == n else { throw KVCompressionError.invalidArgument("W has \(weight.rows) rows, basis \(n)") }
            // Row i of UᵀW is u_iᵀW.
            let projected = try KVCompressionError.wrap { try matmul(basis.u, .transpose, weight, .none) }
            let d = weight.cols
            var energies = [Double](repeating: 0, count: n)
            projected.withUnsafeBufferPointer { p in
                for i in 0..<n {
                    var sum = 0.0
                    for j in 0..<d {
                        let x = Double(p[i * d + j])
                        sum += x * x
                    }
                    energies[i] = sum
                }
            }
            weightNormSquared = weight.frobeniusNormSquared
            weightResidual = Self.tailSums(energies)
        } else {
            weightNormSquared = nil
            weightResidual = nil
        }
        if let gram {
            guard gram.rows == n, gram.cols == n else {
                throw KVCompressionError.invalidArgument("Gram is \(gram.rows)x\(gram.cols), basis \(n)")
            }
            let gu = try KVCompressionError.wrap { try matmul(gram, .none, basis.u, .none) }
            // u_iᵀ(KᵀK)u_i = Σ_j U[j,i]·(GU)[j,i].
            var energies = [Double](repeating: 0, count: n)
            var trace = 0.0
            basis.u.withUnsafeBufferPointer { u in
                gu.withUnsafeBufferPointer { g in
                    for j in 0..<n {
                        for i in 0..<n { energies[i] += Double(u[j * n + i]) * Double(g[j * n + i]) }
                    }
                }
            }
            gram.withUnsafeBufferPointer { g in
                for i in 0..<n { trace += Double(g[i * n + i]) }
            }
            kvNormSquared = trace
            kvResidual = Self.tailSums(energies)
        } else {
            kvNormSquared = nil
            kvResidual = nil
        }
    }

    /// tail[r] = Σ_{i ≥ r} e_i (0-based), r = 0…n; tail[n] = 0.
    static func tailSums(_ e: [Double]) -> [Double] {
        var tail = [Double](repeating: 0, count: e.count + 1)
        for i in stride(from: e.count - 1, through: 0, by: -1) { tail[i] = tail[i + 1] + e[i] }
        return tail
    }

    static func relative(_ residual: [Double]?, _ norm: Double?, _ rank: Int) -> Double? {
        guard let residual, let norm, rank >= 0, rank < residual.count else { return nil }
        return norm > 0 ? (max(residual[rank], 0) / norm).squareRoot() : 0
    }

    /// e_w(r) = ‖W − U_rU_rᵀW‖_F/‖W‖_F, or nil without W or for r outside 0…d_kv.
    public func weightError(rank: Int) -> Double? { Self.relative(weightResidual, weightNormSquared, rank) }

    /// e_kv(r, 16) = ‖K − KU_rU_rᵀ‖_F/‖K‖_F, or nil without the Gram or for r outside 0…d_kv.
    public func kvError(rank: Int) -> Double? { Self.relative(kvResidual, kvNormSquared, rank) }
}

/// e_kv(r, b) at every rank r = 0…d_kv for one projection basis, bit-width and group size, from sampled K rows alone.
///
/// Per token, c = U_rᵀk is quantized with group g along its r channels and k̂ = U_r ĉ. Since U is
/// orthonormal, ‖k − U_rĉ‖² = ‖c_{≤r} − ĉ‖² + Σ_{i>r} c_i², so the errors of all ranks come from one
/// product C = K U (see ``quantizationErrorSums(basis:samples:bits:groupSize:cancellation:)``).
/// ``ErrorModel`` combines the quantization part with the Gram's rank tail instead (its hybrid estimator).
/// - Parameters:
///   - basis: the projection basis.
///   - samples: sampled K (or V) rows [s, d_kv].
///   - bits: 2...8.
///   - groupSize: group along the r channels (nil: one group per token).
///   - cancellation: checked once per rank.
/// - Returns: errors[r] = ‖K − K̂_r‖_F/‖K‖_F on the samples.
/// - Throws: ``KVCompressionError/invalidArgument(_:)``, wrapped quantizer errors, ``KVCompressionError/cancelled``.
public func quantizedKVErrors(basis: ProjectionBasis, samples: Matrix, bits: Int, groupSize: Int?,
                              cancellation: CancellationFlag? = nil) throws -> [Double] {
    let n = basis.dimension
    let sums = try quantizationErrorSums(basis: basis, samples: samples, bits: bits, groupSize: groupSize,
                                         cancellation: cancellation)
    let total = samples.frobeniusNormSquared
    guard samples.rows > 0, total > 0 else { return [Double](repeating: 0, count: n + 1) }
    // Σ_t Σ_{i>r} c_ti² on the samples: the rank tail of the samples themselves.
    let c = try KVCompressionError.wrap { try matmul(samples, .none, basis.u, .none) }
    var energies = [Double](repeating: 0, count: n)
    c.withUnsafeBufferPointer { p in
        for t in 0..<samples.rows {
            for i in 0..<n { energies[i] += Double(p[t * n + i]) * Double(p[t * n + i]) }
        }
    }
    let tail = ProjectionErrorCurves.tailSums(energies)
    var errors = (0...n).map { r in ((sums.quantization[r] + tail[r]) / total).squareRoot() }
    errors[0] = 1
    return errors
}

/// The quantization part of e_kv(r, b) on sampled rows, at every rank: Σ_t ‖c_{t,≤r} − Q_b(c_{t,≤r})‖².
public struct QuantizationErrorSums: Sendable {
    /// quantization[r] = Σ over sampled tokens of ‖c_{≤r} − ĉ‖², r = 0…d_kv (entry 0 is 0).
    public let quantization: [Double]
    /// ‖K_s‖²_F, the squared norm of the sampled rows.
    public let sampleNormSquared: Double
}

/// Σ_t ‖c_{t,≤r} − Q_b(c_{t,≤r})‖² for every rank r, with c_t = Uᵀk_t the features of sampled row t.
///
/// Groups that end before channel r are the same for every larger rank, so for each r only the last
/// (partial) group is quantized again, for all sampled rows in one call of the quantizer.
/// - Throws: ``KVCompressionError/invalidArgument(_:)`` when the samples' width is not d_kv, wrapped
///   quantizer errors, ``KVCompressionError/cancelled`` (checked once per rank).
public func quantizationErrorSums(basis: ProjectionBasis, samples: Matrix, bits: Int, groupSize: Int?,
                                  cancellation: CancellationFlag? = nil) throws -> QuantizationErrorSums {
    let n = basis.dimension
    guard samples.cols == n else { throw KVCompressionError.invalidArgument("samples have \(samples.cols) channels, basis \(n)") }
    if let g = groupSize, g < 1 { throw KVCompressionError.invalidArgument("group size \(g)") }
    let quantizer = try KVCompressionError.wrap { try UniformQuantizer(bits: bits, groupSize: groupSize) }
    let s = samples.rows
    var sums = [Double](repeating: 0, count: n + 1)
    guard s > 0, n > 0 else { return QuantizationErrorSums(quantization: sums, sampleNormSquared: 0) }
    let c = try KVCompressionError.wrap { try matmul(samples, .none, basis.u, .none) }
    if quantizer.mode == .asymmetric {
        try asymmetricErrorSums(c, bits: bits, groupSize: groupSize, into: &sums, cancellation: cancellation)
        return QuantizationErrorSums(quantization: sums, sampleNormSquared: samples.frobeniusNormSquared)
    }
    // Per row, the current group's running min / max / max|x| grow with r, so each rank costs one
    // pass over the partial group with the quantizer's own GroupParameters.
    var completed = [Double](repeating: 0, count: s)  // per row: error of the whole groups before the current one
    var lo = [Float](repeating: .infinity, count: s), hi = [Float](repeating: -.infinity, count: s)
    var magnitude = [Float](repeating: 0, count: s)
    try c.withUnsafeBufferPointer { p in
        for rank in 1...n {
            try CancellationFlag.check(cancellation)
            let groupStart = groupSize.map { ((rank - 1) / $0) * $0 } ?? 0
            let closesGroup = groupSize.map { rank % $0 == 0 } ?? false
            var total = 0.0
            for t in 0..<s {
                let row = t * n
                if rank - 1 == groupStart { lo[t] = .infinity; hi[t] = -.infinity; magnitude[t] = 0 }
                let x = p[row + rank - 1]
                lo[t] = min(lo[t], x); hi[t] = max(hi[t], x); magnitude[t] = max(magnitude[t], x.magnitude)
                let parameters = GroupParameters(minimum: lo[t], maximum: hi[t], maximumMagnitude: magnitude[t], quantizer: quantizer)
                var e = 0.0
                for i in (row + groupStart)..<(row + rank) {
                    let d = Double(p[i] - parameters.dequantize(parameters.code(p[i])))
                    e += d * d
                }
                total += completed[t] + e
                // The group just completed is a whole group for every larger rank.
                if closesGroup { completed[t] += e }
            }
            sums[rank] = total
        }
    }
    return QuantizationErrorSums(quantization: sums, sampleNormSquared: samples.frobeniusNormSquared)
}

/// The asymmetric quantizer's error sums of ``quantizationErrorSums(basis:samples:bits:groupSize:cancellation:)``,
/// eight sampled rows at a time (SIMD across rows, features stored channel-major).
///
/// The arithmetic is GroupParameters' (DESIGN.md §4): scale = (max − min)/(2ᵇ − 1), q = clamp(round((x − min)/scale))
/// with round half to even, x̂ = q·scale + min, in Float; a constant group (scale 0) reconstructs exactly.
/// Padding rows are zero, a constant group, so they add nothing.
func asymmetricErrorSums(_ c: Matrix, bits: Int, groupSize: Int?, into sums: inout [Double],
                         cancellation: CancellationFlag?) throws {
    typealias Lanes = SIMD8<Float>
    let (s, n) = (c.rows, c.cols)
    let blocks = (s + 7) / 8
    // channelMajor[i * blocks + b] holds channel i of rows 8b…8b+7.
    var channelMajor = [Lanes](repeating: .zero, count: n * blocks)
    c.withUnsafeBufferPointer { p in
        for t in 0..<s {
            for i in 0..<n { channelMajor[i * blocks + t / 8][t % 8] = p[t * n + i] }
        }
    }
    let top = Lanes(repeating: Float((1 << bits) - 1))
    var lo = [Lanes](repeating: Lanes(repeating: .infinity), count: blocks)
    var hi = [Lanes](repeating: Lanes(repeating: -.infinity), count: blocks)
    var completed = [SIMD8<Double>](repeating: .zero, count: blocks)
    try channelMajor.withUnsafeBufferPointer { x in
        for rank in 1...n {
            try CancellationFlag.check(cancellation)
            let groupStart = groupSize.map { ((rank - 1) / $0) * $0 } ?? 0
            let closesGroup = groupSize.map { rank % $0 == 0 } ?? false
            var total = SIMD8<Double>.zero
            for b in 0..<blocks {
                let newest = x[(rank - 1) * blocks + b]
                if rank - 1 == groupStart {
                    lo[b] = newest
                    hi[b] = newest
                } else {
                    lo[b] = pointwiseMin(lo[b], newest)
                    hi[b] = pointwiseMax(hi[b], newest)
                }
                let minimum = lo[b]
                var scale = (hi[b] - minimum) / top
                scale.replace(with: 1, where: scale .== 0)  // constant group: q = 0, x̂ = min = x
                var error = Lanes.zero
                for i in groupStart..<rank {
                    let v = x[i * blocks + b]
                    var q = ((v - minimum) / scale).rounded(.toNearestOrEven)
                    q = pointwiseMin(pointwiseMax(q, .zero), top)
                    let d = v - (q * scale + minimum)
                    error += d * d
                }
                let e = SIMD8<Double>(error)
                total += completed[b] + e
                // The group just completed is a whole group for every larger rank.
                if closesGroup { completed[b] += e }
            }
            sums[rank] = total.sum()
        }
    }
}

/// The per-layer inputs of an ``ErrorModel`` for K or V.
public struct ErrorModelEntry: Sendable {
    /// Layer index.
    public let layer: Int
    /// K or V.
    public let kind: ProjectionKind
    /// The projection basis.
    public let basis: ProjectionBasis
    /// W [d_kv, d] for e_w; nil leaves e_w unavailable.
    public let weight: Matrix?
    /// KᵀK for e_kv at b = 16; nil leaves it unavailable.
    public let gram: Matrix?
    /// Sampled K rows [s, d_kv] for e_kv at b < 16; nil leaves those unavailable.
    public let samples: Matrix?

    /// One entry.
    public init(layer: Int, kind: ProjectionKind, basis: ProjectionBasis, weight: Matrix?, gram: Matrix?, samples: Matrix?) {
        self.layer = layer
        self.kind = kind
        self.basis = basis
        self.weight = weight
        self.gram = gram
        self.samples = samples
    }
}

/// e_w and e_kv for any layer, K/V, rank and bit-width in O(1) after precomputation (DESIGN.md §4, "Errors").
///
/// b = 16 comes from ``ProjectionErrorCurves`` built at init. b < 16 comes from tables over rank filled
/// by ``fillQuantizedTables(bits:groupSize:progress:cancellation:)``, typically on a background queue;
/// until a table is filled, lookups answer ``ErrorEstimate/pending`` instead of blocking. Lookups and
/// fills may run on different threads. `fitted` factors are trained per (rank, bits), so their errors
/// are recorded with ``record(layer:kind:rank:bits:groupSize:weightError:kvError:)`` when a job finishes.
public final class ErrorModel: @unchecked Sendable {
    /// The basis every entry uses.
    public let basisKind: BasisKind
    /// Group size along the r channels used when a query gives none (nil: one group per token).
    public let defaultGroupSize: Int?

    struct Slot: Hashable { let layer: Int; let kind: ProjectionKind }
    struct TableKey: Hashable { let slot: Slot; let bits: Int; let groupSize: Int? }
    struct MeasuredKey: Hashable { let slot: Slot; let rank: Int; let bits: Int; let groupSize: Int? }

    private let entries: [Slot: ErrorModelEntry]
    private let curves: [Slot: ProjectionErrorCurves]
    private let lock = NSLock()
    private var tables: [TableKey: [Double]] = [:]
    private var measured: [MeasuredKey: (weight: Double?, kv: Double)] = [:]

    /// Precomputes the b = 16 curves of every entry (in parallel across entries).
    /// - Parameters:
    ///   - basisKind: the basis of every entry; `.fitted` takes entries whose basis is its starting point
    ///     and only answers what ``record(layer:kind:rank:bits:groupSize:weightError:kvError:)`` stored.
    ///   - entries: one per (layer, kind); duplicates are rejected.
    ///   - defaultGroupSize: group size for queries that give none.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` on duplicates or shapes; wrapped LinearAlgebra errors.
    public init(basisKind: BasisKind, entries: [ErrorModelEntry], defaultGroupSize: Int?,
                progress: ProgressHandler? = nil, cancellation: CancellationFlag? = nil) throws {
        if let g = defaultGroupSize, g < 1 { throw KVCompressionError.invalidArgument("group size \(g)") }
        var byslot: [Slot: ErrorModelEntry] = [:]
        for e in entries {
            let slot = Slot(layer: e.layer, kind: e.kind)
            guard byslot[slot] == nil else { throw KVCompressionError.invalidArgument("duplicate entry layer \(e.layer) \(e.kind)") }
            guard e.basis.kind == basisKind || basisKind == .fitted else {
                throw KVCompressionError.invalidArgument("entry layer \(e.layer) \(e.kind) has basis \(e.basis.kind), model is \(basisKind)")
            }
            byslot[slot] = e
        }
        self.basisKind = basisKind
        self.defaultGroupSize = defaultGroupSize
        self.entries = byslot
        var computed: [Slot: ProjectionErrorCurves] = [:]
        if basisKind.isProjection {
            let list = entries
            let results = ParallelResults<ProjectionErrorCurves>(count: list.count)
            let counter = ProgressCounter(total: list.count, handler: progress)
            try parallelJobs(count: list.count, cancellation: cancellation) { i in
                let e = list[i]
                results.set(i, try ProjectionErrorCurves(basis: e.basis, weight: e.weight, gram: e.gram))
                counter.step()
            }
            for (i, curve) in results.values.enumerated() {
                if let curve { computed[Slot(layer: list[i].layer, kind: list[i].kind)] = curve }
            }
        }
        curves = computed
    }

    /// The precomputed b = 16 curves of a layer's K or V (nil for `fitted` or an unknown layer).
    public func curves(layer: Int, kind: ProjectionKind) -> ProjectionErrorCurves? { curves[Slot(layer: layer, kind: kind)] }

    /// The entry of a layer's K or V.
    public func entry(layer: Int, kind: ProjectionKind) -> ErrorModelEntry? { entries[Slot(layer: layer, kind: kind)] }

    /// e_w(r) = ‖W − BA‖_F/‖W‖_F. For `fitted` (whose factors depend on the bits they were trained
    /// for) this is the b = 16 measurement; see ``weightError(layer:kind:rank:bits:groupSize:)``.
    public func weightError(layer: Int, kind: ProjectionKind, rank: Int) -> ErrorEstimate {
        weightError(layer: layer, kind: kind, rank: rank, bits: 16, groupSize: nil)
    }

    /// e_w(r) of the factors used with a b-bit branch: independent of b for projection bases.
    public func weightError(layer: Int, kind: ProjectionKind, rank: Int, bits: Int, groupSize: Int?) -> ErrorEstimate {
        let slot = Slot(layer: layer, kind: kind)
        guard let entry = entries[slot] else { return .unavailable("no layer \(layer) \(kind.rawValue)") }
        guard rank >= 0, rank <= entry.basis.dimension else { return .unavailable("rank \(rank) outside 0...\(entry.basis.dimension)") }
        if basisKind == .fitted {
            let key = MeasuredKey(slot: slot, rank: rank, bits: bits, groupSize: bits == 16 ? nil : groupSize)
            let found = lock.withLock { measured[key] }
            guard let found else { return .pending }
            return found.weight.map(ErrorEstimate.ready) ?? .unavailable("W not given for layer \(layer) \(kind.rawValue)")
        }
        guard let value = curves[slot]?.weightError(rank: rank) else { return .unavailable("W not given for layer \(layer) \(kind.rawValue)") }
        return .ready(value)
    }

    /// e_kv(r, b) = ‖K − K̂‖_F/‖K‖_F with the default group size.
    public func kvError(layer: Int, kind: ProjectionKind, rank: Int, bits: Int) -> ErrorEstimate {
        kvError(layer: layer, kind: kind, rank: rank, bits: bits, groupSize: defaultGroupSize)
    }

    /// e_kv(r, b) = ‖K − K̂‖_F/‖K‖_F: from the Gram at b = 16, from the filled table at b < 16.
    ///
    /// With a Gram, the b < 16 table takes its rank tail from the Gram and only the quantization error
    /// of the kept features from the samples, so e_kv(r, b) ≥ e_kv(r, 16) always; without one, the
    /// whole error comes from the samples (``quantizedKVErrors(basis:samples:bits:groupSize:cancellation:)``).
    public func kvError(layer: Int, kind: ProjectionKind, rank: Int, bits: Int, groupSize: Int?) -> ErrorEstimate {
        let slot = Slot(layer: layer, kind: kind)
        guard let entry = entries[slot] else { return .unavailable("no layer \(layer) \(kind.rawValue)") }
        guard rank >= 0, rank <= entry.basis.dimension else { return .unavailable("rank \(rank) outside 0...\(entry.basis.dimension)") }
        guard bits == 16 || (2...8).contains(bits) else { return .unavailable("bits \(bits)") }
        if basisKind == .fitted {
            let found = lock.withLock { measured[MeasuredKey(slot: slot, rank: rank, bits: bits, groupSize: bits == 16 ? nil : groupSize)] }
            return found.map { .ready($0.kv) } ?? .pending
        }
        if bits == 16 {
            guard let value = curves[slot]?.kvError(rank: rank) else { return .unavailable("KᵀK not given for layer \(layer) \(kind.rawValue)") }
            return .ready(value)
        }
        guard entry.samples != nil else { return .unavailable("no sampled rows for layer \(layer) \(kind.rawValue)") }
        let table = lock.withLock { tables[TableKey(slot: slot, bits: bits, groupSize: groupSize)] }
        guard let table else { return .pending }
        return .ready(table[rank])
    }

    /// Whether every entry with samples has its table for (bits, groupSize).
    public func isFilled(bits: Int, groupSize: Int?) -> Bool {
        let needed = entries.values.filter { $0.samples != nil }.map {
            TableKey(slot: Slot(layer: $0.layer, kind: $0.kind), bits: bits, groupSize: groupSize)
        }
        return lock.withLock { needed.allSatisfy { tables[$0] != nil } }
    }

    /// Fills the b < 16 tables for every entry with samples, in parallel; each table is visible to
    /// lookups as soon as it is done. Tables already filled are skipped. Blocks the calling thread:
    /// call it from a background queue.
    /// - Parameters:
    ///   - bits: bit-widths in 2...8.
    ///   - groupSize: group size along the r channels (nil: one group per token).
    ///   - progress: called from worker threads per finished table.
    ///   - cancellation: stops between tables (and between ranks inside one).
    /// - Throws: ``KVCompressionError/cancelled``, ``KVCompressionError/invalidArgument(_:)``, wrapped errors.
    public func fillQuantizedTables(bits: [Int], groupSize: Int?, progress: ProgressHandler? = nil,
                                    cancellation: CancellationFlag? = nil) throws {
        guard basisKind.isProjection else { return }
        for b in bits where !(2...8).contains(b) { throw KVCompressionError.invalidArgument("bits \(b) outside 2...8") }
        let jobs: [(ErrorModelEntry, Int)] = entries.values.sorted { ($0.layer, $0.kind.rawValue) < ($1.layer, $1.kind.rawValue) }
            .filter { $0.samples != nil }
            .flatMap { e in bits.map { (e, $0) } }
            .filter { job in lock.withLock { tables[TableKey(slot: Slot(layer: job.0.layer, kind: job.0.kind), bits: job.1, groupSize: groupSize)] == nil } }
        let counter = ProgressCounter(total: jobs.count, handler: progress)
        try parallelJobs(count: jobs.count, cancellation: cancellation) { i in
            let (entry, b) = jobs[i]
            guard let samples = entry.samples else { return }
            let table = try hybridKVErrors(entry: entry, curves: self.curves[Slot(layer: entry.layer, kind: entry.kind)],
                                           samples: samples, bits: b, groupSize: groupSize, cancellation: cancellation)
            let key = TableKey(slot: Slot(layer: entry.layer, kind: entry.kind), bits: b, groupSize: groupSize)
            self.lock.withLock { self.tables[key] = table }
            counter.step()
        }
    }

    /// The b < 16 table of one entry: the hybrid estimator when the Gram is known, else samples alone.
    func hybridKVErrors(entry: ErrorModelEntry, curves: ProjectionErrorCurves?, samples: Matrix, bits: Int,
                        groupSize: Int?, cancellation: CancellationFlag?) throws -> [Double] {
        guard let residual = curves?.kvResidual, let norm = curves?.kvNormSquared, norm > 0 else {
            return try quantizedKVErrors(basis: entry.basis, samples: samples, bits: bits, groupSize: groupSize,
                                         cancellation: cancellation)
        }
        let sums = try quantizationErrorSums(basis: entry.basis, samples: samples, bits: bits, groupSize: groupSize,
                                             cancellation: cancellation)
        // Hybrid estimator of e_kv(r, b) (DESIGN.md §4, "Errors"), so that b < 16 and b = 16 agree:
        //   e_kv(r, b)²·‖K‖² = tail_Gram(r) + ‖K‖² · Σ_s‖c_{≤r} − Q_b(c_{≤r})‖² / ‖K_s‖².
        // tail_Gram(r) = ‖K − KU_rU_rᵀ‖² is exact over all calibration tokens (the b = 16 curve);
        // only the quantization error of the kept features is estimated from the s sampled rows,
        // as a fraction of their energy ‖K_s‖² scaled to the Gram's ‖K‖² = trace(KᵀK). The second
        // term is ≥ 0, so e_kv(r, b) ≥ e_kv(r, 16) at every rank (and the two agree where Q_b is exact).
        let sampleNorm = sums.sampleNormSquared
        var table = [Double](repeating: 0, count: residual.count)
        for r in 0..<residual.count {
            let quantization = sampleNorm > 0 && r < sums.quantization.count ? sums.quantization[r] / sampleNorm : 0
            table[r] = (max(residual[r], 0) / norm + quantization).squareRoot()
        }
        return table
    }

    /// Stores a measured error (e.g. of `fitted` factors trained for this rank and bit-width).
    public func record(layer: Int, kind: ProjectionKind, rank: Int, bits: Int, groupSize: Int?,
                       weightError: Double?, kvError: Double) {
        let key = MeasuredKey(slot: Slot(layer: layer, kind: kind), rank: rank, bits: bits, groupSize: bits == 16 ? nil : groupSize)
        lock.withLock { measured[key] = (weightError, kvError) }
    }
}
