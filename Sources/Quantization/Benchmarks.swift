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
    /// Measured multithreaded streaming read bandwidth, GB/s (10⁹ bytes/s): the median over rounds
    /// of each round's faster pass.
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
    /// Timed rounds: each round times a block of fused GEMVs, a block of `cblas_sgemv` and two
    /// bandwidth passes back to back, so both sides of a round's ratios see the same machine.
    public let rounds: Int
    /// Each round's sgemv median / fused median.
    public let roundSpeedups: [Double]
    /// Each round's fused read rate (at its median time) / the round's read bandwidth.
    public let roundFractions: [Double]
    /// The median over rounds of the round's sgemv median / fused median.
    public var speedup: Double { QuantizationBenchmarks.median(roundSpeedups) }
    /// The median over rounds of the round's fused read rate / the round's read bandwidth.
    public var bandwidthFraction: Double { QuantizationBenchmarks.median(roundFractions) }
    /// sgemv median / fused median over every timed run (unpaired).
    public var speedupOfMedians: Double { sgemv / fused }
    /// Bytes read by the fused kernel per second at the median time, GB/s.
    public var fusedGBs: Double { Double(fusedBytes) / fused / 1e9 }
    /// Bytes read by `cblas_sgemv` per second at the median time, GB/s.
    public var sgemvGBs: Double { Double(sgemvBytes) / sgemv / 1e9 }
}

/// Benchmark entry points used by `kvscope bench`.
public enum QuantizationBenchmarks {
    /// Times the fused dequant-GEMV on a random rows×cols Gaussian matrix (asymmetric, group 128)
    /// against `cblas_sgemv` on the fp32 matrix, and measures the read bandwidth, in one run.
    ///
    /// The machines this runs on are shared and their speed drifts over seconds, so the sides are
    /// interleaved: `rounds` rounds each time two bandwidth passes, a block of fused GEMVs and a
    /// block of `cblas_sgemv` (then wait 0.2 s for OpenBLAS's spinning threads to sleep), and the
    /// ratios are taken per round (then their median), so a slow spell slows both sides of a ratio.
    /// Within a block each side runs five times untimed (after the probe evicted the caches, a
    /// 4096×4096 fused GEMV takes about five calls to settle), then back to back (a matrix that fits
    /// the last-level cache stays there, for either side); the fused kernel uses every core and
    /// OpenBLAS its own thread count (``GEMVBenchmark/sgemvThreads``).
    /// - Parameters:
    ///   - rows: output dimension.
    ///   - cols: input dimension.
    ///   - bits: code width (2…8).
    ///   - groupSize: group size (default 128).
    ///   - repeats: timed runs of each side in all (at least one per round).
    ///   - rounds: interleaved rounds (default 5).
    /// - Throws: quantization or BLAS errors.
    public static func gemv(rows: Int, cols: Int, bits: Int, groupSize: Int? = 128,
                            repeats: Int = 40, rounds: Int = 5) throws -> GEMVBenchmark {
        let w = Matrix.gaussian(rows: rows, cols: cols, seed: 7)
        let packed = try QuantizationScheme(bits: bits, groupSize: groupSize).pack(w)
        var x = [Float](repeating: 0, count: cols)
        var g = SeededGenerator(seed: 11)
        for j in 0..<cols { x[j] = g.nextGaussian() }
        var y = [Float](repeating: 0, count: rows)
        let rounds = Swift.max(1, rounds)
        let perRound = Swift.max(1, repeats / rounds)
        let probe = BandwidthProbe()
        _ = probe.pass()  // faults the buffer in

        var fusedAll: [Double] = [], sgemvAll: [Double] = []
        var speedups: [Double] = [], fractions: [Double] = [], bandwidths: [Double] = []
        for _ in 0..<rounds {
            let bandwidth = Swift.max(probe.pass(), probe.pass())
            let fused = try timings(perRound, warmups: 5) {
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { try packed.multiply(xp, into: $0) }
                }
            }
            let sgemv = try timings(perRound, warmups: 5) { try LinearAlgebra.gemv(w, .none, x, into: &y) }
            // OpenBLAS's threads spin for about 2^28 cycles after a call before they sleep: let them,
            // or they would take cores from the next round's probe and fused GEMVs.
            Thread.sleep(forTimeInterval: 0.2)
            fusedAll += fused.all
            sgemvAll += sgemv.all
            speedups.append(sgemv.median / fused.median)
            fractions.append(Double(packed.kernelBytes) / fused.median / 1e9 / bandwidth)
            bandwidths.append(bandwidth)
        }
        return GEMVBenchmark(rows: rows, cols: cols, bits: bits, groupSize: groupSize, fused: median(fusedAll),
                             sgemv: median(sgemvAll), fusedMinimum: fusedAll.min() ?? 0, sgemvMinimum: sgemvAll.min() ?? 0,
                             bandwidthGBs: median(bandwidths), fusedBytes: packed.kernelBytes, sgemvBytes: rows * cols * 4,
                             threads: ProcessInfo.processInfo.activeProcessorCount, sgemvThreads: blasThreadCount,
                             kernel: packed.kernelName, rounds: rounds, roundSpeedups: speedups,
                             roundFractions: fractions)
    }

    /// The median of `values` (the upper one of an even count); 0 for none.
    static func median(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.sorted()[values.count / 2]
    }

    /// The median and every time (seconds) of `body` over `repeats` runs after `warmups` untimed runs.
    static func timings(_ repeats: Int, warmups: Int = 1, _ body: () throws -> Void) rethrows
        -> (median: Double, all: [Double]) {
        for _ in 0..<warmups { try body() }
        var times: [Double] = []
        for _ in 0..<Swift.max(1, repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return (median(times), times)
    }
}

/// The streaming-read bandwidth probe: a buffer that every core sums its slice of with SIMD loads
/// (256-bit AVX2 loads when the CPU has them, as the AVX2 GEMV uses; else Swift SIMD), one pass a call.
final class BandwidthProbe: @unchecked Sendable {
    private let buffer: UnsafeMutableRawPointer
    private let count: Int
    private let workers: Int

    /// A probe over about `bytes` bytes (whole 256-byte steps per worker) on `threads` workers
    /// (default: every core).
    init(bytes: Int = 512 << 20, threads: Int? = nil) {
        workers = Swift.max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        count = Swift.max(bytes / (256 * workers), 1) * 256 * workers
        buffer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 1, count: count)
    }

    deinit { buffer.deallocate() }

    /// One pass: GB/s (10⁹ bytes/s) of every worker reading its slice once.
    func pass() -> Double {
        let blocks = count / 64
        let workers = self.workers
        let sink = BandwidthSink(base: UnsafeRawPointer(buffer))
        let avx2 = GEMVKernel.avx2Available
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
        return Double(count) / dt / 1e9
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
