/// The pre-tokenizers that split text into words before byte-level BPE, by the name
/// `tokenizer.ggml.pre` gives them (llama.cpp's names).
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// The GPT-2 regex alone (`default` and `gpt2` in llama.cpp).
    case gpt2
    /// Every digit on its own, then the GPT-2 regex on what is between (llama.cpp "smollm").
    case smollm
    /// The Llama 3 regex (llama.cpp "llama-bpe"): numbers in runs of up to three digits.
    case llama3
    /// The Qwen2 regex (llama.cpp "qwen2"): the Llama 3 regex with every digit on its own.
    case qwen2

    /// The pre-tokenizer that a `tokenizer.ggml.pre` value names.
    /// - Throws: ``InferenceError/unsupportedTokenizer(_:)`` for names this module does not implement.
    public init(ggmlName: String) throws {
        switch ggmlName {
        case "gpt2", "default", "gpt-2": self = .gpt2
        case "smollm": self = .smollm
        case "llama-bpe", "llama3": self = .llama3
        case "qwen2": self = .qwen2
        default: throw InferenceError.unsupportedTokenizer("pre-tokenizer \"\(ggmlName)\"")
        }
    }

    /// Splits `scalars` into words, as ranges of scalar indices in text order.
    public func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        words.reserveCapacity(scalars.count / 3 + 1)
        switch self {
        case .gpt2:
            GPT2Pattern.split(scalars, 0..<scalars.count, into: &words)
        case .smollm:
            // `\p{N}` isolated first; the regex then runs on each piece between digits, with the
            // piece's end as the end of text (lookahead does not cross pieces), as tokenizers and llama.cpp do.
            var start = 0
            for i in scalars.indices where CharacterClass.of(scalars[i]) == .number {
                if start < i { GPT2Pattern.split(scalars, start..<i, into: &words) }
                words.append(i..<(i + 1))
                start = i + 1
            }
            if start < scalars.count { GPT2Pattern.split(scalars, start..<scalars.count, into: &words) }
        case .llama3:
            Llama3Pattern.split(scalars, maxDigits: 3, into: &words)
        case .qwen2:
            Llama3Pattern.split(scalars, maxDigits: 1, into: &words)
        }
        return words
    }
}

/// The classes the GPT-2 regex distinguishes.
enum CharacterClass: UInt8 {
    case letter, number, whitespace, other

    /// `\p{L}` (general category L*), `\p{N}` (N*), `\s` (White_Space), or anything else.
    @inline(__always)
    static func of(_ s: Unicode.Scalar) -> CharacterClass {
        let v = s.value
        if v < 0x80 {  // ASCII fast path
            if (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) { return .letter }
            if v >= 0x30 && v <= 0x39 { return .number }
            if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return .whitespace }
            return .other
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return s.properties.isWhitespace ? .whitespace : .other
        }
    }
}

/// A hand-written scanner equivalent to the GPT-2 pre-tokenizer regex
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// (alternatives tried in order at each position, each greedy).
enum GPT2Pattern {
    static func split(_ text: [Unicode.Scalar], _ range: Range<Int>, into words: inout [Range<Int>]) {
        let end = range.upperBound
        var classes = [CharacterClass]()
        classes.reserveCapacity(range.count)
        for i in range { classes.append(CharacterClass.of(text[i])) }
        @inline(__always) func cls(_ i: Int) -> CharacterClass { classes[i - range.lowerBound] }

        var i = range.lowerBound
        while i < end {
            let length = matchLength(text, at: i, end: end, cls)
            words.append(i..<(i + length))
            i += length
        }
    }

    /// Length (≥ 1) of the match at `i`; every position matches one of the alternatives.
    @inline(__always)
    static func matchLength(_ text: [Unicode.Scalar], at i: Int, end: Int,
                            _ cls: (Int) -> CharacterClass) -> Int {
        let c = text[i]
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == "'" && i + 1 < end {
            let n = text[i + 1]
            if n == "s" || n == "t" || n == "m" || n == "d" { return 2 }
            if i + 2 < end {
                let m = text[i + 2]
                if (n == "r" && m == "e") || (n == "v" && m == "e") || (n == "l" && m == "l") { return 3 }
            }
        }
        // ` ?X+` for X = letters, numbers, other (not whitespace/letter/number).
        var start = i
        if c == " " && i + 1 < end && cls(i + 1) != .whitespace { start = i + 1 }
        let k = cls(start)
        if k != .whitespace {
            var j = start + 1
            while j < end && cls(j) == k { j += 1 }
            return j - i
        }
        // \s+(?!\S) | \s+ : a whitespace run; if a non-space follows, leave its last space to that word.
        var j = i + 1
        while j < end && cls(j) == .whitespace { j += 1 }
        if j < end && j - i > 1 { return j - i - 1 }
        return j - i
    }
}

/// A hand-written scanner equivalent to the Llama 3 / Qwen2 pre-tokenizer regex
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with D = 3 (Llama 3) or 1 (Qwen2), alternatives tried in order at each position.
enum Llama3Pattern {
    static func split(_ text: [Unicode.Scalar], maxDigits: Int, into words: inout [Range<Int>]) {
        let classes = text.map(CharacterClass.of)
        var i = 0
        while i < text.count {
            let length = matchLength(text, classes, at: i, maxDigits: maxDigits)
            words.append(i..<(i + length))
            i += length
        }
    }

    @inline(__always)
    static func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }

    /// Length (≥ 1) of the match at `i`.
    static func matchLength(_ text: [Unicode.Scalar], _ cls: [CharacterClass], at i: Int, maxDigits: Int) -> Int {
        let end = text.count
        let c = text[i]
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == "'" && i + 1 < end {
            let n = lower(text[i + 1])
            if n == "s" || n == "t" || n == "m" || n == "d" { return 2 }
            if i + 2 < end {
                let m = lower(text[i + 2])
                if (n == "r" && m == "e") || (n == "v" && m == "e") || (n == "l" && m == "l") { return 3 }
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        var start = i
        if cls[i] != .letter && cls[i] != .number && !isNewline(c) && i + 1 < end && cls[i + 1] == .letter { start = i + 1 }
        if cls[start] == .letter {
            var j = start + 1
            while j < end && cls[j] == .letter { j += 1 }
            return j - i
        }
        // \p{N}{1,D}
        if cls[i] == .number {
            var j = i + 1
            while j < end && j - i < maxDigits && cls[j] == .number { j += 1 }
            return j - i
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        start = c == " " && i + 1 < end && cls[i + 1] == .other ? i + 1 : i
        if cls[start] == .other {
            var j = start + 1
            while j < end && cls[j] == .other { j += 1 }
            while j < end && isNewline(text[j]) { j += 1 }
            return j - i
        }
        // What is left starts with whitespace.
        var j = i
        while j < end && cls[j] == .whitespace { j += 1 }
        // \s*[\r\n]+ : up to the last newline of the whitespace run.
        if let last = (i..<j).last(where: { isNewline(text[$0]) }) { return last + 1 - i }
        // \s+(?!\S) | \s+
        if j < end && j - i > 1 { return j - i - 1 }
        return j - i
    }

    @inline(__always)
    static func lower(_ s: Unicode.Scalar) -> Unicode.Scalar {
        (s.value >= 0x41 && s.value <= 0x5A) ? Unicode.Scalar(s.value + 0x20) ?? s : s
    }
}
