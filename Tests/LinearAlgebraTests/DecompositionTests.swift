import Testing
import LinearAlgebra

struct GoldenFile: Decodable {
    struct SVDCase: Decodable {
        let name: String
        let rows: Int
        let cols: Int
        let data: [Float]
        let singular_values: [Double]
    }
    struct SymmetricCase: Decodable {
        let n: Int
        let data: [Float]
        let eigenvalues: [Double]
    }
    let svd: [SVDCase]
    let symmetric: [SymmetricCase]
}

@Suite struct SingularValueTests {
    @Test func diagonalMatrixGivesSortedAbsoluteDiagonal() throws {
        let a = Matrix.diagonal([3, -7, 0.5, 2], rows: 4, cols: 4)
        let s = try singularValues(a)
        #expect(s == [7, 3, 2, 0.5])
    }

    @Test func rankDeficientMatrixHasZeroTail() throws {
        // Outer product of two vectors: rank 1.
        let u: [Float] = [1, 2, 3, 4, 5]
        let v: [Float] = [1, -1, 2]
        var a = Matrix(rows: 5, cols: 3)
        for i in 0..<5 { for j in 0..<3 { a[i, j] = u[i] * v[j] } }
        let s = try singularValues(a)
        let expected: Float = (55 as Float).squareRoot() * (6 as Float).squareRoot()
        #expect(abs(s[0] - expected) / expected < 1e-6)
        #expect(s[1] < 1e-5 * s[0])
        #expect(s[2] < 1e-5 * s[0])
    }

    @Test(arguments: [(1, 1), (40, 9), (9, 40), (33, 33)])
    func thinSVDReconstructsWithOrthonormalFactors(rows: Int, cols: Int) throws {
        let a = Matrix.gaussian(rows: rows, cols: cols, seed: UInt64(rows * 1000 + cols))
        let svd = try thinSVD(a)
        let k = min(rows, cols)
        #expect(svd.u.rows == rows && svd.u.cols == k)
        #expect(svd.vt.rows == k && svd.vt.cols == cols)
        let utu = try matmul(svd.u, .transpose, svd.u)
        let vvt = try matmul(svd.vt, .none, svd.vt, .transpose)
        #expect(maxAbsDifference(utu, .identity(k)) < 1e-5)
        #expect(maxAbsDifference(vvt, .identity(k)) < 1e-5)
        let relative = try reconstruct(svd).relativeFrobeniusDistance(to: a)
        #expect(relative < 5e-6)
        #expect(svd.singularValues == svd.singularValues.sorted(by: >))
    }

    @Test func allZeroMatrix() throws {
        let a = Matrix(rows: 6, cols: 4)
        #expect(try singularValues(a) == [0, 0, 0, 0])
        let svd = try thinSVD(a)
        #expect(svd.singularValues == [0, 0, 0, 0])
        #expect(try reconstruct(svd) == a)
    }

    @Test(arguments: [(300, 40), (90, 60), (40, 300)])
    func everyOrientationAgreesWithTheThinSVD(rows: Int, cols: Int) throws {
        // Tall (QR first), moderately tall (transposed) and wide inputs take different LAPACK paths.
        let a = Matrix.gaussian(rows: rows, cols: cols, seed: UInt64(rows + cols))
        let fast = try singularValues(a), reference = try thinSVD(a).singularValues
        #expect(fast.count == min(rows, cols))
        for (x, y) in zip(fast, reference) { #expect(abs(x - y) <= 2e-5 * reference[0]) }
        var tallNaN = Matrix(rows: 300, cols: 40, repeating: 1)
        tallNaN[299, 39] = .nan
        #expect(throws: LinearAlgebraError.nonFiniteInput(operation: "sgesdd")) { try singularValues(tallNaN) }
    }

    /// The tiled transpose, on shapes that end inside a 32×32 tile and on empty ones.
    @Test(arguments: [(1, 1), (31, 33), (70, 37), (64, 32), (0, 5), (5, 0), (1, 100)])
    func transposeMovesEveryElement(rows: Int, cols: Int) {
        let a = Matrix.gaussian(rows: rows, cols: cols, seed: UInt64(7 * rows + cols))
        let t = a.transposed
        #expect(t.rows == cols && t.cols == rows)
        for i in 0..<rows { for j in 0..<cols { #expect(t[j, i] == a[i, j]) } }
        #expect(t.transposed == a)
    }

    @Test func emptyMatrixHasNoSingularValues() throws {
        #expect(try singularValues(Matrix(rows: 0, cols: 5)).isEmpty)
    }

    @Test func nonFiniteInputIsRejectedBeforeLAPACK() throws {
        var a = Matrix(rows: 3, cols: 3, repeating: 1)
        a[1, 2] = .nan
        #expect(throws: LinearAlgebraError.nonFiniteInput(operation: "sgesdd")) { try singularValues(a) }
        a[1, 2] = .infinity
        #expect(throws: LinearAlgebraError.nonFiniteInput(operation: "sgesdd")) { try thinSVD(a) }
    }

    @Test func singularValuesMatchNumpy() throws {
        let file = try golden("linalg/golden.json", as: GoldenFile.self)
        #expect(file.svd.count == 5)
        for c in file.svd {
            let a = try Matrix(rows: c.rows, cols: c.cols, storage: c.data)
            let s = try singularValues(a)
            #expect(s.count == c.singular_values.count, "\(c.name)")
            let scale = c.singular_values[0]
            for (mine, ref) in zip(s, c.singular_values) {
                #expect(abs(Double(mine) - ref) <= 1e-5 * scale, "\(c.name): \(mine) vs \(ref)")
            }
            // The thin SVD agrees with the values-only path.
            let full = try thinSVD(a).singularValues
            for (x, y) in zip(full, s) { #expect(abs(x - y) <= 1e-5 * Float(scale)) }
        }
    }
}

@Suite struct SymmetricEigenTests {
    @Test func eigenvaluesMatchNumpy() throws {
        let file = try golden("linalg/golden.json", as: GoldenFile.self)
        #expect(file.symmetric.count == 3)
        for c in file.symmetric {
            let g = try Matrix(rows: c.n, cols: c.n, storage: c.data)
            let e = try symmetricEigen(g)
            let scale = c.eigenvalues[0]
            for (mine, ref) in zip(e.values, c.eigenvalues) {
                #expect(abs(Double(mine) - ref) <= 2e-5 * scale, "n=\(c.n): \(mine) vs \(ref)")
            }
            // G·v = λ·v for every pair, and V is orthonormal.
            let gv = try matmul(g, e.vectors)
            var lv = e.vectors
            for i in 0..<c.n { for j in 0..<c.n { lv[i, j] *= e.values[j] } }
            #expect(maxAbsDifference(gv, lv) <= 1e-4 * Float(scale))
            #expect(maxAbsDifference(try matmul(e.vectors, .transpose, e.vectors), .identity(c.n)) < 1e-5)
            #expect(try symmetricEigen(g, vectors: false).values.count == c.n)
        }
    }

    @Test func onlyTheUpperTriangleIsRead() throws {
        let full = try Matrix([[2, 1, 0], [1, 3, 1], [0, 1, 4]])
        var upper = full
        upper[1, 0] = 99; upper[2, 0] = -99; upper[2, 1] = 7
        let a = try symmetricEigen(full, vectors: false).values
        let b = try symmetricEigen(upper, vectors: false).values
        #expect(a == b)
    }

    @Test func nonSquareIsAShapeError() {
        #expect(throws: LinearAlgebraError.self) { try symmetricEigen(Matrix(rows: 2, cols: 3)) }
    }
}

@Suite struct ProductTests {
    @Test(arguments: [Transpose.none, .transpose])
    func gemmMatchesNaiveProduct(transB: Transpose) throws {
        let a = Matrix.gaussian(rows: 7, cols: 5, seed: 1)
        let b = transB == .none ? Matrix.gaussian(rows: 5, cols: 4, seed: 2) : Matrix.gaussian(rows: 4, cols: 5, seed: 2)
        let c = try matmul(a, .none, b, transB)
        var naive = Matrix(rows: 7, cols: 4)
        for i in 0..<7 { for j in 0..<4 {
            var s: Float = 0
            for k in 0..<5 { s += a[i, k] * (transB == .none ? b[k, j] : b[j, k]) }
            naive[i, j] = s
        } }
        #expect(maxAbsDifference(c, naive) < 1e-5)
        let y = try matvec(a, .transpose, [1, 2, 3, 4, 5, 6, 7])
        for j in 0..<5 {
            var s: Float = 0
            for i in 0..<7 { s += a[i, j] * Float(i + 1) }
            #expect(abs(y[j] - s) < 1e-4)
        }
    }

    @Test func mismatchedShapesThrow() {
        let a = Matrix(rows: 2, cols: 3), b = Matrix(rows: 2, cols: 3)
        #expect(throws: LinearAlgebraError.self) { try matmul(a, b) }
        #expect(throws: LinearAlgebraError.self) { try matvec(a, [1, 2]) }
        #expect(throws: LinearAlgebraError.self) { try Matrix(rows: 2, cols: 2, storage: [1, 2, 3]) }
    }
}
