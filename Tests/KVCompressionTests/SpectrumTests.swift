import Foundation
import Testing
import LinearAlgebra
@testable import KVCompression

@Suite struct SpectrumTests {
    @Test func diagonalEnergyRanks() throws {
        // σ = 8, 4, 2, 2, 1, 1: σ² = 64, 16, 4, 4, 1, 1 (total 90);
        // cumulative fractions 0.711, 0.889, 0.933, 0.978, 0.989, 1.
        let sigmas: [Float] = [8, 4, 2, 2, 1, 1]
        let m = Matrix.diagonal([2, 8, 1, 4, 1, 2], rows: 6, cols: 7)
        let s = try Spectrum(matrix: m)
        #expect(s.singularValues.count == 6)
        for (got, want) in zip(s.singularValues, sigmas) { #expect(abs(got - want) <= 1e-5 * want) }
        let total: Double = 90
        #expect(abs(s.totalEnergy - total) < 1e-3)
        #expect(s.energyRank(0.90) == 3)
        #expect(s.energyRank(0.95) == 4)
        #expect(s.energyRank(0.99) == 6)
        #expect(s.energyRank(0.5) == 1)
        #expect(s.energyRank(0) == 0)
        #expect(s.energyRank(1) == 6)
        let normalized = s.normalizedSingularValues
        #expect(normalized.first == 1)
        #expect(abs(normalized[5] - 0.125) < 1e-6)
        // The same spectrum from the Gram matrix of the diagonal matrix.
        let viaGram = try Spectrum(gram: try gram(m), rows: 6)
        #expect(viaGram.energyRank(0.90) == 3 && viaGram.energyRank(0.95) == 4 && viaGram.energyRank(0.99) == 6)
    }

    @Test func energyRankOfExactValuesUsesGreaterOrEqual() throws {
        // σ² = 9, 1: the 0.9 level is met exactly by the first value.
        let s = try Spectrum(singularValues: [1, 3], rows: 2, cols: 2)
        #expect(s.singularValues == [3, 1])
        #expect(s.energyRank(0.9) == 1)
        #expect(s.energyRank(0.91) == 2)
        #expect(s.energyFraction(rank: 1) == 0.9)
    }

    @Test func zeroAndEmptySpectra() throws {
        let zero = try Spectrum(matrix: Matrix(rows: 3, cols: 4))
        #expect(zero.energyRank(0.99) == 0)
        #expect(zero.normalizedSingularValues == [0, 0, 0])
        let empty = try Spectrum(singularValues: [], rows: 0, cols: 5)
        #expect(empty.energyRank(0.9) == 0)
    }

    @Test func invalidInputsAreTypedErrors() {
        #expect(throws: KVCompressionError.self) { try Spectrum(singularValues: [-1], rows: 1, cols: 1) }
        #expect(throws: KVCompressionError.self) { try Spectrum(singularValues: [1, 2], rows: 1, cols: 5) }
        #expect(throws: KVCompressionError.self) { try Spectrum(gram: Matrix(rows: 2, cols: 3), rows: 4) }
        var bad = Matrix(rows: 2, cols: 2)
        bad[0, 0] = .nan
        #expect(throws: KVCompressionError.self) { try Spectrum(matrix: bad) }
    }

    @Test func gramRouteMatchesDirectSVD() throws {
        let k = Matrix.gaussian(rows: 300, cols: 24, seed: 7)
        let direct = try Spectrum(matrix: k)
        let viaGram = try Spectrum(gram: try gram(k), rows: 300)
        #expect(viaGram.singularValues.count == 24)
        for (a, b) in zip(direct.singularValues, viaGram.singularValues) { #expect(abs(a - b) <= 1e-4 * a) }
        // Fewer tokens than channels: only T singular values exist.
        let short = Matrix.gaussian(rows: 5, cols: 24, seed: 8)
        let shortSpectrum = try Spectrum(gram: try gram(short), rows: 5)
        #expect(shortSpectrum.singularValues.count == 5)
    }

    /// Spectra of the formula matrices of Tests/Reference/kv_golden.py against numpy (float64).
    @Test func spectraMatchNumpyGoldens() throws {
        let golden = try loadGolden("kv_golden.json")
        let cases: [(Int, Int, Double)] = [(48, 96, 1), (96, 48, 2), (40, 40, 3)]
        let spectra = golden["spectra"] as? [[String: Any]] ?? []
        try #require(spectra.count == cases.count)
        for ((rows, cols, seed), entry) in zip(cases, spectra) {
            let s = try Spectrum(matrix: plainMatrix(rows, cols, seed))
            let want = doubles(entry["singular_values"])
            try #require(want.count == s.singularValues.count)
            for (got, w) in zip(s.singularValues, want) {
                #expect(abs(Double(got) - w) <= 1e-4 * w + 1e-6 * want[0], "σ \(got) vs numpy \(w) for \(rows)x\(cols)")
            }
            let ranks = entry["energy_rank"] as? [String: Int] ?? [:]
            #expect(s.energyRank(0.9) == ranks["0.9"])
            #expect(s.energyRank(0.95) == ranks["0.95"])
            #expect(s.energyRank(0.99) == ranks["0.99"])
        }
    }

    /// The Gram route (KᵀK eigenvalues) against numpy's singular values of K = X Wᵀ.
    @Test func kvSpectrumFromGramMatchesNumpy() throws {
        let golden = try loadGolden("kv_golden.json")
        let kv = golden["kv"] as? [String: Any] ?? [:]
        let want = doubles(kv["singular_values"])
        let (x, w) = goldenInputs()
        let k = try matmul(x, .none, w, .transpose)
        let s = try Spectrum(gram: try gram(k), rows: k.rows)
        try #require(want.count == s.singularValues.count)
        for (got, w) in zip(s.singularValues, want) {
            // The Gram route resolves σ² to ~1e-6·σ₁²; σ to 1e-4 relative down to σ₁/100.
            #expect(abs(Double(got) - w) <= 1e-4 * w + 2e-6 * want[0] * want[0] / max(w, 1e-30), "σ \(got) vs \(w)")
        }
    }
}
