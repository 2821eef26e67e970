import TensorFiles

/// A JSON value for `--json` output. Documents are built typed (no `Any` casts, which dominated
/// the cost of `inspect` on a 272-tensor model) and written with keys sorted by Unicode scalars,
/// numbers in their shortest round-tripping form, on one line.
enum JSON: Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// The document as one line of JSON text. Non-finite numbers have no JSON form: null.
    var text: String {
        var out = ""
        out.reserveCapacity(1024)
        write(into: &out)
        return out
    }

    /// Where the first NaN or infinite number stands (`key`, `key[i].key`), or nil when there is none.
    func firstNonFinitePath(_ prefix: String = "") -> String? {
        switch self {
        case .double(let d): return d.isFinite ? nil : (prefix.isEmpty ? "value" : prefix)
        case .array(let a):
            for (i, e) in a.enumerated() { if let p = e.firstNonFinitePath("\(prefix)[\(i)]") { return p } }
            return nil
        case .object(let d):
            for key in d.keys.sorted() {
                if let p = d[key]?.firstNonFinitePath(prefix.isEmpty ? key : "\(prefix).\(key)") { return p }
            }
            return nil
        default: return nil
        }
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if !d.isFinite { out += "null" } else if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) } else { out += "\(d)" }
        case .string(let s): out += JSONEncoding.quoted(s)
        case .array(let a):
            out += "["
            for (i, e) in a.enumerated() {
                if i > 0 { out += "," }
                e.write(into: &out)
            }
            out += "]"
        case .object(let d):
            out += "{"
            for (i, key) in d.keys.sorted(by: { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }).enumerated() {
                if i > 0 { out += "," }
                out += JSONEncoding.quoted(key)
                out += ":"
                d[key]?.write(into: &out)
            }
            out += "}"
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    init(stringLiteral v: String) { self = .string(v) }
    init(integerLiteral v: Int) { self = .int(v) }
    init(floatLiteral v: Double) { self = .double(v) }
    init(booleanLiteral v: Bool) { self = .bool(v) }
    init(arrayLiteral elements: JSON...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    init(nilLiteral: ()) { self = .null }
}

/// Values that have a JSON form.
protocol JSONConvertible { var json: JSON { get } }

extension String: JSONConvertible { var json: JSON { .string(self) } }
extension Int: JSONConvertible { var json: JSON { .int(self) } }
extension Double: JSONConvertible { var json: JSON { .double(self) } }
extension Float: JSONConvertible { var json: JSON { .double(Double(self)) } }
extension Bool: JSONConvertible { var json: JSON { .bool(self) } }
extension JSON: JSONConvertible { var json: JSON { self } }
extension Array: JSONConvertible where Element: JSONConvertible { var json: JSON { .array(map(\.json)) } }
extension Optional: JSONConvertible where Wrapped: JSONConvertible { var json: JSON { self?.json ?? .null } }
extension Dictionary: JSONConvertible where Key == String, Value: JSONConvertible {
    var json: JSON { .object(mapValues(\.json)) }
}
