import Foundation
import LinearAlgebra
@testable import KVCompression

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A golden JSON file under Tests/Golden/kv.
func loadGolden(_ name: String) throws -> [String: Any] {
    let url = repositoryRoot.appendingPathComponent("Tests/Golden/kv/\(name)")
    let data = try Data(contentsOf: url)
    guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw KVCompressionError.invalidArgument("\(url.path): not a JSON object")
    }
    return object
}

/// JSON number arrays as [Double].
func doubles(_ value: Any?) -> [Double] { (value as? [Any])?.compactMap { ($0 as? NSNumber)?.doubleValue } ?? [] }

// MARK: - The shared formula of Tests/Reference/kv_golden.py

/// wave(i, j, s) = sin(0.5 + 1.618 s + 0.7 i (1 + 0.1 s) + 1.3 j + 1.1 i j), in Double with libm's sin.
func wave(_ i: Int, _ j: Int, _ s: Double) -> Double {
    let (x, y) = (Double(i), Double(j))
    let a = 0.5 + 1.618 * s + 0.7 * x * (1 + 0.1 * s)
    return sin(a + 1.3 * y + 1.1 * x * y)
}

/// plain(rows, cols, s) of kv_golden.py.
func plainMatrix(_ rows: Int, _ cols: Int, _ s: Double) -> Matrix {
    var m = Matrix(rows: rows, cols: cols)
    for i in 0..<rows {
        for j in 0..<cols {
            var sum = 0.0
            for q in 0..<6 { sum += pow(0.6, Double(q)) * wave(i, q, s) * wave(q, j, s + 0.5) }
            sum += 0.1 * wave(i, j, s + 0.25)
            m[i, j] = Float(sum)
        }
    }
    return m
}

/// X [T, d] and W [d_kv, d] of kv_golden.py.
func goldenInputs(tokens: Int = 256, hidden: Int = 64, kvSize: Int = 32) -> (x: Matrix, w: Matrix) {
    var x = Matrix(rows: tokens, cols: hidden)
    for t in 0..<tokens {
        for c in 0..<hidden { x[t, c] = Float(wave(t, c, 11) * (c % 7 == 0 ? 3 : 1)) }
    }
    var w = Matrix(rows: kvSize, cols: hidden)
    for i in 0..<kvSize {
        for c in 0..<hidden {
            var sum = 0.0
            for q in 0..<8 { sum += wave(i, q, 21) * wave(q, c, 22) }
            w[i, c] = Float(sum / 8 + 0.05 * wave(i, c, 23))
        }
    }
    return (x, w)
}

/// XᵀX (or KᵀK) computed directly.
func gram(_ m: Matrix) throws -> Matrix { try matmul(m, .transpose, m, .none) }

/// mean over rows of |x| per column.
func meanAbs(_ m: Matrix) -> [Float] {
    (0..<m.cols).map { c in Float((0..<m.rows).reduce(0.0) { $0 + Double(abs(m[$1, c])) } / Double(m.rows)) }
}

/// Synthetic K = X Wᵀ with an input of decaying channel scales and a low-ish rank W, from Gaussian seeds.
func syntheticLayer(tokens: Int, hidden: Int, kvSize: Int, innerRank: Int, seed: UInt64) throws -> (x: Matrix, w: Matrix, k: Matrix) {
    var x = Matrix.gaussian(rows: tokens, cols: hidden, seed: seed)
    for t in 0..<tokens {
        for c in 0..<hidden { x[t, c] *= Float(1 + 4 * exp(-Double(c) / 8)) }
    }
    let left = Matrix.gaussian(rows: kvSize, cols: innerRank, seed: seed + 1)
    let right = Matrix.gaussian(rows: innerRank, cols: hidden, seed: seed + 2)
    var w = try matmul(left, .none, right, .none)
    let noise = Matrix.gaussian(rows: kvSize, cols: hidden, seed: seed + 3)
    w.withUnsafeMutableBufferPointer { p in
        for i in 0..<p.count { p[i] = p[i] / Float(innerRank) + 0.05 * noise.storage[i] }
    }
    let k = try matmul(x, .none, w, .transpose)
    return (x, w, k)
}

/// ‖K − K U_r U_rᵀ‖_F / ‖K‖_F by explicit reconstruction.
func explicitProjectionError(_ k: Matrix, _ basis: ProjectionBasis, rank: Int) throws -> Double {
    let ur = try basis.columns(rank)
    let kHat = try matmul(try matmul(k, .none, ur, .none), .none, ur, .transpose)
    return kHat.relativeFrobeniusDistance(to: k)
}
