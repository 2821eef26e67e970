import TensorFiles

/// A byte-level BPE tokenizer (GPT-2 style) built from GGUF `tokenizer.ggml.*` metadata.
///
/// Text is split into words by the ``PreTokenizer`` the metadata names, each word's UTF-8 bytes
/// are mapped to GPT-2's printable byte alphabet, and merges are applied lowest rank first
/// (leftmost on ties) until none applies. Special and control tokens are not parsed from text
/// (llama.cpp's `parse_special = false`, as its perplexity tool uses).
public struct BPETokenizer: Sendable {
    /// Token strings by id, in GPT-2's byte alphabet.
    public let tokens: [String]
    /// `tokenizer.ggml.token_type` by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public let tokenTypes: [Int32]
    /// The pre-tokenizer named by `tokenizer.ggml.pre`.
    public let preTokenizer: PreTokenizer
    /// `tokenizer.ggml.bos_token_id`, when present.
    public let bosTokenID: Int32?
    /// `tokenizer.ggml.eos_token_id`, when present.
    public let eosTokenID: Int32?
    /// Whether ``encode(_:)`` prepends BOS (`tokenizer.ggml.add_bos_token`, default false).
    public let addsBOS: Bool

    /// Token id of each byte's one-character token.
    private let byteTokens: [Int32]
    /// (left id << 32 | right id) → (rank, merged id).
    private let merges: [UInt64: Merge]
    /// Bytes of each token (its characters mapped back through GPT-2's byte alphabet).
    private let tokenBytes: [[UInt8]]

    private struct Merge: Sendable {
        var rank: Int32
        var id: Int32
    }

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// Builds the tokenizer from GGUF metadata.
    ///
    /// - Parameter metadata: the file's key/value pairs; `tokenizer.ggml.model` must be `gpt2`, and
    ///   `tokenizer.ggml.tokens`, `tokenizer.ggml.merges` must be present.
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` for missing or malformed keys,
    ///   ``InferenceError/unsupportedTokenizer(_:)`` for other tokenizer models or pre-tokenizers.
    public init(metadata: [String: MetadataValue]) throws {
        func strings(_ key: String) throws -> [String] {
            guard let array = metadata[key]?.arrayValue else {
                throw InferenceError.invalidMetadata(key: key, detail: "missing or not an array")
            }
            var out = [String]()
            out.reserveCapacity(array.count)
            for (i, v) in array.enumerated() {
                guard let s = v.stringValue else {
                    throw InferenceError.invalidMetadata(key: key, detail: "element \(i) is not a string")
                }
                out.append(s)
            }
            return out
        }
        func optionalID(_ key: String, below count: Int) throws -> Int32? {
            guard let value = metadata[key] else { return nil }
            guard let id = value.intValue, id >= 0, id < count else {
                throw InferenceError.invalidMetadata(key: key, detail: "not a token id below \(count)")
            }
            return Int32(id)
        }

        let model = metadata["tokenizer.ggml.model"]?.stringValue
        guard let model else {
            throw InferenceError.invalidMetadata(key: "tokenizer.ggml.model", detail: "missing or not a string")
        }
        guard model == "gpt2" else { throw InferenceError.unsupportedTokenizer("model \"\(model)\"") }
        preTokenizer = try PreTokenizer(ggmlName: metadata["tokenizer.ggml.pre"]?.stringValue ?? "default")

        let tokens = try strings("tokenizer.ggml.tokens")
        guard !tokens.isEmpty, tokens.count <= Int(Int32.max) else {
            throw InferenceError.invalidMetadata(key: "tokenizer.ggml.tokens", detail: "empty or too large")
        }
        self.tokens = tokens
        if let types = metadata["tokenizer.ggml.token_type"]?.arrayValue {
            guard types.count == tokens.count else {
                throw InferenceError.invalidMetadata(
                    key: "tokenizer.ggml.token_type", detail: "\(types.count) entries for \(tokens.count) tokens")
            }
            tokenTypes = types.map { Int32(truncatingIfNeeded: $0.intValue ?? 1) }
        } else {
            tokenTypes = [Int32](repeating: 1, count: tokens.count)
        }
        bosTokenID = try optionalID("tokenizer.ggml.bos_token_id", below: tokens.count)
        eosTokenID = try optionalID("tokenizer.ggml.eos_token_id", below: tokens.count)
        addsBOS = metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? false
        if addsBOS && bosTokenID == nil {
            throw InferenceError.invalidMetadata(key: "tokenizer.ggml.bos_token_id", detail: "missing while add_bos_token is true")
        }

        var ids = [String: Int32](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }

        let alphabet = ByteAlphabet.shared
        // A byte with no token of its own (GGUF vocabularies may drop unused control bytes) is
        // skipped when encoding, as `tokenizers` does without an unknown token.
        var byteTokens = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            byteTokens[b] = ids[String(Character(alphabet.scalarOfByte[b]))] ?? -1
        }
        self.byteTokens = byteTokens

        let mergeStrings = try strings("tokenizer.ggml.merges")
        var merges = [UInt64: Merge](minimumCapacity: mergeStrings.count)
        for (rank, line) in mergeStrings.enumerated() {
            // "left right": split at the first space (token strings never contain U+0020 in this alphabet).
            guard let space = line.firstIndex(of: " ") else {
                throw InferenceError.invalidMetadata(key: "tokenizer.ggml.merges", detail: "entry \(rank) has no space")
            }
            let left = String(line[..<space]), right = String(line[line.index(after: space)...])
            guard let l = ids[left], let r = ids[right], let m = ids[left + right] else {
                throw InferenceError.invalidMetadata(
                    key: "tokenizer.ggml.merges", detail: "entry \(rank) \"\(line)\" names unknown tokens")
            }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), id: m) }
        }
        self.merges = merges

        tokenBytes = tokens.map { token in
            var bytes = [UInt8]()
            for s in token.unicodeScalars {
                if let b = alphabet.byteOfScalar[s.value] {
                    bytes.append(b)
                } else {
                    bytes.append(contentsOf: Array(String(Character(s)).utf8))
                }
            }
            return bytes
        }
    }

    /// Token ids of `text`, with BOS first when ``addsBOS`` is set.
    ///
    /// A byte that has no token in the vocabulary is dropped (there is no unknown token in byte-level BPE).
    public func encode(_ text: String) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        var out = [Int32]()
        out.reserveCapacity(scalars.count / 3 + 2)
        if addsBOS, let bos = bosTokenID { out.append(bos) }
        var utf8 = [UInt8]()
        var symbols = [Int32]()
        for word in preTokenizer.split(scalars) {
            utf8.removeAll(keepingCapacity: true)
            for i in word { appendUTF8(scalars[i], to: &utf8) }
            encodeWord(utf8, symbols: &symbols)
            out.append(contentsOf: symbols)
        }
        return out
    }

    /// BPE over one word's bytes: start from byte tokens, merge the lowest-ranked adjacent pair
    /// (leftmost on ties) until no pair has a merge.
    private func encodeWord(_ bytes: [UInt8], symbols: inout [Int32]) {
        symbols.removeAll(keepingCapacity: true)
        for b in bytes {
            let id = byteTokens[Int(b)]
            if id >= 0 { symbols.append(id) }
        }
        while symbols.count > 1 {
            var bestRank = Int32.max, bestIndex = -1, bestID: Int32 = 0
            var i = 0
            while i < symbols.count - 1 {
                let key = UInt64(UInt32(bitPattern: symbols[i])) << 32 | UInt64(UInt32(bitPattern: symbols[i + 1]))
                if let m = merges[key], m.rank < bestRank {
                    bestRank = m.rank
                    bestIndex = i
                    bestID = m.id
                }
                i += 1
            }
            if bestIndex < 0 { break }
            symbols[bestIndex] = bestID
            symbols.remove(at: bestIndex + 1)
        }
    }

    /// The text of `ids`: token strings mapped back to bytes, decoded as UTF-8 (invalid sequences
    /// become U+FFFD, which only happens when a multi-byte character is cut between ids).
    /// - Throws: ``InferenceError/invalidToken(id:vocabularySize:)`` for an id outside the vocabulary.
    public func decode(_ ids: [Int32]) throws -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            guard id >= 0, Int(id) < tokens.count else {
                throw InferenceError.invalidToken(id: id, vocabularySize: tokens.count)
            }
            bytes.append(contentsOf: tokenBytes[Int(id)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

@inline(__always)
private func appendUTF8(_ s: Unicode.Scalar, to bytes: inout [UInt8]) {
    let v = s.value
    switch v {
    case 0..<0x80:
        bytes.append(UInt8(v))
    case 0x80..<0x800:
        bytes.append(UInt8(0xC0 | (v >> 6)))
        bytes.append(UInt8(0x80 | (v & 0x3F)))
    case 0x800..<0x10000:
        bytes.append(UInt8(0xE0 | (v >> 12)))
        bytes.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        bytes.append(UInt8(0x80 | (v & 0x3F)))
    default:
        bytes.append(UInt8(0xF0 | (v >> 18)))
        bytes.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        bytes.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
        bytes.append(UInt8(0x80 | (v & 0x3F)))
    }
}

/// GPT-2's reversible map from bytes to printable Unicode scalars: the bytes of `!`…`~`, `¡`…`¬`
/// and `®`…`ÿ` stand for themselves, the other 68 take U+0100 onwards in byte order.
struct ByteAlphabet: Sendable {
    let scalarOfByte: [Unicode.Scalar]
    let byteOfScalar: [UInt32: UInt8]

    static let shared = ByteAlphabet()

    private init() {
        var scalars = [Unicode.Scalar]()
        var inverse = [UInt32: UInt8]()
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            let value = printable ? UInt32(b) : next
            if !printable { next += 1 }
            let s = Unicode.Scalar(value) ?? "?"  // values < 0x200 are always valid scalars
            scalars.append(s)
            inverse[value] = UInt8(b)
        }
        scalarOfByte = scalars
        byteOfScalar = inverse
    }
}
