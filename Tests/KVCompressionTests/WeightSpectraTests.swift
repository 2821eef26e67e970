import Foundation
import Testing
import LinearAlgebra
@testable import KVCompression

/// A fresh folder under the system temporary directory, removed by the caller.
func temporaryFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("kvscope-tests-\(name)-\(UInt64.random(in: 0...UInt64.max))", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Counts calls from concurrent loaders.
final class CallCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.withLock { n += 1 } }
    var count: Int { lock.withLock { n } }
}

@Suite struct WeightSpectraTests {
    static func weights(_ layer: Int) -> (k: Matrix, v: Matrix) {
        (Matrix.gaussian(rows: 16, cols: 40, seed: UInt64(100 + 2 * layer)),
         Matrix.gaussian(rows: 16, cols: 40, seed: UInt64(101 + 2 * layer)))
    }

    @Test func parallelResultsEqualSerialSVDs() throws {
        let progress = CallCounter()
        let spectra = try computeWeightSpectra(layerCount: 6, progress: { _, total in
            #expect(total == 6)
            progress.increment()
        }) { Self.weights($0) }
        #expect(progress.count == 6)
        #expect(spectra.map(\.layer) == Array(0..<6))
        for s in spectra {
            let w = Self.weights(s.layer)
            #expect(s.k == (try Spectrum(matrix: w.k)))
            #expect(s[.v] == (try Spectrum(matrix: w.v)))
        }
    }

    /// Overlapping parallel regions restore OpenBLAS's thread count only when the last one ends.
    @Test func overlappingParallelRegionsRestoreBLASThreads() {
        // Other tests run parallel regions concurrently, so only the inside of the scope is checked
        // exactly; the restore happens when the process-wide depth returns to 0.
        SingleThreadedBLAS.enter()
        SingleThreadedBLAS.enter()
        #expect(blasThreadCount == 1)
        SingleThreadedBLAS.leave()
        #expect(blasThreadCount == 1)
        SingleThreadedBLAS.leave()
    }

    @Test func cacheRoundTripSkipsLoading() throws {
        let folder = try temporaryFolder("cache")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = SpectrumCache(directory: folder)
        let key: @Sendable (Int, ProjectionKind) -> String = { "model.gguf|size=1|blk.\($0).attn_\($1.rawValue).weight|weights" }
        let loads = CallCounter()
        let cold = try computeWeightSpectra(layerCount: 4, cache: cache, cacheKey: key) { layer in
            loads.increment()
            return Self.weights(layer)
        }
        #expect(loads.count == 4)
        let warm = try computeWeightSpectra(layerCount: 4, cache: cache, cacheKey: key) { layer in
            loads.increment()
            return Self.weights(layer)
        }
        #expect(loads.count == 4, "a warm run must not load weights")
        #expect(warm == cold)
        // No temporary files are left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(names.count == 8)
        #expect(names.allSatisfy { $0.hasSuffix(".spectrum") && !$0.hasPrefix(".") })
    }

    @Test func corruptOrForeignCacheEntriesAreRecomputed() throws {
        let folder = try temporaryFolder("corrupt")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = SpectrumCache(directory: folder)
        let spectrum = try Spectrum(matrix: Self.weights(0).k)
        try cache.store(spectrum, key: "a")
        #expect(cache.load(key: "a") == spectrum)
        let url = cache.fileURL(for: "a")
        let good = try Data(contentsOf: url)

        // Truncated, bit-flipped, wrong version, and a file holding another key all read as misses.
        try good.prefix(good.count - 3).write(to: url)
        #expect(cache.load(key: "a") == nil)
        var flipped = [UInt8](good)
        flipped[flipped.count / 2] ^= 0x10
        try Data(flipped).write(to: url)
        #expect(cache.load(key: "a") == nil)
        var version = [UInt8](good)
        version[8] = 99
        try Data(version).write(to: url)
        #expect(cache.load(key: "a") == nil)
        try Data(SpectrumCache.encode(spectrum, key: "b")).write(to: url)
        #expect(cache.load(key: "a") == nil)
        try Data().write(to: url)
        #expect(cache.load(key: "a") == nil)

        // The computation recovers: it recomputes and overwrites the damaged entry.
        try Data(flipped).write(to: url)
        let loads = CallCounter()
        let spectra = try computeWeightSpectra(layerCount: 1, cache: cache, cacheKey: { _, kind in kind == .k ? "a" : "a-v" }) { layer in
            loads.increment()
            return Self.weights(layer)
        }
        #expect(loads.count == 1)
        #expect(spectra[0].k == spectrum)
        #expect(cache.load(key: "a") == spectrum)
    }

    @Test func defaultCacheFolderFollowsXDG() {
        let xdg = SpectrumCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"])
        #expect(xdg.path == "/x/cache/kvscope/spectra")
        let home = SpectrumCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "", "HOME": "/home/u"])
        #expect(home.path == "/home/u/.cache/kvscope/spectra")
    }

    @Test func cancellationStopsTheComputation() throws {
        let flag = CancellationFlag()
        flag.cancel()
        let loads = CallCounter()
        #expect(throws: KVCompressionError.cancelled) {
            try computeWeightSpectra(layerCount: 8, cancellation: flag) { layer in
                loads.increment()
                return Self.weights(layer)
            }
        }
        #expect(loads.count == 0)
    }

    @Test func loaderErrorsPropagate() {
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try computeWeightSpectra(layerCount: 3) { layer in
                if layer == 1 { throw Boom() }
                return Self.weights(layer)
            }
        }
    }

    // MARK: - SmolLM2 against gguf-py + numpy (Tests/Reference/kv_weight_spectra.py)

    // SmolLM2's real spectra against this golden are checked end to end (GGUF → catalog →
    // engine) in ExplorerCoreTests/SmolLM2SpectraTests.swift.

    /// The golden's energy ranks agree with ``Spectrum/energyRank(_:)``
    /// applied to the golden's own singular values (numpy's cumsum/searchsorted vs ours).
    @Test func smolLM2GoldenEnergyRanksAgreeWithSpectrum() throws {
        let golden = try loadGolden("smollm2_weight_spectra.json")
        let layers = golden["layers"] as? [[String: Any]] ?? []
        try #require(layers.count == 30)
        for entry in layers {
            for kind in ProjectionKind.allCases {
                let g = entry[kind.rawValue] as? [String: Any] ?? [:]
                let rows = g["rows"] as? Int ?? 0, cols = g["cols"] as? Int ?? 0
                let s = try Spectrum(singularValues: doubles(g["singular_values"]).map(Float.init), rows: rows, cols: cols)
                let ranks = g["energy_rank"] as? [String: Int] ?? [:]
                #expect(rows == 192 && cols == 576)
                #expect(s.energyRank(0.9) == ranks["0.9"] && s.energyRank(0.95) == ranks["0.95"] && s.energyRank(0.99) == ranks["0.99"])
            }
        }
    }
}

@Suite struct WeightSpectraTimingTests {
    /// SmolLM2-shaped timing (30 layers × W_k, W_v of 192×576, Gaussian stand-ins): cold SVDs, then a warm
    /// start from the disk cache. Prints the figures; the bounds are loose guards, not the acceptance
    /// (which is measured on the real model in release at merge).
    @Test func smolLM2ShapedColdAndWarm() throws {
        let folder = try temporaryFolder("timing")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = SpectrumCache(directory: folder)
        var matrices: [(k: Matrix, v: Matrix)] = []
        for layer in 0..<30 {
            let seed = UInt64(2 * layer)
            matrices.append((Matrix.gaussian(rows: 192, cols: 576, seed: seed), Matrix.gaussian(rows: 192, cols: 576, seed: seed + 1)))
        }
        let weights = matrices
        let key: @Sendable (Int, ProjectionKind) -> String = { "timing|\($0)|\($1.rawValue)" }
        let clock = ContinuousClock()
        var cold: [LayerSpectra] = []
        let coldTime = try clock.measure {
            cold = try computeWeightSpectra(layerCount: 30, cache: cache, cacheKey: key) { weights[$0] }
        }
        var warm: [LayerSpectra] = []
        let warmTime = try clock.measure {
            warm = try computeWeightSpectra(layerCount: 30, cache: cache, cacheKey: key) { weights[$0] }
        }
        #expect(warm == cold)
        print("weight spectra, 60 SVDs of 192x576: cold \(coldTime), warm (cache) \(warmTime)")
        #expect(coldTime < .seconds(20) && warmTime < .seconds(2))
    }
}
