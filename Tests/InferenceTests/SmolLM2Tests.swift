import Foundation
import Inference
import KVCompression
import LinearAlgebra
import Testing

/// Tests/Golden/inference/smollm2_reference.json, written by Tests/Reference/llama_reference.py.
struct SmolLM2Reference: Decodable {
    struct Position: Decodable {
        var position: Int
        var columns_start: Int
        var columns_step: Int
        var logits: [Float]
        var argmax: Int
        var logsumexp: Double
    }
    struct Case: Decodable {
        var mean_nll: Double
        var perplexity: Double
    }
    var n_tokens: Int
    var token_ids: [Int32]
    var first_positions: [Position]
    var cases: [String: Case]

    static func load() throws -> SmolLM2Reference {
        try golden("inference/smollm2_reference.json", as: SmolLM2Reference.self)
    }
}

/// SmolLM2-135M against the numpy reference on Samples/eval.txt (the issue's acceptance figures).
@Suite(.serialized) struct SmolLM2Tests {
    static let model = Result { try TransformerModel(weights: loadSmolLM2Weights()) }
    static let reference = Result { try SmolLM2Reference.load() }

    func text() throws -> String { try String(contentsOf: repositoryFile("Samples/eval.txt"), encoding: .utf8) }

    func tokens() throws -> [Int32] {
        let tokenizer = try Tokenizer(metadata: smolLM2Metadata())
        let ids = tokenizer.encode(try text())
        #expect(ids == (try Self.reference.get().token_ids))
        return ids
    }

    func relativeError(_ a: Double, _ b: Double) -> Double { abs(a - b) / abs(b) }

    @Test func configurationFromMetadata() throws {
        let c = try Self.model.get().configuration
        #expect(c.layerCount == 30 && c.hiddenSize == 576 && c.headCount == 9 && c.kvHeadCount == 3)
        #expect(c.headDimension == 64 && c.feedForwardSize == 1536 && c.vocabularySize == 49152)
        #expect(c.ropeTheta == 100_000 && c.ropeStyle == .adjacentPairs)
    }

    @Test func firstLogitsMatchNumpy() throws {
        let model = try Self.model.get(), ref = try Self.reference.get()
        let ids = try tokens()
        let logits = try model.logits(hiddenStates: model.hiddenStates(tokens: Array(ids.prefix(8))), rows: 0..<8)
        for p in ref.first_positions {
            let row = logits.row(p.position)
            let slice = stride(from: p.columns_start, to: row.count, by: p.columns_step).map { row[$0] }
            let error = relativeMaxError(slice, p.logits)
            #expect(error < 1e-3, "position \(p.position): relative error \(error)")
            #expect(row.indices.max { row[$0] < row[$1] } == p.argmax, "position \(p.position)")
            let m = Double(row.max() ?? 0)
            let lse = m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
            #expect(relativeError(lse, p.logsumexp) < 1e-3, "position \(p.position): logsumexp")
        }
    }

    @Test func baselinePerplexityMatchesNumpy() throws {
        let model = try Self.model.get(), ref = try Self.reference.get()
        let ids = try tokens()
        let clock = ContinuousClock()
        var result: PerplexityResult?
        let elapsed = clock.measure { result = try? Perplexity.evaluate(model: model, tokens: ids) }
        let r = try #require(result)
        let expected = try #require(ref.cases["baseline"])
        #expect(r.tokenCount == ref.n_tokens && r.predictionCount == ref.n_tokens - 1)
        #expect(relativeError(r.perplexity, expected.perplexity) < 0.005, "PPL \(r.perplexity) vs numpy \(expected.perplexity)")
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        print("SmolLM2 baseline PPL \(r.perplexity) (numpy \(expected.perplexity)); \(ids.count) tokens in \(seconds) s = \(Double(ids.count) / seconds) tokens/s")
    }

    /// Per layer eigenvectors of the uncentered pre-RoPE KᵀK and VᵀV on `tokens` (HF order), descending,
    /// with the reference's sign convention (each column's largest-magnitude entry positive): a quantized
    /// feature branch depends on the signs, which LAPACK builds choose differently.
    func activationBases(_ model: TransformerModel, _ tokens: [Int32]) throws -> (keys: [Matrix], values: [Matrix]) {
        let n = model.configuration.layerCount
        var keys = [Matrix](repeating: Matrix(rows: 0, cols: 0), count: n), values = keys
        _ = try model.hiddenStates(tokens: tokens, observer: { cap in
            keys[cap.layer] = ProjectionBasis.canonicalSigns(try symmetricEigen(matmul(cap.keys, .transpose, cap.keys)).vectors)
            values[cap.layer] = ProjectionBasis.canonicalSigns(try symmetricEigen(matmul(cap.values, .transpose, cap.values)).vectors)
        })
        return (keys, values)
    }

    @Test(arguments: [
        ("rank64_window32", 64, 16, nil as Int?),
        ("bits4_group64_window32", nil, 4, 64),
        ("rank64_bits4_group32_window32", 64, 4, 32),
    ] as [(String, Int?, Int, Int?)])
    func compressedPerplexityMatchesNumpy(name: String, rank: Int?, bits: Int, group: Int?) throws {
        let model = try Self.model.get(), ref = try Self.reference.get()
        let ids = try tokens()
        let c = model.configuration
        // --calib is the evaluation text itself, as in the issue's acceptance run.
        let bases = rank == nil ? (keys: [], values: []) : try activationBases(model, ids)
        let policy = try BiBranchKVCache(window: 32, layerCount: c.layerCount, kvDimension: c.kvDimension,
                                         keyRank: rank, valueRank: rank, keyBases: bases.keys, valueBases: bases.values,
                                         bits: bits, groupSize: group)
        let r = try Perplexity.evaluate(model: model, tokens: ids, policy: policy)
        let expected = try #require(ref.cases[name])
        let baseline = try #require(ref.cases["baseline"])
        #expect(relativeError(r.perplexity, expected.perplexity) < 0.01, "\(name): PPL \(r.perplexity) vs numpy \(expected.perplexity)")
        #expect(r.perplexity > baseline.perplexity, "\(name) must cost something")
        print("SmolLM2 \(name): PPL \(r.perplexity) (numpy \(expected.perplexity))")
    }

    @Test func wrongRopePairingIsTenTimesWorse() throws {
        let model = try Self.model.get(), ref = try Self.reference.get()
        let ids = try tokens()
        var c = model.configuration
        c.ropeStyle = .rotateHalf  // wrong for GGUF rows
        let weights = try #require(model.weights as? DenseModelWeights)
        struct Restyled: ModelWeights {
            var base: DenseModelWeights
            var configuration: ModelConfiguration
            var tokenEmbedding: Matrix { base.tokenEmbedding }
            var outputNorm: [Float] { base.outputNorm }
            var outputHead: Matrix { base.outputHead }
            var layers: [LayerWeights] { base.layers }
        }
        let wrong = try TransformerModel(weights: Restyled(base: weights, configuration: c))
        let r = try Perplexity.evaluate(model: wrong, tokens: ids)
        let baseline = try #require(ref.cases["baseline"])
        #expect(r.perplexity > 5 * baseline.perplexity, "wrong pairing PPL \(r.perplexity)")
        print("SmolLM2 wrong RoPE pairing: PPL \(r.perplexity) (numpy, the other wrong pairing: \(ref.cases["wrong_rope_pairing"]?.perplexity ?? 0))")
    }
}
