/// IEEE binary16 and bfloat16 conversions to and from Float.
///
/// fp16: Swift's `Float16` (round to nearest even, subnormals, ±inf and NaN kept).
/// bf16: the top 16 bits of a Float, rounded to nearest even; NaN stays NaN (quieted).
public enum HalfPrecision {
    /// fp16 bits → Float (exact).
    @inlinable public static func floatFromHalf(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// Float → fp16 bits, round to nearest even; overflow goes to ±inf.
    @inlinable public static func halfFromFloat(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// bf16 bits → Float (exact).
    @inlinable public static func floatFromBFloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Float → bf16 bits, round to nearest even; NaN is kept as a quiet NaN of the same sign.
    @inlinable public static func bfloat16FromFloat(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Converts a buffer of fp16 values to Float.
    public static func convertHalfToFloat(_ src: UnsafeBufferPointer<UInt16>, into dst: UnsafeMutableBufferPointer<Float>) {
        precondition(dst.count >= src.count, "convertHalfToFloat: destination too small")
        for i in 0..<src.count { dst[i] = Float(Float16(bitPattern: src[i])) }
    }

    /// Converts a buffer of bf16 values to Float.
    public static func convertBFloat16ToFloat(_ src: UnsafeBufferPointer<UInt16>, into dst: UnsafeMutableBufferPointer<Float>) {
        precondition(dst.count >= src.count, "convertBFloat16ToFloat: destination too small")
        for i in 0..<src.count { dst[i] = Float(bitPattern: UInt32(src[i]) << 16) }
    }

    /// Converts a buffer of Float to fp16 bits.
    public static func convertFloatToHalf(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableBufferPointer<UInt16>) {
        precondition(dst.count >= src.count, "convertFloatToHalf: destination too small")
        for i in 0..<src.count { dst[i] = Float16(src[i]).bitPattern }
    }
}
