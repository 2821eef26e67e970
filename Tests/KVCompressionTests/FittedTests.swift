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
                                    options: FittingOptions(steps: 60, validationFraction: 0))
        let h = fitted.lossHistory
        #expect(h.count >= 3)
        #expect(fitted.stepOfEntry.count == h.count && fitted.heldOutHistory.isEmpty)
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
                                    options: FittingOptions(steps: 10, validationFraction: 0))
        let best = try explicitProjectionError(l.k, start, rank: 8)
        #expect(abs(fitted.initialRelativeError - best) < 1e-4)
        #expect(fitted.finalRelativeError <= best + 1e-6)
    }

    /// Adam really trains (on a layer whose rank-8 error is mostly quantization error), and the held-out rows
    /// choose the step count (the history ends at the best held-out entry).
    @Test func adamStepsImproveAndHeldOutRowsChooseTheStepCount() throws {
        let l = try Self.layer()
        let start = try ProjectionBasis.activations(keyGram: try gram(l.k))
        let l8 = try syntheticLayer(tokens: 512, hidden: 64, kvSize: 32, innerRank: 8, seed: 5)
        let start8 = try ProjectionBasis.activations(keyGram: try gram(l8.k))
        let options = FittingOptions(steps: 80, validationFraction: 0.25)
        let fitted = try fitFactors(weight: l8.w, inputs: l8.x, start: start8, rank: 8, bits: 3, groupSize: 8, options: options)
        let h = fitted.lossHistory, held = fitted.heldOutHistory
        for i in 1..<h.count { #expect(h[i] < h[i - 1]) }
        #expect(held.count == h.count)
        // The returned factors are the best held-out entry seen (the history was cut there).
        let bestHeld = try #require(held.min())
        #expect(held.last == bestHeld)
        #expect(try #require(fitted.heldOutRelativeError(step: h.count - 1)) < (try #require(fitted.heldOutRelativeError(step: 0))))
        // Without equalization, Adam alone still lowers the training loss.
        let plain = try fitFactors(weight: l8.w, inputs: l8.x, start: start8, rank: 8, bits: 3, groupSize: 8,
                                   options: FittingOptions(steps: 80, validationFraction: 0, equalizeFeatures: false))
        #expect(plain.stepOfEntry.allSatisfy { $0 >= 0 })
        #expect(plain.finalRelativeError < plain.initialRelativeError * 0.99,
                "Adam: \(plain.initialRelativeError) → \(plain.finalRelativeError)")
        print("fitted b=3 r=8 g=8: train \(fitted.initialRelativeError) → \(fitted.finalRelativeError), held-out \(fitted.heldOutRelativeError(step: 0) ?? -1) → \(fitted.heldOutRelativeError(step: h.count - 1) ?? -1); Adam only \(plain.initialRelativeError) → \(plain.finalRelativeError) in \(plain.lossHistory.count - 1) accepted evaluations")
    }

    /// With XᵀX of all tokens, the loss is the hybrid estimate: entry 0 equals the ErrorModel's b < 16 table
    /// (Gram tail + sampled quantization error), and training lowers it.
    @Test func hybridLossStartsAtTheErrorModelTable() throws {
        let l = try Self.layer()
        let start = try ProjectionBasis.activations(keyGram: try gram(l.k))
        let samples = l.x.prefixRows(160)
        let fitted = try fitFactors(weight: l.w, inputs: samples, start: start, rank: 8, bits: 4, groupSize: 8,
                                    inputGram: try gram(l.x), options: FittingOptions(steps: 40, validationFraction: 0))
        let model = try ErrorModel(basisKind: .activations, entries: [ErrorModelEntry(
            layer: 0, kind: .k, basis: start, weight: l.w, gram: try gram(l.k), samples: try matmul(samples, .none, l.w, .transpose))],
            defaultGroupSize: 8)
        try model.fillQuantizedTables(bits: [4], groupSize: 8)
        let table = try #require(model.kvError(layer: 0, kind: .k, rank: 8, bits: 4).value)
        #expect(abs(fitted.initialRelativeError - table) <= 1e-3 * table, "\(fitted.initialRelativeError) vs \(table)")
        #expect(fitted.finalRelativeError < fitted.initialRelativeError)
        // The hybrid loss of the final factors, recomputed explicitly over all tokens + samples.
        var cAll = try matmul(l.x, .none, fitted.factors.a, .transpose)
        let exactAll = try matmul(cAll, .none, fitted.factors.b, .transpose).relativeFrobeniusDistance(to: l.k)
        let q = try UniformQuantizerBox.make(bits: 4, group: 8)
        try cAll.withUnsafeMutableBufferPointer { try q.fakeQuantize($0, rowLength: 8) }
        let kS = try matmul(samples, .none, l.w, .transpose)
        let cS = try matmul(samples, .none, fitted.factors.a, .transpose)
        var qS = cS
        try qS.withUnsafeMutableBufferPointer { try q.fakeQuantize($0, rowLength: 8) }
        let quantizedS = try matmul(qS, .none, fitted.factors.b, .transpose).relativeFrobeniusDistance(to: kS)
        let exactS = try matmul(cS, .none, fitted.factors.b, .transpose).relativeFrobeniusDistance(to: kS)
        let hybrid = (exactAll * exactAll + quantizedS * quantizedS - exactS * exactS).squareRoot()
        #expect(abs(hybrid - fitted.finalRelativeError) <= 2e-3 * hybrid, "\(hybrid) vs \(fitted.finalRelativeError)")
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
