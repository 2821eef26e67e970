import CQuantKernels
import Foundation
import LinearAlgebra
import Testing
@testable import Quantization

@Suite struct PackingTests {
    @Test(arguments: 2...8)
    func packingRoundTripsEveryWidth(bits: Int) {
        var g = SeededGenerator(seed: UInt64(bits))
        for (rows, count) in [(1, 1), (3, 31), (2, 32), (4, 33), (5, 100), (2, 257)] {
            let codes = (0..<(rows * count)).map { _ in UInt8(truncatingIfNeeded: g.next() & ((1 << UInt64(bits)) - 1)) }
            let words = BitPacking.pack(codes, rows: rows, count: count, bits: bits)
            // 4-bit rows are padded to an even number of 32-code chunks (the GEMV loads two at a time).
            let chunks = (count + 31) / 32
            let expectedWords = rows * (bits == 4 ? (chunks + 1) / 2 * 2 : chunks) * bits
            #expect(words.count == expectedWords)
            #expect(BitPacking.unpack(words, rows: rows, count: count, bits: bits) == codes)
        }
    }

    @Test func fourBitLayoutIsAsDocumented() {
        // Nibble words: code j sits in word j % 4 of its chunk, bits 4·(j/4)…4·(j/4)+3; a row is
        // padded to 64 codes (8 words).
        var codes = [UInt8](repeating: 0, count: 32)
        codes[9] = 0xA  // word 1, nibble 2 → bits 8..11
        codes[31] = 0x5  // word 3, nibble 7 → bits 28..31
        codes[0] = 0x3  // word 0, nibble 0
        let words = BitPacking.pack(codes, rows: 1, count: 32, bits: 4)
        #expect(words == [0x3, 0xA00, 0, 0x5000_0000, 0, 0, 0, 0])
        // 33 codes: code 32 opens the second chunk (word 4, nibble 0).
        let more = BitPacking.pack([UInt8](repeating: 0, count: 32) + [0xF], rows: 1, count: 33, bits: 4)
        #expect(more == [0, 0, 0, 0, 0xF, 0, 0, 0])
    }

    @Test func fourBitRowsAreTiledAsDocumented() {
        // 6 rows of 100 codes: 2 pairs (16 words) a row; tile 0 holds rows 0–3, tile 1 rows 4–5.
        // Pair k of row i of a tile of n rows is at tileStart + (k·n + i)·8.
        let (rows, count, perRow) = (6, 100, 16)
        var codes = [UInt8](repeating: 0, count: rows * count)
        codes[2 * count + 64] = 0x7  // row 2, code 64: pair 1, chunk 0, word 0, nibble 0
        codes[5 * count + 99] = 0x9  // row 5, code 99: pair 1, chunk 1 (code 35 of it): word 3, nibble 0
        let words = BitPacking.pack(codes, rows: rows, count: count, bits: 4)
        #expect(words.count == rows * perRow)
        let row2Pair1 = (1 * 4 + 2) * 8
        #expect(words[row2Pair1] == 0x7)
        let row5Pair1 = 4 * perRow + (1 * 2 + 1) * 8
        #expect(words[row5Pair1 + 4 + 3] == 0x9)
        #expect(words.enumerated().allSatisfy { $0.offset == row2Pair1 || $0.offset == row5Pair1 + 7 || $0.element == 0 })
        #expect(BitPacking.chunkOffset(row: 2, chunk: 2, rows: rows, perRow: perRow, bits: 4) == row2Pair1)
        #expect(BitPacking.chunkOffset(row: 5, chunk: 3, rows: rows, perRow: perRow, bits: 4) == row5Pair1 + 4)
        // Other widths stay row-major.
        #expect(BitPacking.chunkOffset(row: 5, chunk: 3, rows: rows, perRow: 12, bits: 3) == 5 * 12 + 9)
        #expect(BitPacking.unpack(words, rows: rows, count: count, bits: 4) == codes)
    }

    @Test func threeBitLayoutIsAsDocumented() {
        // Low 2 bits: byte l of words 0–1, bits 2t; high bit: bit j of word 2.
        var codes = [UInt8](repeating: 0, count: 32)
        codes[17] = 0b110  // t = 2, l = 1: low bits 0b10 at byte 1 bits 4..5 → word 0 bit 13; high bit → word 2 bit 17
        let words = BitPacking.pack(codes, rows: 1, count: 32, bits: 3)
        #expect(words == [1 << 13, 0, 1 << 17])
    }

    @Test func packedMatrixKeepsTheFakeQuantizerCodes() throws {
        let w = Matrix.gaussian(rows: 7, cols: 70, seed: 3)
        for mode in [UniformQuantizer.Mode.asymmetric, .symmetric] {
            let scheme = try QuantizationScheme(bits: 3, groupSize: 32, mode: mode)
            let packed = try scheme.pack(w)
            #expect(packed.codes() == (try scheme.quantizer.codes(w.storage, rowLength: 70)))
            // Reconstruction differs from the Float-metadata fake quantization only by fp16 metadata rounding.
            let fake = try scheme.fakeQuantize(w)
            let distance = packed.dequantized().relativeFrobeniusDistance(to: fake)
            #expect(distance < 2e-3)
        }
    }
}

@Suite struct FusedGEMVTests {
    /// |y − Ŵx| ≤ 1e-5 · Σ_j |Ŵ_ij x_j| for every row, with Ŵx computed densely in Double, for the
    /// automatic kernel (AVX2 on this machine) and the forced portable fallback.
    func check(rows: Int, cols: Int, bits: Int, groupSize: Int?, mode: UniformQuantizer.Mode,
               outliers: Double, seed: UInt64) throws {
        for kernel in [GEMVKernel.automatic, .portable] {
            try check(rows: rows, cols: cols, bits: bits, groupSize: groupSize, mode: mode, outliers: outliers,
                      seed: seed, kernel: kernel)
        }
    }

    /// max over rows of |y_i − (Ŵx)_i| / Σ_j |Ŵ_ij x_j|, Ŵx computed in Double from `dense` = Ŵ (a row
    /// whose Σ is 0 must give exactly 0; no floor on Σ, which would excuse any error at tiny x).
    static func worstError(_ y: [Float], _ dense: Matrix, _ x: [Float]) -> Double {
        var worst = 0.0
        for i in 0..<dense.rows {
            var exact = 0.0, magnitude = 0.0
            for j in 0..<dense.cols {
                let t = Double(dense[i, j]) * Double(x[j])
                exact += t
                magnitude += abs(t)
            }
            let error = abs(Double(y[i]) - exact)
            worst = max(worst, magnitude > 0 ? error / magnitude : (error == 0 ? 0 : .infinity))
        }
        return worst
    }

    func check(rows: Int, cols: Int, bits: Int, groupSize: Int?, mode: UniformQuantizer.Mode,
               outliers: Double, seed: UInt64, kernel: GEMVKernel, threads: Int? = nil) throws {
        var w = Matrix.gaussian(rows: rows, cols: cols, seed: seed)
        w.withUnsafeMutableBufferPointer { p in for i in stride(from: 0, to: p.count, by: 37) { p[i] *= 9 } }
        let packed = try QuantizationScheme(bits: bits, groupSize: groupSize, mode: mode, outlierFraction: outliers).pack(w)
        if outliers > 0 { #expect(packed.outliers.count > 0) }
        let dense = packed.dequantized()
        let x = Matrix.gaussian(rows: 1, cols: cols, seed: seed + 1).storage
        let y = try packed.multiply(x, threads: threads, kernel: kernel)
        let worst = Self.worstError(y, dense, x)
        #expect(worst <= 1e-5, "\(kernel) bits \(bits) group \(String(describing: groupSize)) \(mode) p \(outliers) \(rows)x\(cols): \(worst)")
    }

    @Test(arguments: 2...8)
    func matchesDenseReference(bits: Int) throws {
        for groupSize in [32, 64, 128, nil, 48] as [Int?] {
            for (rows, cols) in [(1, 1), (5, 31), (9, 100), (33, 320), (70, 1000)] {
                try check(rows: rows, cols: cols, bits: bits, groupSize: groupSize, mode: .asymmetric,
                          outliers: 0, seed: UInt64(rows * cols + bits))
            }
            try check(rows: 40, cols: 200, bits: bits, groupSize: groupSize, mode: .symmetric, outliers: 0, seed: 5)
            try check(rows: 40, cols: 200, bits: bits, groupSize: groupSize, mode: .asymmetric, outliers: 0.02, seed: 6)
            try check(rows: 40, cols: 200, bits: bits, groupSize: groupSize, mode: .symmetric, outliers: 0.01, seed: 8)
        }
    }

    /// The row split gives one task per 2^18 weights, at most 4 per worker: a 2048×512 matrix makes 4
    /// tasks for 2 workers, 4096×4096 makes 8 (a precedence slip, `rows * cols >> 18` read as
    /// `rows * (cols >> 18)`, once made every matrix with fewer than 2^18 columns a single task).
    @Test func rowBlocksSplitTheWorkAndCoverEveryRow() throws {
        let packed = try QuantizationScheme(bits: 4, groupSize: 128).pack(Matrix.gaussian(rows: 2048, cols: 512, seed: 5))
        let (tasks, block) = packed.nibbleBlocks(workers: 2)
        #expect(tasks == 4)
        let blocks = (0..<tasks).map(block)
        #expect(blocks.first?.lowerBound == 0 && blocks.last?.upperBound == 2048)
        for i in 1..<tasks { #expect(blocks[i].lowerBound == blocks[i - 1].upperBound) }
        let small = try QuantizationScheme(bits: 4, groupSize: 128).pack(Matrix.gaussian(rows: 64, cols: 512, seed: 5))
        #expect(small.nibbleBlocks(workers: 2).tasks == 1)
    }

    @Test func largeMatrixUsesThreads() throws {
        try check(rows: 600, cols: 576, bits: 4, groupSize: 128, mode: .asymmetric, outliers: 0.005, seed: 21)
        try check(rows: 300, cols: 1536, bits: 3, groupSize: 64, mode: .asymmetric, outliers: 0, seed: 22)
    }

    /// 4-bit tails of both kernels: columns that do not fill the last 64-code pair (or the last group),
    /// row counts that leave a remainder after the AVX2 kernel's 4-row blocks, and worker blocks.
    @Test(arguments: [32, 64, 96, 128, nil] as [Int?])
    func fourBitTails(groupSize: Int?) throws {
        let shapes = [(1, 64), (3, 1), (2, 63), (4, 65), (5, 127), (6, 129), (7, 191), (13, 200), (67, 1001), (130, 520)]
        for (rows, cols) in shapes {
            for mode in [UniformQuantizer.Mode.asymmetric, .symmetric] {
                for kernel in [GEMVKernel.automatic, .portable] {
                    try check(rows: rows, cols: cols, bits: 4, groupSize: groupSize, mode: mode, outliers: 0,
                              seed: UInt64(rows &* 31 &+ cols), kernel: kernel, threads: 3)
                }
            }
        }
        try check(rows: 67, cols: 1001, bits: 4, groupSize: groupSize, mode: .asymmetric, outliers: 0.01, seed: 9)
    }

    /// Every kernel scales its pre-scaled copies of x by a power of two from the largest finite |x|
    /// (the 4-bit AVX2 kernel also reads asymmetric codes as denormal Floats), so every magnitude
    /// keeps the bound: denormal x (x·16⁻ᵗ, x·2^(−p·t) and the 3-bit x·2⁻ᵏ alone lost its bits), x
    /// near the top of Float's range, one huge entry among small ones (beside a zero symmetric
    /// weight: exactly nothing added), and x = 0 (y exactly 0). Widths 2, 3, 4, 5 (generic) and 8.
    @Test(arguments: [2, 3, 4, 5, 8])
    func kernelsKeepTheirPrecisionAtEveryScaleOfX(bits: Int) throws {
        let rows = 37, cols = 300
        let w = Matrix.gaussian(rows: rows, cols: cols, seed: 51)
        let base = Matrix.gaussian(rows: 1, cols: cols, seed: 52).storage
        let tiny = Float.leastNormalMagnitude / 100  // about 1e-40
        var inputs: [(String, [Float])] = [tiny, 1e-30, 1e-6, 1, 3e4, 1e20, 1e34].map { s in ("×\(s)", base.map { $0 * s }) }
        var spiky = base
        spiky[7] = 1e20
        spiky[250] = -3e19
        inputs.append(("spiky", spiky))
        for mode in [UniformQuantizer.Mode.asymmetric, .symmetric] {
            for groupSize in [64, 96, nil] as [Int?] {
                let packed = try QuantizationScheme(bits: bits, groupSize: groupSize, mode: mode).pack(w)
                let dense = packed.dequantized()
                for (name, x) in inputs {
                    for kernel in [GEMVKernel.automatic, .portable] {
                        let worst = Self.worstError(try packed.multiply(x, kernel: kernel), dense, x)
                        #expect(worst <= 1e-5, "\(kernel) \(bits) bits \(mode) group \(String(describing: groupSize)) x \(name): \(worst)")
                    }
                }
                for kernel in [GEMVKernel.automatic, .portable] {
                    let zero = try packed.multiply([Float](repeating: 0, count: cols), kernel: kernel)
                    #expect(zero.allSatisfy { $0 == 0 }, "\(kernel) \(bits) bits \(mode) group \(String(describing: groupSize))")
                }
            }
        }
    }

    /// Asymmetric codes are read as denormal Floats, which denormals-are-zero would turn into zeros: a
    /// caller with DAZ and flush-to-zero on (as code built with -ffast-math leaves them) gets the
    /// same bits, and its MXCSR back unchanged.
    @Test func fourBitKernelIgnoresTheCallersDenormalFlags() throws {
        let packed = try QuantizationScheme(bits: 4, groupSize: 128).pack(Matrix.gaussian(rows: 70, cols: 640, seed: 61))
        let x = Matrix.gaussian(rows: 1, cols: 640, seed: 62).storage
        let expected = try packed.multiply(x, threads: 1, kernel: .automatic)
        #expect(expected.contains { $0 != 0 })
        let saved = cq_mxcsr()
        cq_set_mxcsr(saved | 0x8040)
        let flagged = cq_mxcsr()
        let y = try packed.multiply(x, threads: 1, kernel: .automatic)
        let after = cq_mxcsr()
        cq_set_mxcsr(saved)
        #expect(y == expected)
        if GEMVKernel.avx2Available { #expect(flagged & 0x8040 == 0x8040 && after == flagged) }
    }

    @Test func bothFourBitKernelsAgree() throws {
        let w = Matrix.gaussian(rows: 259, cols: 1000, seed: 31)
        for mode in [UniformQuantizer.Mode.asymmetric, .symmetric] {
            let packed = try QuantizationScheme(bits: 4, groupSize: 128, mode: mode, outlierFraction: 0.003).pack(w)
            let x = Matrix.gaussian(rows: 1, cols: 1000, seed: 32).storage
            let a = try packed.multiply(x, kernel: .automatic)
            let b = try packed.multiply(x, kernel: .portable)
            let scale = b.map { abs($0) }.max() ?? 1
            let largest = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            #expect(largest <= 1e-5 * scale)
        }
    }

    /// Calls from several threads at once (the AVX2 worker pool serves one; the others run serially)
    /// give the same bits as a single-threaded call: every row is computed by the same code.
    @Test func concurrentCallsMatchSerial() throws {
        let packed = try QuantizationScheme(bits: 4, groupSize: 128).pack(Matrix.gaussian(rows: 512, cols: 2048, seed: 41))
        let x = Matrix.gaussian(rows: 1, cols: 2048, seed: 42).storage
        let serial = try packed.multiply(x, threads: 1)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var all: [[Float]] = []
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            for _ in 0..<5 {
                let y = (try? packed.multiply(x)) ?? []
                results.lock.withLock { results.all.append(y) }
            }
        }
        let all = results.lock.withLock { results.all }
        #expect(all.count == 30)
        #expect(all.allSatisfy { $0 == serial })
    }

    /// The run-time dispatch agrees with the kernel's view of the CPU (/proc/cpuinfo on Linux).
    @Test func avx2DetectionMatchesTheCPU() throws {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        let expected = flags.isSuperset(of: ["avx2", "fma", "f16c"])
        #expect(GEMVKernel.avx2Available == expected)
        let packed = try QuantizationScheme(bits: 4, groupSize: 128).pack(Matrix.gaussian(rows: 4, cols: 128, seed: 2))
        #expect(packed.kernelName == (expected ? "avx2" : "portable"))
        // 5 bits, or groups that are not whole 32-code chunks, always take the portable kernel.
        let five = try QuantizationScheme(bits: 5, groupSize: 128).pack(Matrix.gaussian(rows: 4, cols: 128, seed: 2))
        let odd = try QuantizationScheme(bits: 4, groupSize: 48).pack(Matrix.gaussian(rows: 4, cols: 128, seed: 2))
        #expect(five.kernelName == "portable" && odd.kernelName == "portable")
    }

    @Test func wrongShapeThrows() throws {
        let packed = try QuantizationScheme(bits: 4, groupSize: 32).pack(Matrix.gaussian(rows: 2, cols: 8, seed: 1))
        #expect(throws: QuantizationError.self) { try packed.multiply([1, 2, 3]) }
    }

    /// Release-build benchmark: `KVSCOPE_BENCH=1 swift test -c release --filter benchmark`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["KVSCOPE_BENCH"] != nil))
    func benchmark() throws {
        for (rows, cols) in [(4096, 4096), (16384, 8192)] {
            for bits in [4, 2, 3, 8] {
                let r = try QuantizationBenchmarks.gemv(rows: rows, cols: cols, bits: bits, repeats: 20)
                print(String(format: "%5dx%-5d %db g128: fused %.3f ms, sgemv %.3f ms, speedup %.2f, fused %.1f GB/s = %.0f%% of read bandwidth %.1f GB/s",
                             rows, cols, bits, r.fused * 1e3, r.sgemv * 1e3, r.speedup, r.fusedGBs, 100 * r.bandwidthFraction, r.bandwidthGBs))
            }
        }
    }
}
