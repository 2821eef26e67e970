import Foundation
import Inference
import LinearAlgebra
import Testing

/// One branch compressed and the other exact (CSKV's most common setting), on the tiny random llama
/// of Tests/Reference/llama_reference.py. The one-branch path of the attention (K̂ without V̂, or V̂
/// without K̂) must give what the two-branch path gives when the exact branch is passed as a copy:
/// that path is checked against numpy in TinyLlamaTests.
@Suite struct OneBranchTests {
    let golden: TinyGolden

    init() throws { golden = try TinyGolden.load() }

    /// K̂/V̂ from the numpy rank-4 bases for the compressed branches; the other branch is either nil
    /// (exact, the one-branch path) or an exact copy (the two-branch path).
    struct HalfPolicy: KVCachePolicy {
        var window: Int
        var keyBasis: [Matrix]?
        var valueBasis: [Matrix]?
        var copyExactBranch: Bool

        func project(_ x: Matrix, _ u: Matrix) throws -> Matrix { try matmul(try matmul(x, u), .none, u, .transpose) }

        func compress(layer: Int, keys: Matrix, values: Matrix) throws -> CompressedKV {
            let k = try keyBasis.map { try project(keys, $0[layer]) } ?? (copyExactBranch ? keys : nil)
            let v = try valueBasis.map { try project(values, $0[layer]) } ?? (copyExactBranch ? values : nil)
            return CompressedKV(keys: k, values: v)
        }
    }

    /// A policy whose K̂ is NaN everywhere: the run's NLL cannot be finite.
    struct NaNPolicy: KVCachePolicy {
        var window: Int { 0 }
        func compress(layer: Int, keys: Matrix, values: Matrix) throws -> CompressedKV {
            var k = keys
            k.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = .nan } }
            return CompressedKV(keys: k, values: nil)
        }
    }

    func bases(_ flat: [[Float]], _ c: ModelConfiguration, rank: Int) throws -> [Matrix] {
        try flat.map { try Matrix(rows: c.kvDimension, cols: c.kvDimension, storage: $0).prefixColumns(rank) }
    }

    @Test(arguments: [RopeStyle.rotateHalf, .adjacentPairs], [0, 3, 20])
    func oneBranchEqualsTwoBranchesWithACopy(style: RopeStyle, window: Int) throws {
        let model = try TransformerModel(weights: loadRawModel(TinyGolden.directory, style: style))
        let c = model.configuration
        let s = try #require(golden.styles[style.goldenName])
        let kb = try bases(s.k_bases, c, rank: 4), vb = try bases(s.v_bases, c, rank: 4)
        let baseline = try model.logits(tokens: golden.tokens)
        for (keys, values) in [(kb, nil), (nil, vb)] as [([Matrix]?, [Matrix]?)] {
            let one = try model.logits(tokens: golden.tokens, policy: HalfPolicy(
                window: window, keyBasis: keys, valueBasis: values, copyExactBranch: false))
            let two = try model.logits(tokens: golden.tokens, policy: HalfPolicy(
                window: window, keyBasis: keys, valueBasis: values, copyExactBranch: true))
            let label = keys == nil ? "V only" : "K only"
            #expect(one.storage.allSatisfy { $0.isFinite }, "\(style) w=\(window) \(label): non-finite logits")
            #expect(relativeMaxError(one, two.storage) < 1e-5, "\(style) w=\(window) \(label)")
            if window < golden.tokens.count {
                // The compressed branch is really read: rank 4 of 16 changes the logits.
                #expect(relativeMaxError(one, baseline.storage) > 1e-3, "\(style) w=\(window) \(label) ignored")
            }
        }
    }

    @Test func aNonFinitePerplexityIsAnError() throws {
        let model = try TransformerModel(weights: loadRawModel(TinyGolden.directory, style: .rotateHalf))
        #expect {
            _ = try Perplexity.evaluate(model: model, tokens: golden.tokens, policy: NaNPolicy())
        } throws: { error in
            guard let e = error as? InferenceError, case .nonFinite = e else { return false }
            return true
        }
    }
}
