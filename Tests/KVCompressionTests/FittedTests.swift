import Testing
import LinearAlgebra
@testable import KVCompression

@Suite struct FittedTests {
    static func layer() throws -> (x: Matrix, w: Matrix, k: Matrix) {
        try syntheticLayer(tokens: 512, hidden: 64, kvSize: 32, innerRank: 16, seed: 5)
    }

    /// b = 4, r = d_kv/4, g = 8: the loss decreases monotonically, starts at activations + PTQ, and ends lower.
    @Test func fittedLossDecreasesAndBeatsActivationsWithPTQ() throws {
        let l = try Self.layer()
        let start = try ProjectionBasis.activations(keyGram: try gram(l.k))
        let fitted = try fitFactors(weight: l.w, inputs: l.x, start: start, rank: 8, bits: 4, groupSize: 8,
                                    options: FittingOptions(steps: 60))
        let h = fitted.lossHistory
        #expect(h.count >= 3)
        for i in 1..<h.count { #expect(h[i] < h[i - 1], "loss rose at step \(i): \(h[i - 1]) → \(h[i])") }
        // Entry 0 is the activation basis followed by post-training quantization, as the error table computes it.
        let table = try quantizedKVErrors(basis: start, samples: l.k, bits: 4, groupSize: 8)
        #expect(abs(fitted.initialRelativeError - table[8]) <= 1e-3 * table[8])
        #expect(fitted.finalRelativeError < fitted.initialRelativeError)
        // And the trained factors reproduce the reported loss when applied explicitly.
        var c = try matmul(l.x, .none, fitted.factors.a, .transpose)
        let q = try UniformQuantizerBox.make(bits: 4, group: 8)
        try c.withUnsafeMutableBufferPointer { try q.fakeQuantize($0, rowLength: 8) }
        let kHat = try matmul(c, .none, fitted.factors.b, .transpose)
        #expect(abs(kHat.relativeFrobeniusDistance(to: l.k) - fitted.finalRelativeError) <= 1e-4)
        print("fitted b=4 r=8 g=8: e_kv \(fitted.initialRelativeError) → \(fitted.finalRelativeError) in \(h.count - 1) steps")
    }

    @Test func sixteenBitsNeverWorseThanTheBestFit() throws {
        let l = try Self.layer()
        let start = try ProjectionBasis.activations(keyGram: try gram(l.k))
        let fitted = try fitFactors(weight: l.w, inputs: l.x, targets: l.k, start: start, rank: 8, bits: 16, groupSize: nil,
                                    options: FittingOptions(steps: 10))
        let best = try explicitProjectionError(l.k, start, rank: 8)
        #expect(abs(fitted.initialRelativeError - best) < 1e-4)
        #expect(fitted.finalRelativeError <= best + 1e-6)
    }

    @Test func invalidArgumentsAndCancellation() throws {
        let l = try Self.layer()
        let start = try ProjectionBasis.activations(keyGram: try gram(l.k))
        #expect(throws: KVCompressionError.self) {
            try fitFactors(weight: l.w, inputs: l.x, start: start, rank: 0, bits: 4, groupSize: 8)
        }
        #expect(throws: KVCompressionError.self) {
            try fitFactors(weight: l.w, inputs: l.x, start: start, rank: 4, bits: 9, groupSize: 8)
        }
        #expect(throws: KVCompressionError.self) {
            try fitFactors(weight: l.w, inputs: l.k, start: start, rank: 4, bits: 4, groupSize: 8)
        }
        let flag = CancellationFlag()
        flag.cancel()
        #expect(throws: KVCompressionError.cancelled) {
            try fitFactors(weight: l.w, inputs: l.x, start: start, rank: 4, bits: 4, groupSize: 8, cancellation: flag)
        }
    }
}

import Quantization

/// The quantizer the engine uses, built the same way in tests.
enum UniformQuantizerBox {
    static func make(bits: Int, group: Int?) throws -> UniformQuantizer { try UniformQuantizer(bits: bits, groupSize: group) }
}
