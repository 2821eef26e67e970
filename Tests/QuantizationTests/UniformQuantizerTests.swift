import Testing
@testable import Quantization

@Suite struct UniformQuantizerTests {
    @Test func constantGroupReconstructsExactly() throws {
        let q = try UniformQuantizer(bits: 4, groupSize: 4)
        var v: [Float] = [0.3, 0.3, 0.3, 0.3, -2, -2, -2, -2]
        try q.fakeQuantize(&v, rowLength: 8)
        #expect(v == [0.3, 0.3, 0.3, 0.3, -2, -2, -2, -2])
    }

    @Test func eightBitsHitsExactGridValues() throws {
        // min 0, max 255 → scale 1: integers reconstruct exactly.
        let q = try UniformQuantizer(bits: 8, groupSize: nil)
        var v = (0...255).map { Float($0) }
        let expected = v
        try q.fakeQuantize(&v, rowLength: 256)
        #expect(v == expected)
    }

    @Test func roundHalfToEven() throws {
        // 2 bits, min 0, max 3 → scale 1; 0.5 → 0, 1.5 → 2, 2.5 → 2.
        let q = try UniformQuantizer(bits: 2, groupSize: nil)
        var v: [Float] = [0, 0.5, 1.5, 2.5, 3]
        try q.fakeQuantize(&v, rowLength: 5)
        #expect(v == [0, 0, 2, 2, 3])
    }

    @Test func lastGroupIsShorter() throws {
        let q = try UniformQuantizer(bits: 2, groupSize: 4)
        #expect(q.groupsPerRow(10) == 3)
        let expected: Double = 2.5 + 12  // 10 two-bit codes + 3 groups × 4 bytes
        #expect(q.bytes(rows: 1, rowLength: 10) == expected)
    }

    @Test func nonFiniteIsRejectedAndNothingChanges() throws {
        let q = try UniformQuantizer(bits: 4, groupSize: 2)
        var v: [Float] = [1, 2, .nan, 4]
        #expect(throws: QuantizationError.nonFinite) { try q.fakeQuantize(&v, rowLength: 4) }
        #expect(v[0] == 1 && v[1] == 2)
    }

    @Test(arguments: [1, 9, 16])
    func invalidBitsAreRejected(bits: Int) {
        #expect(throws: QuantizationError.invalidBits(bits)) { try UniformQuantizer(bits: bits, groupSize: 32) }
    }
}
