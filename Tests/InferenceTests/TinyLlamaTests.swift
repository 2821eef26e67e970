import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Quantization
import Testing

/// The tiny random llama of Tests/Reference/llama_reference.py and its numpy logits.
struct TinyGolden: Decodable {
    struct PolicySpec: Decodable {
        var rank: Int?
        var window: Int
        var bits: Int
        var group: Int?
    }
    struct Case: Decodable {
        var logits: [Float]
        var mean_nll: Double
        var perplexity: Double
    }
    struct Style: Decodable {
        var k_bases: [[Float]]
        var v_bases: [[Float]]
        var cases: [String: Case]
    }
    var tokens: [Int32]
    var policies: [String: PolicySpec]
    var styles: [String: Style]

    static let directory = repositoryFile("Tests/Golden/inference/tiny")
    static func load() throws -> TinyGolden {
        try JSONDecoder().decode(TinyGolden.self, from: Data(contentsOf: directory.appendingPathComponent("manifest.json")))
    }
}

extension RopeStyle {
    var goldenName: String { self == .rotateHalf ? "rotate_half" : "adjacent" }
}

@Suite struct TinyLlamaTests {
    let golden: TinyGolden

    init() throws { golden = try TinyGolden.load() }

    func model(_ style: RopeStyle) throws -> TransformerModel {
        try TransformerModel(weights: loadRawModel(TinyGolden.directory, style: style))
    }

    func policy(_ name: String, style: RopeStyle, model: TransformerModel) throws -> any KVCachePolicy {
        let spec = try #require(golden.policies[name])
        let s = try #require(golden.styles[style.goldenName])
        let c = model.configuration
        let bases = { (flat: [[Float]]) in try flat.map { try Matrix(rows: c.kvDimension, cols: c.kvDimension, storage: $0) } }
        return try BiBranchKVCache(
            window: spec.window, layerCount: c.layerCount, kvDimension: c.kvDimension,
            keyRank: spec.rank, valueRank: spec.rank, keyBases: bases(s.k_bases), valueBases: bases(s.v_bases),
            bits: spec.bits, groupSize: spec.group)
    }

    static let cases = ["baseline", "rank4_window3", "bits4_group4_window3", "rank4_bits4_group2_window3",
                        "rank4_window0", "bits3_group5_window0"]

    @Test(arguments: [RopeStyle.rotateHalf, .adjacentPairs], cases)
    func logitsMatchNumpy(style: RopeStyle, name: String) throws {
        let model = try model(style)
        let expected = try #require(golden.styles[style.goldenName]?.cases[name])
        let logits = try model.logits(tokens: golden.tokens, policy: policy(name, style: style, model: model))
        #expect(logits.rows == golden.tokens.count && logits.cols == 50)
        let error = relativeMaxError(logits, expected.logits)
        #expect(error < 1e-4, "\(style) \(name): relative error \(error)")
        let ppl = try Perplexity.evaluate(model: model, tokens: golden.tokens, policy: policy(name, style: style, model: model))
        let nllError = abs(ppl.meanNegativeLogLikelihood - expected.mean_nll) / expected.mean_nll
        #expect(nllError < 1e-5, "\(style) \(name): mean NLL \(ppl.meanNegativeLogLikelihood) vs \(expected.mean_nll)")
    }

    @Test func compressionChangesLogits() throws {
        // Guards against a policy silently ignored: every compressed case differs from the baseline.
        for style in ["rotate_half", "adjacent"] {
            let s = try #require(golden.styles[style])
            let base = try #require(s.cases["baseline"]).logits
            for name in Self.cases where name != "baseline" {
                let other = try #require(s.cases[name]).logits
                let difference: Double = relativeMaxError(other, base)
                #expect(difference > 1e-3, "\(style) \(name)")
            }
        }
    }

    @Test(arguments: [RopeStyle.rotateHalf, .adjacentPairs])
    func wrongRopePairingIsDetected(style: RopeStyle) throws {
        let wrong: RopeStyle = style == .rotateHalf ? .adjacentPairs : .rotateHalf
        let logits = try model(wrong).logits(tokens: golden.tokens)
        let expected = try #require(golden.styles[style.goldenName]?.cases["baseline"]).logits
        let error = relativeMaxError(logits, expected)
        #expect(error > 1e-2, "a wrong pairing must change the logits (relative error \(error))")
        // Position 0 has angle 0: RoPE is the identity there, so the first row must still agree.
        let first = relativeMaxError(Array(logits.storage[0..<50]), Array(expected[0..<50]))
        #expect(first < 1e-4)
    }

    /// A policy whose compressed branch is an exact copy, to exercise the bi-branch selection.
    struct CopyPolicy: KVCachePolicy {
        var window: Int
        func compress(layer: Int, keys: Matrix, values: Matrix) throws -> CompressedKV {
            CompressedKV(keys: keys, values: values)
        }
    }

    @Test(arguments: [RopeStyle.rotateHalf, .adjacentPairs], [0, 3, 20])
    func fullRankSixteenBitsReproducesBaselineExactly(style: RopeStyle, window: Int) throws {
        let model = try model(style)
        let c = model.configuration
        let baseline = try model.logits(tokens: golden.tokens)
        let s = try #require(golden.styles[style.goldenName])
        let bases = try s.k_bases.map { try Matrix(rows: c.kvDimension, cols: c.kvDimension, storage: $0) }
        let full = try BiBranchKVCache(window: window, layerCount: c.layerCount, kvDimension: c.kvDimension,
                                       keyRank: c.kvDimension, valueRank: c.kvDimension,
                                       keyBases: bases, valueBases: bases, bits: 16, groupSize: 4)
        // rank = d_kv and 16 bits is "no compression" (DESIGN.md §5): bit for bit the baseline.
        #expect(try model.logits(tokens: golden.tokens, policy: full) == baseline)
        // A compressed branch that copies K/V exercises the per-(t, s) selection and the split P·V + P̂·V̂;
        // only the summation order of BLAS differs.
        let copied = try model.logits(tokens: golden.tokens, policy: CopyPolicy(window: window))
        let copyError = relativeMaxError(copied, baseline.storage)
        #expect(copyError < 1e-6)
        // Attention blocks smaller than the sequence: the same numbers up to summation order.
        var blocked = model
        blocked.attentionBlockSize = 5
        let blockedLogits = try blocked.logits(tokens: golden.tokens, policy: CopyPolicy(window: window))
        let blockedError = relativeMaxError(blockedLogits, baseline.storage)
        #expect(blockedError < 1e-6)
    }

    @Test func observerSeesHFOrderKeys() throws {
        // The adjacent-pair model sees the stored weights as GGUF-permuted; the captured pre-RoPE keys
        // must be in HF order, so their Gram's top eigenvectors span numpy's basis (computed in HF order).
        for style in [RopeStyle.rotateHalf, .adjacentPairs] {
            let model = try model(style)
            let c = model.configuration
            var grams = [Matrix](repeating: Matrix(rows: 0, cols: 0), count: c.layerCount)
            var captured = 0
            _ = try model.hiddenStates(tokens: golden.tokens, observer: { cap in
                grams[cap.layer] = try matmul(cap.keys, .transpose, cap.keys)
                #expect(cap.attentionInput.rows == 12 && cap.attentionInput.cols == c.hiddenSize)
                #expect(cap.rotatedKeys.rows == 12 && cap.rotatedKeys.cols == c.kvDimension)
                #expect(cap.feedForwardHidden.cols == c.feedForwardSize)
                // Position 0 is not rotated.
                #expect(Array(cap.rotatedKeys.storage[0..<c.kvDimension]) == Array(cap.keys.storage[0..<c.kvDimension]))
                captured += 1
            })
            #expect(captured == c.layerCount)
            let s = try #require(golden.styles[style.goldenName])
            for layer in 0..<c.layerCount {
                let u = try symmetricEigen(grams[layer]).vectors.prefixColumns(4)
                let ref = try Matrix(rows: c.kvDimension, cols: c.kvDimension, storage: s.k_bases[layer]).prefixColumns(4)
                let p = try matmul(u, .none, u, .transpose), q = try matmul(ref, .none, ref, .transpose)
                let distance = p.relativeFrobeniusDistance(to: q)
                #expect(distance < 1e-3, "\(style) layer \(layer): projector distance \(distance)")
            }
        }
    }

    @Test func cancellationStopsTheRun() throws {
        let model = try model(.rotateHalf)
        let flag = CancellationFlag()
        flag.cancel()
        #expect(throws: InferenceError.cancelled) {
            try Perplexity.evaluate(model: model, tokens: golden.tokens, cancellation: flag)
        }
        var fractions: [Double] = []
        _ = try Perplexity.evaluate(model: model, tokens: golden.tokens, progress: { fractions.append($0) })
        #expect(fractions.last == 1)
        #expect(fractions == fractions.sorted())
    }

    @Test func rejectsBadInput() throws {
        let model = try model(.rotateHalf)
        #expect(throws: InferenceError.invalidToken(id: 50, vocabularySize: 50)) { try model.logits(tokens: [1, 50]) }
        #expect(throws: InferenceError.self) { try Perplexity.evaluate(model: model, tokens: [3]) }
        let c = model.configuration
        #expect(throws: InferenceError.self) {
            try BiBranchKVCache(window: 0, layerCount: c.layerCount, kvDimension: c.kvDimension,
                                keyRank: 4, valueRank: 4, keyBases: [], valueBases: [])
        }
        #expect(throws: InferenceError.self) {
            try BiBranchKVCache(window: 0, layerCount: 2, kvDimension: 16, keyRank: nil, valueRank: nil, bits: 12)
        }
    }
}

@Suite struct PerplexityFormulaTests {
    @Test func negativeLogLikelihoodByHand() throws {
        // Row 0: logits (0, ln 2, ln 3) → p = (1, 2, 3)/6; target 2 → −log(1/2) = ln 2.
        // Row 1: logits (1000, 1000) (stable in Double) → p = 1/2 each; target 0 → ln 2.
        let a = try Matrix(rows: 1, cols: 3, storage: [0, Float(log(2.0)), Float(log(3.0))])
        let nll0 = try Perplexity.negativeLogLikelihoods(logits: a, targets: [2])
        #expect(abs(nll0[0] - log(2.0)) < 1e-6)
        let b = try Matrix(rows: 1, cols: 2, storage: [1000, 1000])
        let nll1 = try Perplexity.negativeLogLikelihoods(logits: b, targets: [0])
        #expect(abs(nll1[0] - log(2.0)) < 1e-12)
        #expect(throws: InferenceError.self) { try Perplexity.negativeLogLikelihoods(logits: b, targets: [2]) }
    }

    @Test func perplexityIsExpOfMeanOverTMinusOnePredictions() throws {
        // A one-layer model whose output head ignores the input: every position predicts the same
        // distribution, so PPL = exp(mean of −log p(next)) over the T − 1 next tokens, computed by hand.
        let c = try ModelConfiguration(layerCount: 1, hiddenSize: 2, headCount: 1, kvHeadCount: 1, headDimension: 2,
                                       feedForwardSize: 2, vocabularySize: 3, rmsNormEpsilon: 1e-12, ropeTheta: 10_000,
                                       ropeStyle: .rotateHalf)
        struct Fixed: ModelWeights {
            var configuration: ModelConfiguration
            var tokenEmbedding: Matrix
            var outputNorm: [Float]
            var outputHead: Matrix
            var layers: [LayerWeights]
        }
        let zero2 = Matrix(rows: 2, cols: 2)
        // Constant embeddings (1, 1) and zero layers: the final hidden state is (1, 1) everywhere
        // (ε = 1e-12 vanishes in Float).
        let weights = Fixed(
            configuration: c, tokenEmbedding: try Matrix(rows: 3, cols: 2, storage: [1, 1, 1, 1, 1, 1]),
            outputNorm: [1, 1], outputHead: try Matrix(rows: 3, cols: 2, storage: [0, 0, 0.5, 0, 1, 1]),
            layers: [LayerWeights(attentionNorm: [1, 1], query: zero2, key: zero2, value: zero2, output: zero2,
                                       feedForwardNorm: [1, 1], gate: zero2, up: zero2, down: zero2)])
        let model = try TransformerModel(weights: weights)
        // Logits (0, 0.5, 2) at every position.
        let logZ = log(exp(0.0) + exp(0.5) + exp(2.0))
        let tokens: [Int32] = [0, 2, 1, 2, 0]
        let nll = [2.0, 0.5, 2.0, 0.0].map { logZ - $0 }  // targets 2, 1, 2, 0
        let mean = nll.reduce(0, +) / 4
        let result = try Perplexity.evaluate(model: model, tokens: tokens)
        #expect(result.tokenCount == 5 && result.predictionCount == 4)
        #expect(abs(result.meanNegativeLogLikelihood - mean) < 1e-6)
        #expect(abs(result.perplexity - exp(mean)) < 1e-5)
    }
}
