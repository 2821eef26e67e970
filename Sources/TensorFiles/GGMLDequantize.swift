import Dispatch

/// Converts ggml tensor data to Float, bit-identical to gguf-py 0.19's `gguf.quants.dequantize`.
///
/// Every kernel uses gguf-py's float32 operations in gguf-py's order (e.g. Q4_1 is `(d·q) + m`,
/// the k-quants compute `d·scale` first and subtract `dmin·min` last), so results agree to the bit.
/// Large tensors are split over blocks and converted on all cores.
public enum GGMLDequantizer {
    /// Converts `source` (whole blocks of `type`) into `destination`.
    ///
    /// The caller guarantees `source.count` is a multiple of `type.typeSize` and `destination` holds
    /// `source.count / type.typeSize * type.blockSize` values; a type that cannot be dequantized
    /// (``GGMLType/canDequantize`` false) leaves `destination` untouched and returns false.
    /// - Returns: Whether the type was converted.
    @discardableResult
    public static func dequantize(_ type: GGMLType, from source: UnsafeRawBufferPointer,
                                  into destination: UnsafeMutableBufferPointer<Float>) -> Bool {
        guard let kernel = kernel(for: type) else { return false }
        let blocks = source.count / type.typeSize
        precondition(destination.count >= blocks * type.blockSize, "dequantize: destination too small")
        guard blocks > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return true }
        let table = halfTable
        table.withUnsafeBufferPointer { half in
            guard let half = half.baseAddress else { return }
            let blocksPerChunk = max(1, chunkElements / type.blockSize)
            let chunks = (blocks + blocksPerChunk - 1) / blocksPerChunk
            if chunks == 1 {
                kernel(src, dst, blocks, half)
                return
            }
            let typeSize = type.typeSize, blockSize = type.blockSize
            // The chunks write disjoint ranges of `dst`; the pointers outlive concurrentPerform.
            let shared = SharedPointers(src: src, dst: dst, half: half)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let first = c * blocksPerChunk
                let count = min(blocksPerChunk, blocks - first)
                kernel(shared.src + first * typeSize, shared.dst + first * blockSize, count, shared.half)
            }
        }
        return true
    }

    /// Converts a buffer of whole blocks to a new Float array.
    /// - Returns: nil when the type cannot be dequantized or `source` is not whole blocks.
    public static func dequantize(_ type: GGMLType, _ source: UnsafeRawBufferPointer) -> [Float]? {
        guard type.canDequantize, source.count % type.typeSize == 0 else { return nil }
        let count = source.count / type.typeSize * type.blockSize
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            dequantize(type, from: source, into: buffer)
            initialized = count
        }
    }

    /// Elements converted per parallel task.
    static let chunkElements = 1 << 16

    /// fp16 bit pattern → Float, for all 65,536 patterns (exact, as numpy's `astype(np.float32)`).
    static let halfTable: [Float] = (0...0xFFFF).map { Float(Float16(bitPattern: UInt16($0))) }

    /// Buffers shared by the parallel chunks of one conversion.
    private struct SharedPointers: @unchecked Sendable {
        let src: UnsafeRawPointer
        let dst: UnsafeMutablePointer<Float>
        let half: UnsafePointer<Float>
    }

    typealias Kernel = @Sendable (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int, UnsafePointer<Float>) -> Void

    static func kernel(for type: GGMLType) -> Kernel? {
        switch type {
        case .f32: f32
        case .f16: f16
        case .bf16: bf16
        case .q4_0: q4_0
        case .q4_1: q4_1
        case .q5_0: q5_0
        case .q5_1: q5_1
        case .q8_0: q8_0
        case .q2_K: q2_K
        case .q3_K: q3_K
        case .q4_K: q4_K
        case .q5_K: q5_K
        case .q6_K: q6_K
        default: nil
        }
    }

    @inline(__always)
    private static func half(_ p: UnsafeRawPointer, _ offset: Int, _ table: UnsafePointer<Float>) -> Float {
        table[Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))]
    }

    private static func f32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _: UnsafePointer<Float>) {
        for i in 0..<n {
            dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        }
    }

    private static func f16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for i in 0..<n { dst[i] = half(src, 2 * i, table) }
    }

    private static func bf16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _: UnsafePointer<Float>) {
        for i in 0..<n {
            let bits = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            dst[i] = Float(bitPattern: UInt32(bits) << 16)
        }
    }

    // Q4_0, 18 bytes: fp16 d, 16 bytes of nibbles (low nibbles are elements 0–15, high 16–31). x = d·(q − 8).
    private static func q4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 18 * b, o = dst + 32 * b
            let d = half(p, 0, table)
            let qs = (p + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                o[j] = d * Float(Int32(qs[j] & 0x0F) - 8)
                o[j + 16] = d * Float(Int32(qs[j] >> 4) - 8)
            }
        }
    }

    // Q4_1, 20 bytes: fp16 d, fp16 m, 16 bytes of nibbles. x = (d·q) + m.
    private static func q4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 20 * b, o = dst + 32 * b
            let d = half(p, 0, table), m = half(p, 2, table)
            let qs = (p + 4).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                let lo = d * Float(qs[j] & 0x0F), hi = d * Float(qs[j] >> 4)
                o[j] = lo + m
                o[j + 16] = hi + m
            }
        }
    }

    // Q5_0, 22 bytes: fp16 d, u32 qh (bit j = 5th bit of element j), 16 bytes of nibbles. x = d·(q − 16).
    private static func q5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 22 * b, o = dst + 32 * b
            let d = half(p, 0, table)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            let qs = (p + 6).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                let lo = Int32(qs[j] & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4
                let hi = Int32(qs[j] >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4
                o[j] = d * Float(lo - 16)
                o[j + 16] = d * Float(hi - 16)
            }
        }
    }

    // Q5_1, 24 bytes: fp16 d, fp16 m, u32 qh, 16 bytes of nibbles. x = (d·q) + m.
    private static func q5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 24 * b, o = dst + 32 * b
            let d = half(p, 0, table), m = half(p, 2, table)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let qs = (p + 8).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                let lo = UInt32(qs[j] & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                let hi = UInt32(qs[j] >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
                let a = d * Float(lo), c = d * Float(hi)
                o[j] = a + m
                o[j + 16] = c + m
            }
        }
    }

    // Q8_0, 34 bytes: fp16 d, 32 int8. x = q·d.
    private static func q8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 34 * b, o = dst + 32 * b
            let d = half(p, 0, table)
            let qs = (p + 2).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 { o[j] = Float(qs[j]) * d }
        }
    }

    // Q2_K, 84 bytes: 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values,
    // fp16 d, fp16 dmin. Element f: byte qs[32·(f/128) + f%32], bits 2·((f/32)%4); group f/16.
    // x = (d·sc)·q − (dmin·m).
    private static func q2_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 84 * b, o = dst + 256 * b
            let scales = p.assumingMemoryBound(to: UInt8.self)
            let qs = (p + 16).assumingMemoryBound(to: UInt8.self)
            let d = half(p, 80, table), dmin = half(p, 82, table)
            for g in 0..<16 {
                let dl = d * Float(scales[g] & 0x0F), ml = dmin * Float(scales[g] >> 4)
                let base = 32 * (g >> 3) + 16 * (g & 1)
                let shift = UInt8(2 * ((g >> 1) & 3))
                let og = o + 16 * g
                for l in 0..<16 {
                    let q = Float((qs[base + l] >> shift) & 3)
                    og[l] = dl * q - ml
                }
            }
        }
    }

    // Q3_K, 110 bytes: 32 bytes hmask, 64 bytes of 2-bit values, 12 bytes of 6-bit scales, fp16 d.
    // q = low2 − 4 when the hmask bit is 0; x = (d·(scale − 32))·q.
    private static func q3_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 110 * b, o = dst + 256 * b
            let hmask = p.assumingMemoryBound(to: UInt8.self)
            let qs = (p + 32).assumingMemoryBound(to: UInt8.self)
            let s = (p + 96).assumingMemoryBound(to: UInt8.self)
            let d = half(p, 108, table)
            for g in 0..<16 {
                let low = g < 8 ? s[g] & 0x0F : s[g - 8] >> 4
                let high = (s[8 + (g & 3)] >> UInt8(2 * (g >> 2))) & 3
                let scale = Int32(low | high << 4) - 32
                let dl = d * Float(scale)
                let og = o + 16 * g
                for l in 0..<16 {
                    let f = 16 * g + l
                    let lo = Int32((qs[32 * (f >> 7) + (f & 31)] >> UInt8(2 * ((f >> 5) & 3))) & 3)
                    let hbit = (hmask[f & 31] >> UInt8(f >> 5)) & 1
                    og[l] = dl * Float(lo - (hbit == 0 ? 4 : 0))
                }
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) of a Q4_K/Q5_K block's 12 packed bytes.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ s: UnsafePointer<UInt8>) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (s[j] & 63, s[j + 4] & 63) }
        return ((s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30), (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30))
    }

    // Q4_K, 144 bytes: fp16 d, fp16 dmin, 12 bytes of scales/mins, 128 bytes of nibbles
    // (sub-block j uses bytes 32·(j/2)… with the low nibble for even j). x = (d·sc)·q − (dmin·m).
    private static func q4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 144 * b, o = dst + 256 * b
            let d = half(p, 0, table), dmin = half(p, 2, table)
            let s = (p + 4).assumingMemoryBound(to: UInt8.self)
            let qs = (p + 16).assumingMemoryBound(to: UInt8.self)
            for j in 0..<8 {
                let (sc, m) = scaleMinK4(j, s)
                let d1 = d * Float(sc), m1 = dmin * Float(m)
                let q = qs + 32 * (j >> 1)
                let shift = UInt8(4 * (j & 1))
                let oj = o + 32 * j
                for l in 0..<32 { oj[l] = d1 * Float((q[l] >> shift) & 0x0F) - m1 }
            }
        }
    }

    // Q5_K, 176 bytes: fp16 d, fp16 dmin, 12 bytes of scales/mins, 32 bytes qh (bit j of byte l is
    // the 5th bit of element l of sub-block j), 128 bytes of nibbles as in Q4_K.
    private static func q5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 176 * b, o = dst + 256 * b
            let d = half(p, 0, table), dmin = half(p, 2, table)
            let s = (p + 4).assumingMemoryBound(to: UInt8.self)
            let qh = (p + 16).assumingMemoryBound(to: UInt8.self)
            let qs = (p + 48).assumingMemoryBound(to: UInt8.self)
            for j in 0..<8 {
                let (sc, m) = scaleMinK4(j, s)
                let d1 = d * Float(sc), m1 = dmin * Float(m)
                let q = qs + 32 * (j >> 1)
                let shift = UInt8(4 * (j & 1))
                let oj = o + 32 * j
                for l in 0..<32 {
                    let v = ((q[l] >> shift) & 0x0F) | ((qh[l] >> UInt8(j)) & 1) << 4
                    oj[l] = d1 * Float(v) - m1
                }
            }
        }
    }

    // Q6_K, 210 bytes: 128 bytes low nibbles, 64 bytes high 2 bits, 16 int8 scales, fp16 d.
    // Element f: half h = f/128, r = f%128; low = ql[64h + r%64] nibble r/64; high = qh[32h + r%32]
    // bits 2·(r/32). x = (d·scale[f/16])·(q − 32).
    private static func q6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ table: UnsafePointer<Float>) {
        for b in 0..<n {
            let p = src + 210 * b, o = dst + 256 * b
            let ql = p.assumingMemoryBound(to: UInt8.self)
            let qh = (p + 128).assumingMemoryBound(to: UInt8.self)
            let scales = (p + 192).assumingMemoryBound(to: Int8.self)
            let d = half(p, 208, table)
            for g in 0..<16 {
                let dl = d * Float(scales[g])
                let h = g >> 3, r0 = 16 * (g & 7)
                let og = o + 16 * g
                for l in 0..<16 {
                    let r = r0 + l
                    let low = (ql[64 * h + (r & 63)] >> UInt8(4 * (r >> 6))) & 0x0F
                    let high = (qh[32 * h + (r & 31)] >> UInt8(2 * (r >> 5))) & 3
                    og[l] = dl * Float(Int32(low | high << 4) - 32)
                }
            }
        }
    }
}
