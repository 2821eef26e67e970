import CLapack

/// A thin singular value decomposition A = U · diag(σ) · Vᵀ with k = min(rows, cols).
public struct SVD: Sendable {
    /// Left singular vectors as columns, rows × k, orthonormal columns.
    public let u: Matrix
    /// Singular values, descending, k of them.
    public let singularValues: [Float]
    /// Right singular vectors as rows, k × cols, orthonormal rows.
    public let vt: Matrix
}

/// The eigen-decomposition of a symmetric matrix, eigenvalues descending.
public struct SymmetricEigen: Sendable {
    /// Eigenvalues, descending.
    public let values: [Float]
    /// Eigenvectors as columns (numpy.linalg.eigh's convention), in the order of `values`.
    /// Empty (0×0) when only values were asked for.
    public let vectors: Matrix
}

// Row-major A (m×n) is, byte for byte, column-major Aᵀ (n×m). LAPACK factors Aᵀ = U'ΣV'ᵀ,
// so A = V'ΣU'ᵀ: the buffer LAPACK returns as U' (n×k, column-major) is our Vᵀ (k×n, row-major)
// and the buffer it returns as V'ᵀ (k×m, column-major) is our U (m×k, row-major). No transposes.

private func checkedForLAPACK(_ a: Matrix, _ operation: String) throws -> (m: Int32, n: Int32) {
    guard a.isFinite else { throw LinearAlgebraError.nonFiniteInput(operation: operation) }
    return (try blasInt(a.rows, operation), try blasInt(a.cols, operation))
}

/// LAPACK returns workspace sizes as floats; round up so large sizes are never short.
private func workspaceSize(_ w: Float) -> Int { Int((Double(w) * (1 + 1e-6)).rounded(.up)) + 1 }

private func sgesdd(_ a: Matrix, jobz: UInt8, routine: String) throws -> (s: [Float], u: [Float], vt: [Float]) {
    let (m32, n32) = try checkedForLAPACK(a, routine)
    let m = Int(m32), n = Int(n32), k = min(m, n)
    if k == 0 { return ([], [], []) }
    // The column-major problem is M' = n, N' = m.
    let mp = n32, np = m32, k32 = Int32(k)
    var work = a.storage
    var s = [Float](repeating: 0, count: k)
    let wantVectors = jobz == UInt8(ascii: "S")
    var uPrime = [Float](repeating: 0, count: wantVectors ? n * k : 1)
    var vtPrime = [Float](repeating: 0, count: wantVectors ? k * m : 1)
    let ldu: Int32 = wantVectors ? mp : 1, ldvt: Int32 = wantVectors ? k32 : 1
    var iwork = [Int32](repeating: 0, count: 8 * k)
    var query: Float = 0
    var info = work.withUnsafeMutableBufferPointer { pa in
        LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, CChar(bitPattern: jobz), mp, np, pa.baseAddress, mp, &s,
                            &uPrime, ldu, &vtPrime, ldvt, &query, -1, &iwork)
    }
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: routine, info: info) }
    let lwork = workspaceSize(query)
    guard lwork <= Int(Int32.max) else {
        throw LinearAlgebraError.invalidArgument(operation: routine, detail: "workspace of \(lwork) floats")
    }
    var scratch = [Float](repeating: 0, count: lwork)
    info = work.withUnsafeMutableBufferPointer { pa in
        LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, CChar(bitPattern: jobz), mp, np, pa.baseAddress, mp, &s,
                            &uPrime, ldu, &vtPrime, ldvt, &scratch, Int32(lwork), &iwork)
    }
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: routine, info: info) }
    return (s, vtPrime, uPrime)
}

/// Singular values of `a`, descending (LAPACK `sgesdd` with JOBZ = N).
///
/// LAPACK is handed the orientation it is fastest on: a tall column-major matrix (σ(A) = σ(Aᵀ), so a
/// tall row-major matrix is transposed once). When rows ≥ 2·cols, a blocked QR (`sgeqrf`) goes first
/// and `sgesdd` runs on the small triangle R, which has the same singular values. On a 4096×1024
/// matrix this is about 1.6× faster than `sgesdd` on the wide view (BENCHMARKS.md).
/// - Throws: ``LinearAlgebraError/nonFiniteInput(operation:)`` for NaN/Inf input,
///   ``LinearAlgebraError/lapack(routine:info:)`` when LAPACK fails.
public func singularValues(_ a: Matrix) throws -> [Float] {
    guard a.isFinite else { throw LinearAlgebraError.nonFiniteInput(operation: "sgesdd") }
    guard a.rows > a.cols, a.cols > 0 else {
        // Wide or square row-major is tall or square column-major already.
        return try sgesdd(a, jobz: UInt8(ascii: "N"), routine: "sgesdd").s
    }
    // Row-major Aᵀ (cols × rows) is column-major A (rows × cols): tall for LAPACK.
    var tall = a.transposed
    guard a.rows >= 2 * a.cols else { return try sgesdd(tall, jobz: UInt8(ascii: "N"), routine: "sgesdd").s }
    return try sgesdd(try upperTriangleOfQR(columnMajor: &tall), jobz: UInt8(ascii: "N"), routine: "sgesdd").s
}

/// R of A = QR (LAPACK `sgeqrf`) for a tall column-major A stored as the row-major matrix `columnMajor`
/// (rows = A's columns n, cols = A's rows m); R (n×n, upper) is returned in the same convention.
/// `sgeqrf` works in place: `columnMajor` is left holding its Householder vectors.
private func upperTriangleOfQR(columnMajor at: inout Matrix) throws -> Matrix {
    let n = at.rows, m = at.cols
    let (m32, n32) = (try blasInt(m, "sgeqrf"), try blasInt(n, "sgeqrf"))
    var tau = [Float](repeating: 0, count: n)
    var query: Float = 0
    var info = at.storage.withUnsafeMutableBufferPointer { p in
        LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, m32, n32, p.baseAddress, m32, &tau, &query, -1)
    }
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: "sgeqrf", info: info) }
    var work = [Float](repeating: 0, count: workspaceSize(query))
    info = at.storage.withUnsafeMutableBufferPointer { p in
        LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, m32, n32, p.baseAddress, m32, &tau, &work, Int32(work.count))
    }
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: "sgeqrf", info: info) }
    // Column j of A's factor holds R[0...j, j] in its first j+1 entries.
    var r = Matrix(rows: n, cols: n)
    at.storage.withUnsafeBufferPointer { src in
        r.withUnsafeMutableBufferPointer { dst in
            for j in 0..<n { for i in 0...j { dst[j * n + i] = src[j * m + i] } }
        }
    }
    return r
}

/// The thin SVD of `a` (LAPACK `sgesdd` with JOBZ = S).
/// - Throws: as ``singularValues(_:)``.
public func thinSVD(_ a: Matrix) throws -> SVD {
    let k = min(a.rows, a.cols)
    if k == 0 {
        return SVD(u: Matrix(rows: a.rows, cols: 0), singularValues: [], vt: Matrix(rows: 0, cols: a.cols))
    }
    let r = try sgesdd(a, jobz: UInt8(ascii: "S"), routine: "sgesdd")
    return SVD(u: try Matrix(rows: a.rows, cols: k, storage: r.u),
               singularValues: r.s,
               vt: try Matrix(rows: k, cols: a.cols, storage: r.vt))
}

/// Eigenvalues (and optionally eigenvectors) of a symmetric matrix, through LAPACK `ssyevd`.
///
/// Only the upper triangle of `a` (row-major) is read.
/// - Parameter vectors: whether to compute eigenvectors.
/// - Throws: ``LinearAlgebraError/shapeMismatch(operation:detail:)`` when `a` is not square,
///   and as ``singularValues(_:)``.
public func symmetricEigen(_ a: Matrix, vectors: Bool = true) throws -> SymmetricEigen {
    guard a.rows == a.cols else {
        throw LinearAlgebraError.shapeMismatch(operation: "ssyevd", detail: "matrix is \(a.rows)x\(a.cols), not square")
    }
    let (n32, _) = try checkedForLAPACK(a, "ssyevd")
    let n = Int(n32)
    if n == 0 { return SymmetricEigen(values: [], vectors: Matrix(rows: 0, cols: 0)) }
    // Row-major upper triangle = column-major lower triangle.
    let jobz = CChar(bitPattern: vectors ? UInt8(ascii: "V") : UInt8(ascii: "N"))
    let uplo = CChar(bitPattern: UInt8(ascii: "L"))
    var buf = a.storage
    var w = [Float](repeating: 0, count: n)
    var wq: Float = 0
    var iq: Int32 = 0
    var info = buf.withUnsafeMutableBufferPointer { p in
        LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, jobz, uplo, n32, p.baseAddress, n32, &w, &wq, -1, &iq, -1)
    }
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: "ssyevd", info: info) }
    let lwork = workspaceSize(wq), liwork = Int(max(iq, 1))
    guard lwork <= Int(Int32.max) else {
        throw LinearAlgebraError.invalidArgument(operation: "ssyevd", detail: "workspace of \(lwork) floats")
    }
    var work = [Float](repeating: 0, count: lwork)
    var iwork = [Int32](repeating: 0, count: liwork)
    info = buf.withUnsafeMutableBufferPointer { p in
        LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, jobz, uplo, n32, p.baseAddress, n32, &w, &work, Int32(lwork),
                            &iwork, Int32(liwork))
    }
    guard info == 0 else { throw LinearAlgebraError.lapack(routine: "ssyevd", info: info) }
    // LAPACK: ascending values; column j (column-major) = row j of our buffer = eigenvector j.
    let values = Array(w.reversed())
    guard vectors else { return SymmetricEigen(values: values, vectors: Matrix(rows: 0, cols: 0)) }
    var v = Matrix(rows: n, cols: n)
    buf.withUnsafeBufferPointer { src in
        v.storage.withUnsafeMutableBufferPointer { dst in
            for c in 0..<n {
                let j = n - 1 - c
                for i in 0..<n { dst[i * n + c] = src[j * n + i] }
            }
        }
    }
    return SymmetricEigen(values: values, vectors: v)
}
