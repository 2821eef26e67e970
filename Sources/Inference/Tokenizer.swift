import Foundation
import TensorFiles

import TensorFiles

/// A model's tokenizer, built from GGUF `tokenizer.ggml.*` metadata (or an HF tokenizer.json):
///
/// - **byte-level BPE** (`tokenizer.ggml.model` = `gpt2`; SmolLM2, Qwen2, Llama 3): text is split
///   into words by the ``PreTokenizer`` the file names, each word's UTF-8 bytes are mapped to GPT-2's
///   printable byte alphabet, and merges are applied lowest rank first (leftmost on ties) until none
///   applies;
/// - **SentencePiece** (`llama`; Gemma, Llama 2): spaces become ▁ (one in front when
///   `add_space_prefix`), the text's characters are merged pairwise, highest token score first
///   (leftmost on ties), and a piece with no token falls back to its UTF-8 bytes' `<0xXX>` tokens.
///
/// User-defined tokens (type 4, e.g. Gemma's runs of newlines) are cut out of the text first,
/// longest first; special and control tokens are not parsed from text (llama.cpp's
/// `parse_special = false`, as its perplexity tool uses).
public struct Tokenizer: Sendable {
    /// The tokenization algorithm.
    public enum Kind: String, Sendable {
        case byteLevelBPE, sentencePiece
        /// BPE merges over characters (▁ for space) with `<0xXX>` byte fallback: an HF
        /// tokenizer.json converted from SentencePiece (Gemma, Llama 2).
        case characterBPE
    }

    public let kind: Kind
    /// Token strings by id (byte-level BPE: in GPT-2's byte alphabet; SentencePiece: with ▁ for space).
    public let tokens: [String]
    /// `tokenizer.ggml.token_type` by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    public let tokenTypes: [Int32]
    /// The pre-tokenizer named by `tokenizer.ggml.pre` (byte-level BPE only).
    public let preTokenizer: PreTokenizer
    /// `tokenizer.ggml.bos_token_id`, when present.
    public let bosTokenID: Int32?
    /// `tokenizer.ggml.eos_token_id`, when present.
    public let eosTokenID: Int32?
    /// Whether ``encode(_:)`` prepends BOS (`tokenizer.ggml.add_bos_token`; default: the family's).
    public let addsBOS: Bool
    /// SentencePiece: whether a ▁ is put in front of the text (`tokenizer.ggml.add_space_prefix`).
    public let addsSpacePrefix: Bool
    /// Whether text is put in Unicode normalization form C first (a tokenizer.json `NFC`
    /// normalizer; GGUF tokenizers never normalize, as llama.cpp does not).
    public let normalizesNFC: Bool

    /// Byte-level BPE: token id of each byte's one-character token. Otherwise: id of `<0xXX>`.
    let byteTokens: [Int32]
    /// (left id << 32 | right id) → (rank, merged id).
    let merges: [UInt64: Merge]
    /// Bytes of each token (byte-level: characters mapped back through GPT-2's byte alphabet;
    /// SentencePiece: ▁ as a space, `<0xXX>` as that byte).
    let tokenBytes: [[UInt8]]
    /// SentencePiece: token scores and the id of each token string.
    let scores: [Float]
    /// Keyed by UTF-8 bytes, not String: Swift's String equality is canonical equivalence, which
    /// would make "e\u{301}" find the token of "é".
    let ids: [[UInt8]: Int32]
    /// `tokenizer.ggml.unknown_token_id` (SentencePiece's last resort).
    let unknownID: Int32?
    /// User-defined tokens as scalar arrays with their ids, longest first.
    let userDefined: [(scalars: [Unicode.Scalar], id: Int32)]

    struct Merge: Sendable {
        var rank: Int32
        var id: Int32
    }

    /// Number of tokens in the vocabulary.
    public var vocabularySize: Int { tokens.count }

    /// Builds the tokenizer from GGUF metadata.
    ///
    /// - Parameters:
    ///   - metadata: the file's key/value pairs; `tokenizer.ggml.model` must be `gpt2` (with
    ///     `tokenizer.ggml.merges`) or `llama` (with `tokenizer.ggml.scores`), and
    ///     `tokenizer.ggml.tokens` must be present.
    ///   - addsBOSByDefault: whether to prepend BOS when the file has no `add_bos_token` (the family's default).
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` for missing or malformed keys,
    ///   ``InferenceError/unsupportedTokenizer(_:)`` for other tokenizer models or pre-tokenizers.
    public init(metadata: [String: MetadataValue], addsBOSByDefault: Bool? = nil) throws {
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
        let kind: Kind
        switch model {
        case "gpt2": kind = .byteLevelBPE
        case "llama": kind = .sentencePiece
        default: throw InferenceError.unsupportedTokenizer("model \"\(model)\" (kvscope reads gpt2 and llama)")
        }
        let preTokenizer = kind == .byteLevelBPE
            ? try PreTokenizer(ggmlName: metadata["tokenizer.ggml.pre"]?.stringValue ?? "default") : .gpt2

        let tokens = try strings("tokenizer.ggml.tokens")
        guard !tokens.isEmpty, tokens.count <= 1 << 24 else {
            throw InferenceError.invalidMetadata(key: "tokenizer.ggml.tokens", detail: "empty or too large")
        }
        let tokenTypes: [Int32]
        if let types = metadata["tokenizer.ggml.token_type"]?.arrayValue {
            guard types.count == tokens.count else {
                throw InferenceError.invalidMetadata(
                    key: "tokenizer.ggml.token_type", detail: "\(types.count) entries for \(tokens.count) tokens")
            }
            tokenTypes = types.map { Int32(truncatingIfNeeded: $0.intValue ?? 1) }
        } else {
            tokenTypes = [Int32](repeating: 1, count: tokens.count)
        }
        let bos = try optionalID("tokenizer.ggml.bos_token_id", below: tokens.count)
        let addsBOS = metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? addsBOSByDefault ?? (kind == .sentencePiece)
        if addsBOS && bos == nil {
            throw InferenceError.invalidMetadata(key: "tokenizer.ggml.bos_token_id", detail: "missing while add_bos_token is true")
        }
        var merges: [(String, String)] = []
        var scores: [Float]?
        switch kind {
        case .byteLevelBPE, .characterBPE:
            let lines = try strings("tokenizer.ggml.merges")
            merges.reserveCapacity(lines.count)
            for (rank, line) in lines.enumerated() {
                // "left right": split at the first space (token strings never contain U+0020 in this alphabet).
                guard let space = line.firstIndex(of: " ") else {
                    throw InferenceError.invalidMetadata(key: "tokenizer.ggml.merges", detail: "entry \(rank) has no space")
                }
                merges.append((String(line[..<space]), String(line[line.index(after: space)...])))
            }
        case .sentencePiece:
            guard let values = metadata["tokenizer.ggml.scores"]?.arrayValue, values.count == tokens.count else {
                throw InferenceError.invalidMetadata(key: "tokenizer.ggml.scores", detail: "missing or not one score per token")
            }
            scores = try values.enumerated().map { i, v in
                guard let d = v.doubleValue, d.isFinite else {
                    throw InferenceError.invalidMetadata(key: "tokenizer.ggml.scores", detail: "entry \(i) is not a finite number")
                }
                return Float(d)
            }
        }
        try self.init(
            kind: kind, tokens: tokens, tokenTypes: tokenTypes, preTokenizer: preTokenizer, bosTokenID: bos,
            eosTokenID: try optionalID("tokenizer.ggml.eos_token_id", below: tokens.count), addsBOS: addsBOS,
            addsSpacePrefix: kind == .sentencePiece && (metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true),
            merges: merges, scores: scores,
            unknownID: try optionalID("tokenizer.ggml.unknown_token_id", below: tokens.count), mergesKey: "tokenizer.ggml.merges")
    }

    /// Builds the lookup tables shared by every source (GGUF metadata, tokenizer.json).
    /// - Throws: ``InferenceError/invalidMetadata(key:detail:)`` for a merge naming unknown tokens
    ///   or token types of the wrong length.
    init(kind: Kind, tokens: [String], tokenTypes: [Int32], preTokenizer: PreTokenizer, bosTokenID: Int32?,
         eosTokenID: Int32?, addsBOS: Bool, addsSpacePrefix: Bool, merges mergePairs: [(String, String)],
         scores: [Float]?, unknownID: Int32?, mergesKey: String = "model.merges", normalizesNFC: Bool = false) throws {
        guard tokenTypes.count == tokens.count, scores.map({ $0.count == tokens.count }) ?? true else {
            throw InferenceError.invalidMetadata(key: "tokens", detail: "types or scores do not match the \(tokens.count) tokens")
        }
        self.kind = kind
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.preTokenizer = preTokenizer
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
        self.addsBOS = addsBOS
        self.addsSpacePrefix = addsSpacePrefix
        self.normalizesNFC = normalizesNFC
        self.unknownID = unknownID
        self.scores = scores ?? []

        var ids = [[UInt8]: Int32](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() where ids[Array(t.utf8)] == nil { ids[Array(t.utf8)] = Int32(i) }
        self.ids = ids
        var userDefined: [(scalars: [Unicode.Scalar], id: Int32)] = []
        for (i, t) in tokens.enumerated() where tokenTypes[i] == 4 && !t.isEmpty {
            // Byte-level vocabularies store user-defined tokens in the byte alphabet.
            let text = kind == .byteLevelBPE ? String(decoding: ByteAlphabet.shared.bytes(of: t), as: UTF8.self) : t
            userDefined.append((Array(text.unicodeScalars), Int32(i)))
        }
        self.userDefined = userDefined.sorted {
            $0.scalars.count > $1.scalars.count || ($0.scalars.count == $1.scalars.count && $0.id < $1.id)
        }

        var merges = [UInt64: Merge](minimumCapacity: mergePairs.count)
        for (rank, (left, right)) in mergePairs.enumerated() {
            guard let l = ids[Array(left.utf8)], let r = ids[Array(right.utf8)], let m = ids[Array(left.utf8) + Array(right.utf8)] else {
                throw InferenceError.invalidMetadata(
                    key: mergesKey, detail: "entry \(rank) \"\(left) \(right)\" names unknown tokens")
            }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), id: m) }
        }
        self.merges = merges

        var byteTokens = [Int32](repeating: -1, count: 256)
        switch kind {
        case .byteLevelBPE:
            // A byte with no token of its own (GGUF vocabularies may drop unused control bytes) is
            // skipped when encoding, as `tokenizers` does without an unknown token.
            let alphabet = ByteAlphabet.shared
            for b in 0..<256 { byteTokens[b] = ids[Array(String(Character(alphabet.scalarOfByte[b])).utf8)] ?? -1 }
            tokenBytes = tokens.map { alphabet.bytes(of: $0) }
        case .sentencePiece, .characterBPE:
            for b in 0..<256 {
                let name = "<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
                if let id = ids[Array(name.utf8)], tokenTypes[Int(id)] == 6 { byteTokens[b] = id }
            }
            tokenBytes = tokens.enumerated().map { i, token in
                if tokenTypes[i] == 6, token.utf8.count == 6, token.hasPrefix("<0x"), token.hasSuffix(">"),
                   let b = UInt8(token.dropFirst(3).dropLast(), radix: 16) {
                    return [b]
                }
                return Array(token.replacingSpaceMarker().utf8)
            }
        }
        self.byteTokens = byteTokens
    }

    /// Token ids of `text`, with BOS first when ``addsBOS`` is set.
    ///
    /// Byte-level BPE: a byte that has no token in the vocabulary is dropped (there is no unknown
    /// token). SentencePiece: a byte with no `<0xXX>` token becomes the unknown token, if any.
    public func encode(_ text: String) -> [Int32] {
        let scalars = Array((normalizesNFC ? text.precomposedStringWithCanonicalMapping : text).unicodeScalars)
        var out = [Int32]()
        out.reserveCapacity(scalars.count / 3 + 2)
        if addsBOS, let bos = bosTokenID { out.append(bos) }
        var afterToken = true  // SentencePiece's space prefix goes at the start and after a user-defined token
        for fragment in partitionUserDefined(scalars) {
            switch fragment {
            case .token(let id):
                out.append(id)
                afterToken = true
            case .text(let range):
                switch kind {
                case .byteLevelBPE: encodeByteLevel(scalars[range], into: &out)
                case .sentencePiece: encodeSentencePiece(scalars[range], spacePrefix: addsSpacePrefix && afterToken, into: &out)
                case .characterBPE: encodeCharacterBPE(scalars[range], into: &out)
                }
                afterToken = false
            }
        }
        return out
    }

    enum Fragment: Equatable {
        case text(Range<Int>)
        case token(Int32)
    }

    /// Cuts user-defined tokens out of the text, longest token first (llama.cpp's partition), and
    /// returns the pieces in order.
    func partitionUserDefined(_ scalars: [Unicode.Scalar]) -> [Fragment] {
        var fragments: [Fragment] = scalars.isEmpty ? [] : [.text(0..<scalars.count)]
        guard !userDefined.isEmpty, !scalars.isEmpty else { return fragments }
        for (pattern, id) in userDefined {
            guard let first = pattern.first else { continue }
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count)
            var changed = false
            for fragment in fragments {
                guard case .text(let range) = fragment, range.count >= pattern.count else {
                    next.append(fragment)
                    continue
                }
                var start = range.lowerBound, i = range.lowerBound
                while i + pattern.count <= range.upperBound {
                    if scalars[i] == first && scalars[i..<(i + pattern.count)].elementsEqual(pattern) {
                        if start < i { next.append(.text(start..<i)) }
                        next.append(.token(id))
                        changed = true
                        i += pattern.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < range.upperBound { next.append(.text(start..<range.upperBound)) }
            }
            if changed { fragments = next }
        }
        return fragments
    }

    /// Byte-level BPE of a run of text: pre-tokenized into words, each word's bytes merged.
    private func encodeByteLevel(_ text: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        let scalars = Array(text)
        var utf8 = [UInt8]()
        var symbols = [Int32]()
        for word in preTokenizer.split(scalars) {
            utf8.removeAll(keepingCapacity: true)
            for i in word { appendUTF8(scalars[i], to: &utf8) }
            encodeWord(utf8, symbols: &symbols)
            out.append(contentsOf: symbols)
        }
    }

    /// Character BPE of a run of text: spaces become ▁, each character starts as its token (or its
    /// UTF-8 bytes' `<0xXX>` tokens), then merges as in byte-level BPE.
    private func encodeCharacterBPE(_ text: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        var symbols = [Int32]()
        symbols.reserveCapacity(text.count)
        var utf8 = [UInt8]()
        for s in text {
            let c = s == " " ? "\u{2581}" : s
            utf8.removeAll(keepingCapacity: true)
            appendUTF8(c, to: &utf8)
            appendPiece(utf8, into: &symbols)
        }
        merge(&symbols)
        out.append(contentsOf: symbols)
    }

    /// The token of a piece (UTF-8 bytes), or its bytes' `<0xXX>` tokens when the vocabulary has none
    /// (the unknown token for a byte without one).
    func appendPiece(_ piece: [UInt8], into out: inout [Int32]) {
        if let id = ids[piece] {
            out.append(id)
            return
        }
        for b in piece {
            let id = byteTokens[Int(b)]
            if id >= 0 { out.append(id) } else if let unknownID { out.append(unknownID) }
        }
    }

    /// BPE over one word's bytes: start from byte tokens, merge the lowest-ranked adjacent pair
    /// (leftmost on ties) until no pair has a merge.
    func encodeWord(_ bytes: [UInt8], symbols: inout [Int32]) {
        symbols.removeAll(keepingCapacity: true)
        for b in bytes {
            let id = byteTokens[Int(b)]
            if id >= 0 { symbols.append(id) }
        }
        merge(&symbols)
    }

    /// Applies merges to `symbols`, the lowest-ranked adjacent pair first (leftmost on ties), until none applies.
    func merge(_ symbols: inout [Int32]) {
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
    /// become U+FFFD, which only happens when a multi-byte character is cut between ids). BOS is
    /// not dropped; SentencePiece's space prefix is.
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
        if addsSpacePrefix {
            // Drop the ▁ SentencePiece put in front of the text (after BOS, whose bytes come first).
            let first = ids.first == bosTokenID && bosTokenID != nil ? 1 : 0
            let at = first == 1 ? tokenBytes[Int(ids[0])].count : 0
            if first < ids.count, at < bytes.count, bytes[at] == 0x20 { bytes.remove(at: at) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

@inline(__always)
func appendUTF8(_ s: Unicode.Scalar, to bytes: inout [UInt8]) {
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

    /// The bytes a token string in this alphabet stands for (a character outside it stands for its own UTF-8).
    func bytes(of token: String) -> [UInt8] {
        var bytes = [UInt8]()
        for s in token.unicodeScalars {
            if let b = byteOfScalar[s.value] { bytes.append(b) } else { bytes.append(contentsOf: Array(String(Character(s)).utf8)) }
        }
        return bytes
    }

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

extension String {
    /// SentencePiece's ▁ (U+2581) as a space.
    func replacingSpaceMarker() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\u{2581}" ? " " : $0 }))
    }

    /// Left-padded with zeros to `width` characters.
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
