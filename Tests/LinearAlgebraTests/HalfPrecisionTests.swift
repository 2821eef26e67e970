import Testing
import LinearAlgebra

@Suite struct HalfPrecisionTests {
    @Test func everyHalfValueRoundTripsThroughFloat() {
        // All 65,536 fp16 bit patterns: fp16 → fp32 is exact, so fp32 → fp16 gives the bits back
        // (NaNs stay NaN).
        for bits in UInt16.min...UInt16.max {
            let f = HalfPrecision.floatFromHalf(bits)
            let back = HalfPrecision.halfFromFloat(f)
            if f.isNaN {
                #expect(HalfPrecision.floatFromHalf(back).isNaN)
            } else if back != bits {
                Issue.record("fp16 0x\(String(bits, radix: 16)) → \(f) → 0x\(String(back, radix: 16))")
            }
        }
    }

    @Test(arguments: [
        (UInt16(0x0001), Float(5.960464477539063e-08)),  // smallest subnormal 2^-24
        (UInt16(0x03FF), Float(6.097555160522461e-05)),  // largest subnormal
        (UInt16(0x0400), Float(6.103515625e-05)),        // smallest normal 2^-14
        (UInt16(0x7BFF), Float(65504)),                  // largest finite
        (UInt16(0x3C00), Float(1)),
        (UInt16(0xC000), Float(-2)),
        (UInt16(0x8000), Float(-0.0)),
    ])
    func knownHalfValues(bits: UInt16, value: Float) {
        #expect(HalfPrecision.floatFromHalf(bits) == value)
        #expect(HalfPrecision.floatFromHalf(bits).sign == value.sign)
    }

    @Test func halfSpecialValues() {
        #expect(HalfPrecision.halfFromFloat(.infinity) == 0x7C00)
        #expect(HalfPrecision.halfFromFloat(-.infinity) == 0xFC00)
        #expect(HalfPrecision.halfFromFloat(1e6) == 0x7C00)  // overflow → +inf
        #expect(HalfPrecision.floatFromHalf(HalfPrecision.halfFromFloat(.nan)).isNaN)
        // Round to nearest even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 → 1.
        #expect(HalfPrecision.halfFromFloat(1 + 0x1p-11) == 0x3C00)
        #expect(HalfPrecision.halfFromFloat(1 + 3 * 0x1p-11) == 0x3C02)
        // Below half the smallest subnormal → 0.
        #expect(HalfPrecision.halfFromFloat(0x1p-26) == 0)
    }

    @Test func everyBFloat16ValueRoundTrips() {
        for bits in UInt16.min...UInt16.max {
            let f = HalfPrecision.floatFromBFloat16(bits)
            let back = HalfPrecision.bfloat16FromFloat(f)
            if f.isNaN {
                #expect(HalfPrecision.floatFromBFloat16(back).isNaN)
            } else if back != bits {
                Issue.record("bf16 0x\(String(bits, radix: 16)) → \(f) → 0x\(String(back, radix: 16))")
            }
        }
    }

    @Test func bfloat16RoundingAndSpecials() {
        #expect(HalfPrecision.bfloat16FromFloat(1) == 0x3F80)
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7 → even (1).
        #expect(HalfPrecision.bfloat16FromFloat(1 + 0x1p-8) == 0x3F80)
        #expect(HalfPrecision.bfloat16FromFloat(1 + 3 * 0x1p-8) == 0x3F82)
        #expect(HalfPrecision.bfloat16FromFloat(.infinity) == 0x7F80)
        #expect(HalfPrecision.bfloat16FromFloat(-.infinity) == 0xFF80)
        // The largest float rounds up to infinity, as RNE requires.
        #expect(HalfPrecision.bfloat16FromFloat(.greatestFiniteMagnitude) == 0x7F80)
        // A NaN whose payload sits only in the low bits stays NaN (would become inf if truncated).
        let lowPayloadNaN = Float(bitPattern: 0x7F80_0001)
        #expect(HalfPrecision.floatFromBFloat16(HalfPrecision.bfloat16FromFloat(lowPayloadNaN)).isNaN)
        // Subnormal floats keep their top bits.
        let sub = Float(bitPattern: 0x0001_0000)
        #expect(HalfPrecision.bfloat16FromFloat(sub) == 0x0001)
        #expect(HalfPrecision.floatFromBFloat16(0x0001) == sub)
    }

    @Test func bulkConversionsAgreeWithScalar() {
        let bits: [UInt16] = [0x0000, 0x0001, 0x3C00, 0x7C00, 0xFC00, 0x7E00, 0xBBFF]
        var out = [Float](repeating: 0, count: bits.count)
        bits.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { HalfPrecision.convertHalfToFloat(src, into: $0) }
        }
        for (b, f) in zip(bits, out) {
            let s = HalfPrecision.floatFromHalf(b)
            #expect(s.bitPattern == f.bitPattern)
        }
    }
}
