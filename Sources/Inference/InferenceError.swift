/// An error of the inference module: bad model metadata or weights, a bad policy, or a cancelled run.
///
/// Its description is the one line kvscope prints after `kvscope: error: `.
public enum InferenceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A metadata key is missing or has the wrong type or value.
    case invalidMetadata(key: String, detail: String)
    /// The tokenizer named by the metadata is not supported (model or pre-tokenizer).
    case unsupportedTokenizer(String)
    /// A weight tensor is missing or has the wrong shape.
    case invalidWeight(name: String, detail: String)
    /// A token id outside the vocabulary.
    case invalidToken(id: Int32, vocabularySize: Int)
    /// A KV-cache policy does not fit the model (basis shape, layer count, …).
    case invalidPolicy(String)
    /// A result that must be a finite number is not (NaN or ±∞), e.g. a perplexity.
    case nonFinite(String)
    /// The run was cancelled through its ``CancellationFlag``.
    case cancelled

    public var description: String {
        switch self {
        case .invalidMetadata(let key, let detail): return "metadata \(key): \(detail)"
        case .unsupportedTokenizer(let s): return "unsupported tokenizer: \(s)"
        case .invalidWeight(let name, let detail): return "tensor \(name): \(detail)"
        case .invalidToken(let id, let n): return "token id \(id) is outside the vocabulary of \(n)"
        case .invalidPolicy(let s): return "KV-cache policy: \(s)"
        case .nonFinite(let s): return "\(s) is not finite"
        case .cancelled: return "cancelled"
        }
    }
}
