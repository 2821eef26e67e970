/// A metadata value from a model file: GGUF key/value pairs (every GGUF value type, arrays
/// nested), safetensors `__metadata__` strings, or config.json entries.
public enum MetadataValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    indirect case array([MetadataValue])

    /// The value as an Int when it is an integer (or an integral float) that fits.
    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(exactly: v)
        case .float(let v): return v.rounded() == v && abs(v) < 9e15 ? Int(v) : nil
        default: return nil
        }
    }

    /// The value as a Double when it is numeric.
    public var doubleValue: Double? {
        switch self {
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        case .float(let v): return v
        default: return nil
        }
    }

    /// The value as a String when it is one.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a Bool when it is one.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements when the value is an array.
    public var arrayValue: [MetadataValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
