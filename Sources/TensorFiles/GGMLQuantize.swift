/// Encodes Float values into ggml blocks, for writing GGUF files (tests, the sample bundle).
///
/// F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 follow gguf-py 0.19's `gguf.quants.quantize`
/// operation for operation, so their bytes are identical to gguf-py's. The k-quants (Q2_K…Q6_K)
/// use a plain min/max fit per sub-block in ggml's reference block layout, not ggml's error-minimizing
/// search: their bytes decode correctly everywhere but are not what llama.cpp's quantizer would write.
public enum GGMLQuantizer {
    /// True when ``quantize(_:as:)`` can encode `type`.
    public static func canQuantize(_ type: GGMLType) -> Bool { type.canDequantize }

    /// Encodes `values` (a whole number of blocks) as `type`.
    /// - Returns: The encoded bytes, or nil when `type` cannot be encoded or `values.count` is not a
    ///   multiple of its block size.
    public static func quantize(_ values: [Float], as type: GGMLType) -> [UInt8]? {
        values.withUnsafeBufferPointer { quantize($0, as: type) }
    }

    /// Encodes `values` (a whole number of blocks) as `type`; nil when that is not possible.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, as type: GGMLType) -> [UInt8]? {
        guard canQuantize(type), values.count % type.blockSize == 0 else { return nil }
        let blocks = values.count / type.blockSize
        let size = blocks * type.typeSize
        return [UInt8](unsafeUninitializedCapacity: size) { out, initialized in
            out.initialize(repeating: 0)
            initialized = size
            guard let x = values.baseAddress, let o = out.baseAddress else { return }
            for b in 0..<blocks {
                let xb = x + b * type.blockSize, ob = o + b * type.typeSize
                switch type {
                case .f32: store(xb.pointee.bitPattern, ob)
                case .f16: store(Float16(xb.pointee).bitPattern, ob)
                case .bf16: store(HalfPrecisionBits.bfloat16(xb.pointee), ob)
                case .q4_0: q4_0(xb, ob)
                case .q4_1: q4_1(xb, ob)
                case .q5_0: q5_0(xb, ob)
                case .q5_1: q5_1(xb, ob)
                case .q8_0: q8_0(xb, ob)
                case .q2_K: q2_K(xb, ob)
                case .q3_K: q3_K(xb, ob)
                case .q4_K: q4_K(xb, ob, fifthBit: false)
                case .q5_K: q4_K(xb, ob, fifthBit: true)
                case .q6_K: q6_K(xb, ob)
                default: break
                }
            }
        }
    }

    @inline(__always)
    private static func store<T: FixedWidthInteger>(_ v: T, _ p: UnsafeMutablePointer<UInt8>, at offset: Int = 0) {
        UnsafeMutableRawPointer(p).storeBytes(of: v.littleEndian, toByteOffset: offset, as: T.self)
    }

    @inline(__always)
    private static func half(_ x: Float) -> UInt16 { Float16(x).bitPattern }

    /// 1/d, or 0 when d is 0 (gguf-py's `np.where(d == 0, 0, 1 / d)`).
    @inline(__always)
    private static func inverse(_ d: Float) -> Float { d == 0 ? 0 : 1 / d }

    /// The element of largest magnitude, first one on ties (numpy's `argmax` of `abs`), with its sign.
    private static func signedAbsMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var best = x[0]
        for i in 1..<n where abs(x[i]) > abs(best) { best = x[i] }
        return best
    }

    private static func minMax(_ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        var lo = x[0], hi = x[0]
        for i in 1..<n {
            lo = min(lo, x[i])
            hi = max(hi, x[i])
        }
        return (lo, hi)
    }

    /// gguf-py's `np.trunc(v).astype(np.uint8).clip(0, top)` for the in-range values these encoders produce.
    @inline(__always)
    private static func truncClip(_ v: Float, _ top: Int) -> UInt8 {
        let t = v.rounded(.towardZero)
        guard t.isFinite, t > 0 else { return 0 }
        return UInt8(min(Int(t), top))
    }

    private static func q4_0(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        let d = signedAbsMax(x, 32) / -8
        let id = inverse(d)
        store(half(d), o)
        for j in 0..<16 {
            let a = truncClip(x[j] * id + 8.5, 15), b = truncClip(x[j + 16] * id + 8.5, 15)
            o[2 + j] = a | b << 4
        }
    }

    private static func q4_1(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        let (lo, hi) = minMax(x, 32)
        let d = (hi - lo) / 15
        let id = inverse(d)
        store(half(d), o)
        store(half(lo), o, at: 2)
        for j in 0..<16 {
            let a = truncClip((x[j] - lo) * id + 0.5, 15), b = truncClip((x[j + 16] - lo) * id + 0.5, 15)
            o[4 + j] = a | b << 4
        }
    }

    private static func packQ5(_ q: [UInt8], _ o: UnsafeMutablePointer<UInt8>, qhAt: Int) {
        var qh: UInt32 = 0
        for j in 0..<32 { qh |= UInt32(q[j] >> 4) << UInt32(j) }
        store(qh, o, at: qhAt)
        for j in 0..<16 { o[qhAt + 4 + j] = (q[j] & 0x0F) | (q[j + 16] << 4) }
    }

    private static func q5_0(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        let d = signedAbsMax(x, 32) / -16
        let id = inverse(d)
        store(half(d), o)
        packQ5((0..<32).map { truncClip(x[$0] * id + 16.5, 31) }, o, qhAt: 2)
    }

    private static func q5_1(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        let (lo, hi) = minMax(x, 32)
        let d = (hi - lo) / 31
        let id = inverse(d)
        store(half(d), o)
        store(half(lo), o, at: 2)
        packQ5((0..<32).map { truncClip((x[$0] - lo) * id + 0.5, 31) }, o, qhAt: 4)
    }

    private static func q8_0(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id = inverse(d)
        store(half(d), o)
        for j in 0..<32 {
            // gguf-py's np_roundf: round half away from zero.
            let q = (x[j] * id).rounded(.toNearestOrAwayFromZero)
            o[2 + j] = UInt8(bitPattern: Int8(clamping: Int(q)))
        }
    }

    /// Rounds to the nearest integer in lo...hi.
    @inline(__always)
    private static func level(_ v: Float, _ lo: Int, _ hi: Int) -> Int {
        guard v.isFinite else { return lo }
        return min(hi, max(lo, Int(v.rounded())))
    }

    // Q2_K: 16 groups of 16, per group (scale, min) quantized to 4 bits against fp16 d and dmin.
    private static func q2_K(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        var scales = [Float](repeating: 0, count: 16), mins = [Float](repeating: 0, count: 16)
        for g in 0..<16 {
            let (lo, hi) = minMax(x + 16 * g, 16)
            mins[g] = -min(lo, 0)
            scales[g] = (hi + mins[g]) / 3
        }
        let d = Float(Float16((scales.max() ?? 0) / 15)), dmin = Float(Float16((mins.max() ?? 0) / 15))
        store(half(d), o, at: 80)
        store(half(dmin), o, at: 82)
        for g in 0..<16 {
            let sc = d == 0 ? 0 : level(scales[g] / d, 0, 15), m = dmin == 0 ? 0 : level(mins[g] / dmin, 0, 15)
            o[g] = UInt8(sc | m << 4)
            let dl = d * Float(sc), ml = dmin * Float(m)
            for l in 0..<16 {
                let q = dl == 0 ? 0 : level((x[16 * g + l] + ml) / dl, 0, 3)
                o[16 + 32 * (g >> 3) + 16 * (g & 1) + l] |= UInt8(q) << UInt8(2 * ((g >> 1) & 3))
            }
        }
    }

    // Q3_K: 16 groups of 16, signed 6-bit scales against fp16 d, values −4…3 (2 low bits + hmask bit).
    private static func q3_K(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        var scales = [Float](repeating: 0, count: 16)
        for g in 0..<16 { scales[g] = signedAbsMax(x + 16 * g, 16) / -4 }
        let amax = scales.map { abs($0) }.max() ?? 0
        let d = Float(Float16(amax / 31))
        store(half(d), o, at: 108)
        for g in 0..<16 {
            let sc = d == 0 ? 0 : level(scales[g] / d, -32, 31)
            let v = UInt8(sc + 32)
            if g < 8 { o[96 + g] |= v & 0x0F } else { o[96 + g - 8] |= (v & 0x0F) << 4 }
            o[96 + 8 + (g & 3)] |= (v >> 4) << UInt8(2 * (g >> 2))
            let dl = d * Float(sc)
            for l in 0..<16 {
                let f = 16 * g + l
                let u = UInt8((dl == 0 ? 0 : level(x[f] / dl, -4, 3)) + 4)
                o[32 + 32 * (f >> 7) + (f & 31)] |= (u & 3) << UInt8(2 * ((f >> 5) & 3))
                o[f & 31] |= (u >> 2) << UInt8(f >> 5)
            }
        }
    }

    // Q4_K / Q5_K: 8 sub-blocks of 32, 6-bit (scale, min) against fp16 d and dmin, 4- or 5-bit values.
    private static func q4_K(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>, fifthBit: Bool) {
        let top = fifthBit ? 31 : 15
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        for j in 0..<8 {
            let (lo, hi) = minMax(x + 32 * j, 32)
            mins[j] = -min(lo, 0)
            scales[j] = (hi + mins[j]) / Float(top)
        }
        let d = Float(Float16((scales.max() ?? 0) / 63)), dmin = Float(Float16((mins.max() ?? 0) / 63))
        store(half(d), o)
        store(half(dmin), o, at: 2)
        let s = o + 4
        let qh = o + 16, qs = o + (fifthBit ? 48 : 16)
        for j in 0..<8 {
            let sc = UInt8(d == 0 ? 0 : level(scales[j] / d, 0, 63)), m = UInt8(dmin == 0 ? 0 : level(mins[j] / dmin, 0, 63))
            if j < 4 {
                s[j] |= sc
                s[j + 4] |= m
            } else {
                s[j + 4] = (sc & 0x0F) | (m & 0x0F) << 4
                s[j - 4] |= (sc >> 4) << 6
                s[j] |= (m >> 4) << 6
            }
            let dl = d * Float(sc), ml = dmin * Float(m)
            for l in 0..<32 {
                let q = UInt8(dl == 0 ? 0 : level((x[32 * j + l] + ml) / dl, 0, top))
                qs[32 * (j >> 1) + l] |= (q & 0x0F) << UInt8(4 * (j & 1))
                if fifthBit { qh[l] |= (q >> 4) << UInt8(j) }
            }
        }
    }

    // Q6_K: 16 groups of 16, int8 scales against fp16 d, values −32…31.
    private static func q6_K(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<UInt8>) {
        var scales = [Float](repeating: 0, count: 16)
        for g in 0..<16 { scales[g] = signedAbsMax(x + 16 * g, 16) / -32 }
        let amax = scales.map { abs($0) }.max() ?? 0
        let d = Float(Float16(amax / 127))
        store(half(d), o, at: 208)
        for g in 0..<16 {
            let sc = d == 0 ? 0 : level(scales[g] / d, -128, 127)
            o[192 + g] = UInt8(bitPattern: Int8(sc))
            let dl = d * Float(sc)
            for l in 0..<16 {
                let f = 16 * g + l, h = f >> 7, r = f & 127
                let u = UInt8((dl == 0 ? 0 : level(x[f] / dl, -32, 31)) + 32)
                o[64 * h + (r & 63)] |= (u & 0x0F) << UInt8(4 * (r >> 6))
                o[128 + 32 * h + (r & 31)] |= (u >> 4) << UInt8(2 * (r >> 5))
            }
        }
    }
}

/// bf16 rounding as gguf-py's `BF16.quantize_blocks` (ggml's `ggml_compute_fp32_to_bf16`).
enum HalfPrecisionBits {
    static func bfloat16(_ x: Float) -> UInt16 {
        var n = UInt64(x.bitPattern)
        if n & 0x7FFF_FFFF > 0x7F80_0000 { n = (n & 0xFFFF_0000) | (64 << 16) }  // NaN → quiet NaN
        return UInt16(truncatingIfNeeded: (n + 0x7FFF + ((n >> 16) & 1)) >> 16)
    }
}
