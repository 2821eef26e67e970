import CLapack

/// Whether an operand of a product is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transpose

    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// BLAS and LAPACK take 32-bit integers (LP64 OpenBLAS); refuse anything larger.
@inline(__always)
func blasInt(_ value: Int, _ operation: String) throws -> Int32 {
    guard value >= 0, value <= Int(Int32.max) else {
        throw LinearAlgebraError.invalidArgument(operation: operation, detail: "dimension \(value) exceeds 32-bit BLAS range")
    }
    return Int32(value)
}

/// C = alpha · op(A) · op(B) + beta · C, through `cblas_sgemm`.
///
/// - Parameters:
///   - a: left operand; used as Aᵀ when `transA == .transpose`.
///   - b: right operand; used as Bᵀ when `transB == .transpose`.
///   - c: the accumulator; its shape must be op(A).rows × op(B).cols.
/// - Throws: ``LinearAlgebraError/shapeMismatch(operation:detail:)`` on incompatible shapes.
public func gemm(_ a: Matrix, _ transA: Transpose = .none, _ b: Matrix, _ transB: Transpose = .none,
                 alpha: Float = 1, beta: Float = 0, into c: inout Matrix) throws {
    let (m, k) = transA == .none ? (a.rows, a.cols) : (a.cols, a.rows)
    let (kb, n) = transB == .none ? (b.rows, b.cols) : (b.cols, b.rows)
    guard k == kb, c.rows == m, c.cols == n else {
        throw LinearAlgebraError.shapeMismatch(
            operation: "gemm",
            detail: "op(A) \(m)x\(k) · op(B) \(kb)x\(n) into C \(c.rows)x\(c.cols)")
    }
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in c.storage.indices { c.storage[i] *= beta }
        return
    }
    let (m32, n32, k32) = (try blasInt(m, "gemm"), try blasInt(n, "gemm"), try blasInt(k, "gemm"))
    let lda = try blasInt(max(a.cols, 1), "gemm"), ldb = try blasInt(max(b.cols, 1), "gemm")
    a.storage.withUnsafeBufferPointer { pa in
        b.storage.withUnsafeBufferPointer { pb in
            c.storage.withUnsafeMutableBufferPointer { pc in
                cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, m32, n32, k32,
                            alpha, pa.baseAddress, lda, pb.baseAddress, ldb, beta, pc.baseAddress, n32)
            }
        }
    }
}

/// A · B as a new matrix.
public func matmul(_ a: Matrix, _ b: Matrix) throws -> Matrix {
    try matmul(a, .none, b, .none)
}

/// op(A) · op(B) as a new matrix.
public func matmul(_ a: Matrix, _ transA: Transpose, _ b: Matrix, _ transB: Transpose = .none) throws -> Matrix {
    let m = transA == .none ? a.rows : a.cols
    let n = transB == .none ? b.cols : b.rows
    var c = Matrix(rows: m, cols: n)
    try gemm(a, transA, b, transB, into: &c)
    return c
}

/// y = alpha · op(A) · x + beta · y, through `cblas_sgemv`.
/// - Throws: ``LinearAlgebraError/shapeMismatch(operation:detail:)`` on incompatible lengths.
public func gemv(_ a: Matrix, _ trans: Transpose = .none, _ x: [Float],
                 alpha: Float = 1, beta: Float = 0, into y: inout [Float]) throws {
    let (m, n) = trans == .none ? (a.rows, a.cols) : (a.cols, a.rows)
    guard x.count == n, y.count == m else {
        throw LinearAlgebraError.shapeMismatch(
            operation: "gemv", detail: "op(A) \(m)x\(n) · x[\(x.count)] into y[\(y.count)]")
    }
    if m == 0 { return }
    if n == 0 {
        for i in y.indices { y[i] *= beta }
        return
    }
    let rows = try blasInt(a.rows, "gemv"), cols = try blasInt(a.cols, "gemv")
    a.storage.withUnsafeBufferPointer { pa in
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                cblas_sgemv(CblasRowMajor, trans.cblas, rows, cols, alpha, pa.baseAddress, cols,
                            px.baseAddress, 1, beta, py.baseAddress, 1)
            }
        }
    }
}

/// A · x as a new vector.
public func matvec(_ a: Matrix, _ x: [Float]) throws -> [Float] {
    try matvec(a, .none, x)
}

/// op(A) · x as a new vector.
public func matvec(_ a: Matrix, _ trans: Transpose, _ x: [Float]) throws -> [Float] {
    var y = [Float](repeating: 0, count: trans == .none ? a.rows : a.cols)
    try gemv(a, trans, x, into: &y)
    return y
}

/// Raw row-major SGEMM over caller-owned buffers, for hot paths in engines that keep their own storage.
/// C[m×n] = alpha · op(A) · op(B) + beta · C with leading dimensions lda, ldb, ldc.
/// The caller guarantees the buffers are large enough; dimensions are checked for the 32-bit range.
public func gemmRaw(transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int, alpha: Float,
                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) throws {
    if m == 0 || n == 0 { return }
    let dims = try (blasInt(m, "gemm"), blasInt(n, "gemm"), blasInt(k, "gemm"))
    let lds = try (blasInt(lda, "gemm"), blasInt(ldb, "gemm"), blasInt(ldc, "gemm"))
    cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas, dims.0, dims.1, dims.2,
                alpha, a, lds.0, b, lds.1, beta, c, lds.2)
}

/// Raw row-major SGEMV over caller-owned buffers: y[m] = alpha · A[m×n] · x + beta · y (or Aᵀ).
public func gemvRaw(trans: Transpose, rows: Int, cols: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                    x: UnsafePointer<Float>, beta: Float, y: UnsafeMutablePointer<Float>) throws {
    if rows == 0 || cols == 0 { return }
    let r = try blasInt(rows, "gemv"), c = try blasInt(cols, "gemv"), l = try blasInt(lda, "gemv")
    cblas_sgemv(CblasRowMajor, trans.cblas, r, c, alpha, a, l, x, 1, beta, y, 1)
}

/// Number of threads OpenBLAS uses.
public var blasThreadCount: Int {
    get { Int(openblas_get_num_threads()) }
}

/// Sets the number of threads OpenBLAS uses (for benchmarks and for work that parallelizes above BLAS).
public func setBLASThreadCount(_ n: Int) {
    openblas_set_num_threads(Int32(max(1, n)))
}
