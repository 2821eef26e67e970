/// A parsed JSON value, as found in safetensors headers and config.json files.
///
/// Objects keep their keys in file order; duplicate keys are rejected by the parser.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number: `int` when the literal is an integer that fits in Int, else nil; `double` always.
    case number(int: Int?, double: Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let i, let d), .number(let j, let e)): return i == j && (d == e || (d.isNaN && e.isNaN))
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// Parses one strict RFC 8259 JSON document (duplicate keys rejected).
    /// - Parameters:
    ///   - bytes: the UTF-8 text.
    ///   - path: the file named in errors.
    /// - Throws: ``TensorFileError`` naming the byte offset of the problem.
    public static func parse(_ bytes: [UInt8], path: String) throws -> JSONValue {
        try bytes.withUnsafeBytes { try JSONParser.parse($0, path: path) }
    }

    /// The value for `key` when this is an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members.first { $0.key == key }?.value }
        return nil
    }

    /// This value as a ``MetadataValue``; objects become nil (flatten them with ``flattenedMetadata(prefix:)``).
    public var metadataValue: MetadataValue? {
        switch self {
        case .null, .object: return nil
        case .bool(let b): return .bool(b)
        case .number(let i, let d): return i.map { .int(Int64($0)) } ?? .float(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.compactMap(\.metadataValue))
        }
    }

    /// An object's members as metadata, nested objects flattened with dotted keys
    /// (`rope_scaling.factor`); nulls are left out.
    public func flattenedMetadata(prefix: String = "") -> [String: MetadataValue] {
        var out: [String: MetadataValue] = [:]
        guard case .object(let members) = self else { return out }
        for (key, value) in members {
            let full = prefix.isEmpty ? key : "\(prefix).\(key)"
            if case .object = value {
                out.merge(value.flattenedMetadata(prefix: full)) { a, _ in a }
            } else if let v = value.metadataValue {
                out[full] = v
            }
        }
        return out
    }
}

/// A strict RFC 8259 JSON parser over raw bytes. Errors name the byte offset (plus `baseOffset`,
/// so a header inside a larger file reports file offsets). Nesting is limited so hostile input
/// cannot exhaust the stack.
struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let path: String
    let baseOffset: Int
    var offset = 0
    static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer, path: String, baseOffset: Int = 0) {
        self.bytes = bytes
        self.path = path
        self.baseOffset = baseOffset
    }

    /// Parses one JSON document; only whitespace may follow it.
    static func parse(_ bytes: UnsafeRawBufferPointer, path: String, baseOffset: Int = 0) throws -> JSONValue {
        var p = JSONParser(bytes, path: path, baseOffset: baseOffset)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.offset == bytes.count else { throw p.error("unexpected data after the JSON value") }
        return v
    }

    func error(_ message: String) -> TensorFileError {
        if peek == nil, !message.hasPrefix("unexpected end") {
            return TensorFileError(path: path, "bad JSON: unexpected end of input (\(message))", at: "offset \(baseOffset + offset)")
        }
        return TensorFileError(path: path, "bad JSON: \(message)", at: "offset \(baseOffset + offset)")
    }

    var peek: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    mutating func skipWhitespace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { offset += 1 }
    }

    mutating func expect(_ literal: StaticString) throws {
        let n = literal.utf8CodeUnitCount
        guard bytes.count - offset >= n else { throw error("truncated literal") }
        let ok = literal.withUTF8Buffer { lit in (0..<n).allSatisfy { bytes[offset + $0] == lit[$0] } }
        guard ok else { throw error("unexpected character") }
        offset += n
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
        guard let c = peek else { throw error("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(Unicode.Scalar(c))'")
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        offset += 1
        var members: [(key: String, value: JSONValue)] = []
        // Keys compared by their UTF-8 bytes: Swift's String equality is canonical equivalence,
        // and vocabularies hold keys that differ only in normalization form ("é" and "e\u{301}").
        var seen = Set<[UInt8]>()
        skipWhitespace()
        if peek == UInt8(ascii: "}") { offset += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard peek != nil else { throw error("unexpected end of input") }
            guard peek == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyOffset = offset
            let key = try string()
            guard seen.insert(Array(key.utf8)).inserted else {
                offset = keyOffset
                throw error("duplicate key \"\(key)\"")
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':'") }
            offset += 1
            skipWhitespace()
            members.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "}"): offset += 1; return .object(members)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        offset += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") { offset += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): offset += 1
            case UInt8(ascii: "]"): offset += 1; return .array(items)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    mutating func number() throws -> JSONValue {
        let start = offset
        if peek == UInt8(ascii: "-") { offset += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            var n = 0
            while let c = p.peek, c >= 0x30, c <= 0x39 { p.offset += 1; n += 1 }
            return n
        }
        guard digits(&self) > 0 else { throw error("bad number") }
        var integral = true
        if peek == UInt8(ascii: ".") {
            offset += 1
            integral = false
            guard digits(&self) > 0 else { throw error("bad number") }
        }
        if let c = peek, c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            offset += 1
            integral = false
            if let s = peek, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { offset += 1 }
            guard digits(&self) > 0 else { throw error("bad number") }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
        guard let d = Double(text) else { throw error("bad number") }
        return .number(int: integral ? Int(text) : nil, double: d)
    }

    mutating func hex4() throws -> UInt32 {
        guard bytes.count - offset >= 4 else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[offset]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("bad \\u escape")
            }
            v = v << 4 | d
            offset += 1
        }
        return v
    }

    /// A string; the raw bytes must be valid UTF-8 (a name that is not UTF-8 is an error here).
    mutating func string() throws -> String {
        offset += 1
        var out = String.UnicodeScalarView()
        var runStart = offset
        func flushRun(_ p: JSONParser, upTo end: Int, into out: inout String.UnicodeScalarView) throws {
            guard end > runStart else { return }
            let run = UnsafeRawBufferPointer(rebasing: p.bytes[runStart..<end])
            guard let s = String(validatingUTF8Bytes: run) else {
                throw TensorFileError(path: p.path, "bad JSON: string is not valid UTF-8",
                                      at: "offset \(p.baseOffset + runStart)")
            }
            out.append(contentsOf: s.unicodeScalars)
        }
        while true {
            guard let c = peek else { throw error("unterminated string") }
            if c == UInt8(ascii: "\"") {
                try flushRun(self, upTo: offset, into: &out)
                offset += 1
                return String(out)
            }
            if c < 0x20 { throw error("control character in string") }
            if c == UInt8(ascii: "\\") {
                try flushRun(self, upTo: offset, into: &out)
                offset += 1
                guard let e = peek else { throw error("unterminated escape") }
                offset += 1
                switch e {
                case UInt8(ascii: "\""): out.append("\"")
                case UInt8(ascii: "\\"): out.append("\\")
                case UInt8(ascii: "/"): out.append("/")
                case UInt8(ascii: "b"): out.append("\u{08}")
                case UInt8(ascii: "f"): out.append("\u{0C}")
                case UInt8(ascii: "n"): out.append("\n")
                case UInt8(ascii: "r"): out.append("\r")
                case UInt8(ascii: "t"): out.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard bytes.count - offset >= 6, bytes[offset] == UInt8(ascii: "\\"),
                              bytes[offset + 1] == UInt8(ascii: "u") else { throw error("unpaired surrogate") }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("unpaired surrogate") }
                    out.append(scalar)
                default: throw error("bad escape")
                }
                runStart = offset
                continue
            }
            offset += 1
        }
    }
}

/// Encodes strings as JSON string literals; every JSON writer in kvscope (safetensors headers,
/// configs, `--json` output) uses this one escaper.
public enum JSONEncoding {
    /// `s` as a JSON string literal, quotes included.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
