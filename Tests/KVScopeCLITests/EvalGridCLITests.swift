import Foundation
import Testing

/// `kvscope eval` through its own code path (the built binary) over a grid of K/V policies, against
/// the independent float64 numpy reference Tests/Reference/kv_grid_reference.py
/// (Tests/Golden/inference/smollm2_kv_grid.json).
///
/// Each compressed run is compared by its change from the baseline, ΔNLL = mean NLL − baseline mean
/// NLL, to 1e-4 absolute: far tighter than the effects measured (4-bit K/V with group 64 moves the
/// mean NLL by about 5e-3), so a dropped quantizer, a dropped basis or a branch applied to the wrong
/// half of the cache fails.
@Suite(.serialized) struct EvalGridCLITests {
    static let model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    static let tolerance = 1e-4

    struct Golden: Decodable {
        struct Case: Decodable {
            var name: String?
            var window: Int
            var k_rank: Int?
            var k_bits: Int
            var v_rank: Int?
            var v_bits: Int
            var group: Int?
            var layers: [Int]?
            var mean_nll: Double
            var delta_nll: Double
            var perplexity: Double

            /// The eval options of this case.
            var options: [String] {
                var o = ["--window", String(window), "--k-bits", String(k_bits), "--v-bits", String(v_bits)]
                if let k_rank { o += ["--k-rank", String(k_rank)] }
                if let v_rank { o += ["--v-rank", String(v_rank)] }
                if let group { o += ["--group", String(group)] }
                if let layers { o += ["--layers", layers.map(String.init).joined(separator: ",")] }
                return o
            }

            /// A quantizer in every layer makes the run chaotic in the last bits: an fp32 rounding
            /// that differs from float64's flips a code, the next layers' inputs move, more codes
            /// flip. Such runs are compared to max(2e-3, 35%) of the reference's ΔNLL (enough to see
            /// a quantizer removed); every other run (low rank alone, or the quantizer in a few
            /// layers) to 1e-4 absolute.
            var tolerance: Double {
                let quantized = k_bits < 16 || v_bits < 16
                return quantized && layers == nil ? max(2e-3, 0.35 * abs(delta_nll)) : EvalGridCLITests.tolerance
            }
        }
        struct Section: Decodable {
            var text: String
            var n_tokens: Int
            var baseline_mean_nll: Double
            var baseline_perplexity: Double
            var cases: [Case]
        }
        var calibration: String
        var long: Section
        var grid: Section
    }

    static let golden: Result<Golden, any Error> = Result {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: CLI.root.appendingPathComponent(
            "Tests/Golden/inference/smollm2_kv_grid.json")))
    }

    /// One calibration cache for the suite: the statistics of the calibration text are captured once.
    static let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvscope-grid-\(UUID().uuidString)").path

    struct Output: Decodable {
        var n_tokens: Int
        var mean_nll: Double
        var perplexity: Double
        var baseline_mean_nll: Double?
        var baseline_perplexity: Double?
        var kv_bytes: Double
    }

    /// DESIGN.md §4's bytes at L = T for a point compressed in `layers` of SmolLM2's 30 (d_kv 192),
    /// written out here: exact layers 2·L·d_kv·2; per compressed branch min(L,w)·d_kv·2 +
    /// max(L−w,0)·(r·b/8 + ⌈r/g⌉·4), no metadata at b = 16, r = d_kv without low rank.
    static func expectedBytes(_ c: Golden.Case, tokens L: Int) -> Double {
        let dkv = 192, layers = Set(c.layers ?? Array(0..<30))
        func branch(_ rank: Int?, _ bits: Int) -> Double {
            let r = min(rank ?? dkv, dkv), g = c.group ?? r
            let meta = bits == 16 ? 0 : ((r + g - 1) / g) * 4
            return Double(min(L, c.window) * dkv * 2) + Double(max(L - c.window, 0)) * (Double(r * bits) / 8 + Double(meta))
        }
        let exact = Double(2 * L * dkv * 2)
        return (0..<30).reduce(0.0) { sum, l in
            sum + (layers.contains(l) ? branch(c.k_rank, c.k_bits) + branch(c.v_rank, c.v_bits) : exact)
        }
    }

    static func eval(text: String, _ options: [String]) throws -> Output {
        let g = try golden.get()
        let r = try CLI.run(["eval", model, "--text", text, "--calib", g.calibration, "--json"] + options,
                            environment: ["XDG_CACHE_HOME": cache])
        guard r.status == 0 else { throw CLITestError("eval \(options.joined(separator: " ")) exited \(r.status): \(r.stderr)") }
        return try JSONDecoder().decode(Output.self, from: Data(r.stdout.utf8))
    }

    /// The acceptance cases on Samples/eval.txt (355 tokens): K alone, V alone, both, quantized
    /// alone, in every layer and in a few: ΔNLL within its tolerance (1e-4 unless the quantizer is in
    /// every layer) and the perplexity within 0.5% of the float64 reference.
    @Test func longTextCasesMatchTheFloat64Reference() throws {
        let g = try Self.golden.get()
        for c in g.long.cases {
            let out = try Self.eval(text: g.long.text, c.options)
            let base = try #require(out.baseline_mean_nll, "\(c.name ?? "") reports no baseline")
            #expect(out.n_tokens == g.long.n_tokens)
            #expect(out.kv_bytes == Self.expectedBytes(c, tokens: g.long.n_tokens), "\(c.name ?? ""): kv_bytes")
            #expect(abs(base - g.long.baseline_mean_nll) < 5e-3, "baseline \(base) vs \(g.long.baseline_mean_nll)")
            let delta = out.mean_nll - base
            #expect(abs(delta - c.delta_nll) < c.tolerance,
                    "\(c.name ?? ""): ΔNLL \(delta) vs numpy float64 \(c.delta_nll) (tolerance \(c.tolerance))")
            #expect(abs(out.perplexity - c.perplexity) / c.perplexity < 0.005,
                    "\(c.name ?? ""): perplexity \(out.perplexity) vs numpy float64 \(c.perplexity)")
        }
    }

    /// K rank ∈ {1, 16, d_kv} × bits ∈ {2, 4, 16}, the same for V, at windows 32 and 0, group 32, on
    /// a 95-token text, each point in one layer (`--layers`, every layer visited); the baseline is
    /// run once and each point with --no-baseline.
    @Test func gridMatchesTheFloat64Reference() throws {
        let g = try Self.golden.get()
        let baseline = try Self.eval(text: g.grid.text, [])
        #expect(baseline.baseline_mean_nll == nil, "no compression option: no baseline run")
        #expect(abs(baseline.mean_nll - g.grid.baseline_mean_nll) < 5e-3)
        #expect(g.grid.cases.count == 108)
        var worst = 0.0
        for c in g.grid.cases {
            let out = try Self.eval(text: g.grid.text, c.options + ["--no-baseline"])
            #expect(out.baseline_mean_nll == nil)
            #expect(out.kv_bytes == Self.expectedBytes(c, tokens: g.grid.n_tokens), "\(c.options): kv_bytes")
            let delta = out.mean_nll - baseline.mean_nll
            worst = max(worst, abs(delta - c.delta_nll))
            #expect(c.layers?.count == 1)
            #expect(abs(delta - c.delta_nll) < c.tolerance, "\(c.options.joined(separator: " ")): ΔNLL \(delta) vs numpy float64 \(c.delta_nll)")
            let exact = (c.k_rank ?? 192) >= 192 && (c.v_rank ?? 192) >= 192 && c.k_bits == 16 && c.v_bits == 16
            if exact { #expect(out.mean_nll == baseline.mean_nll, "rank d_kv at 16 bits is the baseline, bit for bit") }
        }
        print("grid: worst |ΔNLL − numpy ΔNLL| = \(worst)")
    }
}

struct CLITestError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
