import Foundation
import LinearAlgebra

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// Reads a golden JSON file under Tests/Golden.
func golden<T: Decodable>(_ relativePath: String, as: T.Type) throws -> T {
    let url = repositoryRoot.appendingPathComponent("Tests/Golden").appendingPathComponent(relativePath)
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

/// max |a_ij − b_ij|.
func maxAbsDifference(_ a: Matrix, _ b: Matrix) -> Float {
    precondition(a.rows == b.rows && a.cols == b.cols)
    var m: Float = 0
    for i in 0..<a.storage.count { m = max(m, abs(a.storage[i] - b.storage[i])) }
    return m
}

/// U · diag(s) · Vᵀ.
func reconstruct(_ svd: SVD) throws -> Matrix {
    var us = svd.u
    for i in 0..<us.rows {
        for j in 0..<us.cols { us[i, j] *= svd.singularValues[j] }
    }
    return try matmul(us, svd.vt)
}
