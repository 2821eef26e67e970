import Foundation
@testable import Inference
import LinearAlgebra
import Testing

/// The blockwise bi-branch attention against a direct double loop of DESIGN.md §4's rule (query t
/// reads exact K/V at s > t − w and K̂/V̂ at s ≤ t − w), in Double, on sequences longer than one
/// attention block, with both branches, K̂ alone and V̂ alone.
@Suite struct AttentionTests {
    static func random(_ rows: Int, _ cols: Int, _ g: inout SeededGenerator) -> Matrix {
        var m = Matrix(rows: rows, cols: cols)
        m.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = g.nextGaussian() } }
        return m
    }

    /// out[t, head] = Σ_s p(t, s) · value(s), p = softmax over s ≤ t of q·key(s)/√hd.
    static func naive(q: Matrix, k: Matrix, v: Matrix, kHat: Matrix?, vHat: Matrix?, window: Int,
                      heads: Int, kvHeads: Int, hd: Int) -> [Double] {
        let T = q.rows, group = heads / kvHeads
        var out = [Double](repeating: 0, count: T * heads * hd)
        for t in 0..<T {
            for h in 0..<heads {
                let g = h / group
                var scores = [Double](repeating: 0, count: t + 1)
                for s in 0...t {
                    let key = (s <= t - window) ? (kHat ?? k) : k
                    var dot = 0.0
                    for i in 0..<hd { dot += Double(q[t, h * hd + i]) * Double(key[s, g * hd + i]) }
                    scores[s] = dot / Double(hd).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { Foundation.exp($0 - m) }
                let sum = e.reduce(0, +)
                for s in 0...t {
                    let value = (s <= t - window) ? (vHat ?? v) : v
                    for i in 0..<hd { out[(t * heads + h) * hd + i] += e[s] / sum * Double(value[s, g * hd + i]) }
                }
            }
        }
        return out
    }

    @Test(arguments: [0, 1, 32, 70], [0, 1, 2])
    func blockwiseEqualsTheDirectRule(window: Int, branches: Int) throws {
        let model = try TransformerModel(weights: loadRawModel(TinyGolden.directory, style: .rotateHalf))
        let c = model.configuration
        var g = SeededGenerator(seed: UInt64(17 + window * 3 + branches))
        let T = 150  // more than two blocks of 64 queries
        let q = Self.random(T, c.queryDimension, &g), k = Self.random(T, c.kvDimension, &g), v = Self.random(T, c.kvDimension, &g)
        let kh = Self.random(T, c.kvDimension, &g), vh = Self.random(T, c.kvDimension, &g)
        let kHat: Matrix? = branches != 2 ? kh : nil   // 0: both, 1: K̂ only, 2: V̂ only
        let vHat: Matrix? = branches != 1 ? vh : nil
        let out = try model.attend(queries: q, keys: k, values: v, keysHat: kHat, valuesHat: vHat, window: window, cancellation: nil)
        let expected = Self.naive(q: q, k: k, v: v, kHat: kHat, vHat: vHat, window: window,
                                  heads: c.headCount, kvHeads: c.kvHeadCount, hd: c.headDimension)
        var worst = 0.0
        for i in expected.indices { worst = max(worst, abs(Double(out.storage[i]) - expected[i])) }
        #expect(worst < 1e-4, "window \(window), branches \(branches): max error \(worst)")
    }
}
