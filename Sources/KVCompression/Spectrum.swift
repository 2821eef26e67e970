import LinearAlgebra

/// Which projection of a layer: keys (W_k, K) or values (W_v, V).
public enum ProjectionKind: String, Sendable, Hashable, Codable, CaseIterable {
    case k, v
}

/// The singular-value spectrum of one matrix and its energy statistics (DESIGN.md §4, "Spectra").
///
/// Singular values are stored descending. Energy sums are kept in Double so that energy ranks
/// at p = 0.99 are not disturbed by Float rounding.
public struct Spectrum: Sendable, Hashable, Codable {
    /// Rows of the matrix the spectrum describes (tokens T for K/V, d_kv for weights).
    public let rows: Int
    /// Columns of the matrix the spectrum describes.
    public let cols: Int
    /// Singular values σ₁ ≥ σ₂ ≥ … ≥ 0; min(rows, cols) of them.
    public let singularValues: [Float]
    /// cumulativeEnergy[i] = Σ_{j ≤ i+1} σⱼ² (Double), so cumulativeEnergy[r − 1] is the energy kept at rank r.
    public let cumulativeEnergy: [Double]

    /// The energy levels the tools show: 0.90, 0.95, 0.99.
    public static let standardEnergyLevels: [Double] = [0.90, 0.95, 0.99]

    /// A spectrum from singular values (sorted descending here; negatives are rejected).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for negative or non-finite values or a
    ///   count above min(rows, cols).
    public init(singularValues: [Float], rows: Int, cols: Int) throws {
        guard rows >= 0, cols >= 0, singularValues.count <= min(rows, cols) else {
            throw KVCompressionError.invalidArgument(
                "\(singularValues.count) singular values for a \(rows)x\(cols) matrix")
        }
        guard singularValues.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw KVCompressionError.invalidArgument("singular values must be finite and non-negative")
        }
        self.rows = rows
        self.cols = cols
        self.singularValues = singularValues.sorted(by: >)
        var running = 0.0
        cumulativeEnergy = self.singularValues.map { s in
            running += Double(s) * Double(s)
            return running
        }
    }

    /// The spectrum of `matrix`, from LAPACK's SVD.
    /// - Throws: ``KVCompressionError/linearAlgebra(_:)`` when LAPACK fails or the input is not finite.
    public init(matrix: Matrix) throws {
        let values = try KVCompressionError.wrap { try LinearAlgebra.singularValues(matrix) }
        try self.init(singularValues: values, rows: matrix.rows, cols: matrix.cols)
    }

    /// The spectrum of a T×n matrix K known only through its Gram matrix G = KᵀK (n×n).
    ///
    /// σᵢ = √max(λᵢ, 0) for the eigenvalues λ of G (DESIGN.md §4: "kv" spectra from KᵀK).
    /// Float eigenvalues are accurate to about 1e-7·σ₁², so singular values far below
    /// σ₁·3e-4 carry little relative precision.
    /// - Parameters:
    ///   - gram: the symmetric n×n Gram matrix; only its upper triangle is read.
    ///   - rows: T, the number of rows of K; when T < n only T singular values are kept.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when `gram` is not square,
    ///   ``KVCompressionError/linearAlgebra(_:)`` when the eigensolver fails.
    public init(gram: Matrix, rows: Int) throws {
        guard gram.rows == gram.cols else {
            throw KVCompressionError.invalidArgument("Gram matrix is \(gram.rows)x\(gram.cols), not square")
        }
        let eigen = try KVCompressionError.wrap { try symmetricEigen(gram, vectors: false) }
        let count = min(max(rows, 0), gram.rows)
        let values = eigen.values.prefix(count).map { max($0, 0).squareRoot() }
        try self.init(singularValues: Array(values), rows: max(rows, 0), cols: gram.cols)
    }

    /// Total energy Σσᵢ².
    public var totalEnergy: Double { cumulativeEnergy.last ?? 0 }

    /// The energy rank r_p: the smallest r with Σ_{i≤r}σᵢ² ≥ p·Σσᵢ² (DESIGN.md §4, "Spectra").
    ///
    /// p is clamped to [0, 1]; an all-zero spectrum has rank 0.
    public func energyRank(_ p: Double) -> Int {
        let target = min(max(p, 0), 1) * totalEnergy
        // Binary search over the non-decreasing cumulative sums: first index with sum ≥ target.
        var lo = 0, hi = cumulativeEnergy.count
        if target <= 0 { return 0 }
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulativeEnergy[mid] >= target { hi = mid } else { lo = mid + 1 }
        }
        return min(lo + 1, cumulativeEnergy.count)
    }

    /// Fraction of the energy kept by the first `rank` singular values (0 for rank 0, 1 for an empty spectrum).
    public func energyFraction(rank: Int) -> Double {
        let total = totalEnergy
        guard total > 0 else { return 1 }
        let r = min(max(rank, 0), cumulativeEnergy.count)
        return r == 0 ? 0 : cumulativeEnergy[r - 1] / total
    }

    /// σᵢ/σ₁ for plotting; all zeros when σ₁ = 0.
    public var normalizedSingularValues: [Float] {
        guard let first = singularValues.first, first > 0 else {
            return [Float](repeating: 0, count: singularValues.count)
        }
        return singularValues.map { $0 / first }
    }
}
