import Foundation
import TensorFiles
import Yams

/// A JSON/YAML document tree with object keys in a fixed order, the common form of both file syntaxes.
///
/// The writer emits keys in the order they are stored, so a config is always written the same way;
/// the reader keeps file order (and rejects duplicate keys) so errors can name entries exactly.
public indirect enum ConfigValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([ConfigValue])
    case object([(key: String, value: ConfigValue)])

    public static func == (a: ConfigValue, b: ConfigValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// The member `key` of an object, or nil.
    public subscript(key: String) -> ConfigValue? {
        if case .object(let members) = self { return members.first { $0.key == key }?.value }
        return nil
    }

    /// A number as Double (ints converted), or nil.
    public var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// A short name of the value's kind, for error messages.
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    // MARK: - JSON

    /// Pretty JSON: two-space indentation, keys in stored order, short containers on one line,
    /// numbers in their shortest round-tripping form, a final newline.
    public var prettyJSON: String {
        var out = ""
        writeJSON(into: &out, indent: 0)
        return out + "\n"
    }

    /// Containers whose one-line form is at most this long are written on one line.
    static let inlineWidth = 100

    /// The one-line JSON form.
    var compactJSON: String {
        var out = ""
        writeCompact(into: &out)
        return out
    }

    private func writeCompact(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += Self.format(d)
        case .string(let s): out += JSONEncoding.quoted(s)
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() {
                if i > 0 { out += ", " }
                e.writeCompact(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, m) in members.enumerated() {
                if i > 0 { out += ", " }
                out += JSONEncoding.quoted(m.key)
                out += ": "
                m.value.writeCompact(into: &out)
            }
            out += "}"
        }
    }

    private func writeJSON(into out: inout String, indent: Int) {
        let compact = compactJSON
        switch self {
        case .array(let a) where compact.count + indent > Self.inlineWidth && !a.isEmpty:
            let pad = String(repeating: " ", count: indent + 2)
            out += "[\n"
            for (i, e) in a.enumerated() {
                out += pad
                e.writeJSON(into: &out, indent: indent + 2)
                out += i + 1 < a.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "]"
        case .object(let members) where compact.count + indent > Self.inlineWidth && !members.isEmpty:
            let pad = String(repeating: " ", count: indent + 2)
            out += "{\n"
            for (i, m) in members.enumerated() {
                out += pad
                out += JSONEncoding.quoted(m.key)
                out += ": "
                m.value.writeJSON(into: &out, indent: indent + 2)
                out += i + 1 < members.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        default:
            out += compact
        }
    }

    /// The shortest text that reads back as exactly `d` (Swift's description), always with a
    /// fraction or exponent so that YAML resolves it as a float. Non-finite values have no JSON form.
    static func format(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        var s = "\(d)"
        if !s.contains(".") && !s.contains("e") && !s.contains("E") { s += ".0" }
        return s
    }

    /// Parses a JSON document.
    /// - Throws: ``ConfigError`` naming the file and byte offset.
    public static func parseJSON(_ bytes: [UInt8], path: String) throws -> ConfigValue {
        do {
            return ConfigValue(try JSONValue.parse(bytes, path: path))
        } catch let error as TensorFileError {
            throw ConfigError(path: path, entry: error.location, "\(error.message)")
        }
    }

    init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let i, let d): self = i.map(ConfigValue.int) ?? .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(ConfigValue.init))
        case .object(let members): self = .object(members.map { ($0.key, ConfigValue($0.value)) })
        }
    }

    // MARK: - YAML

    /// A YAML document (block style; strings double-quoted so that none reads back as another type).
    /// - Throws: ``ConfigError`` when the emitter fails.
    public func yaml(path: String = "") throws -> String {
        do {
            return try Yams.serialize(node: yamlNode, indent: 2, width: -1, allowUnicode: true)
        } catch {
            throw ConfigError(path: path, "cannot write YAML: \(error)")
        }
    }

    var yamlNode: Node {
        switch self {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .int(let i): return Node(String(i), Tag(.int))
        case .double(let d): return Node(Self.format(d), Tag(.float))
        case .string(let s): return Node(s, Tag(.str), .doubleQuoted)
        case .array(let a):
            // Arrays of scalars and short objects read best in flow style.
            let flow = compactJSON.count <= 60
            return Node(a.map(\.yamlNode), Tag(.seq), flow ? .flow : .block)
        case .object(let members):
            let flow = compactJSON.count <= 60 && members.allSatisfy { if case .object = $0.value { return false } else { return true } }
            return Node(members.map { (Node($0.key, Tag(.str), .plain), $0.value.yamlNode) }, Tag(.map), flow ? .flow : .block)
        }
    }

    /// Parses a YAML document (one document; duplicate keys rejected). Anchors and aliases are refused
    /// before Yams sees the text: kvscope never writes them, and an alias bomb used as a mapping key
    /// makes Yams' own duplicate-key check hash an exponentially large tree (found by FuzzConfig).
    /// - Throws: ``ConfigError`` naming the file, line and column.
    public static func parseYAML(_ text: String, path: String) throws -> ConfigValue {
        if let (line, column, token) = firstAnchorOrAlias(in: text) {
            throw ConfigError(path: path, "YAML \(token == "&" ? "anchors" : "aliases") are not supported in configs "
                                  + "(line \(line), column \(column)): write the values out")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(path: path, "bad YAML: " + Self.shortDescription(error))
        } catch {
            throw ConfigError(path: path, "bad YAML: " + Self.shortDescription(String(describing: error)))
        }
        guard let node else { throw ConfigError(path: path, "empty YAML document") }
        // Aliases share nodes, so a small file can expand to billions of values ("billion laughs"):
        // the tree may hold at most a few values per byte of text.
        var budget = max(4096, 4 * text.utf8.count)
        return try ConfigValue(yaml: node, path: path, entry: "", depth: 0, budget: &budget)
    }

    /// The first `&anchor` or `*alias` token outside quoted scalars and comments: a `&` or `*` that
    /// starts a node — the last non-blank character before it on its line is none, or one of the
    /// indicators `:` `-` `?` `[` `{` `,` — and is followed by a name character. (Inside a plain
    /// scalar, " &x" is text; block scalars, which configs do not use, are not told apart.)
    static func firstAnchorOrAlias(in text: String) -> (line: Int, column: Int, token: Character)? {
        var line = 1, column = 0
        var quote: Character? = nil, comment = false, escaped = false
        var previous: Character = "\n", lastSignificant: Character = "\n"
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            column += 1
            if c == "\n" {
                line += 1; column = 0; comment = false
                if quote == nil { lastSignificant = "\n" }
            } else if comment {
            } else if let q = quote {
                if q == "\"" {
                    if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { quote = nil; lastSignificant = c }
                } else if c == "'" {
                    if next == "'" { i += 2; column += 1; previous = c; continue }  // '' inside '…'
                    quote = nil
                    lastSignificant = c
                }
            } else if c == " " || c == "\t" {
            } else if c == "#" && (previous == " " || previous == "\t" || previous == "\n") {
                comment = true
            } else if (c == "\"" || c == "'") && "\n:-?[{,".contains(lastSignificant) {
                quote = c
            } else if c == "&" || c == "*", "\n:-?[{,".contains(lastSignificant),
                      let n = next, !" \t\n,[]{}".contains(n) {
                return (line, column, c)
            } else {
                lastSignificant = c
            }
            previous = c
            i += 1
        }
        return nil
    }

    /// A YAML error in one line: the problem and where, without the document text Yams appends.
    static func shortDescription(_ error: YamlError) -> String {
        func at(_ mark: Mark) -> String { " (line \(mark.line), column \(mark.column))" }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return shortDescription(problem) + at(mark)
        case .reader(let problem, let offset, _, _):
            return problem + (offset.map { " (offset \($0))" } ?? "")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "duplicate key \(duplicates.joined(separator: ", "))" + at(context.mark)
        default:
            return shortDescription(String(describing: error))
        }
    }

    /// "PROBLEM. Context: <document> in line L, column C" → "PROBLEM (line L, column C)".
    static func shortDescription(_ text: String) -> String {
        var problem = text
        var location = ""
        if let context = text.range(of: " Context:") ?? text.range(of: "Context:") {
            problem = String(text[..<context.lowerBound])
            if let line = text.range(of: " in line ", options: .backwards) {
                location = " (line " + text[line.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines) + ")"
            }
        }
        problem = problem.split(whereSeparator: \.isNewline).joined(separator: " ")
        if problem.hasPrefix("Parser: ") { problem.removeFirst("Parser: ".count) }
        if problem.hasSuffix(".") { problem.removeLast() }
        return problem + location
    }

    init(yaml node: Node, path: String, entry: String, depth: Int, budget: inout Int) throws {
        guard depth < 64 else { throw ConfigError(path: path, entry: entry, "nested deeper than 64 levels") }
        budget -= 1
        guard budget >= 0 else { throw ConfigError(path: path, entry: entry, "YAML aliases expand to too many values") }
        func location(_ mark: Mark?) -> String { mark.map { " (line \($0.line), column \($0.column))" } ?? "" }
        switch node {
        case .scalar(let scalar):
            let s = scalar.string
            switch node.tag.rawValue {
            case Tag.Name.null.rawValue: self = .null
            case Tag.Name.bool.rawValue:
                guard let b = node.bool else { throw ConfigError(path: path, entry: entry, "bad boolean \(s)") }
                self = .bool(b)
            case Tag.Name.int.rawValue:
                guard let i = Int(s.replacingOccurrences(of: "_", with: "")) ?? node.int else {
                    throw ConfigError(path: path, entry: entry, "integer \(s) out of range\(location(scalar.mark))")
                }
                self = .int(i)
            case Tag.Name.float.rawValue:
                guard let d = Double(s.replacingOccurrences(of: "_", with: "")) ?? node.float else {
                    throw ConfigError(path: path, entry: entry, "bad number \(s)\(location(scalar.mark))")
                }
                // JSON has no infinity or NaN: a YAML config must say what its JSON twin can.
                guard d.isFinite else { throw ConfigError(path: path, entry: entry, "\(s) is not a finite number\(location(scalar.mark))") }
                self = .double(d)
            default: self = .string(s)
            }
        case .sequence(let seq):
            var items: [ConfigValue] = []
            for (i, child) in seq.enumerated() {
                items.append(try ConfigValue(yaml: child, path: path, entry: "\(entry)[\(i)]", depth: depth + 1, budget: &budget))
            }
            self = .array(items)
        case .mapping(let map):
            var members: [(key: String, value: ConfigValue)] = []
            var seen = Set<String>()
            for (k, v) in map {
                guard case .scalar(let keyScalar) = k else {
                    throw ConfigError(path: path, entry: entry, "a mapping key is not a scalar\(location(k.mark))")
                }
                let key = keyScalar.string
                let child = entry.isEmpty ? key : "\(entry).\(key)"
                guard seen.insert(key).inserted else {
                    throw ConfigError(path: path, entry: child, "duplicate key\(location(keyScalar.mark))")
                }
                members.append((key, try ConfigValue(yaml: v, path: path, entry: child, depth: depth + 1, budget: &budget)))
            }
            self = .object(members)
        case .alias:
            throw ConfigError(path: path, entry: entry, "unresolved YAML alias")
        }
    }
}
