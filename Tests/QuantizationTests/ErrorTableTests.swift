import Foundation
import LinearAlgebra
import Testing
@testable import Quantization

@Suite struct ErrorTableTests {
    let choices = ErrorTableChoices(bits: [2, 3, 4, 8], groupSizes: [32, nil], outlierFractions: [0, 0.01])

    @Test func outputErrorFromGramEqualsExplicitProduct() throws {
        let w = Matrix.gaussian(rows: 24, cols: 80, seed: 1)
        let x = Matrix.gaussian(rows: 50, cols: 80, seed: 2)
        let gram = try matmul(x, .transpose, x, .none)
        let table = try ErrorTable.compute(ErrorTableInput(name: "w", weights: w, gram: gram), choices: choices)
        let outputs = try #require(table.outputErrors)
        for i in 0..<choices.count {
            let scheme = try choices.scheme(at: i)
            let delta = w - (try scheme.fakeQuantize(w))
            let explicit = try matmul(x, .none, delta, .transpose).frobeniusNormSquared  // ‖X(W − Ŵ)ᵀ‖²
            #expect(abs(outputs[i] - explicit) <= 1e-4 * explicit, "choice \(i): \(outputs[i]) vs \(explicit)")
        }
    }

    @Test func entriesMatchTheSchemes() throws {
        let w = Matrix.gaussian(rows: 16, cols: 100, seed: 3)
        let table = try ErrorTable.compute(ErrorTableInput(name: "w", weights: w), choices: choices)
        #expect(table.outputErrors == nil)
        for i in 0..<choices.count {
            let scheme = try choices.scheme(at: i)
            let fake = try scheme.fakeQuantize(w)
            let expected = fake.relativeFrobeniusDistance(to: w)
            #expect(abs(table.relativeErrors[i] - expected) <= 1e-9 * expected)
            #expect(table.bytes[i] == scheme.bytes(rows: 16, cols: 100))
        }
        let e = try #require(table.entry(bits: 3, groupSize: nil, outlierFraction: 0.01))
        let bytes: Double = 16 * 100 * 3 / 8 + 16 * 4 + (16 * 4 + 4 * 17)  // codes + metadata + 16 outliers, 17 row pointers
        #expect(e.bytes == bytes)
        #expect(table.entry(bits: 5, groupSize: 32, outlierFraction: 0) == nil)
        // More bits never hurt on this matrix.
        #expect(table.entry(bits: 8, groupSize: 32, outlierFraction: 0)!.relativeError
                < table.entry(bits: 2, groupSize: 32, outlierFraction: 0)!.relativeError)
    }

    @Test func cacheComputesInParallelEncodesAndCancels() throws {
        let inputs = (0..<6).map { ErrorTableInput(name: "m\($0)", weights: Matrix.gaussian(rows: 8, cols: 64, seed: UInt64($0))) }
        let cache = ErrorTableCache()
        let counter = Counter()
        let tables = try cache.tables(for: inputs, choices: choices, progress: { _, _ in counter.increment() })
        #expect(tables.map(\.name) == inputs.map(\.name))
        #expect(counter.value == 6)
        #expect(cache.table(named: "m3", choices: choices) == tables[3])
        let decoded = try ErrorTableCache(decoding: cache.encoded())
        #expect(decoded.table(named: "m5", choices: choices) == tables[5])
        let fresh = ErrorTableCache()
        #expect(throws: QuantizationError.cancelled) {
            try fresh.tables(for: inputs, choices: choices, isCancelled: { true })
        }
        #expect(throws: QuantizationError.self) {
            try ErrorTable.compute(ErrorTableInput(name: "bad", weights: inputs[0].weights, gram: Matrix.identity(3)), choices: choices)
        }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

@Suite struct QuantizerEdgeCaseTests {
    @Test func nonFiniteIsRejectedEverywhere() throws {
        let scheme = try QuantizationScheme(bits: 4, groupSize: 32)
        for bad in [Float.nan, .infinity, -.infinity] {
            var w = Matrix.gaussian(rows: 2, cols: 40, seed: 1)
            w[1, 7] = bad
            #expect(throws: QuantizationError.nonFinite) { try scheme.fakeQuantize(w) }
            #expect(throws: QuantizationError.nonFinite) { try scheme.pack(w) }
            #expect(throws: QuantizationError.nonFinite) { try scheme.quantizer.codes(w.storage, rowLength: 40) }
            #expect(throws: QuantizationError.nonFinite) {
                try ErrorTable.compute(ErrorTableInput(name: "w", weights: w), choices: ErrorTableChoices())
            }
        }
    }

    @Test func constantGroupIsExactPackedToo() throws {
        let w = try Matrix(rows: 1, cols: 64, storage: [Float](repeating: 0.25, count: 32) + [Float](repeating: -3, count: 32))
        let packed = try QuantizationScheme(bits: 2, groupSize: 32).pack(w)
        #expect(packed.dequantized() == w)  // 0.25 and −3 are exact in fp16
        #expect(try QuantizationScheme(bits: 2, groupSize: 32).fakeQuantize(w) == w)
    }

    @Test func eightBitSymmetricExact() throws {
        // max|x| = 127 → scale 1: every integer in −127…127 is exact, codes are the integers.
        let values = (-127...127).map { Float($0) }
        let q = try UniformQuantizer(bits: 8, groupSize: nil, mode: .symmetric)
        #expect(try q.codes(values, rowLength: values.count) == (-127...127).map { Int32($0) })
        var v = values
        try q.fakeQuantize(&v, rowLength: v.count)
        #expect(v == values)
    }

    @Test func codesFollowTheDesignFormula() throws {
        // 3 bits, min −1, max 6 → scale 1: q = round(x + 1) half to even, clamped to 0…7.
        let q = try UniformQuantizer(bits: 3, groupSize: nil)
        #expect(try q.codes([-1, 6, 0.5, 1.5, -0.5, 2.49], rowLength: 6) == [0, 7, 2, 2, 0, 3])
    }

    @Test func outliersAreLeftOutOfGroupRangesAndTiesBreakByIndex() throws {
        // 10 entries, p = 0.2 → 2 outliers: |−9| first, then the tie |5| = |−5| goes to the lower index (2).
        let w = try Matrix(rows: 1, cols: 10, storage: [0, 1, 5, 2, -9, 3, -5, 1, 2, 0.5])
        let scheme = try QuantizationScheme(bits: 2, groupSize: nil, outlierFraction: 0.2)
        let packed = try scheme.pack(w)
        #expect(packed.outliers.columns == [2, 4])
        #expect(packed.outliers.rowPointers == [0, 2])
        // Remaining range: min −5, max 3 → scale 8/3.
        let fake = try scheme.fakeQuantize(w)
        #expect(fake[0, 2] == 5 && fake[0, 4] == -9)
        #expect(fake[0, 6] == -5 && fake[0, 5] == 3)
        let ranking = w.withUnsafeBufferPointer { OutlierRanking(values: $0, maximumCount: 4) }
        #expect(ranking.order == [4, 2, 6, 5])
    }

    @Test func byteAccountingHandCases() throws {
        // 4-bit g128 asymmetric, 4096×4096, no outliers: n/2 + 32 groups × 4096 rows × 4 bytes.
        let s = try QuantizationScheme(bits: 4, groupSize: 128)
        let expected: Double = 4096 * 4096 / 2 + 4096 * 32 * 4
        #expect(s.bytes(rows: 4096, cols: 4096) == expected)
        #expect(s.bitsPerWeight(rows: 4096, cols: 4096) == 4.25)
        // Symmetric: 2-byte metadata. 3 bits, g64, 10×100 → 2 groups a row (last one 36 wide).
        let sym = try QuantizationScheme(bits: 3, groupSize: 64, mode: .symmetric)
        #expect(sym.bytes(rows: 10, cols: 100) == 375 + 10 * 2 * 2)
        // Outliers: p = 1% of 100×200 = 200 entries × (2 + 2) + 4·101 row pointers.
        let o = try QuantizationScheme(bits: 2, groupSize: nil, outlierFraction: 0.01)
        #expect(o.bytes(rows: 100, cols: 200) == 5000 + 400 + 800 + 404)
        // Rows longer than 65,536 use 4-byte column indices; exactly 65,536 still fits 2 bytes.
        #expect(OutlierTable.bytes(count: 10, rows: 2, cols: 65_537) == 60 + 12)
        #expect(OutlierTable.bytes(count: 10, rows: 2, cols: 65_536) == 40 + 12)
        #expect(OutlierTable.bytes(count: 0, rows: 2, cols: 10) == 0)
        // The packed matrix agrees with the scheme.
        let w = Matrix.gaussian(rows: 100, cols: 200, seed: 4)
        #expect(try o.pack(w).bytes == o.bytes(rows: 100, cols: 200))
        #expect(throws: QuantizationError.invalidOutlierFraction(1)) { try QuantizationScheme(bits: 4, groupSize: 32, outlierFraction: 1) }
    }

    @Test func perTokenKVQuantization() throws {
        var k = Matrix.gaussian(rows: 5, cols: 64, seed: 9)
        let original = k
        let q = try UniformQuantizer(bits: 4, groupSize: 32)
        try q.fakeQuantizePerToken(&k)
        for t in 0..<5 {
            var row = original.row(t)
            try q.fakeQuantize(&row, rowLength: 64)
            #expect(k.row(t) == row)
        }
    }
}
