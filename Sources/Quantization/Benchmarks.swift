import CQuantKernels
import Foundation
import LinearAlgebra

/// Timings of the fused dequant-GEMV against `cblas_sgemv`, with the machine's read bandwidth.
public struct GEMVBenchmark: Sendable, Codable {
    /// Matrix rows.
    public let rows: Int
    /// Matrix columns.
    public let cols: Int
    /// Code width.
    public let bits: Int
    /// Group size (nil: per channel).
    public let groupSize: Int?
    /// Median seconds of one fused GEMV.
    public let fused: Double
    /// Median seconds of one `cblas_sgemv` on the fp32 matrix.
    public let sgemv: Double
    /// Fastest fused GEMV, seconds (less sensitive to other load on the machine than the median).
    public let fusedMinimum: Double
    /// Fastest `cblas_sgemv`, seconds.
    public let sgemvMinimum: Double
    /// Measured multithreaded streaming read bandwidth, GB/s (10⁹ bytes/s).
    public let bandwidthGBs: Double
    /// Bytes the fused kernel reads: packed code words and its Float metadata.
    public let fusedBytes: Int
    /// Bytes `cblas_sgemv` reads: the fp32 matrix.
    public let sgemvBytes: Int
    /// Worker threads of the fused kernel.
    public let threads: Int
    /// OpenBLAS threads of the `cblas_sgemv` reference.
    public let sgemvThreads: Int
    /// The fused kernel that ran: "avx2" or "portable" (see ``PackedMatrix/kernelName``).
    public let kernel: String
    /// sgemv time / fused time.
    public var speedup: Double { sgemv / fused }
    /// Bytes read by the fused kernel per second, GB/s.
    public var fusedGBs: Double { Double(fusedBytes) / fused / 1e9 }
    /// Bytes read by `cblas_sgemv` per second, GB/s.
    public var sgemvGBs: Double { Double(sgemvBytes) / sgemv / 1e9 }
    /// Fused throughput as a fraction of the measured read bandwidth.
    public var bandwidthFraction: Double { fusedGBs / bandwidthGBs }
}

/// Benchmark entry points used by `kvscope bench`.
public enum QuantizationBenchmarks {
    /// Times the fused dequant-GEMV on a random rows×cols Gaussian matrix (asymmetric, group 128)
    /// against `cblas_sgemv` on the fp32 matrix, and measures the read bandwidth, in one run.
    ///
    /// Each side runs once to warm up, then `repeats` times back to back (so a matrix that fits the
    /// last-level cache stays there, for either side); the fused kernel uses every core and OpenBLAS
    /// its own thread count (reported as ``GEMVBenchmark/sgemvThreads``).
    /// - Parameters:
    ///   - rows: output dimension.
    ///   - cols: input dimension.
    ///   - bits: code width (2…8).
    ///   - groupSize: group size (default 128).
    ///   - repeats: timed repetitions of each (the median is reported), after one warm-up.
    /// - Throws: quantization or BLAS errors.
    public static func gemv(rows: Int, cols: Int, bits: Int, groupSize: Int? = 128,
                            repeats: Int = 20) throws -> GEMVBenchmark {
        let w = Matrix.gaussian(rows: rows, cols: cols, seed: 7)
        let packed = try QuantizationScheme(bits: bits, groupSize: groupSize).pack(w)
        var x = [Float](repeating: 0, count: cols)
        var g = SeededGenerator(seed: 11)
        for j in 0..<cols { x[j] = g.nextGaussian() }
        var y = [Float](repeating: 0, count: rows)

        let (fused, fusedMinimum) = try timings(repeats) {
            try x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer { try packed.multiply(xp, into: $0) }
            }
        }
        let (sgemv, sgemvMinimum) = try timings(repeats) { try LinearAlgebra.gemv(w, .none, x, into: &y) }
        let bandwidth = readBandwidth(bytes: 512 << 20, repeats: 5)
        return GEMVBenchmark(rows: rows, cols: cols, bits: bits, groupSize: groupSize, fused: fused, sgemv: sgemv,
                             fusedMinimum: fusedMinimum, sgemvMinimum: sgemvMinimum,
                             bandwidthGBs: bandwidth, fusedBytes: packed.kernelBytes, sgemvBytes: rows * cols * 4,
                             threads: ProcessInfo.processInfo.activeProcessorCount, sgemvThreads: blasThreadCount,
                             kernel: packed.kernelName)
    }

    /// Streaming read bandwidth in GB/s: every core sums its slice of a `bytes` buffer with SIMD
    /// loads (256-bit AVX2 loads when the CPU has them, as the AVX2 GEMV uses; else Swift SIMD);
    /// the best of `repeats` passes (after a warm-up that also faults the pages in).
    public static func readBandwidth(bytes: Int = 512 << 20, repeats: Int = 5, threads: Int? = nil) -> Double {
        let workers = Swift.max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        // Whole 256-byte steps per worker.
        let count = Swift.max(bytes / (256 * workers), 1) * 256 * workers
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 1, count: count)
        let blocks = count / 64
        let base = UnsafeRawPointer(buffer)
        let sink = BandwidthSink(base: base)
        let avx2 = GEMVKernel.avx2Available
        var best = Double.infinity
        for pass in 0...repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let b0 = blocks * w / workers, b1 = blocks * (w + 1) / workers
                if avx2 {
                    sink.consume(UInt32(truncatingIfNeeded: cq_read_stream_avx2(sink.base + b0 * 64, (b1 - b0) * 64)))
                    return
                }
                var a0 = SIMD8<UInt32>(), a1 = SIMD8<UInt32>()
                var o = b0 * 64
                let end = b1 * 64
                while o < end {
                    a0 &+= sink.base.loadUnaligned(fromByteOffset: o, as: SIMD8<UInt32>.self)
                    a1 &+= sink.base.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<UInt32>.self)
                    o += 64
                }
                sink.consume((a0 &+ a1).wrappedSum())
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if pass > 0 { best = Swift.min(best, dt) }
        }
        return Double(count) / best / 1e9
    }

    /// Median and minimum seconds of `body` over `repeats` runs after one warm-up.
    static func timings(_ repeats: Int, _ body: () throws -> Void) rethrows -> (median: Double, minimum: Double) {
        try body()
        var times: [Double] = []
        for _ in 0..<Swift.max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        times.sort()
        return (times[times.count / 2], times[0])
    }
}

/// Keeps the bandwidth probe's sums observable so the loads are not optimized away.
private final class BandwidthSink: @unchecked Sendable {
    let base: UnsafeRawPointer
    private var total: UInt32 = 0
    private let lock = NSLock()
    init(base: UnsafeRawPointer) { self.base = base }
    func consume(_ v: UInt32) { lock.lock(); total &+= v; lock.unlock() }
}
