import LinearAlgebra

/// How the low-rank factors of a layer's K or V projection are chosen (DESIGN.md §4, "Low-rank factors").
public enum BasisKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// Eigenvectors of KᵀK on calibration tokens: the best rank-r fit of K (default).
    case activations
    /// Left singular vectors of W (data-free).
    case weights
    /// Left singular vectors of W·S, S = diag((mean|x| + 1e-6)^0.5): CSKV's initialisation.
    case asvd
    /// Starts from `activations`, then A and B are trained with the quantizer in the loop.
    case fitted

    /// Whether the basis is a projection (B orthonormal, A = BᵀW), so every rank is a prefix.
    public var isProjection: Bool { self != .fitted }
}

/// Rank-r factors W ≈ B·A: the cache stores c = A x (r numbers a token) and reconstructs k̂ = B c.
public struct LowRankFactors: Sendable, Equatable {
    /// A: [r, d].
    public let a: Matrix
    /// B: [d_kv, r].
    public let b: Matrix

    /// Factors with checked shapes.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when A's rows differ from B's columns.
    public init(a: Matrix, b: Matrix) throws {
        guard a.rows == b.cols else {
            throw KVCompressionError.invalidArgument("A is \(a.rows)x\(a.cols) but B is \(b.rows)x\(b.cols)")
        }
        self.a = a
        self.b = b
    }

    /// r.
    public var rank: Int { a.rows }

    /// B·A, [d_kv, d].
    public func product() throws -> Matrix { try KVCompressionError.wrap { try matmul(b, .none, a, .none) } }

    /// e_w = ‖W − BA‖_F/‖W‖_F computed explicitly (DESIGN.md §4, "Errors").
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when W's shape is not [d_kv, d].
    public func weightError(_ weight: Matrix) throws -> Double {
        guard weight.rows == b.rows, weight.cols == a.cols else {
            throw KVCompressionError.invalidArgument("W is \(weight.rows)x\(weight.cols), factors give \(b.rows)x\(a.cols)")
        }
        return try product().relativeFrobeniusDistance(to: weight)
    }
}

/// An orthonormal basis of the d_kv-dimensional K (or V) space with columns in order of importance,
/// so the rank-r factors of a projection basis are its first r columns: B = U_r, A = U_rᵀW.
public struct ProjectionBasis: Sendable, Equatable {
    /// Which projection basis this is (never `.fitted`).
    public let kind: BasisKind
    /// U: d_kv × d_kv, orthonormal columns, most important first.
    public let u: Matrix
    /// The quantity the columns are ordered by, descending: σᵢ of W (weights), of W·S (asvd), or
    /// eigenvalues λᵢ of KᵀK (activations).
    public let strengths: [Float]

    /// Wraps a basis; U must be square.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when U is not square, the kind is `.fitted`,
    ///   or the strengths do not match U's columns.
    public init(kind: BasisKind, u: Matrix, strengths: [Float]) throws {
        guard kind.isProjection else { throw KVCompressionError.invalidArgument("fitted is not a projection basis") }
        guard u.rows == u.cols, strengths.count == u.cols else {
            throw KVCompressionError.invalidArgument("basis U is \(u.rows)x\(u.cols) with \(strengths.count) strengths")
        }
        self.kind = kind
        self.u = u
        self.strengths = strengths
    }

    /// d_kv.
    public var dimension: Int { u.rows }

    /// U_r, the first r columns: [d_kv, r].
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when r is outside 0...d_kv.
    public func columns(_ rank: Int) throws -> Matrix {
        guard rank >= 0, rank <= dimension else {
            throw KVCompressionError.invalidArgument("rank \(rank) outside 0...\(dimension)")
        }
        return u.prefixColumns(rank)
    }

    /// The rank-r factors B = U_r, A = U_rᵀ W (DESIGN.md §4, "Low-rank factors").
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` for a rank outside 0...d_kv or W with d_kv ≠ U's size.
    public func factors(rank: Int, weight: Matrix) throws -> LowRankFactors {
        guard weight.rows == dimension else {
            throw KVCompressionError.invalidArgument("W has \(weight.rows) rows, basis has dimension \(dimension)")
        }
        let ur = try columns(rank)
        return try LowRankFactors(a: try KVCompressionError.wrap { try matmul(ur, .transpose, weight, .none) }, b: ur)
    }

    /// `weights`: the left singular vectors of W ([d_kv, d]).
    /// - Throws: ``KVCompressionError/linearAlgebra(_:)`` when the SVD fails.
    public static func weights(_ weight: Matrix) throws -> ProjectionBasis {
        try leftSingularBasis(weight, kind: .weights)
    }

    /// `activations` from KᵀK: its eigenvectors, eigenvalues descending (the top right singular vectors of K).
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when the Gram is not square,
    ///   ``KVCompressionError/linearAlgebra(_:)`` when the eigensolver fails.
    public static func activations(keyGram: Matrix) throws -> ProjectionBasis {
        guard keyGram.rows == keyGram.cols else {
            throw KVCompressionError.invalidArgument("Gram matrix is \(keyGram.rows)x\(keyGram.cols), not square")
        }
        let eigen = try KVCompressionError.wrap { try symmetricEigen(keyGram) }
        return try ProjectionBasis(kind: .activations, u: canonicalSigns(eigen.vectors), strengths: eigen.values)
    }

    /// `activations` from the input's XᵀX: the eigenvectors of W·XᵀX·Wᵀ (= KᵀK), DESIGN.md §4.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when XᵀX is not d×d, and as ``activations(keyGram:)``.
    public static func activations(weight: Matrix, inputGram: Matrix) throws -> ProjectionBasis {
        guard inputGram.rows == weight.cols, inputGram.cols == weight.cols else {
            throw KVCompressionError.invalidArgument("XᵀX is \(inputGram.rows)x\(inputGram.cols), W is \(weight.rows)x\(weight.cols)")
        }
        let keyGram = try KVCompressionError.wrap { try matmul(try matmul(weight, .none, inputGram, .none), .none, weight, .transpose) }
        return try activations(keyGram: keyGram)
    }

    /// `asvd`: the left singular vectors of W·S with S = diag((mean|x| + 1e-6)^0.5) (DESIGN.md §4).
    ///
    /// Unscaling afterwards leaves A = U_rᵀ W: U_rΣ_rV_rᵀS⁻¹ = U_rU_rᵀ(WS)S⁻¹ = U_rU_rᵀW.
    /// - Throws: ``KVCompressionError/invalidArgument(_:)`` when mean|x| has a length other than d.
    public static func asvd(weight: Matrix, inputMeanAbs: [Float]) throws -> ProjectionBasis {
        guard inputMeanAbs.count == weight.cols else {
            throw KVCompressionError.invalidArgument("mean|x| has \(inputMeanAbs.count) channels, W has \(weight.cols) columns")
        }
        let s = inputMeanAbs.map { ($0 + 1e-6).squareRoot() }  // DESIGN.md §4 "asvd": S = diag((mean|x| + 1e-6)^0.5)
        var scaled = weight
        let d = weight.cols
        scaled.withUnsafeMutableBufferPointer { p in
            for i in 0..<weight.rows {
                for j in 0..<d { p[i * d + j] *= s[j] }
            }
        }
        return try leftSingularBasis(scaled, kind: .asvd)
    }

    /// A square basis of left singular vectors: from the thin SVD when d_kv ≤ d, else from the
    /// eigenvectors of M·Mᵀ (which also spans the complement M leaves out).
    private static func leftSingularBasis(_ m: Matrix, kind: BasisKind) throws -> ProjectionBasis {
        if m.rows <= m.cols {
            let svd = try KVCompressionError.wrap { try thinSVD(m) }
            return try ProjectionBasis(kind: kind, u: canonicalSigns(svd.u), strengths: svd.singularValues)
        }
        let eigen = try KVCompressionError.wrap { try symmetricEigen(try matmul(m, .none, m, .transpose)) }
        return try ProjectionBasis(kind: kind, u: canonicalSigns(eigen.vectors), strengths: eigen.values.map { max($0, 0).squareRoot() })
    }

    /// U with each column's sign fixed so that its entry of largest magnitude is positive (ties: the
    /// lowest row index).
    ///
    /// Singular vectors and eigenvectors are defined up to sign, and LAPACK builds differ in the sign
    /// they return. Projections U_rU_rᵀ do not see it, but a quantized branch does (the features
    /// c = U_rᵀk change sign, and asymmetric rounding is not odd), so every basis is made canonical.
    /// The numpy references use the same convention.
    public static func canonicalSigns(_ u: Matrix) -> Matrix {
        var out = u
        let rows = u.rows, cols = u.cols
        out.withUnsafeMutableBufferPointer { p in
            for j in 0..<cols {
                var best: Float = 0, bestRow = 0
                for i in 0..<rows where abs(p[i * cols + j]) > best {
                    best = abs(p[i * cols + j])
                    bestRow = i
                }
                guard rows > 0, p[bestRow * cols + j] < 0 else { continue }
                for i in 0..<rows { p[i * cols + j] = -p[i * cols + j] }
            }
        }
        return out
    }
}
