import TensorFiles

/// Reading an HF `tokenizer.json` (the `tokenizers` library's format) into a ``Tokenizer``.
///
/// Supported: a `BPE` model with
/// - a `ByteLevel` pre-tokenizer, alone or after a `Split` whose regex is one kvscope implements
///   (GPT-2, Llama 3, Qwen2) or after `Digits` with `individual_digits` (SmolLM): byte-level BPE;
/// - a SentencePiece-style setup (`Metaspace` pre-tokenizer, or a normalizer that replaces " " by
///   "▁"), with `byte_fallback`: BPE over characters, `<0xXX>` tokens for characters without one.
///
/// An `NFC` normalizer is applied (Qwen2's); other normalizers are refused.
///
/// Added tokens that are not special are cut out of the text first (longest first); special ones
/// are never parsed from text. BOS is prepended when the post-processor's single-sequence
/// template starts with a special token. Anything else is an error naming the field.
extension Tokenizer {
    /// Reads `path`.
    /// - Throws: ``TensorFileError`` for unreadable JSON, ``InferenceError/unsupportedTokenizer(_:)``
    ///   and ``InferenceError/invalidMetadata(key:detail:)`` for what kvscope does not implement or
    ///   what is inconsistent.
    public init(huggingFaceJSONAt path: String) throws {
        let file = try MappedFile(path: path)
        let json = try JSONValue.parse(Array(file.bytes), path: path)
        try self.init(huggingFaceJSON: json)
    }

    /// Builds the tokenizer from a parsed tokenizer.json.
    /// BOS is added only when the post-processor's template starts with it, as `tokenizers` does.
    public init(huggingFaceJSON json: JSONValue) throws {
        func bad(_ key: String, _ detail: String) -> InferenceError { .invalidMetadata(key: key, detail: detail) }
        guard case .object = json, let model = json["model"] else { throw bad("model", "missing: not a tokenizer.json") }
        let type = model["type"]?.string ?? "BPE"
        guard type == "BPE" else { throw InferenceError.unsupportedTokenizer("tokenizer.json model \"\(type)\" (only BPE)") }
        guard case .object(let vocabMembers)? = model["vocab"] else { throw bad("model.vocab", "missing or not an object") }

        // Vocabulary, then added tokens (which may extend it).
        var byID: [Int: String] = [:]
        byID.reserveCapacity(vocabMembers.count)
        for (token, value) in vocabMembers {
            guard case .number(let id?, _) = value, id >= 0, id < Int(Int32.max) else {
                throw bad("model.vocab", "\"\(token)\" has no integer id")
            }
            guard byID[id] == nil else { throw bad("model.vocab", "id \(id) is given twice") }
            byID[id] = token
        }
        var types: [Int: Int32] = [:]
        if case .array(let added)? = json["added_tokens"] {
            for (i, entry) in added.enumerated() {
                guard case .number(let id?, _)? = entry["id"], id >= 0, id < Int(Int32.max),
                      let content = entry["content"]?.string else {
                    throw bad("added_tokens", "entry \(i) lacks an integer id or a content string")
                }
                if let existing = byID[id], existing != content {
                    throw bad("added_tokens", "entry \(i) gives id \(id) to \"\(content)\", the vocabulary to \"\(existing)\"")
                }
                byID[id] = content
                types[id] = entry["special"]?.bool == true ? 3 : 4
            }
        }
        guard let maxID = byID.keys.max(), maxID < 4_000_000 else { throw bad("model.vocab", "empty or too large") }
        guard byID.count == maxID + 1 else {
            throw bad("model.vocab", "ids are not contiguous: \(byID.count) tokens up to id \(maxID)")
        }
        let tokens = (0...maxID).map { byID[$0] ?? "" }

        // Which algorithm.
        let pre = json["pre_tokenizer"].flatMap { $0 == .null ? nil : $0 }
        let steps: [JSONValue] = pre.map { p in p["type"]?.string == "Sequence" ? (p["pretokenizers"]?.array ?? []) : [p] } ?? []
        let stepTypes = steps.map { $0["type"]?.string ?? "?" }
        var preTokenizer = PreTokenizer.gpt2
        let kind: Kind
        let normalizer = json["normalizer"].flatMap { $0 == .null ? nil : $0 }
        let norms: [JSONValue] = normalizer.map { n in n["type"]?.string == "Sequence" ? (n["normalizers"]?.array ?? []) : [n] } ?? []
        let nfc = norms.contains { $0["type"]?.string == "NFC" }
        if stepTypes.contains("ByteLevel") {
            for n in norms where n["type"]?.string != "NFC" {
                throw InferenceError.unsupportedTokenizer("tokenizer.json normalizer \(n["type"]?.string ?? "?") before ByteLevel")
            }
            kind = .byteLevelBPE
            let others = steps.filter { $0["type"]?.string != "ByteLevel" }
            let byteLevel = steps.first { $0["type"]?.string == "ByteLevel" }
            let usesRegex = byteLevel?["use_regex"]?.bool ?? true
            if byteLevel?["add_prefix_space"]?.bool == true {
                throw InferenceError.unsupportedTokenizer("tokenizer.json ByteLevel add_prefix_space = true")
            }
            switch (others.count, usesRegex) {
            case (0, true): preTokenizer = .gpt2
            case (1, false) where others[0]["type"]?.string == "Split":
                let pattern = others[0]["pattern"]?["Regex"]?.string ?? others[0]["pattern"]?["String"]?.string ?? ""
                guard let known = PreTokenizer(regex: pattern) else {
                    throw InferenceError.unsupportedTokenizer("tokenizer.json Split regex \(pattern.prefix(60))…")
                }
                preTokenizer = known
            case (1, true) where others[0]["type"]?.string == "Digits" && others[0]["individual_digits"]?.bool == true:
                preTokenizer = .smollm
            default:
                throw InferenceError.unsupportedTokenizer("tokenizer.json pre-tokenizers \(stepTypes)")
            }
        } else {
            let replacesSpace = norms.contains { $0["type"]?.string == "Replace" && $0["pattern"]?["String"]?.string == " "
                && $0["content"]?.string == "\u{2581}" }
            let metaspace = stepTypes == ["Metaspace"]
            let splitsOnSpace = stepTypes.allSatisfy { $0 == "Split" } && steps.allSatisfy { $0["pattern"]?["String"]?.string == " " }
            guard (replacesSpace && (steps.isEmpty || splitsOnSpace)) || metaspace else {
                throw InferenceError.unsupportedTokenizer("tokenizer.json pre-tokenizers \(stepTypes) with this normalizer")
            }
            for n in norms where !["Replace", "Prepend", "NFC"].contains(n["type"]?.string ?? "") {
                throw InferenceError.unsupportedTokenizer("tokenizer.json normalizer \(n["type"]?.string ?? "?")")
            }
            if norms.contains(where: { $0["type"]?.string == "Prepend" }) || (metaspace && steps[0]["prepend_scheme"]?.string != "never") {
                throw InferenceError.unsupportedTokenizer("tokenizer.json space prefix (Prepend / Metaspace prepend_scheme)")
            }
            guard model["byte_fallback"]?.bool == true else {
                throw InferenceError.unsupportedTokenizer("tokenizer.json SentencePiece-style BPE without byte_fallback")
            }
            kind = .characterBPE
        }
        if let ignore = model["ignore_merges"]?.bool, ignore {
            throw InferenceError.unsupportedTokenizer("tokenizer.json model.ignore_merges = true")
        }

        // Merges: "a b" strings or [a, b] pairs.
        var mergePairs: [(String, String)] = []
        if case .array(let merges)? = model["merges"] {
            mergePairs.reserveCapacity(merges.count)
            for (rank, m) in merges.enumerated() {
                if let line = m.string, let space = line.firstIndex(of: " ") {
                    mergePairs.append((String(line[..<space]), String(line[line.index(after: space)...])))
                } else if case .array(let pair) = m, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                    mergePairs.append((a, b))
                } else {
                    throw bad("model.merges", "entry \(rank) is neither \"a b\" nor [a, b]")
                }
            }
        }

        // BOS from the post-processor's template.
        var bos: Int32?, addsBOS = false
        var ids = [String: Int32](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        if let post = json["post_processor"], post != .null {
            let processors = post["type"]?.string == "Sequence" ? (post["processors"]?.array ?? []) : [post]
            for p in processors where p["type"]?.string == "TemplateProcessing" {
                if let first = p["single"]?.array?.first, let name = first["SpecialToken"]?["id"]?.string {
                    guard let id = ids[name] else { throw bad("post_processor", "names unknown token \"\(name)\"") }
                    bos = id
                    addsBOS = true
                }
            }
        }
        if bos == nil {
            bos = ["<bos>", "<s>", "<|begin_of_text|>", "<|endoftext|>"].lazy.compactMap { ids[$0] }.first
        }
        if addsBOS && bos == nil { throw bad("post_processor", "adds BOS but no BOS token is known") }
        let tokenTypes = tokens.indices.map { i -> Int32 in
            if let t = types[i] { return t }
            let s = tokens[i]
            if kind == .characterBPE, s.utf8.count == 6, s.hasPrefix("<0x"), s.hasSuffix(">"), UInt8(s.dropFirst(3).dropLast(), radix: 16) != nil {
                return 6
            }
            return 1
        }
        try self.init(kind: kind, tokens: tokens, tokenTypes: tokenTypes, preTokenizer: preTokenizer, bosTokenID: bos,
                      eosTokenID: nil, addsBOS: addsBOS, addsSpacePrefix: false, merges: mergePairs, scores: nil,
                      unknownID: (model["unk_token"]?.string).flatMap { ids[$0] }, normalizesNFC: nfc)
    }
}

extension JSONValue {
    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
}

extension PreTokenizer {
    /// The pre-tokenizer whose regex (as tokenizer.json's `Split` gives it) is `pattern`, or nil.
    init?(regex pattern: String) {
        let letters = #"[^\r\n\p{L}\p{N}]?\p{L}+"#
        let tail = #"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        let contractions = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)"#
        switch pattern {
        case contractions + "|" + letters + #"|\p{N}{1,3}"# + tail: self = .llama3
        case contractions + "|" + letters + #"|\p{N}"# + tail: self = .qwen2
        case #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#: self = .gpt2
        default: return nil
        }
    }
}
