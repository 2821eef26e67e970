import Foundation
import KVCompression
import LinearAlgebra

/// The result of a perplexity run (DESIGN.md §4, "Perplexity").
public struct PerplexityResult: Sendable, Equatable, Codable {
    /// T, the number of tokens in the sequence.
    public var tokenCount: Int
    /// T − 1, the number of predicted tokens.
    public var predictionCount: Int
    /// mean over t = 0…T−2 of −log p(token_{t+1} | tokens ≤ t), natural log.
    public var meanNegativeLogLikelihood: Double
    /// exp(meanNegativeLogLikelihood).
    public var perplexity: Double
}

/// Perplexity of a token sequence under a model and a KV-cache policy.
public enum Perplexity {
    /// −log softmax(logits[r])[targets[r]] for every row r, in Double (log-sum-exp with the row maximum).
    /// - Throws: ``InferenceError/invalidToken(id:vocabularySize:)`` for a target outside the row.
    public static func negativeLogLikelihoods(logits: Matrix, targets: ArraySlice<Int32>) throws -> [Double] {
        precondition(targets.count == logits.rows, "one target per logits row")
        let n = logits.cols
        var out = [Double]()
        out.reserveCapacity(targets.count)
        try logits.withUnsafeBufferPointer { l in
            for (r, target) in targets.enumerated() {
                guard target >= 0, Int(target) < n else { throw InferenceError.invalidToken(id: target, vocabularySize: n) }
                let row = r * n
                var m = -Double.infinity
                for j in 0..<n { m = max(m, Double(l[row + j])) }
                var sum = 0.0
                for j in 0..<n { sum += Foundation.exp(Double(l[row + j]) - m) }
                out.append(m + Foundation.log(sum) - Double(l[row + Int(target)]))
            }
        }
        return out
    }

    /// PPL = exp(mean over t = 0…T−2 of −log p(token_{t+1} | tokens ≤ t)) for one sequence prefilled
    /// with a causal mask, the policy applied inside every layer.
    ///
    /// - Parameters:
    ///   - tokens: the whole sequence (BOS included when the model adds one); at least 2 tokens.
    ///   - progress: fraction done in [0, 1], after each layer and each block of logits.
    ///   - cancellation: checked between layers, attention blocks and logits blocks.
    /// - Throws: ``InferenceError/invalidPolicy(_:)`` for fewer than 2 tokens (nothing to predict),
    ///   ``InferenceError/nonFinite(_:)`` when the mean NLL is NaN or infinite,
    ///   ``InferenceError/cancelled``, and forward-pass errors.
    public static func evaluate(model: TransformerModel, tokens: [Int32], policy: any KVCachePolicy = ExactKVCache(),
                                progress: ((Double) -> Void)? = nil,
                                cancellation: CancellationFlag? = nil) throws -> PerplexityResult {
        guard tokens.count >= 2 else {
            throw InferenceError.invalidPolicy("perplexity needs at least 2 tokens, got \(tokens.count)")
        }
        let layers = Double(model.configuration.layerCount)
        let total = layers + 1  // the logits count as one more layer of work
        let hidden = try model.hiddenStates(
            tokens: tokens, policy: policy,
            progress: { done, _ in progress?(Double(done) / total) }, cancellation: cancellation)
        let predictions = tokens.count - 1
        var sum = 0.0
        let block = 64
        var start = 0
        while start < predictions {
            try cancellation?.check()
            let end = min(start + block, predictions)
            let logits = try model.logits(hiddenStates: hidden, rows: start..<end)
            for nll in try negativeLogLikelihoods(logits: logits, targets: tokens[(start + 1)...end]) { sum += nll }
            start = end
            progress?((layers + Double(end) / Double(predictions)) / total)
        }
        let mean = sum / Double(predictions)
        // A NaN or infinite NLL is a failure of the run (e.g. non-finite logits), never a result.
        guard mean.isFinite else {
            throw InferenceError.nonFinite("the mean NLL over \(predictions) predictions (\(mean))")
        }
        return PerplexityResult(tokenCount: tokens.count, predictionCount: predictions,
                                meanNegativeLogLikelihood: mean, perplexity: Foundation.exp(mean))
    }

    /// Perplexity of `text` read verbatim: tokenized by `tokenizer` (BOS first only when it adds one).
    public static func evaluate(model: TransformerModel, tokenizer: Tokenizer, text: String,
                                policy: any KVCachePolicy = ExactKVCache(), progress: ((Double) -> Void)? = nil,
                                cancellation: CancellationFlag? = nil) throws -> PerplexityResult {
        try evaluate(model: model, tokens: tokenizer.encode(text), policy: policy, progress: progress,
                     cancellation: cancellation)
    }
}
