import Foundation
import Testing
import LinearAlgebra
@testable import KVCompression

@Suite struct CalibrationTests {
    @Test func packedGramRoundTripKeepsFP16Precision() throws {
        // A Gram far above fp16's range (entries ~ 1e6): packing must scale, not overflow.
        let k = Matrix.gaussian(rows: 4000, cols: 24, seed: 3)
        var big = k
        big.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] *= 16 } }
        let g = try gram(big)
        let packed = try PackedGram(packing: g)
        #expect(packed.upper.count == 24 * 25 / 2)
        #expect(packed.upper.count == PackedGram.elementCount(size: 24))
        let maxAbs = g.storage.reduce(Float(0)) { max($0, abs($1)) }
        let ratio = maxAbs / packed.scale
        #expect(ratio >= 8192 && ratio < 16384)
        #expect(packed.scale.significandBitPattern == 0, "scale is a power of two")
        let back = packed.unpacked()
        for i in 0..<24 {
            for j in 0..<24 {
                #expect(back[i, j] == back[j, i])
                // fp16 relative precision 2⁻¹¹ (round to nearest: half of that), for normal values.
                #expect(abs(back[i, j] - g[i, j]) <= abs(g[i, j]) * 4.9e-4 + maxAbs * 1e-7)
            }
        }
        // Element order: row-major upper triangle, so element 1 is (0,1) and element 24 is (1,1).
        #expect(HalfPrecision.floatFromHalf(packed.upper[1]) * packed.scale == back[0, 1])
        #expect(HalfPrecision.floatFromHalf(packed.upper[24]) * packed.scale == back[1, 1])
        // The spectrum survives: top singular values within fp16 precision.
        let s0 = try Spectrum(gram: g, rows: 4000), s1 = try Spectrum(gram: back, rows: 4000)
        #expect(abs(s0.singularValues[0] - s1.singularValues[0]) <= 1e-3 * s0.singularValues[0])
    }

    @Test func packedGramEdgeCases() throws {
        let zero = try PackedGram(packing: Matrix(rows: 3, cols: 3))
        #expect(zero.scale == 1 && zero.unpacked() == Matrix(rows: 3, cols: 3))
        #expect(throws: KVCompressionError.self) { try PackedGram(packing: Matrix(rows: 2, cols: 3)) }
        #expect(throws: KVCompressionError.self) { try PackedGram(size: 3, scale: 1, upper: [0, 0, 0]) }
        #expect(throws: KVCompressionError.self) { try PackedGram(size: 1, scale: 0, upper: [0]) }
        let empty = try PackedGram(packing: Matrix(rows: 0, cols: 0))
        #expect(empty.upper.isEmpty)
    }

    static func chunks(_ total: Int, _ size: Int) -> [Range<Int>] {
        stride(from: 0, to: total, by: size).map { $0..<min($0 + size, total) }
    }

    static func rows(_ m: Matrix, _ r: Range<Int>) throws -> Matrix {
        try Matrix(rows: r.count, cols: m.cols, storage: Array(m.storage[(r.lowerBound * m.cols)..<(r.upperBound * m.cols)]))
    }

    static func run(chunk: Int, x: [Matrix], k: [Matrix], v: [Matrix], sampleCount: Int) throws -> CalibrationStatistics {
        var acc = try CalibrationAccumulator(layerCount: x.count, hiddenSize: x[0].cols, kvSize: k[0].cols,
                                             sampleCount: sampleCount, seed: 42)
        for range in chunks(x[0].rows, chunk) {
            for layer in 0..<x.count {
                try acc.addAttention(layer: layer, inputs: try rows(x[layer], range), keys: try rows(k[layer], range),
                                     values: try rows(v[layer], range), keysPostRoPE: try rows(k[layer], range))
            }
        }
        return try acc.finalize(textSHA256: "abc")
    }

    @Test func accumulatorMatchesDirectSumsAndIgnoresChunking() throws {
        let t = 700
        let x = (0..<2).map { Matrix.gaussian(rows: t, cols: 20, seed: 10 + UInt64($0)) }
        let k = (0..<2).map { Matrix.gaussian(rows: t, cols: 8, seed: 20 + UInt64($0)) }
        let v = (0..<2).map { Matrix.gaussian(rows: t, cols: 8, seed: 30 + UInt64($0)) }
        let a = try Self.run(chunk: 37, x: x, k: k, v: v, sampleCount: 50)
        let b = try Self.run(chunk: 700, x: x, k: k, v: v, sampleCount: 50)
        #expect(a.tokenCount == t && a.textSHA256 == "abc")
        #expect(a.sampleTokenIndices == b.sampleTokenIndices)
        #expect(a.sampleTokenIndices.count == 50)
        #expect(a.sampleTokenIndices == a.sampleTokenIndices.sorted())
        for layer in 0..<2 {
            let la = a.layers[layer], lb = b.layers[layer]
            // Grams against a Double reference.
            for (got, source) in [(la.keyGram, k[layer]), (la.valueGram, v[layer]), (la.attentionInput?.gram ?? Matrix(rows: 0, cols: 0), x[layer])] {
                let n = source.cols
                try #require(got.rows == n)
                for i in 0..<n {
                    for j in 0..<n {
                        let ref = (0..<t).reduce(0.0) { $0 + Double(source[$1, i]) * Double(source[$1, j]) }
                        #expect(abs(Double(got[i, j]) - ref) <= 1e-5 * Double(t))
                    }
                }
            }
            #expect(la.keyGramPostRoPE == la.keyGram)
            let mean = meanAbs(x[layer])
            for (got, want) in zip(la.attentionInput?.meanAbs ?? [], mean) { #expect(abs(got - want) <= 1e-5) }
            // Chunking changes nothing beyond Float rounding of the block sums.
            #expect(la.keyGram.relativeFrobeniusDistance(to: lb.keyGram) < 1e-6)
            // Sampled rows are the rows of the sampled tokens, for every layer.
            for (row, token) in a.sampleTokenIndices.enumerated() {
                #expect(la.sampleInputs.row(row) == x[layer].row(token))
                #expect(la.sampleKeys.row(row) == k[layer].row(token))
                #expect(la.sampleValues.row(row) == v[layer].row(token))
            }
        }
    }

    @Test func accumulatorRejectsBadInput() throws {
        var acc = try CalibrationAccumulator(layerCount: 2, hiddenSize: 4, kvSize: 2, sampleCount: 4)
        #expect(throws: KVCompressionError.self) {
            try acc.addAttention(layer: 2, inputs: Matrix(rows: 1, cols: 4), keys: Matrix(rows: 1, cols: 2), values: Matrix(rows: 1, cols: 2))
        }
        #expect(throws: KVCompressionError.self) {
            try acc.addAttention(layer: 0, inputs: Matrix(rows: 1, cols: 5), keys: Matrix(rows: 1, cols: 2), values: Matrix(rows: 1, cols: 2))
        }
        var nan = Matrix(rows: 1, cols: 4)
        nan[0, 0] = .nan
        #expect(throws: KVCompressionError.self) {
            try acc.addAttention(layer: 0, inputs: nan, keys: Matrix(rows: 1, cols: 2), values: Matrix(rows: 1, cols: 2))
        }
        try acc.addAttention(layer: 0, inputs: Matrix(rows: 3, cols: 4), keys: Matrix(rows: 3, cols: 2), values: Matrix(rows: 3, cols: 2))
        // Layer 1 saw no tokens: finalize refuses.
        #expect(throws: KVCompressionError.self) { try acc.finalize(textSHA256: "") }
        try acc.addInput(.ffnHidden, layer: 0, rows: Matrix(rows: 2, cols: 6))
        #expect(throws: KVCompressionError.self) { try acc.addInput(.ffnHidden, layer: 0, rows: Matrix(rows: 2, cols: 7)) }
    }

    @Test func otherMatrixInputsAreCollected() throws {
        var acc = try CalibrationAccumulator(layerCount: 1, hiddenSize: 4, kvSize: 2, sampleCount: 0, keepInputGram: false)
        let h = Matrix.gaussian(rows: 10, cols: 6, seed: 5)
        try acc.addAttention(layer: 0, inputs: Matrix.gaussian(rows: 10, cols: 4, seed: 6), keys: Matrix(rows: 10, cols: 2),
                             values: Matrix(rows: 10, cols: 2))
        try acc.addInput(.ffnHidden, layer: 0, rows: h)
        let stats = try acc.finalize(textSHA256: "")
        let layer = stats.layers[0]
        #expect(layer.attentionInput?.gram == nil)
        #expect(layer.attentionInput?.meanAbs.count == 4)
        #expect(layer.keyGramPostRoPE == nil)
        #expect(layer.sampleInputs.rows == 0)
        let hidden = try #require(layer.inputs[.ffnHidden]?.gram)
        #expect(hidden.relativeFrobeniusDistance(to: try gram(h)) < 1e-6)
    }
}
